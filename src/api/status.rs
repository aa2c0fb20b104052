//! Vendor status codes (docs/vendor-api.md §2).
//!
//! The top-level `status` is an opaque string: known values map to a variant, anything else is
//! kept verbatim in [`VendorCode::Unknown`] so the reason text can still be reported.

use std::fmt;

/// A vendor `status` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VendorCode {
    /// `0`
    Success,
    /// `-1`: authentication failed (bad key or sign).
    AuthFailed,
    /// `-2`: caller IP not allowed.
    IpNotAllowed,
    /// `-3`: sensitive characters in content.
    SensitiveCharacters,
    /// `-4`: empty content.
    EmptyContent,
    /// `-5`: content too long.
    ContentTooLong,
    /// `-6`: not a template message.
    NotTemplateMessage,
    /// `-7`: too many numbers.
    TooManyNumbers,
    /// `-8`: empty number.
    EmptyNumber,
    /// `-9`: malformed number.
    MalformedNumber,
    /// `-10`: insufficient account balance.
    InsufficientBalance,
    /// `-11`: bad time format.
    BadTimeFormat,
    /// `-12`: platform-side submit failure.
    SubmitFailed,
    /// `-13`: user locked.
    UserLocked,
    /// `-14`: empty field or bad query id.
    EmptyFieldOrBadQueryId,
    /// `-15`: frequent query (throttled).
    FrequentQuery,
    /// `-16`: timestamp expired / outside the accepted window.
    TimestampExpired,
    /// `-17`: empty template.
    EmptyTemplate,
    /// `-18`: server-side program error.
    ServerError,
    /// `-19`: pricing not set up.
    PricingNotSetUp,
    /// `-20`: data already exists.
    DataExists,
    /// `-21`: data validation error.
    DataValidation,
    /// `-22`: parameter error.
    ParameterError,
    /// `-23`: data cap reached.
    DataCapReached,
    /// `-24`: data does not exist.
    NotExist,
    /// `-25`: outside the allowed time range.
    OutsideTimeRange,
    /// `-26`: price/fee lookup failed.
    FeeLookupFailed,
    /// `-27`: the app's per-period total send limit was hit.
    PeriodTotalSendLimit,
    /// `-28`: the app's per-period same-number send limit was hit.
    PeriodPhoneSendLimit,
    /// `-29`: "sensitive words" in the OTP table, "WorkSpace disabled" in the SMS table.
    SensitiveWords,
    /// `-30`: API key disabled.
    ApiKeyDisabled,
    /// `-31`: IP not in whitelist.
    IpNotWhitelisted,
    /// `-32`: API key lacks permission for this app.
    NoPermission,
    /// Any other value, verbatim (trimmed).
    Unknown(String),
}

/// Known codes, in table order. `Unknown` is not listed.
const KNOWN: &[(i64, VendorCode)] = &[
    (0, VendorCode::Success),
    (-1, VendorCode::AuthFailed),
    (-2, VendorCode::IpNotAllowed),
    (-3, VendorCode::SensitiveCharacters),
    (-4, VendorCode::EmptyContent),
    (-5, VendorCode::ContentTooLong),
    (-6, VendorCode::NotTemplateMessage),
    (-7, VendorCode::TooManyNumbers),
    (-8, VendorCode::EmptyNumber),
    (-9, VendorCode::MalformedNumber),
    (-10, VendorCode::InsufficientBalance),
    (-11, VendorCode::BadTimeFormat),
    (-12, VendorCode::SubmitFailed),
    (-13, VendorCode::UserLocked),
    (-14, VendorCode::EmptyFieldOrBadQueryId),
    (-15, VendorCode::FrequentQuery),
    (-16, VendorCode::TimestampExpired),
    (-17, VendorCode::EmptyTemplate),
    (-18, VendorCode::ServerError),
    (-19, VendorCode::PricingNotSetUp),
    (-20, VendorCode::DataExists),
    (-21, VendorCode::DataValidation),
    (-22, VendorCode::ParameterError),
    (-23, VendorCode::DataCapReached),
    (-24, VendorCode::NotExist),
    (-25, VendorCode::OutsideTimeRange),
    (-26, VendorCode::FeeLookupFailed),
    (-27, VendorCode::PeriodTotalSendLimit),
    (-28, VendorCode::PeriodPhoneSendLimit),
    (-29, VendorCode::SensitiveWords),
    (-30, VendorCode::ApiKeyDisabled),
    (-31, VendorCode::IpNotWhitelisted),
    (-32, VendorCode::NoPermission),
];

const KNOWN_STR: [&str; 33] = [
    "0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9", "-10", "-11", "-12", "-13", "-14",
    "-15", "-16", "-17", "-18", "-19", "-20", "-21", "-22", "-23", "-24", "-25", "-26", "-27",
    "-28", "-29", "-30", "-31", "-32",
];

