// Tell the agent about an OTP order right after sending it (Java 11+, java.net.http only).
// Run directly with `java PostOrders.java`. reportOrder never throws.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class PostOrders {
    static final String URL = System.getenv().getOrDefault(
            "ITNIOTECH_INTAKE_URL", "http://127.0.0.1:9867/api/v1/orders");
    static final String TOKEN = System.getenv("ITNIOTECH_INTAKE_TOKEN");
    static final HttpClient CLIENT =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    /** Returns true when the agent stored the order (HTTP 202). */
    static boolean reportOrder(String appId, String orderId, Integer flowId) {
        // appId and orderId are your own identifiers; escape them if they can contain quotes.
        String json = "{\"appId\":\"" + appId + "\",\"orderId\":\"" + orderId + "\""
                + (flowId == null ? "" : ",\"flowId\":" + flowId) + "}";
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(URL))
                .timeout(Duration.ofSeconds(2))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json));
        if (TOKEN != null && !TOKEN.isEmpty()) {
            request.header("Authorization", "Bearer " + TOKEN);
        }
        try {
            return CLIENT.send(request.build(), HttpResponse.BodyHandlers.discarding())
                    .statusCode() == 202;
        } catch (Exception e) {
            System.err.println("order not reported to the agent: " + e);
            return false;
        }
    }

    public static void main(String[] args) {
        if (!reportOrder("Qw7rT2kZ", "java-1", 7) || !reportOrder("Qw7rT2kZ", "java-2", null)) {
            System.exit(1);
        }
    }
}
