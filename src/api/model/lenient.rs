//! Lenient field deserializers. Each goes through `serde_json::Value` so that a wrong type for
//! one field becomes `None` (or a default) instead of failing the whole record, and the parsers
//! of the vendor's many timestamp forms.

use super::{Channel, Matched, StepTrigger};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

pub(super) fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

pub(super) fn value_to_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .ok()
        }
        // A JSON number went through f64 in serde_json: take its shortest decimal rendering.
        Value::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        _ => None,
    }
}

/// Parses every timestamp form the vendor may use: RFC 3339 / ISO-8601 with any offset (also
/// without the colon in the offset), `yyyy-MM-dd HH:mm:ss` (taken as UTC+8, the vendor's own
/// zone, as its samples show), epoch seconds or milliseconds as number or string. Empty → None.
pub fn parse_time(v: &Value) -> Option<DateTime<FixedOffset>> {
    let t = match v {
        Value::Number(n) => n.as_i64().and_then(epoch_to_time),
        Value::String(s) => parse_time_str(s),
        _ => None,
    }?;
    // Anything outside this range is garbage, and would overflow date arithmetic downstream.
    use chrono::Datelike;
    (1970..=2200).contains(&t.year()).then_some(t)
}

/// See [`parse_time`].
pub fn parse_time_str(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().and_then(epoch_to_time);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    let vendor_tz = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return vendor_tz.from_local_datetime(&naive).single();
        }
    }
    None
}

pub(super) fn epoch_to_time(n: i64) -> Option<DateTime<FixedOffset>> {
    // 13 digits and more are milliseconds; seconds would be past year 5000.
    let t = if n.unsigned_abs() >= 100_000_000_000 {
        DateTime::<Utc>::from_timestamp_millis(n)
    } else {
        DateTime::<Utc>::from_timestamp(n, 0)
    };
    t.map(|t| t.fixed_offset())
}

pub(super) fn de_code<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_string(&v)
        .map(|s| s.trim().to_string())
        .ok_or_else(|| de::Error::custom("status is neither a string nor a number"))
}

pub(super) fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_string(&v).ok_or_else(|| de::Error::custom("expected a string"))
}

pub(super) fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_i64(&v).ok_or_else(|| de::Error::custom("expected an integer"))
}

pub(super) fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?))
}

pub(super) fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?))
}

pub(super) fn de_opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(value_to_decimal(&Value::deserialize(d)?))
}

pub(super) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<FixedOffset>>, D::Error> {
    Ok(parse_time(&Value::deserialize(d)?))
}

pub(super) fn de_opt_channel<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Channel>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?).and_then(|s| Channel::parse(&s)))
}

pub(super) fn de_trigger<'de, D: Deserializer<'de>>(d: D) -> Result<StepTrigger, D::Error> {
    Ok(StepTrigger::from_code(value_to_i64(&Value::deserialize(
        d,
    )?)))
}

pub(super) fn de_matched<'de, D: Deserializer<'de>>(d: D) -> Result<Matched, D::Error> {
    Ok(de_opt_matched(d)?.unwrap_or_default())
}

pub(super) fn de_opt_matched<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Matched>, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?).map(Matched::from_code))
}

pub(super) fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.trim(), "true" | "1"),
        _ => false,
    })
}

/// A nested object that is null or fails to parse becomes `None` instead of failing the parent.
pub(super) fn de_lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    Ok(serde_json::from_value(v).ok())
}

/// A nested object that fails to parse becomes its default instead of failing the parent.
pub(super) fn de_lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// Object → one-element list, array → list (elements that fail to parse are skipped), null →
/// empty. Empty objects (`{}` or all-null fields, as a record may carry for a channel that was
/// never used) and non-objects are skipped: they are not attempts, and an all-`None` attempt would
/// look "in progress" forever.
pub(super) fn de_one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    fn parse_item<T: DeserializeOwned>(item: Value) -> Option<T> {
        match &item {
            Value::Object(map) if map.values().all(Value::is_null) => None,
            Value::Object(_) => serde_json::from_value(item).ok(),
            _ => None,
        }
    }
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Array(items) => items.into_iter().filter_map(parse_item).collect(),
        other => parse_item(other).into_iter().collect(),
    })
}

/// Array → its non-null elements, null → empty, anything else → a one-element list.
pub(super) fn de_raw_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.into_iter().filter(|v| !v.is_null()).collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    })
}

/// `data` that is missing or null → None (the caller decides whether a success without data is
/// an error); `data` of the wrong shape is an error, which the client reports as a decode error.
pub(super) fn de_opt_data<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(de::Error::custom)
}
