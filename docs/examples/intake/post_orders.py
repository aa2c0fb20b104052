"""Tell the agent about an OTP order right after sending it (standard library only).

Call `report_order` after every successful send/sendRule; it never raises, so monitoring can
never break your login flow. ITNIOTECH_INTAKE_URL and ITNIOTECH_INTAKE_TOKEN configure it.
"""
import json
import os
import urllib.request

URL = os.environ.get("ITNIOTECH_INTAKE_URL", "http://127.0.0.1:9867/api/v1/orders")
TOKEN = os.environ.get("ITNIOTECH_INTAKE_TOKEN")


def report_order(app_id, order_id, flow_id=None, timeout=2.0):
    """Returns True when the agent stored the order (HTTP 202)."""
    order = {"appId": app_id, "orderId": order_id}
    if flow_id is not None:
        order["flowId"] = flow_id
    headers = {"Content-Type": "application/json"}
    if TOKEN:
        headers["Authorization"] = "Bearer " + TOKEN
    request = urllib.request.Request(
        URL, data=json.dumps(order).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 202
    except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
        print("order not reported to the agent:", error)
        return False


if __name__ == "__main__":
    assert report_order("Qw7rT2kZ", "py-1", flow_id=7)
    assert report_order("Qw7rT2kZ", "py-2")
