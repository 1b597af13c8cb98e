//! What the loopback servers (a), (b), (g) and (h) of `bench/run.sh` do per request in user
//! space, counted in instructions (this VM's speed drifts by tens of per cent, sometimes 3×,
//! between minutes; an instruction count does not). The same axum handlers as
//! `bench/servers` (the same source: `bench/servers/src/handlers.rs`), driven in process (`oneshot`, no sockets, no hyper) with N unique signed
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

use std::convert::Infallible;
use std::hint::black_box;

use axum::http::StatusCode;
use axum::routing::{post, MethodRouter};
use bytes::Bytes;
use tower::ServiceExt;
use vobiz_webhooks::{MemoryStore, VerifiedEvent, VobizWebhookLayer};

#[path = "common/mod.rs"]
mod common;
/// (b)'s and (h)'s handlers, the loopback servers' own source.
#[path = "../bench/servers/src/handlers.rs"]
mod handlers;

use common::{ready, Requests, SECRET};

fn main() {
    let mut args = common::program_args();
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
            post(handlers::naive).with_state(handlers::Naive::new(SECRET)),
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
            post(handlers::typed).layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new())),
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