impl VendorCode {
    /// Maps a `status` value. Leniently numeric: `" -16 "` and `"-016"` are `TimestampExpired`.
    pub fn from_status(status: &str) -> Self {
        let trimmed = status.trim();
        match trimmed.parse::<i64>() {
            Ok(n) => KNOWN
                .iter()
                .find(|(code, _)| *code == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| VendorCode::Unknown(trimmed.to_string())),
            Err(_) => VendorCode::Unknown(trimmed.to_string()),
        }
    }

    /// The numeric code, if this is a known code.
    pub fn code(&self) -> Option<i64> {
        KNOWN.iter().find(|(_, v)| v == self).map(|(c, _)| *c)
    }

    /// The canonical status string (`"0"`, `"-16"`, …); `Unknown` gives its raw value.
    pub fn as_str(&self) -> &str {
        match self {
            VendorCode::Unknown(raw) => raw,
            known => {
                let code = known.code().unwrap_or_default();
                KNOWN_STR[code.unsigned_abs() as usize]
            }
        }
    }

    /// A bounded label value: the canonical string for known codes, a short integer verbatim,
    /// `"other"` for anything else (free text from the vendor must not become a label).
    pub fn label(&self) -> String {
        match self {
            VendorCode::Unknown(raw) => match raw.parse::<i64>() {
                Ok(n) if (-9999..=9999).contains(&n) => n.to_string(),
                _ => "other".to_string(),
            },
            known => known.as_str().to_string(),
        }
    }

    pub fn is_success(&self) -> bool {
        *self == VendorCode::Success
    }

    /// Worth retrying after a backoff: the server failed (-18) or throttled us (-15).
    pub fn is_retryable(&self) -> bool {
        matches!(self, VendorCode::ServerError | VendorCode::FrequentQuery)
    }

    /// The credentials or the caller are rejected: -1, -2, -30, -31, -32.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            VendorCode::AuthFailed
                | VendorCode::IpNotAllowed
                | VendorCode::ApiKeyDisabled
                | VendorCode::IpNotWhitelisted
                | VendorCode::NoPermission
        )
    }

    /// The record asked for does not exist (-24, or -14 "bad query id").
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            VendorCode::NotExist | VendorCode::EmptyFieldOrBadQueryId
        )
    }
}

impl fmt::Display for VendorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_through_its_string() {
        for (n, code) in KNOWN {
            assert_eq!(code.as_str(), n.to_string());
            assert_eq!(VendorCode::from_status(&n.to_string()), *code);
            assert_eq!(code.code(), Some(*n));
            assert_eq!(code.label(), n.to_string());
        }
    }

    #[test]
    fn documented_codes_map_to_their_meaning() {
        use VendorCode::*;
        let cases = [
            ("0", Success),
            ("-1", AuthFailed),
            ("-2", IpNotAllowed),
            ("-10", InsufficientBalance),
            ("-13", UserLocked),
            ("-14", EmptyFieldOrBadQueryId),
            ("-15", FrequentQuery),
            ("-16", TimestampExpired),
            ("-18", ServerError),
            ("-22", ParameterError),
            ("-24", NotExist),
            ("-27", PeriodTotalSendLimit),
            ("-28", PeriodPhoneSendLimit),
            ("-32", NoPermission),
        ];
        for (s, code) in cases {
            assert_eq!(VendorCode::from_status(s), code, "{s}");
        }
    }

    #[test]
    fn status_is_parsed_leniently_and_unknown_values_pass_through() {
        assert_eq!(
            VendorCode::from_status(" -16 "),
            VendorCode::TimestampExpired
        );
        assert_eq!(
            VendorCode::from_status("-016"),
            VendorCode::TimestampExpired
        );
        let unknown = VendorCode::from_status("-99");
        assert_eq!(unknown, VendorCode::Unknown("-99".into()));
        assert_eq!(unknown.as_str(), "-99");
        assert_eq!(unknown.label(), "-99");
        let text = VendorCode::from_status("FAIL: call 6281234567890");
        assert_eq!(text.as_str(), "FAIL: call 6281234567890");
        assert_eq!(text.label(), "other");
        assert_eq!(VendorCode::from_status("123456789").label(), "other");
    }

    #[test]
    fn retryable_and_auth_classes() {
        let retryable: Vec<_> = KNOWN.iter().filter(|(_, c)| c.is_retryable()).collect();
        assert_eq!(
            retryable.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [-15, -18]
        );
        let auth: Vec<_> = KNOWN
            .iter()
            .filter(|(_, c)| c.is_auth_failure())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(auth, [-1, -2, -30, -31, -32]);
        assert!(!VendorCode::Unknown("x".into()).is_retryable());
        assert!(VendorCode::NotExist.is_not_found());
        assert!(!VendorCode::ParameterError.is_not_found());
    }
}
