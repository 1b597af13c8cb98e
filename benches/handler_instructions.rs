//! What the loopback servers (a), (b), (g) and (h) of `bench/run.sh` do per request in user
//! space, counted in instructions (this VM's speed drifts by tens of per cent, sometimes 3×,
//! between minutes; an instruction count does not). The same axum handlers as
//! `bench/servers`, driven in process (`oneshot`, no sockets, no hyper) with N unique signed
//! 1.2 KiB deliveries each:
//!
//! - `bare` (a): `post(|_: Bytes| 200)`;
//! - `naive` (b): `Bytes`, HMAC keyed per request, hex compare, `serde_json::Value`, a
//!   `Mutex<HashSet<String>>`, the text read from the `Value`;
//! - `layer` (g): `VobizWebhookLayer` around a handler taking `VerifiedEvent`;
//! - `typed` (h): the layer around a handler taking `VobizEvent` and reading the text.
//!
//! Run each under callgrind for two N; the difference per delivery is its cost, request
//! building and signing included (the same in every mode: subtract `bare`). SHA-256 runs in
//! software under valgrind (in hardware outside it), so leave it out: subtract the inclusive
//! cost of `sha2::sha256::compress256` from each figure (`callgrind_annotate --inclusive=yes`).
//!
//! ```sh
//! cargo bench --bench handler_instructions --no-run
//! B=$(ls -t target/release/deps/handler_instructions-* | grep -v '\.d$' | head -1)
//! for mode in bare naive layer typed; do for n in 1000 11000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$mode.$n $B $mode $n >/dev/null 2>&1
//!   echo "$mode $n $(callgrind_annotate cg.$mode.$n | grep -o '^[0-9,]* (100.0%)' | tr -d ,) \
//!     sha $(callgrind_annotate --inclusive=yes cg.$mode.$n | grep 'sha256::compress256 ' | grep -o '^ *[0-9,]*' | tr -d ', ')"
//! done; done    # per delivery: ((total - sha) at 11000 - (total - sha) at 1000) / 10 000
//! ```
//!
//! Run by `cargo bench` without arguments, it sends a few deliveries each way and exits.

use std::collections::HashSet;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, MethodRouter};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tower::ServiceExt;
use vobiz_webhooks::{MemoryStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[path = "common/mod.rs"]
mod common;

use common::{ready, Requests, SECRET};

/// (b)'s state: its secret and the ids it has seen.
#[derive(Clone)]
struct Naive {
    secret: Arc<str>,
    seen: Arc<Mutex<HashSet<String>>>,
}

/// (b), as `bench/servers/src/bin/naive.rs`.
async fn naive(State(app): State<Naive>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(signature) = headers
        .get("x-webhook-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app.secret.as_bytes()).expect("any key length");
    mac.update(&body);
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected != signature {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(event_id) = event["event_id"].as_str() else {
        return StatusCode::BAD_REQUEST;
    };
    if !app.seen.lock().expect("lock").insert(event_id.to_owned()) {
        return StatusCode::OK;
    }
    let value = &event["payload"]["entry"][0]["changes"][0]["value"];
    let read = match event["event_type"].as_str() {
        Some("message.inbound") => value["messages"][0]["text"]["body"].as_str().map(str::len),
        Some("message.status") => value["statuses"][0]["status"].as_str().map(str::len),
        _ => None,
    };
    black_box(read);
    StatusCode::OK
}

/// (h)'s handler, as `bench/servers/src/bin/typed.rs`.
async fn typed(event: VobizEvent) -> StatusCode {
    let read = match &event {
        VobizEvent::MessageInbound(message) => message.text().map(str::len),
        VobizEvent::MessageStatus(status) => status.status().map(|status| status.as_str().len()),
        _ => None,
    };
    black_box(read);
    StatusCode::OK
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let mode = args.next().unwrap_or_else(|| "all".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();

    let servers: Vec<(&str, MethodRouter<(), Infallible>)> = vec![
        ("bare", post(|_: Bytes| async { StatusCode::OK })),
        (
            "naive",
            post(naive).with_state(Naive {
                secret: SECRET.into(),
                seen: Arc::default(),
            }),
        ),
        (
            "layer",
            post(|event: VerifiedEvent| async move {
                black_box(event.event_id().len());
                StatusCode::OK
            })
            .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new())),
        ),
        (
            "typed",
            post(typed).layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new())),
        ),
    ];
    let mut requests = Requests::new();
    for (name, server) in servers {
        if mode != name && mode != "all" {
            continue;
        }
        for _ in 0..n {
            let response = ready(server.clone().oneshot(requests.request())).expect("infallible");
            assert_eq!(response.status(), StatusCode::OK, "{name}");
        }
    }
}
