#!/bin/sh
# Tell the agent about OTP orders with curl. ITNIOTECH_INTAKE_URL defaults to the local agent;
# ITNIOTECH_INTAKE_TOKEN, when set, is sent as the bearer token the intake requires.
set -eu
url="${ITNIOTECH_INTAKE_URL:-http://127.0.0.1:9867/api/v1/orders}"
auth=""
if [ -n "${ITNIOTECH_INTAKE_TOKEN:-}" ]; then
    auth="Authorization: Bearer ${ITNIOTECH_INTAKE_TOKEN}"
fi
# One order, known by (appId, orderId), sent with task flow 7.
curl --fail --silent --show-error -X POST "$url" \
    -H 'Content-Type: application/json' ${auth:+-H "$auth"} \
    -d '{"appId":"Qw7rT2kZ","orderId":"curl-1","flowId":7}'
echo
# Several at once as NDJSON: one JSON object per line.
printf '%s\n' \
    '{"appId":"Qw7rT2kZ","orderId":"curl-2"}' \
    '{"verificationId":"24051409123310000417"}' |
    curl --fail --silent --show-error -X POST "$url" \
        -H 'Content-Type: application/x-ndjson' ${auth:+-H "$auth"} --data-binary @-
echo
