//! Preset countries, operators, task flows and call outcomes.
//!
//! These names and numbers are shared with the demo's traffic generator, the dashboards, the
//! alerts and their tests: change them only together.

use crate::api::model::StepTrigger;
use crate::domain::Channel;
use rand::Rng;

/// A mobile network of a preset country.
#[derive(Debug, PartialEq)]
pub struct OperatorPreset {
    pub name: &'static str,
    pub mcc: u16,
    pub mnc: u16,
    /// Share of the country's numbers on this network (shares of a country sum to 1).
    pub share: f64,
}

/// A destination country with its delivery, latency and price parameters.
#[derive(Debug, PartialEq)]
pub struct CountryPreset {
    /// ISO 3166 alpha-2.
    pub iso2: &'static str,
    pub name: &'static str,
    /// E.164 country calling code, digits only.
    pub calling_code: &'static str,
    pub mcc: u16,
    pub operators: &'static [OperatorPreset],
    /// Share of normal traffic sent to this country (all presets sum to 1).
    pub weight: f64,
    /// Leading digits of national mobile numbers (one is picked at random).
    pub national_prefixes: &'static [&'static str],
    /// Length of the national number, prefix included.
    pub national_len: usize,
    /// Probability that an SMS is delivered in the normal scenario.
    pub sms_delivery_prob: f64,
    /// Median of the log-normal send → delivery-report latency, seconds.
    pub sms_median_latency_secs: f64,
    /// Price of one SMS segment (USD), in units of 0.0001.
    pub sms_price_e4: i64,
    /// SMS sender id shown in records.
    pub sender: &'static str,
    /// Probability that a voice OTP call is answered.
    pub call_answer_prob: f64,
    /// Voice price per minute (USD), in units of 0.0001.
    pub call_rate_e4: i64,
    /// Billing increments `first+next` in seconds, as the vendor's `billPeriodstring`.
    pub bill_period: &'static str,
    /// Probability that the end user types the code once it reached them (normal scenario).
    pub verify_prob: f64,
}

const fn op(name: &'static str, mcc: u16, mnc: u16, share: f64) -> OperatorPreset {
    OperatorPreset {
        name,
        mcc,
        mnc,
        share,
    }
}

