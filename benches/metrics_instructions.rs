//! What recording metrics costs a delivery, counted in instructions rather than timed: this VM's
//! speed drifts by tens of per cent between runs, an instruction count does not. The program
//! sends N unique 1.2 KiB deliveries through the layer around a pass-through service, with a
//! Prometheus recorder installed (`recorded`) or not (`unrecorded`); run it under callgrind
//! twice for two N and the difference per delivery is the layer's cost (SHA-256 runs in
//! software under valgrind, the same in both).
//!
//! ```sh
//! cargo bench --features metrics --bench metrics_instructions --no-run
//! B=$(ls -t target/release/deps/metrics_instructions-* | grep -v '\.d$' | head -1)
//! for mode in unrecorded recorded; do for n in 1000 11000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $mode $n 2>&1 | grep Collected
//! done; done    # (second - first) / 10 000 = instructions a delivery
//! ```
//!
//! Run by `cargo bench` without arguments, it sends a few deliveries each way and exits.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, ServiceExt};
use vobiz_webhooks::signature::Secret;
use vobiz_webhooks::{MemoryStore, VobizWebhookLayer};

const SECRET: &str = "your-shared-secret";
const TEXT: &str = include_str!("../tests/fixtures/message.inbound/text.json");
const FIXTURE_ID: &str = "\"event_id\": \"";

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let mode = args.next().unwrap_or_else(|| "both".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    if mode == "recorded" || mode == "both" {
        let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a Prometheus recorder");
    }
    let service = tower::ServiceBuilder::new()
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .service(service_fn(|_request: Request<Body>| async move {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let secret = Secret::new(SECRET).expect("secret");
    let start = TEXT.find(FIXTURE_ID).expect("fixture has an event_id") + FIXTURE_ID.len();
    let end = start + TEXT[start..].find('"').expect("closing quote");
    for i in 0..n {
        let id = format!("5a1c0f3e-7d2b-4e8a-9c6f-{i:012x}");
        let body = Bytes::from(format!("{}{id}{}", &TEXT[..start], &TEXT[end..]));
        let request = Request::post("/webhooks/vobiz")
            .header("content-length", body.len())
            .header("x-webhook-event", "message.inbound")
            .header("x-webhook-signature", secret.sign(&body))
            .body(Body::from(body))
            .expect("request");
        let response = ready(service.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        black_box(response);
    }
}
