//! Country attribution: ISO 3166 alpha-2 codes from an SMS's MCC or a receiver's number.
//!
//! Country is the main label of the delivery and fraud metrics. SMS attempts carry the mobile
//! country code of the network that took them; calls and orders only have the destination
//! number, whose calling code is resolved with the `phonenumber` crate (libphonenumber's
//! metadata, so shared codes such as +1 resolve to US, CA, PR… by number plan). The number
//! itself is PII: it is used here and dropped, never stored or logged.

/// The label for an unknown country.
pub const UNKNOWN: &str = "unknown";

/// ITU-T E.212 mobile country codes, sorted for binary search.
static MCC: &[(u16, &str)] = &[
    (202, "GR"),
    (204, "NL"),
    (206, "BE"),
    (208, "FR"),
    (212, "MC"),
    (213, "AD"),
    (214, "ES"),
    (216, "HU"),
    (218, "BA"),
    (219, "HR"),
    (220, "RS"),
    (221, "XK"),
    (222, "IT"),
    (225, "VA"),
    (226, "RO"),
    (228, "CH"),
    (230, "CZ"),
    (231, "SK"),
    (232, "AT"),
    (234, "GB"),
    (235, "GB"),
    (238, "DK"),
    (240, "SE"),
    (242, "NO"),
    (244, "FI"),
    (246, "LT"),
    (247, "LV"),
    (248, "EE"),
    (250, "RU"),
    (255, "UA"),
    (257, "BY"),
    (259, "MD"),
    (260, "PL"),
    (262, "DE"),
    (266, "GI"),
    (268, "PT"),
    (270, "LU"),
    (272, "IE"),
    (274, "IS"),
    (276, "AL"),
    (278, "MT"),
    (280, "CY"),
    (282, "GE"),
    (283, "AM"),
    (284, "BG"),
    (286, "TR"),
    (288, "FO"),
    (290, "GL"),
    (292, "SM"),
    (293, "SI"),
    (294, "MK"),
    (295, "LI"),
    (297, "ME"),
    (302, "CA"),
    (308, "PM"),
    (310, "US"),
    (311, "US"),
    (312, "US"),
    (313, "US"),
    (314, "US"),
    (315, "US"),
    (316, "US"),
    (330, "PR"),
    (334, "MX"),
    (338, "JM"),
    (340, "GP"),
    (342, "BB"),
    (344, "AG"),
    (346, "KY"),
    (348, "VG"),
    (350, "BM"),
    (352, "GD"),
    (354, "MS"),
    (356, "KN"),
    (358, "LC"),
    (360, "VC"),
    (362, "CW"),
    (363, "AW"),
    (364, "BS"),
    (365, "AI"),
    (366, "DM"),
    (368, "CU"),
    (370, "DO"),
    (372, "HT"),
    (374, "TT"),
    (376, "TC"),
    (400, "AZ"),
    (401, "KZ"),
    (402, "BT"),
    (404, "IN"),
    (405, "IN"),
    (406, "IN"),
    (410, "PK"),
    (412, "AF"),
    (413, "LK"),
    (414, "MM"),
    (415, "LB"),
    (416, "JO"),
    (417, "SY"),
    (418, "IQ"),
    (419, "KW"),
    (420, "SA"),
    (421, "YE"),
    (422, "OM"),
    (424, "AE"),
    (425, "IL"),
    (426, "BH"),
    (427, "QA"),
    (428, "MN"),
    (429, "NP"),
    (430, "AE"),
    (431, "AE"),
    (432, "IR"),
    (434, "UZ"),
    (436, "TJ"),
    (437, "KG"),
    (438, "TM"),
    (440, "JP"),
    (441, "JP"),
    (450, "KR"),
    (452, "VN"),
    (454, "HK"),
    (455, "MO"),
    (456, "KH"),
    (457, "LA"),
    (460, "CN"),
    (461, "CN"),
    (466, "TW"),
    (467, "KP"),
    (470, "BD"),
    (472, "MV"),
    (502, "MY"),
    (505, "AU"),
    (510, "ID"),
    (514, "TL"),
    (515, "PH"),
    (520, "TH"),
    (525, "SG"),
    (528, "BN"),
    (530, "NZ"),
    (537, "PG"),
    (539, "TO"),
    (540, "SB"),
    (541, "VU"),
    (542, "FJ"),
    (544, "AS"),
    (545, "KI"),
    (546, "NC"),
    (547, "PF"),
    (548, "CK"),
    (549, "WS"),
    (550, "FM"),
    (551, "MH"),
    (552, "PW"),
    (553, "TV"),
    (555, "NU"),
    (602, "EG"),
    (603, "DZ"),
    (604, "MA"),
    (605, "TN"),
    (606, "LY"),
    (607, "GM"),
    (608, "SN"),
    (609, "MR"),
    (610, "ML"),
    (611, "GN"),
    (612, "CI"),
    (613, "BF"),
    (614, "NE"),
    (615, "TG"),
    (616, "BJ"),
    (617, "MU"),
    (618, "LR"),
    (619, "SL"),
    (620, "GH"),
    (621, "NG"),
    (622, "TD"),
    (623, "CF"),
    (624, "CM"),
    (625, "CV"),
    (626, "ST"),
    (627, "GQ"),
    (628, "GA"),
    (629, "CG"),
    (630, "CD"),
    (631, "AO"),
    (632, "GW"),
    (633, "SC"),
    (634, "SD"),
    (635, "RW"),
    (636, "ET"),
    (637, "SO"),
    (638, "DJ"),
    (639, "KE"),
    (640, "TZ"),
    (641, "UG"),
    (642, "BI"),
    (643, "MZ"),
    (645, "ZM"),
    (646, "MG"),
    (647, "RE"),
    (648, "ZW"),
    (649, "NA"),
    (650, "MW"),
    (651, "LS"),
    (652, "BW"),
    (653, "SZ"),
    (654, "KM"),
    (655, "ZA"),
    (657, "ER"),
    (658, "SH"),
    (659, "SS"),
    (702, "BZ"),
    (704, "GT"),
    (706, "SV"),
    (708, "HN"),
    (710, "NI"),
    (712, "CR"),
    (714, "PA"),
    (716, "PE"),
    (722, "AR"),
    (724, "BR"),
    (730, "CL"),
    (732, "CO"),
    (734, "VE"),
    (736, "BO"),
    (738, "GY"),
    (740, "EC"),
    (742, "GF"),
    (744, "PY"),
    (746, "SR"),
    (748, "UY"),
    (750, "FK"),
];

