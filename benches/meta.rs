//! Meta's leg beside the Vobiz leg, in process (`oneshot`, no sockets): the same typed axum
//! handler (`VerifiedEvent`, `VobizEvent`) behind `VobizWebhookLayer` fed one Vobiz delivery,
//! and behind `MetaWebhookLayer` fed a Meta POST of 1 and of 50 text messages, every item with
//! a new wamid so each is claimed, run and completed (MemoryStore). Requests are built and
//! signed outside the timed section (`iter_batched`).
//!
//! `cargo bench --features meta --bench meta -- --warm-up-time 1 --measurement-time 5`

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{Request, StatusCode};
use tower::ServiceExt;
use vobiz_webhooks::meta::MetaWebhookLayer;
use vobiz_webhooks::testing::TestEvent;
use vobiz_webhooks::{MemoryStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

const SECRET: &str = "your-shared-secret";

/// Drives a future that never waits to the end.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Meta POSTs of `items` text messages, each with a wamid of its own.
struct MetaPosts {
    n: u64,
}

impl MetaPosts {
    fn request(&mut self, items: usize) -> Request<Body> {
        let messages: Vec<String> = (0..items)
            .map(|_| {
                self.n += 1;
                format!(
                    r#"{{"from":"918888888888","id":"wamid.HBgMOTE4ODg4ODg4ODg4FQIAEhgUM0E{:016x}","timestamp":"1711360800","type":"text","text":{{"body":"Hi, is my order shipped?"}}}}"#,
                    self.n
                )
            })
            .collect();
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"919876543210","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Asha"}},"wa_id":"918888888888"}}],"messages":[{}]}}}}]}}]}}"#,
            messages.join(",")
        );
        let body = Bytes::from(body);
        Request::post("/webhooks/meta")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header(
                "x-hub-signature-256",
                vobiz_webhooks::meta::sign(SECRET, &body),
            )
            .body(Body::from(body))
            .expect("request")
    }
}

fn meta(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let handler = |meta: VerifiedEvent, event: VobizEvent| async move {
        black_box((
            meta.event_id().len(),
            matches!(event, VobizEvent::MessageInbound(_)),
        ));
        StatusCode::OK
    };
    let vobiz: axum::routing::MethodRouter<(), Infallible> = axum::routing::post(handler)
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .with_state::<()>(());
    let meta: axum::routing::MethodRouter<(), Infallible> = axum::routing::post(handler)
        .layer(MetaWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .with_state::<()>(());
    let mut posts = MetaPosts { n: 0 };
    let vobiz_request = || TestEvent::inbound_text("Hi, is my order shipped?").request(SECRET);

    // Sanity: both legs answer 200.
    for response in [
        ready(vobiz.clone().oneshot(vobiz_request())),
        ready(meta.clone().oneshot(posts.request(50))),
    ] {
        assert_eq!(response.expect("infallible").status(), StatusCode::OK);
    }

    let mut group = c.benchmark_group("legs: one POST through the typed handler");
    group.throughput(Throughput::Elements(1));
    group.bench_function("Vobiz delivery (1 event)", |b| {
        b.iter_batched(
            vobiz_request,
            |request| ready(vobiz.clone().oneshot(request)).expect("infallible"),
            BatchSize::SmallInput,
        )
    });
    for items in [1, 50] {
        group.bench_function(format!("Meta POST ({items} item(s))"), |b| {
            b.iter_batched(
                || posts.request(items),
                |request| {
                    let response = ready(meta.clone().oneshot(request)).expect("infallible");
                    debug_assert_eq!(response.status(), StatusCode::OK);
                    response
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, meta);
criterion_main!(benches);
