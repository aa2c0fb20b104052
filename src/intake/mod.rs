//! Intake: the wire format of `POST /api/v1/orders` and its validation.
//!
//! Pure: bytes in, typed orders (or one error naming the bad item) out; no I/O. The server
//! ([`crate::server`]) owns HTTP, the tracker implements [`OrderSink`] to store what we parse.
//!
//! # Wire format
//!
//! The body is one of
//! - a JSON object (one order),
//! - a JSON array of objects,
//! - NDJSON / JSON Lines: one object per line, blank lines ignored. Chosen by the content type
//!   (`application/x-ndjson`, `application/jsonl`, `application/x-jsonlines`,
//!   `application/jsonlines`) or detected when the body starts with `{` and holds more than one
//!   top-level value.
//!
//! The content type must be `application/json` or one of the NDJSON types above
//! ([`accepted_content_type`]); anything else (none, `text/plain`, or the
//! `application/x-www-form-urlencoded` that `curl -d` and HTML forms send) is refused with
//! `415` by the server, so a web page cannot make a browser submit orders.
//!
//! Each item is `{"appId": "...", "orderId": "..."}` or `{"verificationId": "..."}`, with the
//! optional `flowId` (integer or numeric string) and `submittedAt` (RFC 3339 string, or epoch
//! seconds or milliseconds as a number; `null` means absent).
//!
//! # Validation
//! - `appId`: 4–32 characters of `[A-Za-z0-9_-]`, without a run of
//!   [`MAX_APP_ID_DIGIT_RUN`] or more digits: such a value could be a phone number, and `appId`
//!   becomes a label.
//! - `orderId`: 1–64 characters, no control characters and no whitespace other than a space.
//! - `verificationId`: a string of 1–32 ASCII digits (a JSON number is refused: the vendor's
//!   ~20-digit ids exceed integer precision).
//! - `flowId`: a non-negative 64-bit integer, as a JSON integer or a string of digits.
//! - `submittedAt`: between 2000-01-01 and 2100-01-01; a number above 10¹¹ is milliseconds.
//! - An item carrying both key forms is keyed by (`appId`, `orderId`) and carries its
//!   `verificationId` as the order's alias ([`NewOrder::alias`]): a later item under either
//!   name is a duplicate. `appId` without `orderId` (or the reverse) is an error.
//! - `submittedAt` older than the duplicate horizon is refused by the tracker's
//!   [`OrderSink::check`] ([`refuse_replays`]): the order may have been counted and forgotten
//!   already, so tracking it again could count it twice.
//! - Unknown fields are rejected (typo protection, like serde's `deny_unknown_fields`).
//! - An empty body, an empty array, or more than `max_items` items is an error.
//! - Any invalid item rejects the whole request.
//!
//! Error messages name the item index (0-based), the line for multi-value bodies, and the field.
//! They never echo a value from the body (which could be a phone number): only field names that
//! look like identifiers (at most [`MAX_ECHO_CHARS`] characters) and lengths are shown.
//!
//! Size (about 600 lines, its tests in `tests.rs`): the three body forms (object, array,
//! NDJSON), each field's rule and the error that names the item are one contract and read best
//! together; the HTTP side is in `server::intake`.

use crate::domain::{EnqueueReport, NewOrder, OrderAlias, OrderKey};
use crate::ledger::family::label_enum;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

label_enum! {
    /// Where orders came from: the `source` label of `itniotech_exporter_orders_received_total`.
    IntakeSource {
        /// `POST /api/v1/orders`.
        Http => "http",
        /// The capture proxy's send path.
        Proxy => "proxy",
    }
}

label_enum! {
    /// Why orders were not tracked: the `reason` label of
    /// `itniotech_exporter_orders_rejected_total`.
    RejectReason {
        /// The request or one of its items was malformed.
        Invalid => "invalid",
        /// Already tracked, or tracked recently.
        Duplicate => "duplicate",
        /// Outside the configured sample.
        SampledOut => "sampled_out",
    }
}

/// Where parsed orders go: implemented by the tracker.
pub trait OrderSink: Send + Sync + 'static {
    /// Refuses a request the sink could not take safely (a replay older than the duplicate
    /// horizon), naming the item like a parse error. Called before the orders are counted as
    /// received.
    fn check(&self, _orders: &[NewOrder]) -> Result<(), IntakeError> {
        Ok(())
    }

    /// Store `orders`. The future resolves only once they are durably committed.
    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>>;
}

/// Why the sink could not take orders; the server answers 503 for both.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store cannot take orders now; the reason is shown to the client, so it names the
    /// failure's kind and time, never paths or order data.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("shutting down")]
    ShuttingDown,
}

