//! The whole layer driven with arbitrary headers and bodies against the in-process store.
//! Invariants: never panics; the handler runs only for a body whose signature verifies, with
//! exactly the bytes that were signed; a rejected delivery never reaches the handler.
#![no_main]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use arbitrary::Arbitrary;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::{sign, MemoryStore, VerifiedEvent, VobizWebhookLayer};

const SECRET: &str = "fuzz-secret";

#[derive(Arbitrary, Debug)]
enum Signature {
    None,
    Valid,
    ValidUpper,
    Raw(Vec<u8>),
    ValidPlusRaw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    signature: Signature,
    event_header: Option<Vec<u8>>,
    content_length: Option<Vec<u8>>,
    body: Vec<u8>,
    /// Where the body is split into two frames.
    split: u16,
    /// Use an envelope-shaped body around `body` as event_id (more deliveries get far).
    wrap: bool,
    event_type: u8,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
});
static STORE: LazyLock<MemoryStore> = LazyLock::new(|| MemoryStore::with_capacity(4096));
static CALLS: AtomicUsize = AtomicUsize::new(0);
static SEEN: Mutex<Option<Bytes>> = Mutex::new(None);

fuzz_target!(|input: Input| {
    let body: Bytes = if input.wrap {
        let types = ["message.inbound", "message.status", "call.connect", "weird.type"];
        let id = String::from_utf8_lossy(&input.body).replace(['"', '\\'], "_");
        let ty = types[usize::from(input.event_type) % types.len()];
        Bytes::from(format!(
            r#"{{"event_id":"{id}","event_type":"{ty}","payload":{{}}}}"#
        ))
    } else {
        Bytes::from(input.body.clone())
    };
    let valid = sign(SECRET, &body);
    let mut request = Request::post("/webhooks/vobiz");
    let mut signed_right = false;
    let headers = request.headers_mut().expect("builder");
    let mut add = |value: &[u8]| {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append("x-webhook-signature", value);
            true
        } else {
            false
        }
    };
    match &input.signature {
        Signature::None => {}
        Signature::Valid => signed_right = add(valid.as_bytes()),
        Signature::ValidUpper => signed_right = add(valid.to_uppercase().as_bytes()),
        Signature::Raw(raw) => {
            add(raw);
            signed_right = raw.eq_ignore_ascii_case(valid.as_bytes());
        }
        Signature::ValidPlusRaw(raw) => {
            add(valid.as_bytes());
            // A second signature header is always refused.
            if add(raw) {
                signed_right = false;
            } else {
                signed_right = true;
            }
        }
    }
    let headers = request.headers_mut().expect("builder");
    if let Some(event) = input.event_header.as_deref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert("x-webhook-event", event);
    }
    if let Some(length) = input.content_length.as_deref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert("content-length", length);
    }
    let split = usize::from(input.split).min(body.len());
    let (a, b) = (body.slice(..split), body.slice(split..));
    let stream = futures_util::stream::iter([Ok::<_, Infallible>(a), Ok(b)]);
    let request = request.body(Body::from_stream(stream)).expect("request");

    let before = CALLS.load(Ordering::SeqCst);
    let inner = service_fn(|req: Request<Body>| async move {
        CALLS.fetch_add(1, Ordering::SeqCst);
        let verified = req.extensions().get::<VerifiedEvent>().cloned();
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX).await.expect("body");
        assert_eq!(verified.map(|v| v.body().clone()), Some(bytes.clone()));
        *SEEN.lock().expect("lock") = Some(bytes);
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let layer = VobizWebhookLayer::new(SECRET)
        .expect("secret")
        .body_limit(64 * 1024)
        .store(STORE.clone());
    let response = RUNTIME
        .block_on(layer.layer(inner).oneshot(request))
        .expect("infallible");
    let called = CALLS.load(Ordering::SeqCst) > before;
    if called {
        assert!(signed_right, "handler ran for a delivery not signed right: {input:?}");
        assert_eq!(SEEN.lock().expect("lock").as_ref(), Some(&body));
    }
    if !signed_right {
        assert!(!called);
        assert_ne!(response.status(), 200, "{input:?}");
    }
});

