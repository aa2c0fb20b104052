//! The landing page at `/`.

use super::{ServerState, Shared, HEALTHY_PATH, INTAKE_PATH, READY_PATH};
use axum::extract::State;
use axum::response::Html;
use std::sync::Arc;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) async fn landing(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(landing_page(&shared.state))
}

fn landing_page(state: &ServerState) -> String {
    let info = &state.landing;
    // Relative links keep working behind a reverse proxy that adds a path prefix.
    let rel = |path: &str| format!(".{path}");
    let mut links = vec![
        ("Metrics".to_owned(), rel(state.telemetry_path.as_str())),
        ("Health".to_owned(), rel(HEALTHY_PATH)),
        ("Readiness".to_owned(), rel(READY_PATH)),
        ("Intake API".to_owned(), "#intake".to_owned()),
    ];
    links.extend(info.links.iter().cloned());
    let items: String = links
        .iter()
        .map(|(text, href)| {
            format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                escape(href),
                escape(text)
            )
        })
        .collect();
    let basic = state.web.current().config.basic_auth.is_some();
    let auth = match (state.intake_token.is_some(), basic) {
        (true, true) => {
            "Requests need <code>Authorization: Bearer &lt;token&gt;</code> or basic auth."
        }
        (true, false) => "Requests need <code>Authorization: Bearer &lt;token&gt;</code>.",
        (false, true) => "Requests need basic auth.",
        (false, false) => "No token is configured.",
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; }}
header {{ background: #e6522c; color: #fff; padding: 0.6em 1em; }}
header h1 {{ margin: 0; font-size: 1.4em; }}
main {{ padding: 0 1em 1em; max-width: 60em; }}
pre, code {{ background: #f4f4f4; }}
pre {{ padding: 0.6em; overflow-x: auto; }}
</style>
</head>
<body>
<header><h1>{name}</h1></header>
<main>
<p>{description}</p>
<p>Version: {version}</p>
<ul>
{items}</ul>
<h2 id="intake">Intake API</h2>
<p><code>POST {intake}</code> takes a JSON object, a JSON array of objects, or NDJSON (one object
per line), each <code>{{"appId", "orderId"}}</code> or <code>{{"verificationId"}}</code>, with the
optional <code>flowId</code> and <code>submittedAt</code> (RFC 3339 or epoch seconds). At most
{max_items} items and {max_body_bytes} bytes per request, with <code>Content-Type:
application/json</code> or <code>application/x-ndjson</code>. {auth}</p>
<p><code>202</code> once the orders are durably stored, with
<code>{{"accepted", "duplicates", "sampled_out"}}</code>; <code>400</code> names the bad item
(<code>index</code>, 0-based) and rejects the whole request.</p>
<pre>curl -X POST -H 'Content-Type: application/json' \
  -d '{{"appId":"Qw7rT2kZ","orderId":"ord-88231","flowId":7}}' \
  http://HOST{intake}</pre>
</main>
</body>
</html>
"#,
        name = escape(&info.name),
        description = escape(&info.description),
        version = escape(&info.version),
        intake = INTAKE_PATH,
        max_items = state.max_items,
        max_body_bytes = state.max_body_bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