/// Intake counters (`itniotech_exporter_orders_received_total{source}` and
/// `itniotech_exporter_orders_rejected_total{reason}`), implemented by the operational metrics.
/// The intake is their only writer.
pub trait IntakeObserver: Send + Sync + 'static {
    fn received(&self, source: IntakeSource, n: u64);
    fn rejected(&self, reason: RejectReason, n: u64);
}

/// The longest value ever echoed in an error message (field names only; never field values).
pub const MAX_ECHO_CHARS: usize = 64;

/// A request that cannot be taken as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// No item at all: empty body, only whitespace, or an empty array.
    #[error("empty request: expected a JSON object, a JSON array of objects, or NDJSON")]
    Empty,
    /// The body is not valid JSON (or NDJSON).
    #[error("{}malformed JSON at line {line}, column {column}: {reason}", item_prefix(*.index, None))]
    Malformed {
        /// The item being read when the error was found, for multi-value bodies.
        index: Option<usize>,
        line: usize,
        column: usize,
        reason: String,
    },
    /// More items than the configured maximum.
    #[error("too many items: more than {max} in one request")]
    TooMany {
        max: usize,
        /// Items counted before giving up (at least `max + 1`).
        seen: usize,
    },
    /// One item is well-formed JSON but not a valid order.
    #[error("{}{reason}", item_prefix(Some(*.index), *.line))]
    Invalid {
        /// 0-based position of the item in the request.
        index: usize,
        /// 1-based line where the item starts, for NDJSON / multi-value bodies.
        line: Option<usize>,
        /// The offending field, when one field is to blame.
        field: Option<String>,
        reason: String,
        /// How many items the request held.
        items: usize,
    },
}

fn item_prefix(index: Option<usize>, line: Option<usize>) -> String {
    match (index, line) {
        (Some(i), Some(l)) => format!("item {i} (line {l}): "),
        (Some(i), None) => format!("item {i}: "),
        (None, _) => String::new(),
    }
}

impl IntakeError {
    /// The 0-based index of the offending item, when one is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            IntakeError::Malformed { index, .. } => *index,
            IntakeError::Invalid { index, .. } => Some(*index),
            IntakeError::Empty | IntakeError::TooMany { .. } => None,
        }
    }

    /// The offending field, when one is to blame.
    pub fn field(&self) -> Option<&str> {
        match self {
            IntakeError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The 1-based line of the offending item or syntax error, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            IntakeError::Malformed { line, .. } => Some(*line),
            IntakeError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// The orders this refusal costs, for `orders_rejected_total{reason="invalid"}`: every
    /// item of a request that parsed into items (at most `max_items`) and held an invalid one.
    /// A body that is not a list of items (malformed JSON, empty, over the item limit) names no
    /// orders: it costs 0 here and is counted as a refused request instead. (Counting what a
    /// junk body *might* have held let one 1 MiB body of `[1,1,...]` add 520,001.)
    pub fn rejected_items(&self) -> u64 {
        match self {
            IntakeError::Invalid { items, .. } => *items as u64,
            IntakeError::TooMany { .. } | IntakeError::Malformed { .. } | IntakeError::Empty => 0,
        }
    }
}

/// The longest run of digits an `appId` may hold: 7 digits could already be a (local) phone
/// number, and `appId` is exported as a label.
pub const MAX_APP_ID_DIGIT_RUN: usize = 6;

/// Whether a request's `Content-Type` is one the intake takes: `application/json` or an NDJSON
/// type (case-insensitive, parameters such as `charset` ignored). Nothing else: a browser
/// may send `text/plain` or a form encoding to any origin without a CORS preflight, so
/// refusing them keeps web pages from submitting orders.
pub fn accepted_content_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json") || is_ndjson_type(ct)
    })
}

/// Content types that force NDJSON parsing (compared case-insensitively, parameters ignored).
const NDJSON_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
];

/// Parse and validate an intake body. See the module docs for the format and the rules.
pub fn parse_orders(
    content_type: Option<&str>,
    body: &[u8],
    max_items: usize,
) -> Result<Vec<NewOrder>, IntakeError> {
    let first = match body.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(pos) => body[pos],
        None => return Err(IntakeError::Empty),
    };
    let ndjson = content_type.is_some_and(is_ndjson_type);
    let values = if first == b'[' && !ndjson {
        parse_array(body, max_items)?
    } else {
        parse_stream(body, max_items)?
    };
    if values.is_empty() {
        return Err(IntakeError::Empty);
    }
    let items = values.len();
    values
        .into_iter()
        .enumerate()
        .map(|(index, (value, line))| {
            parse_item(value).map_err(|e| IntakeError::Invalid {
                index,
                line,
                field: e.field.map(str::to_owned),
                reason: e.reason,
                items,
            })
        })
        .collect()
}

