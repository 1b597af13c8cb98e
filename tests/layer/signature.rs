//! RELIABILITY.md cases 1–4: known-answer vectors, the sign/verify property, the malformed-header
//! matrix through the layer, and raw-byte fidelity. Figures: `FIGURE` lines (`--nocapture`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::{figure, CountingStore};
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::signature::{parse_signature, SignatureError, Verifier};
use vobiz_webhooks::{sign, MemoryStore, VerifiedEvent, VobizWebhookLayer};

const SPEC_SECRET: &str = "your-shared-secret";
const SPEC_BODY: &[u8] = br#"{"event_id":"f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f","event_type":"message.inbound","account_id":"MA_XXXXXXXX","occurred_at":"2026-03-25T10:00:00Z","payload":{}}"#;

/// (key, data, expected tag): RFC 4231 cases 1–4, 6, 7 and the spec's §1.2 vectors.
fn vectors() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
    let mut spec_newline = SPEC_BODY.to_vec();
    spec_newline.push(b'\n');
    vec![
        (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ((1u8..=25).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (vec![0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (vec![0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        (SPEC_SECRET.as_bytes().to_vec(), SPEC_BODY.to_vec(), "6c82a2dbcf397903ffaea500dffa3b4875fe6388361c8ea1c590354868bc48b1"),
        (SPEC_SECRET.as_bytes().to_vec(), spec_newline, "1719ee28d7f6a608659414d9856cba55157b8e3d2ebfa97382f2e0e6eceabcaa"),
    ]
}

/// Case 1.
#[test]
fn known_answer_vectors() {
    let (mut accepted, mut truncated_rejected) = (0, 0);
    let vectors = vectors();
    for (key, data, expected) in &vectors {
        assert_eq!(&sign(key, data), expected);
        let verifier = Verifier::new([key]).expect("key");
        assert_eq!(verifier.verify(expected.as_bytes(), data), Ok(()));
        assert_eq!(
            verifier.verify(expected.to_uppercase().as_bytes(), data),
            Ok(())
        );
        accepted += 1;
        for cut in [&expected.as_bytes()[..32], b"".as_slice()] {
            assert_eq!(verifier.verify(cut, data), Err(SignatureError::Malformed));
            truncated_rejected += 1;
        }
    }
    figure(
        "01 vectors",
        format!(
            "{accepted}/{} accepted, {truncated_rejected}/{} truncated (16 B, empty) rejected",
            vectors.len(),
            vectors.len() * 2
        ),
    );
}

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8 % bytes.len()] ^= 1 << (bit % 8);
}

/// Case 2: `verify(sign(body))` passes; any one-bit flip of body, tag or secret fails.
/// `PROPTEST_CASES` sets the number of cases (64 by default; the long run uses 100 000).
#[test]
fn sign_verify_property() {
    let cases = crate::support::env_usize("PROPTEST_CASES", 64) as u32;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 1..=128),
        proptest::collection::vec(any::<u8>(), 0..=64 * 1024),
        any::<usize>(),
        any::<usize>(),
        any::<usize>(),
    );
    let ran = AtomicUsize::new(0);
    let checks = AtomicUsize::new(0);
    let result = runner.run(
        &strategy,
        |(secret, body, body_bit, tag_bit, secret_bit)| {
            ran.fetch_add(1, Ordering::Relaxed);
            let verifier =
                Verifier::new([&secret]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let header = sign(&secret, &body);
            prop_assert_eq!(
                verifier.verify(header.as_bytes(), &body),
                Ok(()),
                "false reject"
            );
            let mut tag = parse_signature(header.as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut n = 1;
            if !body.is_empty() {
                let mut flipped = body.clone();
                flip(&mut flipped, body_bit);
                prop_assert_eq!(
                    verifier.verify(header.as_bytes(), &flipped),
                    Err(SignatureError::Mismatch),
                    "false accept (body flip)"
                );
                n += 1;
            }
            flip(&mut tag, tag_bit);
            prop_assert_eq!(
                verifier.verify(hex::encode(tag).as_bytes(), &body),
                Err(SignatureError::Mismatch),
                "false accept (tag flip)"
            );
            let mut other = secret.clone();
            flip(&mut other, secret_bit);
            let other = Verifier::new([&other]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                other.verify(header.as_bytes(), &body),
                Err(SignatureError::Mismatch),
                "false accept (secret flip)"
            );
            checks.fetch_add(n + 2, Ordering::Relaxed);
            Ok(())
        },
    );
    if let Err(error) = result {
        panic!("property failed: {error}");
    }
    figure(
        "02 property",
        format!(
            "{} cases, {} verifications, 0 false accepts, 0 false rejects",
            ran.load(Ordering::Relaxed),
            checks.load(Ordering::Relaxed)
        ),
    );
}

const SECRET: &str = "matrix-secret";

fn body() -> Bytes {
    crate::support::envelope("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f", "message.inbound")
}

/// A layer over a counting store around a counting handler that records the bytes it saw.
struct Harness {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Bytes>>>,
    store: CountingStore<MemoryStore>,
}

impl Harness {
    fn new() -> Self {
        Self {
            calls: Arc::default(),
            seen: Arc::default(),
            store: CountingStore::new(MemoryStore::with_capacity(10_000)),
        }
    }

    async fn send(&self, request: Request<Body>) -> Response<axum::body::Body> {
        let (calls, seen) = (self.calls.clone(), self.seen.clone());
        let inner = service_fn(move |req: Request<Body>| {
            let (calls, seen) = (calls.clone(), seen.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let verified = req.extensions().get::<VerifiedEvent>().cloned();
                let bytes = req.into_body().collect().await.expect("body").to_bytes();
                if let Some(verified) = verified {
                    assert_eq!(verified.body(), &bytes, "extension and body differ");
                }
                seen.lock().expect("lock").push(bytes);
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        });
        let layer = VobizWebhookLayer::new(SECRET).store(self.store.clone());
        layer
            .layer(inner)
            .oneshot(request)
            .await
            .expect("infallible")
    }
}

fn with_headers(values: &[HeaderValue]) -> Request<Body> {
    let mut request = Request::post("/webhooks/vobiz")
        .body(Body::from(body()))
        .expect("request");
    for value in values {
        request
            .headers_mut()
            .append("x-webhook-signature", value.clone());
    }
    request
}

/// Case 3: every malformed signature header is refused before the store and the handler.
#[tokio::test]
async fn malformed_header_matrix() {
    let good = sign(SECRET, &body());
    let wrong = sign("other-secret", &body());
    let value = |text: &str| HeaderValue::from_str(text).expect("header");
    let cases: Vec<(&str, Vec<HeaderValue>)> = vec![
        ("absent", vec![]),
        ("empty", vec![value("")]),
        ("two headers, both good", vec![value(&good), value(&good)]),
        (
            "two headers, good + wrong",
            vec![value(&good), value(&wrong)],
        ),
        (
            "two headers, wrong + good",
            vec![value(&wrong), value(&good)],
        ),
        ("1000 chars", vec![value(&"a".repeat(1000))]),
        (
            "1000 chars starting with the good tag",
            vec![value(&format!("{good}{}", "0".repeat(936)))],
        ),
        (
            "non-ASCII obs-text",
            vec![HeaderValue::from_bytes(&[0xc3, 0xa4].repeat(32)).expect("obs-text")],
        ),
        (
            "non-ASCII in a 64-byte tag",
            vec![
                HeaderValue::from_bytes(&[&good.as_bytes()[..62], &[0xc3, 0xa4]].concat())
                    .expect("obs-text"),
            ],
        ),
        ("sha256= prefix", vec![value(&format!("sha256={good}"))]),
        (
            "sha256= prefix, 64 chars",
            vec![value(&format!("sha256={}", &good[..57]))],
        ),
        ("odd length 63", vec![value(&good[..63])]),
        ("odd length 65", vec![value(&format!("{good}0"))]),
        ("16 bytes", vec![value(&good[..32])]),
        ("leading space", vec![value(&format!(" {}", &good[..63]))]),
        ("non-hex", vec![value(&format!("{}g", &good[..63]))]),
        ("wrong secret", vec![value(&wrong)]),
        (
            "wrong secret, upper case",
            vec![value(&wrong.to_uppercase())],
        ),
        ("all zeros", vec![value(&"0".repeat(64))]),
    ];
    let harness = Harness::new();
    let mut refused = 0;
    for (name, headers) in &cases {
        let response = harness.send(with_headers(headers)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        refused += 1;
    }
    assert_eq!(harness.calls.load(Ordering::SeqCst), 0, "handler called");
    assert_eq!(harness.store.counts.writes(), 0, "store written");

    // The right tag in either case is accepted (the spec: hex of either case).
    let mut accepted = 0;
    let spellings: [fn(String) -> String; 3] = [|t| t, |t| t.to_uppercase(), |t| mixed_case(&t)];
    for (i, spell) in spellings.iter().enumerate() {
        let body = crate::support::envelope(&format!("malformed-header-ok-{i}"), "message.inbound");
        let request = Request::post("/")
            .header("x-webhook-signature", spell(sign(SECRET, &body)))
            .body(Body::from(body))
            .expect("request");
        assert_eq!(harness.send(request).await.status(), StatusCode::OK);
        accepted += 1;
    }
    assert_eq!(harness.calls.load(Ordering::SeqCst), 3);
    figure(
        "03 header matrix",
        format!(
            "{refused}/{} malformed or wrong refused 401, 0 panics, 0 handler calls, 0 store writes; {accepted}/3 good tags (lower/UPPER/MiXeD) accepted",
            cases.len()
        ),
    );
}

fn mixed_case(tag: &str) -> String {
    tag.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Bodies whose bytes differ from their canonical JSON.
fn fidelity_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let id = |n: u32| format!("c0ffee00-0000-4000-8000-{n:012}");
    vec![
        ("extra whitespace", format!("{{ \"event_id\" : \"{}\" ,\n  \"event_type\":\"message.inbound\",   \"payload\" : {{ }} }}", id(1)).into_bytes()),
        ("reordered keys", format!(r#"{{"payload":{{"b":1,"a":2}},"event_type":"message.inbound","event_id":"{}"}}"#, id(2)).into_bytes()),
        ("\\u00e4 escape", format!(r#"{{"event_id":"{}","event_type":"message.inbound","payload":{{"text":"\u00e4"}}}}"#, id(3)).into_bytes()),
        ("\\/ escape", format!(r#"{{"event_id":"{}","event_type":"message.inbound","payload":{{"url":"https:\/\/x"}}}}"#, id(4)).into_bytes()),
        ("CRLF", format!("{{\r\n\"event_id\":\"{}\",\r\n\"event_type\":\"message.inbound\",\r\n\"payload\":{{}}\r\n}}", id(5)).into_bytes()),
        ("trailing newline", format!("{{\"event_id\":\"{}\",\"event_type\":\"message.inbound\",\"payload\":{{}}}}\n", id(6)).into_bytes()),
        ("number forms", format!(r#"{{"event_id":"{}","event_type":"message.inbound","payload":{{"n":1.0e2,"m":-0}}}}"#, id(7)).into_bytes()),
        ("BOM", [b"\xef\xbb\xbf".as_slice(), format!(r#"{{"event_id":"{}","event_type":"message.inbound","payload":{{}}}}"#, id(8)).as_bytes()].concat()),
        ("invalid UTF-8", [format!(r#"{{"event_id":"{}","event_type":"message.inbound","payload":{{"t":""#, id(9)).as_bytes(), b"\xff\xfe", b"\"}}"].concat()),
    ]
}

/// Case 4: the bytes verified are the bytes parsed and the bytes the handler sees.
#[tokio::test]
async fn raw_byte_fidelity() {
    let harness = Harness::new();
    let corpus = fidelity_corpus();
    let (mut identical, mut accepted, mut refused) = (0, 0, 0);
    for (name, bytes) in &corpus {
        let body = Bytes::from(bytes.clone());
        let request = crate::support::signed(SECRET, body.clone());
        let before = harness.calls.load(Ordering::SeqCst);
        let status = harness.send(request).await.status();
        // Every valid JSON spelling is a delivery; a BOM or invalid UTF-8 is not an envelope.
        let envelope = !matches!(*name, "BOM" | "invalid UTF-8");
        assert_eq!(
            status == StatusCode::OK,
            envelope,
            "{name}: answered {status}"
        );
        if status == StatusCode::OK {
            accepted += 1;
            let seen = harness.seen.lock().expect("lock");
            assert_eq!(seen.last(), Some(&body), "{name}: handler saw other bytes");
            identical += 1;
        } else {
            // Not JSON a Vobiz envelope can be (BOM, invalid UTF-8): refused 400, never handled.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
            assert_eq!(harness.calls.load(Ordering::SeqCst), before, "{name}");
            refused += 1;
        }
    }
    assert_eq!(
        (accepted, refused),
        (corpus.len() - 2, 2),
        "accepted, refused"
    );
    // The control: a verifier that re-serialises before hashing fails on this corpus.
    let verifier = Verifier::new([SECRET]).expect("secret");
    let mut control_failures = 0;
    for (_, bytes) in &corpus {
        let header = sign(SECRET, bytes);
        let reserialised = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| serde_json::to_vec(&value).ok());
        let ok =
            reserialised.is_some_and(|again| verifier.verify(header.as_bytes(), &again).is_ok());
        if !ok {
            control_failures += 1;
        }
    }
    assert!(control_failures >= 1, "the corpus does not bite");
    assert_eq!(
        control_failures,
        corpus.len(),
        "every case differs from its re-serialisation"
    );
    figure(
        "04 raw bytes",
        format!(
            "{} bodies: {accepted} accepted with handler bytes identical ({identical}), {refused} refused 400 (BOM, invalid UTF-8); re-serialising control fails {control_failures}/{}",
            corpus.len(),
            corpus.len()
        ),
    );
}