/// ISO alpha-2 of a mobile country code, `unknown` when not a known MCC.
pub fn from_mcc(mcc: i64) -> &'static str {
    u16::try_from(mcc)
        .ok()
        .and_then(|m| MCC.binary_search_by_key(&m, |(k, _)| *k).ok())
        .map(|i| MCC[i].1)
        .unwrap_or(UNKNOWN)
}

/// ISO alpha-2 of a destination number given as digits with the country code and no `+`
/// (the vendor's `to`/`oriReceiver` format; a leading `+` or `00` is tolerated).
/// `unknown` when it cannot be attributed.
pub fn from_number(number: &str) -> String {
    let digits: String = number
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    if digits.is_empty() || digits.len() > 17 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return UNKNOWN.to_string();
    }
    let Ok(n) = phonenumber::parse(None, format!("+{digits}")) else {
        return UNKNOWN.to_string();
    };
    if let Some(id) = n.country().id() {
        return id.as_ref().to_string();
    }
    // Not a valid number of any region sharing the calling code (e.g. an unassigned +1 area
    // code): attribute it to the code's main country rather than losing the country.
    main_country_for_code(n.country().code()).unwrap_or_else(|| UNKNOWN.to_string())
}

fn main_country_for_code(code: u16) -> Option<String> {
    let regions = phonenumber::metadata::DATABASE.by_code(&code)?;
    regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or(regions.first())
        .map(|m| m.id().to_string())
        .filter(|id| id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcc_table_is_sorted_and_unique() {
        assert!(MCC.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn mcc_lookup() {
        assert_eq!(from_mcc(510), "ID");
        assert_eq!(from_mcc(404), "IN");
        assert_eq!(from_mcc(405), "IN");
        assert_eq!(from_mcc(460), "CN");
        assert_eq!(from_mcc(310), "US");
        assert_eq!(from_mcc(434), "UZ");
        assert_eq!(from_mcc(999), UNKNOWN);
        assert_eq!(from_mcc(-1), UNKNOWN);
        assert_eq!(from_mcc(i64::MAX), UNKNOWN);
    }

    #[test]
    fn number_lookup() {
        assert_eq!(from_number("6281234567890"), "ID");
        assert_eq!(from_number("919876543210"), "IN");
        assert_eq!(from_number("91856321412"), "IN");
        assert_eq!(from_number("+4915123456789"), "DE");
        assert_eq!(from_number("14165550123"), "CA");
        assert_eq!(from_number("12125550123"), "US");
        assert_eq!(from_number("998901234567"), "UZ");
        // An unassigned +1 area code still belongs to the +1 plan's main country.
        assert_eq!(from_number("10005550123"), "US");
        assert_eq!(from_number(""), UNKNOWN);
        assert_eq!(from_number("abc"), UNKNOWN);
        assert_eq!(from_number("999999999999999999999999"), UNKNOWN);
    }
}
