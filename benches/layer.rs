//! The whole layer driven in process (`tower::ServiceExt::oneshot`, no sockets) around a
//! pass-through service, with a 1.2 KiB `message.inbound` delivery and a unique `event_id` per
//! iteration so the in-process dedup store does real work (claim + complete). The baseline is the
//! bare pass-through service fed the same request: the difference is what the layer costs.
//!
//! Each iteration builds its request (a fresh signed body) outside the timed section
//! (`iter_batched`), so only the service call is measured.
//!
//! `cargo bench --bench layer -- --warm-up-time 1 --measurement-time 5`
//!
//! With `--features metrics` a Prometheus recorder is installed first, so every delivery is
//! recorded as in production: the layer's line against the same line without the feature is
//! what the metrics cost.

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::Body;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{Request, Response, StatusCode};
use tower::{service_fn, ServiceExt};
use vobiz_webhooks::{MemoryStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[path = "common/mod.rs"]
mod common;

use common::{ready, Requests, SECRET};

fn layer(c: &mut Criterion) {
    // The layer's store timeout needs a Tokio context (its timer is registered lazily).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    // Built before the recorder is installed, so its metric handles record nothing: beside the
    // layer below (recorded to Prometheus) it shows what the recording costs in one run.
    #[cfg(feature = "metrics")]
    let bare_layered = || {
        tower::ServiceBuilder::new()
            .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
            .service(service_fn(|_request: Request<Body>| async move {
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }))
    };
    #[cfg(feature = "metrics")]
    let unrecorded = bare_layered();
    // Its twin for the interleaved comparison, with a store as empty as the recorded twin's.
    #[cfg(feature = "metrics")]
    let unrecorded_twin = bare_layered();
    #[cfg(feature = "metrics")]
    {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a Prometheus recorder");
        // What the exporter's listener does in a server: drain the recorded samples now and
        // then, so they do not pile up for the whole run.
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            handle.run_upkeep();
        });
    }

    // The unrecorded layer's twin, built after the recorder: every delivery recorded.
    #[cfg(feature = "metrics")]
    let recorded_twin = bare_layered();

    let mut requests = Requests::new();
    let len = requests.body().len();
    assert!((1100..1400).contains(&len), "a ~1.2 KiB body, got {len}");

    let passthrough = service_fn(|request: Request<Body>| async move {
        black_box(request.extensions().get::<VerifiedEvent>().is_some());
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let verifying = VobizWebhookLayer::new(SECRET).store(MemoryStore::new());
    let layered = tower::ServiceBuilder::new()
        .layer(verifying)
        .service(passthrough);
    // What the example server's handler extracts: the record and the typed event.
    let typed: axum::routing::MethodRouter<(), Infallible> =
        axum::routing::post(|meta: VerifiedEvent, event: VobizEvent| async move {
            black_box((
                meta.event_id().len(),
                matches!(event, VobizEvent::MessageInbound(_)),
            ));
            StatusCode::OK
        })
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .with_state::<()>(());

    // A sanity check: the layer lets a signed delivery through.
    let first = requests.request();
    let response = runtime
        .block_on(layered.clone().oneshot(first))
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);

    let mut group = c.benchmark_group("layer 1.2KiB message.inbound");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline: bare pass-through service", |b| {
        b.iter_batched(
            || requests.request(),
            |request| ready(passthrough.oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("VobizWebhookLayer (MemoryStore), unique ids", |b| {
        b.iter_batched(
            || requests.request(),
            |request| {
                let response = ready(layered.clone().oneshot(request)).expect("infallible");
                debug_assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    #[cfg(feature = "metrics")]
    group.bench_function(
        "VobizWebhookLayer (MemoryStore), metrics not recorded",
        |b| {
            b.iter_batched(
                || requests.request(),
                |request| ready(unrecorded.clone().oneshot(request)).expect("infallible"),
                BatchSize::SmallInput,
            )
        },
    );
    // The recording's own cost, free of the VM's drift: deliveries to the recorded and the
    // unrecorded layer alternate in small chunks (which goes first alternates too). Criterion
    // times a pair; the two sides' totals over the whole run are printed after the group, and
    // their difference is what recording costs a delivery.
    #[cfg(feature = "metrics")]
    let mut sides = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0u64);
    #[cfg(feature = "metrics")]
    group.bench_function(
        "metrics: a recorded and an unrecorded delivery, interleaved",
        |b| {
            b.iter_custom(|iters| {
                const CHUNK: u64 = 32;
                let (mut recorded, mut unrecorded_time) =
                    (std::time::Duration::ZERO, std::time::Duration::ZERO);
                let mut done = 0;
                while done < iters {
                    let n = CHUNK.min(iters - done);
                    let mut time = |service: &_, total: &mut std::time::Duration| {
                        let batch: Vec<_> = (0..n).map(|_| requests.request()).collect();
                        let start = std::time::Instant::now();
                        for request in batch {
                            black_box(ready(tower::ServiceExt::oneshot(
                                Clone::clone(service),
                                request,
                            )))
                            .expect("infallible");
                        }
                        *total += start.elapsed();
                    };
                    if (done / CHUNK) % 2 == 0 {
                        time(&recorded_twin, &mut recorded);
                        time(&unrecorded_twin, &mut unrecorded_time);
                    } else {
                        time(&unrecorded_twin, &mut unrecorded_time);
                        time(&recorded_twin, &mut recorded);
                    }
                    done += n;
                }
                sides.0 += recorded;
                sides.1 += unrecorded_time;
                sides.2 += iters;
                recorded + unrecorded_time
            })
        },
    );
    #[cfg(feature = "metrics")]
    if sides.2 > 0 {
        let per = |total: std::time::Duration| total.as_nanos() as f64 / sides.2 as f64;
        let (recorded, unrecorded) = (per(sides.0), per(sides.1));
        println!(
            "metrics, interleaved over {} deliveries each: recorded {recorded:.0} ns, \
             not recorded {unrecorded:.0} ns, recording costs {:+.0} ns a delivery",
            sides.2,
            recorded - unrecorded
        );
    }
    group.bench_function(
        "VobizWebhookLayer + axum handler (VerifiedEvent, VobizEvent)",
        |b| {
            b.iter_batched(
                || requests.request(),
                |request| {
                    let response = ready(typed.clone().oneshot(request)).expect("infallible");
                    debug_assert_eq!(response.status(), StatusCode::OK);
                    response
                },
                BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
