use super::*;

fn parse(body: &str) -> Result<Vec<NewOrder>, IntakeError> {
    parse_orders(Some("application/json"), body.as_bytes(), 100)
}

fn order(app: &str, id: &str) -> OrderKey {
    OrderKey::Order {
        app_id: app.into(),
        order_id: id.into(),
    }
}

fn invalid(body: &str) -> (usize, Option<String>, String) {
    match parse(body) {
        Err(e @ IntakeError::Invalid { .. }) => (
            e.index().unwrap(),
            e.field().map(str::to_owned),
            e.to_string(),
        ),
        other => panic!("expected Invalid for {body}, got {other:?}"),
    }
}

#[test]
fn single_object() {
    let got = parse(r#"{"appId":"Qw7rT2kZ","orderId":"ord-1"}"#).unwrap();
    assert_eq!(
        got,
        vec![NewOrder {
            key: order("Qw7rT2kZ", "ord-1"),
            flow_id: None,
            submitted_at: None
        }]
    );
}

#[test]
fn pretty_printed_object_is_one_item() {
    let got = parse("{\n  \"verificationId\": \"24051409123310000417\"\n}\n").unwrap();
    assert_eq!(
        got[0].key,
        OrderKey::Verification {
            verification_id: "24051409123310000417".into()
        }
    );
}

#[test]
fn array_of_objects() {
    let got = parse(
        r#"[{"appId":"Qw7rT2kZ","orderId":"a","flowId":7},
            {"verificationId":"123","flowId":"8","submittedAt":"2024-05-14T09:12:33+08:00"}]"#,
    )
    .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].flow_id, Some(7));
    assert_eq!(got[1].flow_id, Some(8));
    assert_eq!(
        got[1].submitted_at,
        Some(Utc.with_ymd_and_hms(2024, 5, 14, 1, 12, 33).unwrap())
    );
}

#[test]
fn ndjson_by_content_and_by_type() {
    let body = "{\"appId\":\"Qw7rT2kZ\",\"orderId\":\"a\"}\n\n{\"verificationId\":\"1\"}\r\n";
    assert_eq!(parse(body).unwrap().len(), 2);
    for ct in [
        "application/x-ndjson",
        "application/jsonl; charset=utf-8",
        "Application/X-NDJSON",
    ] {
        assert_eq!(
            parse_orders(Some(ct), body.as_bytes(), 10).unwrap().len(),
            2
        );
    }
    // A single object sent as NDJSON is fine too.
    let one = parse_orders(
        Some("application/x-ndjson"),
        b"{\"verificationId\":\"1\"}",
        10,
    );
    assert_eq!(one.unwrap().len(), 1);
}

