// Tell the agent about an OTP order right after sending it (standard library only).
// reportOrder never panics, so monitoring can never break your login flow.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

type order struct {
	AppID   string `json:"appId"`
	OrderID string `json:"orderId"`
	FlowID  *int64 `json:"flowId,omitempty"`
}

var client = &http.Client{Timeout: 2 * time.Second}

// reportOrder returns true when the agent stored the order (HTTP 202).
func reportOrder(appID, orderID string, flowID *int64) bool {
	url := os.Getenv("ITNIOTECH_INTAKE_URL")
	if url == "" {
		url = "http://127.0.0.1:9867/api/v1/orders"
	}
	body, _ := json.Marshal(order{AppID: appID, OrderID: orderID, FlowID: flowID})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(os.Stderr, "order not reported to the agent:", err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	if token := os.Getenv("ITNIOTECH_INTAKE_TOKEN"); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "order not reported to the agent:", err)
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted
}

func main() {
	flow := int64(7)
	if !reportOrder("Qw7rT2kZ", "go-1", &flow) || !reportOrder("Qw7rT2kZ", "go-2", nil) {
		os.Exit(1)
	}
}