/// The preset destinations.
pub static COUNTRIES: &[CountryPreset] = &[
    CountryPreset {
        iso2: "ID",
        name: "Indonesia",
        calling_code: "62",
        mcc: 510,
        operators: &[
            op("Telkomsel", 510, 10, 0.5),
            op("Indosat", 510, 1, 0.3),
            op("XL", 510, 11, 0.2),
        ],
        weight: 0.22,
        national_prefixes: &["811", "812", "813", "821", "852", "857", "878"],
        national_len: 11,
        sms_delivery_prob: 0.95,
        sms_median_latency_secs: 4.0,
        sms_price_e4: 310,
        sender: "VERIFY",
        call_answer_prob: 0.80,
        call_rate_e4: 850,
        bill_period: "60+60",
        verify_prob: 0.85,
    },
    CountryPreset {
        iso2: "IN",
        name: "India",
        calling_code: "91",
        mcc: 404,
        operators: &[
            op("Airtel", 404, 45, 0.40),
            op("Vodafone-Idea", 404, 20, 0.25),
            op("Jio", 405, 857, 0.35),
        ],
        weight: 0.25,
        national_prefixes: &["6", "7", "8", "9"],
        national_len: 10,
        sms_delivery_prob: 0.93,
        sms_median_latency_secs: 6.0,
        sms_price_e4: 45,
        sender: "VRFOTP",
        call_answer_prob: 0.75,
        call_rate_e4: 120,
        bill_period: "60+60",
        verify_prob: 0.85,
    },
    CountryPreset {
        iso2: "BR",
        name: "Brazil",
        calling_code: "55",
        mcc: 724,
        operators: &[
            op("Vivo", 724, 6, 0.35),
            op("Claro", 724, 5, 0.30),
            op("TIM", 724, 4, 0.35),
        ],
        weight: 0.12,
        national_prefixes: &["119", "219", "319", "419", "519", "619", "719", "819"],
        national_len: 11,
        sms_delivery_prob: 0.96,
        sms_median_latency_secs: 3.0,
        sms_price_e4: 180,
        sender: "28282",
        call_answer_prob: 0.80,
        call_rate_e4: 300,
        bill_period: "60+60",
        verify_prob: 0.87,
    },
    CountryPreset {
        iso2: "PH",
        name: "Philippines",
        calling_code: "63",
        mcc: 515,
        operators: &[op("Globe", 515, 2, 0.5), op("Smart", 515, 3, 0.5)],
        weight: 0.08,
        national_prefixes: &["905", "917", "918", "927", "939", "998"],
        national_len: 10,
        sms_delivery_prob: 0.92,
        sms_median_latency_secs: 5.0,
        sms_price_e4: 150,
        sender: "VERIFY",
        call_answer_prob: 0.78,
        call_rate_e4: 900,
        bill_period: "60+60",
        verify_prob: 0.83,
    },
    CountryPreset {
        iso2: "NG",
        name: "Nigeria",
        calling_code: "234",
        mcc: 621,
        operators: &[
            op("MTN", 621, 30, 0.5),
            op("Airtel", 621, 20, 0.3),
            op("Glo", 621, 50, 0.2),
        ],
        weight: 0.07,
        national_prefixes: &["703", "803", "806", "813", "905", "915"],
        national_len: 10,
        sms_delivery_prob: 0.90,
        sms_median_latency_secs: 8.0,
        sms_price_e4: 320,
        sender: "VERIFY",
        call_answer_prob: 0.70,
        call_rate_e4: 1100,
        bill_period: "60+60",
        verify_prob: 0.80,
    },
    CountryPreset {
        iso2: "MX",
        name: "Mexico",
        calling_code: "52",
        mcc: 334,
        operators: &[op("Telcel", 334, 20, 0.7), op("AT&T", 334, 90, 0.3)],
        weight: 0.08,
        national_prefixes: &["55", "33", "81", "222"],
        national_len: 10,
        sms_delivery_prob: 0.95,
        sms_median_latency_secs: 4.0,
        sms_price_e4: 210,
        sender: "VERIFY",
        call_answer_prob: 0.82,
        call_rate_e4: 250,
        bill_period: "60+60",
        verify_prob: 0.86,
    },
    CountryPreset {
        iso2: "VN",
        name: "Vietnam",
        calling_code: "84",
        mcc: 452,
        operators: &[
            op("Viettel", 452, 4, 0.5),
            op("Vinaphone", 452, 2, 0.25),
            op("Mobifone", 452, 1, 0.25),
        ],
        weight: 0.07,
        national_prefixes: &["32", "70", "86", "90", "91", "96"],
        national_len: 9,
        sms_delivery_prob: 0.94,
        sms_median_latency_secs: 5.0,
        sms_price_e4: 290,
        sender: "VERIFY",
        call_answer_prob: 0.80,
        call_rate_e4: 600,
        bill_period: "20+20",
        verify_prob: 0.85,
    },
    CountryPreset {
        iso2: "DE",
        name: "Germany",
        calling_code: "49",
        mcc: 262,
        operators: &[
            op("Telekom", 262, 1, 0.4),
            op("Vodafone", 262, 2, 0.35),
            op("O2", 262, 3, 0.25),
        ],
        weight: 0.04,
        national_prefixes: &["151", "152", "160", "162", "170", "176"],
        national_len: 11,
        sms_delivery_prob: 0.99,
        sms_median_latency_secs: 2.0,
        sms_price_e4: 750,
        sender: "VERIFY",
        call_answer_prob: 0.85,
        call_rate_e4: 1500,
        bill_period: "60+60",
        verify_prob: 0.90,
    },
    CountryPreset {
        iso2: "US",
        name: "United States",
        calling_code: "1",
        mcc: 310,
        operators: &[op("T-Mobile", 310, 260, 0.55), op("AT&T", 310, 410, 0.45)],
        weight: 0.065,
        national_prefixes: &["201", "212", "305", "415", "646", "702"],
        national_len: 10,
        sms_delivery_prob: 0.97,
        sms_median_latency_secs: 3.0,
        sms_price_e4: 79,
        sender: "24273",
        call_answer_prob: 0.85,
        call_rate_e4: 100,
        bill_period: "60+60",
        verify_prob: 0.88,
    },
    CountryPreset {
        iso2: "UZ",
        name: "Uzbekistan",
        calling_code: "998",
        mcc: 434,
        operators: &[op("Beeline", 434, 4, 0.5), op("Ucell", 434, 5, 0.5)],
        weight: 0.005,
        national_prefixes: &["90", "91", "93", "94", "97", "99"],
        national_len: 9,
        sms_delivery_prob: 0.95,
        sms_median_latency_secs: 6.0,
        sms_price_e4: 2100,
        sender: "VERIFY",
        call_answer_prob: 0.75,
        call_rate_e4: 2000,
        bill_period: "20+20",
        verify_prob: 0.85,
    },
];

/// The preset country whose calling code prefixes `to` (longest match).
pub fn country_of(to: &str) -> Option<&'static CountryPreset> {
    COUNTRIES
        .iter()
        .filter(|c| to.starts_with(c.calling_code))
        .max_by_key(|c| c.calling_code.len())
}

/// The operator serving `to`: a stable function of the number, weighted by operator share.
pub fn operator_of(country: &'static CountryPreset, to: &str) -> &'static OperatorPreset {
    let h = xxhash_rust::xxh3::xxh3_64(to.as_bytes());
    let mut x = (h >> 11) as f64 / (1u64 << 53) as f64;
    for o in country.operators {
        if x < o.share {
            return o;
        }
        x -= o.share;
    }
    country.operators.last().expect("presets have operators")
}

/// A valid-looking mobile number of `country`: calling code + national number, digits only,
/// 10–14 digits long.
pub fn random_receiver(country: &CountryPreset, rng: &mut impl Rng) -> String {
    let prefix = country.national_prefixes[rng.random_range(0..country.national_prefixes.len())];
    let mut s = String::with_capacity(country.calling_code.len() + country.national_len);
    s.push_str(country.calling_code);
    s.push_str(prefix);
    for _ in prefix.len()..country.national_len {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

/// The channels the simulator delivers on (no sna).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimChannel {
    Sms,
    Call,
}

impl SimChannel {
    pub fn as_str(self) -> &'static str {
        Channel::from(self).as_str()
    }

    /// Exactly the vendor's lower-case spelling (the simulator is strict where clients should
    /// be); sna is not simulated.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(SimChannel::Sms),
            "call" => Some(SimChannel::Call),
            _ => None,
        }
    }
}

