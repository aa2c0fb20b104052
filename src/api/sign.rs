//! Request signing: `Sign = md5(apiKey + apiSecret + Timestamp)` as 32 lowercase hex characters.

use md5::{Digest, Md5};

/// The `Sign` header for a key, secret and Unix timestamp in seconds.
pub fn sign(api_key: &str, api_secret: &str, timestamp: i64) -> String {
    let mut hasher = Md5::new();
    hasher.update(api_key.as_bytes());
    hasher.update(api_secret.as_bytes());
    hasher.update(timestamp.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// Constant-time comparison of a received `Sign` against the expected one, ignoring ASCII case
/// (the vendor says the signature is case-insensitive).
pub fn sign_matches(expected: &str, received: &str) -> bool {
    let (a, b) = (expected.as_bytes(), received.trim().as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    }) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_test_vector() {
        assert_eq!(
            sign("bDqJFiq9", "7bz1lzh9", 1630468800),
            "05d7a50893e22a5c4bb3216ae3396c7c"
        );
    }

    #[test]
    fn sign_comparison_ignores_case_but_not_content() {
        let s = sign("bDqJFiq9", "7bz1lzh9", 1630468800);
        assert!(sign_matches(&s, &s.to_uppercase()));
        assert!(!sign_matches(&s, &sign("bDqJFiq9", "wrong", 1630468800)));
        assert!(!sign_matches(&s, ""));
    }
}