#[test]
fn ndjson_errors_name_item_and_line() {
    let body = "{\"verificationId\":\"1\"}\n\n{\"verificationId\":\"x\"}\n";
    let err = parse(body).unwrap_err();
    assert_eq!(err.index(), Some(1));
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.field(), Some("verificationId"));
    assert!(
        err.to_string()
            .starts_with("item 1 (line 3): field `verificationId`"),
        "{err}"
    );

    let err = parse("{\"verificationId\":\"1\"}\n{\"verificationId\":\n").unwrap_err();
    match err {
        IntakeError::Malformed { index, line, .. } => {
            assert_eq!(index, Some(1));
            assert_eq!(line, 3);
        }
        other => panic!("{other:?}"),
    }
    let err = parse("{\"verificationId\":\"1\"}\n{oops}\n").unwrap_err();
    assert!(
        matches!(
            err,
            IntakeError::Malformed {
                line: 2,
                index: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn ndjson_content_type_with_array_line_is_not_an_object() {
    let err = parse_orders(
        Some("application/x-ndjson"),
        b"[{\"verificationId\":\"1\"}]",
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("expected a JSON object"), "{err}");
}

#[test]
fn malformed_json() {
    let err = parse("[{\"verificationId\": \"1\"},").unwrap_err();
    assert!(
        matches!(
            err,
            IntakeError::Malformed {
                index: None,
                line: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(parse("nope").is_err());
    assert!(parse("[1] [2]").is_err(), "trailing values after an array");
}

#[test]
fn empty_bodies() {
    for body in ["", "   \n\t", "[]", " [ ] "] {
        assert_eq!(parse(body).unwrap_err(), IntakeError::Empty, "{body:?}");
    }
    assert_eq!(
        parse_orders(Some("application/x-ndjson"), b"\n\n", 10).unwrap_err(),
        IntakeError::Empty
    );
}

#[test]
fn too_many_items() {
    let item = r#"{"verificationId":"1"}"#;
    let arr = format!("[{}]", [item; 4].join(","));
    assert_eq!(
        parse_orders(None, arr.as_bytes(), 3).unwrap_err(),
        IntakeError::TooMany { max: 3, seen: 4 }
    );
    assert_eq!(parse_orders(None, arr.as_bytes(), 4).unwrap().len(), 4);
    let nd = [item; 5].join("\n");
    assert!(matches!(
        parse_orders(None, nd.as_bytes(), 3).unwrap_err(),
        IntakeError::TooMany { max: 3, .. }
    ));
}

#[test]
fn app_id_rules() {
    for ok in ["abcd", "A_b-9", &"x".repeat(32)] {
        assert!(
            parse(&format!(r#"{{"appId":"{ok}","orderId":"1"}}"#)).is_ok(),
            "{ok}"
        );
    }
    for bad in ["abc", &"x".repeat(33), "ab cd", "abç d", "ab/cd", ""] {
        let (i, field, _) = invalid(&format!(r#"{{"appId":"{bad}","orderId":"1"}}"#));
        assert_eq!((i, field.as_deref()), (0, Some("appId")), "{bad}");
    }
    let (_, field, msg) = invalid(r#"{"appId":1234,"orderId":"1"}"#);
    assert_eq!(field.as_deref(), Some("appId"));
    assert!(msg.contains("must be a string"), "{msg}");
}

#[test]
fn order_id_rules() {
    for ok in ["1", "ord 88231", "订单-1", &"é".repeat(64)] {
        assert!(
            parse(&format!(r#"{{"appId":"abcd","orderId":"{ok}"}}"#)).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "",
        &"x".repeat(65),
        "a\\u0000b",
        "a\\tb",
        "a\\nb",
        "a\\u007fb",
    ] {
        let (_, field, _) = invalid(&format!(r#"{{"appId":"abcd","orderId":"{bad}"}}"#));
        assert_eq!(field.as_deref(), Some("orderId"), "{bad}");
    }
}

#[test]
fn verification_id_rules() {
    assert!(parse(&format!(r#"{{"verificationId":"{}"}}"#, "9".repeat(32))).is_ok());
    for bad in [
        r#""""#,
        r#""12a""#,
        r#"" 12""#,
        r#""١٢""#,
        &format!("\"{}\"", "1".repeat(33)),
    ] {
        let (_, field, _) = invalid(&format!(r#"{{"verificationId":{bad}}}"#));
        assert_eq!(field.as_deref(), Some("verificationId"), "{bad}");
    }
    let (_, field, msg) = invalid(r#"{"verificationId":24051409123310000417}"#);
    assert_eq!(field.as_deref(), Some("verificationId"));
    assert!(msg.contains("must be a string"), "{msg}");
}

#[test]
fn key_forms() {
    // Both forms: keyed by (appId, orderId).
    let got = parse(r#"{"appId":"abcd","orderId":"o","verificationId":"1"}"#).unwrap();
    assert_eq!(got[0].key, order("abcd", "o"));
    // ... but the ignored verificationId must still be valid.
    let (_, field, _) = invalid(r#"{"appId":"abcd","orderId":"o","verificationId":"x"}"#);
    assert_eq!(field.as_deref(), Some("verificationId"));
    let (_, field, _) = invalid(r#"{"appId":"abcd","verificationId":"1"}"#);
    assert_eq!(field.as_deref(), Some("orderId"));
    let (_, field, _) = invalid(r#"{"orderId":"o"}"#);
    assert_eq!(field.as_deref(), Some("appId"));
    let (_, field, msg) = invalid(r#"{"flowId":1}"#);
    assert_eq!(field, None);
    assert!(
        msg.contains("needs `appId` and `orderId`, or `verificationId`"),
        "{msg}"
    );
    // null is absent.
    let got = parse(
        r#"{"appId":null,"orderId":null,"verificationId":"5","flowId":null,"submittedAt":null}"#,
    )
    .unwrap();
    assert_eq!(got[0].flow_id, None);
}

#[test]
fn unknown_fields_rejected_and_named() {
    let (_, _, msg) = invalid(r#"{"verificationId":"1","flowID":3}"#);
    assert!(msg.contains("unknown field `flowID`"), "{msg}");
    // A key that is not identifier-like is not echoed.
    let (_, _, msg) = invalid(r#"{"verificationId":"1","+6281234567890":3}"#);
    assert!(!msg.contains("6281234567890"), "{msg}");
    assert!(msg.contains("name not shown"), "{msg}");
}

#[test]
fn items_must_be_objects() {
    let (i, _, msg) = invalid(r#"[{"verificationId":"1"}, "6281234567890"]"#);
    assert_eq!(i, 1);
    assert!(
        msg.contains("expected a JSON object, found a string"),
        "{msg}"
    );
    assert!(!msg.contains("6281234567890"));
    assert!(parse("42").is_err());
}

#[test]
fn flow_id_rules() {
    for (raw, want) in [("7", 7), ("\"12\"", 12), ("0", 0)] {
        let got = parse(&format!(r#"{{"verificationId":"1","flowId":{raw}}}"#)).unwrap();
        assert_eq!(got[0].flow_id, Some(want));
    }
    for bad in [
        "-1",
        "1.5",
        "\"\"",
        "\"7a\"",
        "\"-3\"",
        "true",
        "99999999999999999999",
        "\"99999999999999999999\"",
    ] {
        let (_, field, _) = invalid(&format!(r#"{{"verificationId":"1","flowId":{bad}}}"#));
        assert_eq!(field.as_deref(), Some("flowId"), "{bad}");
    }
}

#[test]
fn submitted_at_rules() {
    let want = Utc.with_ymd_and_hms(2024, 5, 14, 1, 12, 33).unwrap();
    for raw in [
        "\"2024-05-14T01:12:33Z\"",
        "1715649153",
        "1715649153000",
        "1715649153.0",
    ] {
        let got = parse(&format!(r#"{{"verificationId":"1","submittedAt":{raw}}}"#)).unwrap();
        assert_eq!(got[0].submitted_at, Some(want), "{raw}");
    }
    let got = parse(r#"{"verificationId":"1","submittedAt":1715649153250}"#).unwrap();
    assert_eq!(
        got[0].submitted_at,
        Some(want + chrono::Duration::milliseconds(250))
    );
    for bad in [
        "\"yesterday\"",
        "\"2024-05-14 01:12:33\"",
        "-5",
        "12",               // 1970
        "1715649153000000", // microseconds
        "1e300",
        "[]",
    ] {
        let (_, field, _) = invalid(&format!(r#"{{"verificationId":"1","submittedAt":{bad}}}"#));
        assert_eq!(field.as_deref(), Some("submittedAt"), "{bad}");
    }
}

#[test]
fn one_bad_item_rejects_all_and_counts_items() {
    let err = parse(r#"[{"verificationId":"1"},{"verificationId":"2"},{"verificationId":"z"}]"#)
        .unwrap_err();
    assert_eq!(err.index(), Some(2));
    assert_eq!(err.rejected_items(), 3);
    assert_eq!(err.line(), None);
}

#[test]
fn messages_never_echo_values() {
    let phone = "6281234567890";
    let bodies = [
        format!(r#"{{"appId":"{phone}{phone}{phone}","orderId":"1"}}"#),
        format!(r#"{{"appId":"abcd","orderId":"{phone}\n"}}"#),
        format!(r#"{{"verificationId":"+{phone}"}}"#),
        format!(r#"{{"verificationId":"1","flowId":"{phone}x"}}"#),
        format!(r#"{{"verificationId":"1","submittedAt":"{phone}"}}"#),
        format!(r#"{{"verificationId":"1","{phone}":1}}"#),
        format!(r#"[{{"verificationId":"{phone}"}}, {phone}]"#),
        format!(r#"{{"verificationId":"{phone}" {phone}"#),
    ];
    for body in bodies {
        let err = parse(&body).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains(phone), "{msg}");
        assert!(msg.len() < 300, "{msg}");
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ndjson in proptest::prelude::any::<bool>(),
        max in 0usize..8,
    ) {
        let ct = if ndjson { Some("application/x-ndjson") } else { None };
        if let Err(e) = parse_orders(ct, &body, max) {
            let _ = e.to_string();
            proptest::prop_assert!(e.rejected_items() >= 1);
        }
    }

    #[test]
    fn json_shaped_input_never_panics(
        body in r#"[\[\]{}",:0-9a-zA-Z \n\\-]{0,200}"#,
        max in 0usize..8,
    ) {
        let _ = parse_orders(None, body.as_bytes(), max);
        let _ = parse_orders(Some("application/x-ndjson"), body.as_bytes(), max);
    }
}