fn is_ndjson_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    NDJSON_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

type Located = (Value, Option<usize>);

fn parse_array(body: &[u8], max_items: usize) -> Result<Vec<Located>, IntakeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(&e, None))?;
    // A body whose first byte is '[' can only parse as an array; keep a total fallback anyway.
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    if items.len() > max_items {
        return Err(IntakeError::TooMany {
            max: max_items,
            seen: items.len(),
        });
    }
    Ok(items.into_iter().map(|v| (v, None)).collect())
}

/// One or more whitespace-separated top-level values (a single object, NDJSON, or concatenated
/// JSON), each with the line it starts on.
fn parse_stream(body: &[u8], max_items: usize) -> Result<Vec<Located>, IntakeError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut line = 1usize;
    let mut scanned = 0usize; // bytes of `body` whose newlines are counted in `line`
    loop {
        // The next value starts at the first non-whitespace byte after the previous one.
        let offset = stream.byte_offset();
        let start = body[offset..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(body.len(), |p| offset + p);
        line += count_newlines(&body[scanned..start]);
        scanned = start;
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                if out.len() == max_items {
                    return Err(IntakeError::TooMany {
                        max: max_items,
                        seen: out.len() + 1,
                    });
                }
                out.push((value, Some(line)));
            }
            Some(Err(e)) => return Err(malformed(&e, Some(out.len()))),
        }
    }
    Ok(out)
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// serde_json syntax errors never quote the input; drop the position suffix it appends so the
/// position is reported once, in our own fields.
fn malformed(e: &serde_json::Error, index: Option<usize>) -> IntakeError {
    let mut reason = e.to_string();
    if let Some(pos) = reason.rfind(" at line ") {
        reason.truncate(pos);
    }
    reason = cap(&reason);
    IntakeError::Malformed {
        index,
        line: e.line().max(1),
        column: e.column(),
        reason,
    }
}

fn cap(s: &str) -> String {
    s.chars().take(MAX_ECHO_CHARS).collect()
}

/// A problem with one item, before the item's position is attached.
struct ItemError {
    field: Option<&'static str>,
    reason: String,
}

fn item_err(field: &'static str, reason: impl Into<String>) -> ItemError {
    ItemError {
        field: Some(field),
        reason: format!("field `{field}` {}", reason.into()),
    }
}

/// The fields an intake item may carry; any other is refused.
pub const FIELDS: &[&str] = &[
    "appId",
    "orderId",
    "verificationId",
    "flowId",
    "submittedAt",
];

fn parse_item(value: Value) -> Result<NewOrder, ItemError> {
    let Value::Object(map) = value else {
        return Err(ItemError {
            field: None,
            reason: format!("expected a JSON object, found {}", kind(&value)),
        });
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ItemError {
            field: None,
            reason: format!(
                "unknown field {} (expected appId, orderId, verificationId, flowId, submittedAt)",
                describe_key(unknown)
            ),
        });
    }
    let app_id = opt_string(&map, "appId")?;
    let order_id = opt_string(&map, "orderId")?;
    let verification_id = opt_string(&map, "verificationId")?;

    if let Some(v) = &app_id {
        validate_app_id(v)?;
    }
    if let Some(v) = &order_id {
        validate_order_id(v)?;
    }
    if let Some(v) = &verification_id {
        validate_verification_id(v)?;
    }
    let (key, alias) = match (app_id, order_id, verification_id) {
        (Some(app_id), Some(order_id), vid) => (
            OrderKey::Order { app_id, order_id },
            vid.map(OrderAlias::VerificationId),
        ),
        (Some(_), None, _) => return Err(item_err("orderId", "is required with `appId`")),
        (None, Some(_), _) => return Err(item_err("appId", "is required with `orderId`")),
        (None, None, Some(verification_id)) => (OrderKey::Verification { verification_id }, None),
        (None, None, None) => {
            return Err(ItemError {
                field: None,
                reason: "needs `appId` and `orderId`, or `verificationId`".to_owned(),
            })
        }
    };
    let flow_id = match map.get("flowId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_flow_id(v)?),
    };
    let submitted_at = match map.get("submittedAt") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_submitted_at(v)?),
    };
    Ok(NewOrder {
        key,
        alias,
        flow_id,
        submitted_at,
    })
}

