//! API credentials, redacted whenever printed.

use std::fmt;

/// The account's API key and secret (console → Developers page).
///
/// `Debug` shows only the first two characters of the key and never the secret; there is no
/// `Display` and no `Serialize`, so credentials cannot end up in logs or files by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    api_key: String,
    api_secret: String,
}

impl Credentials {
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The `Api-Key` header value.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The secret, for computing a `Sign`. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.api_secret
    }

    /// The key shortened for diagnostics: its first two characters and an ellipsis.
    pub fn key_hint(&self) -> String {
        let head: String = self.api_key.chars().take(2).collect();
        if self.api_key.chars().count() > 4 {
            format!("{head}…")
        } else {
            "…".to_string()
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.key_hint())
            .field("api_secret", &format_args!("<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let c = Credentials::new("bDqJFiq9", "7bz1lzh9");
        let dbg = format!("{c:?}");
        assert_eq!(
            dbg,
            r#"Credentials { api_key: "bD…", api_secret: <redacted> }"#
        );
        let pretty = format!("{c:#?}");
        for shown in [&dbg, &pretty] {
            assert!(!shown.contains("bDqJFiq9"));
            assert!(!shown.contains("7bz1lzh9"));
        }
        assert_eq!(c.api_key(), "bDqJFiq9");
        assert_eq!(c.expose_secret(), "7bz1lzh9");
    }

    #[test]
    fn short_keys_are_not_revealed_at_all() {
        let dbg = format!("{:?}", Credentials::new("abc", "s"));
        assert!(!dbg.contains("ab"), "{dbg}");
    }
}
