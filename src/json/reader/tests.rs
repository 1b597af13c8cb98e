//! The reader against serde_json: where it answers, it answers what serde_json answers.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{from_str, Refused};
use crate::json::mutate::{compact, mutate, Rng};

const FIXTURES: [&str; 5] = [
    include_str!("../../../tests/fixtures/message.inbound/text.json"),
    include_str!("../../../tests/fixtures/message.inbound/interactive_nfm_reply.json"),
    include_str!("../../../tests/fixtures/message.inbound/location.json"),
    include_str!("../../../tests/fixtures/message.status/failed.json"),
    include_str!("../../../tests/fixtures/call/connect.json"),
];

/// A struct read through serde's derive: optional fields, a nested list, raw unknowns.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read through `Debug`
struct Shape {
    event_id: Option<String>,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    occurred_at: Option<Value>,
}

/// Checks one text: for each target type, the reader either refuses or equals serde_json (as
/// `Debug` shows them, which tells `u64`, `i64` and `f64` numbers apart),
/// and it never accepts what serde_json rejects. Returns whether the reader read it as a
/// `Value`.
fn check(text: &str) -> bool {
    fn same<'a, T: Deserialize<'a> + std::fmt::Debug>(text: &'a str) -> bool {
        let ours: Result<T, Refused> = from_str(text);
        let theirs: Result<T, serde_json::Error> = serde_json::from_str(text);
        match (&ours, &theirs) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text:?}")
            }
            (Ok(ours), Err(err)) => {
                panic!("accepted {ours:?} where serde_json says {err}: {text:?}")
            }
            (Err(_), _) => {}
        }
        ours.is_ok()
    }
    #[derive(Debug)]
    struct Ignored;
    impl<'de> Deserialize<'de> for Ignored {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            IgnoredAny::deserialize(d).map(|_| Ignored)
        }
    }
    same::<Shape>(text);
    same::<Ignored>(text);
    same::<Box<RawValue>>(text);
    // A visitor that stops early (a pair read from a longer array) must not be accepted.
    same::<(Value, Value)>(text);
    same::<Value>(text)
}

#[test]
fn mutated_fixtures_read_as_serde_json_reads_them() {
    let mut rng = Rng(0x5EED_0116);
    let (mut read, mut cases) = (0, 0);
    for fixture in FIXTURES {
        for base in [fixture.to_owned(), compact(fixture)] {
            assert!(check(&base), "the fixture itself is read");
            for _ in 0..1_500 {
                let mut bytes = base.clone().into_bytes();
                for _ in 0..1 + rng.below(3) {
                    mutate(&mut rng, &mut bytes);
                }
                // The reader reads text; UTF-8 is its caller's.
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                read += usize::from(check(&text));
                cases += 1;
            }
        }
    }
    // Both verdicts are well exercised.
    assert!(read > cases / 10 && read < cases * 9 / 10, "{read}/{cases}");
}

#[test]
fn hand_picked_texts_read_as_serde_json_reads_them() {
    let deep = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let texts = [
        "0",
        "-0",
        "7",
        "1234567890123456789",
        "12345678901234567890",
        "99999999999999999999999",
        "-9223372036854775808",
        "-9223372036854775809",
        "1.5",
        "1e400",
        "-1e-400",
        "0.30000000000000004",
        "01",
        "1.",
        "-",
        "\"plain\"",
        "\"esc\\u0061ped\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\q\"",
        "\"tab\there\"",
        "\"é\"",
        "[1,2,]",
        "[1,2]",
        "[1,2,3]",
        "[1,[2,3]]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{\"\\u0061\":1}",
        "{\"a\":1}}",
        "{\"event_id\":\"e\",\"event_id\":\"f\"}",
        "{\"event_id\":null}",
        "{\"payload\":  [ 1 , {\"x\" : null} ] , \"occurred_at\":[true,false]}",
        "[\"e\", null, null]",
        "nul",
        "true",
        "  null  ",
        "null x",
        "",
        &deep,
    ];
    for text in texts {
        check(text);
    }
    // Nesting deeper than the reader's limit is refused, not misread.
    assert!(from_str::<Value>(&deep).is_err());
    assert!(serde_json::from_str::<Value>(&deep).is_ok());
}

#[test]
fn strings_without_escapes_are_borrowed_and_numbers_typed_as_serde_json_types_them() {
    #[derive(Deserialize)]
    struct Borrowing<'a> {
        #[serde(borrow)]
        s: &'a str,
    }
    let text = r#"{"s":"plain"}"#;
    let ours: Borrowing<'_> = from_str(text).expect("read");
    assert!(text.as_bytes().as_ptr_range().contains(&ours.s.as_ptr()));
    assert!(from_str::<Borrowing<'_>>(r#"{"s":"esc\u0061ped"}"#).is_err());

    for (text, value) in [
        ("18446744073709551615", serde_json::json!(u64::MAX)),
        ("-5", serde_json::json!(-5)),
        ("2.5", serde_json::json!(2.5)),
    ] {
        let ours: Value = from_str(text).expect("read");
        assert_eq!(ours, value);
        assert_eq!(ours.is_u64(), value.is_u64());
        assert_eq!(ours.is_i64(), value.is_i64());
    }
}