/// Refuses the first order whose `submittedAt` is older than `horizon` before `now`: the
/// tracker remembers finished orders for `horizon` only, so such a replay may already have been
/// counted and forgotten. The error names the item (0-based index) and the field.
pub fn refuse_replays(
    orders: &[NewOrder],
    now: DateTime<Utc>,
    horizon: chrono::Duration,
) -> Result<(), IntakeError> {
    let oldest = now - horizon;
    match orders
        .iter()
        .position(|o| o.submitted_at.is_some_and(|t| t < oldest))
    {
        None => Ok(()),
        Some(index) => Err(IntakeError::Invalid {
            index,
            line: None,
            field: Some("submittedAt".into()),
            reason: format!(
                "field `submittedAt` is older than the duplicate horizon ({}): the order may                  already have been counted and forgotten, so it is not tracked again",
                humantime::format_duration(horizon.to_std().unwrap_or_default())
            ),
            items: orders.len(),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Name an unknown key only when it looks like an identifier (a typo of a field name); anything
/// else (a phone number used as a key, say) is not echoed.
fn describe_key(key: &str) -> String {
    let identifier = !key.is_empty()
        && key.chars().count() <= MAX_ECHO_CHARS
        && key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if identifier {
        format!("`{key}`")
    } else {
        format!("(name not shown, {} characters)", key.chars().count())
    }
}

fn opt_string(map: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ItemError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(item_err(
            field,
            format!("must be a string, found {}", kind(other)),
        )),
    }
}

fn validate_app_id(v: &str) -> Result<(), ItemError> {
    let n = v.chars().count();
    if !(4..=32).contains(&n) {
        return Err(item_err(
            "appId",
            format!("must be 4–32 characters (got {n})"),
        ));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(item_err("appId", "may only contain [A-Za-z0-9_-]"));
    }
    let mut run = 0;
    for c in v.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run > MAX_APP_ID_DIGIT_RUN {
            return Err(item_err(
                "appId",
                format!(
                    "must not hold {} or more digits in a row (it could be a phone number)",
                    MAX_APP_ID_DIGIT_RUN + 1
                ),
            ));
        }
    }
    Ok(())
}

fn validate_order_id(v: &str) -> Result<(), ItemError> {
    let n = v.chars().count();
    if !(1..=64).contains(&n) {
        return Err(item_err(
            "orderId",
            format!("must be 1–64 characters (got {n})"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
    {
        return Err(item_err(
            "orderId",
            "must be printable (no control characters, tabs or line breaks)",
        ));
    }
    Ok(())
}

fn validate_verification_id(v: &str) -> Result<(), ItemError> {
    let n = v.len();
    if !(1..=32).contains(&n) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(item_err(
            "verificationId",
            format!(
                "must be 1–32 ASCII digits (got {} characters)",
                v.chars().count()
            ),
        ));
    }
    Ok(())
}

fn parse_flow_id(v: &Value) -> Result<i64, ItemError> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    match parsed {
        Some(id) if id >= 0 => Ok(id),
        _ => Err(item_err(
            "flowId",
            "must be a non-negative integer or a string of digits",
        )),
    }
}

/// Epoch numbers above this are milliseconds (10¹¹ s is the year 5138).
const MILLIS_THRESHOLD: f64 = 1e11;

fn parse_submitted_at(v: &Value) -> Result<DateTime<Utc>, ItemError> {
    let parsed = match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                item_err(
                    "submittedAt",
                    "must be an RFC 3339 timestamp (e.g. 2024-05-14T09:12:33Z) or epoch seconds/milliseconds",
                )
            })?,
        Value::Number(n) => {
            let x = n.as_f64().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| {
                item_err("submittedAt", "must be a non-negative epoch number")
            })?;
            let millis = if x > MILLIS_THRESHOLD { x } else { x * 1000.0 };
            // In range of i64 after the bounds check below; out-of-range values fail there.
            if millis > 1e15 {
                return Err(out_of_range());
            }
            Utc.timestamp_millis_opt(millis.round() as i64)
                .single()
                .ok_or_else(out_of_range)?
        }
        other => {
            return Err(item_err(
                "submittedAt",
                format!("must be a string or a number, found {}", kind(other)),
            ))
        }
    };
    let lo = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let hi = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
    if parsed < lo || parsed >= hi {
        return Err(out_of_range());
    }
    Ok(parsed)
}

fn out_of_range() -> ItemError {
    item_err(
        "submittedAt",
        "is out of range (2000-01-01 to 2100-01-01; epoch seconds or milliseconds)",
    )
}

#[cfg(test)]
mod tests;
