// Tell the agent about an OTP order right after sending it (Node.js 18+, no dependencies).
// reportOrder never throws, so monitoring can never break your login flow.
const URL = process.env.ITNIOTECH_INTAKE_URL ?? "http://127.0.0.1:9867/api/v1/orders";
const TOKEN = process.env.ITNIOTECH_INTAKE_TOKEN;

export async function reportOrder(appId, orderId, flowId) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const order = { appId, orderId, ...(flowId === undefined ? {} : { flowId }) };
  try {
    const response = await fetch(URL, {
      method: "POST",
      headers,
      body: JSON.stringify(order),
      signal: AbortSignal.timeout(2000),
    });
    return response.status === 202;
  } catch (error) {
    console.error("order not reported to the agent:", error.message);
    return false;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (!(await reportOrder("Qw7rT2kZ", "node-1", 7))) process.exit(1);
  if (!(await reportOrder("Qw7rT2kZ", "node-2"))) process.exit(1);
}