impl From<SimChannel> for Channel {
    fn from(c: SimChannel) -> Channel {
        match c {
            SimChannel::Sms => Channel::Sms,
            SimChannel::Call => Channel::Call,
        }
    }
}

/// One node of a task flow.
#[derive(Clone, Debug, PartialEq)]
pub struct SimFlowNode {
    /// Seconds after this node's attempt starts before its trigger is evaluated (30–120).
    pub waiting_time: u32,
    /// What starts the next node: this attempt failed, or the code is not verified yet.
    pub trigger: StepTrigger,
    pub channel: SimChannel,
    /// 0 = switch channel for the next attempt, 1 = keep it (informational: each node names
    /// its own channel).
    pub channel_cut: u8,
}

/// A task flow.
#[derive(Clone, Debug, PartialEq)]
pub struct SimFlow {
    pub id: i64,
    pub name: String,
    pub nodes: Vec<SimFlowNode>,
}

/// The four flows every simulated account starts with (ids 1–4).
pub fn preset_flows() -> Vec<SimFlow> {
    let node = |waiting_time, status, channel, channel_cut| SimFlowNode {
        waiting_time,
        trigger: StepTrigger::from_code(Some(status)),
        channel,
        channel_cut,
    };
    use SimChannel::{Call, Sms};
    vec![
        SimFlow {
            id: 1,
            name: "sms_only".into(),
            nodes: vec![node(60, 2, Sms, 0)],
        },
        SimFlow {
            id: 2,
            name: "sms_then_voice".into(),
            nodes: vec![node(60, 1, Sms, 0), node(90, 1, Call, 0)],
        },
        SimFlow {
            id: 3,
            name: "sms_verify_then_voice".into(),
            nodes: vec![node(60, 2, Sms, 0), node(90, 2, Call, 0)],
        },
        SimFlow {
            id: 4,
            name: "sms_retry_then_voice".into(),
            nodes: vec![
                node(30, 1, Sms, 1),
                node(45, 1, Sms, 0),
                node(90, 2, Call, 0),
            ],
        },
    ]
}

/// A failed call's termination code and reason, and whether the phone rang first.
#[derive(Clone, Copy, Debug)]
pub struct CallFailure {
    pub code: i64,
    pub reason: &'static str,
    pub rang: bool,
    pub weight: f64,
}

/// Call failures and their relative frequency. Only 100005 appears in the vendor's sample; the
/// other codes follow the same numbering and are this simulator's invention.
pub static CALL_FAILURES: &[CallFailure] = &[
    CallFailure {
        code: 100001,
        reason: "Unallocated Number",
        rang: false,
        weight: 0.10,
    },
    CallFailure {
        code: 100002,
        reason: "User Busy",
        rang: false,
        weight: 0.20,
    },
    CallFailure {
        code: 100003,
        reason: "No Answer",
        rang: true,
        weight: 0.40,
    },
    CallFailure {
        code: 100004,
        reason: "Call Rejected",
        rang: true,
        weight: 0.15,
    },
    CallFailure {
        code: 100005,
        reason: "Temporarily Unavailable",
        rang: false,
        weight: 0.15,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn presets_are_consistent() {
        let total: f64 = COUNTRIES.iter().map(|c| c.weight).sum();
        assert!((total - 1.0).abs() < 1e-9);
        for c in COUNTRIES {
            let shares: f64 = c.operators.iter().map(|o| o.share).sum();
            assert!((shares - 1.0).abs() < 1e-9, "{}", c.iso2);
            assert!((1..=3).contains(&c.operators.len()));
            assert!((0.90..=0.99).contains(&c.sms_delivery_prob));
            assert!((2.0..=8.0).contains(&c.sms_median_latency_secs));
        }
        let jio = &COUNTRIES[1].operators[2];
        assert_eq!((jio.name, jio.mcc, jio.mnc), ("Jio", 405, 857));
    }

    #[test]
    fn random_receivers_look_valid_and_map_back() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for c in COUNTRIES {
            for _ in 0..50 {
                let to = random_receiver(c, &mut rng);
                assert!((10..=14).contains(&to.len()), "{to}");
                assert!(to.bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(country_of(&to).unwrap().iso2, c.iso2);
                let op = operator_of(country_of(&to).unwrap(), &to);
                assert!(c.operators.contains(op));
                assert_eq!(operator_of(c, &to), op, "operator is stable per number");
            }
        }
    }
}
