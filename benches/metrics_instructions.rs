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
use std::hint::black_box;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use tower::{service_fn, ServiceExt};
use vobiz_webhooks::{MemoryStore, VobizWebhookLayer};

#[path = "common/mod.rs"]
mod common;

use common::{ready, Requests, SECRET};

fn main() {
    let mut args = common::program_args();
    let mode = args.next().unwrap_or_else(|| "both".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let recorder = (mode == "recorded" || mode == "both").then(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a Prometheus recorder")
    });
    let service = tower::ServiceBuilder::new()
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .service(service_fn(|_request: Request<Body>| async move {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let mut requests = Requests::new();
    for i in 0..n {
        // Drain the recorded samples now and then, as the exporter's upkeep does in a server
        // (counted here: it is part of what recording costs).
        if let (Some(recorder), 0) = (&recorder, i % 1024) {
            recorder.run_upkeep();
        }
        let request = requests.request();
        let response = ready(service.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        black_box(response);
    }
}
