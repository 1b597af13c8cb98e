//! Allocations a delivery costs, counted by a global allocator (issue: typed events cheaper than
//! a `serde_json::Value`). Each figure is the fewest of ten identical calls (the first builds
//! lazily made parts: tracing callsites, the store's shards); the printed lines are
//! what bench/README.md reports:
//!
//! `cargo test --test allocations -- --nocapture --test-threads=1`

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Mutex;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, ServiceExt};
use vobiz_webhooks::{MemoryStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// One test at a time: the counter is global, so a test that allocates on another thread while
/// one counts (the harness runs tests in parallel) would be counted too.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// The fewest allocations one of ten runs of `run` makes (`prepare` builds its input
/// uncounted): the steady state, without the odd run that grows a store's table.
/// Call it within [`alone`].
fn allocations<I, R>(mut prepare: impl FnMut() -> I, mut run: impl FnMut(I) -> R) -> u64 {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut fewest = u64::MAX;
    for _ in 0..10 {
        let input = prepare();
        let before = dhat::HeapStats::get().total_blocks;
        let output = run(input);
        fewest = fewest.min(dhat::HeapStats::get().total_blocks - before);
        drop(black_box(output));
    }
    fewest
}

#[path = "../../benches/common/mod.rs"]
mod common;

use common::{ready, Requests, SECRET};

fn body() -> Bytes {
    Bytes::from_static(common::TEXT.as_bytes())
}

/// The fixture with a new `event_id` each time, signed.
fn delivery() -> Request<Body> {
    with_requests(Requests::request)
}

/// `make` with the one signed-request builder all tests share.
fn with_requests<R>(make: impl FnOnce(&mut Requests) -> R) -> R {
    make(
        REQUESTS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get_or_insert_with(Requests::new),
    )
}

static REQUESTS: Mutex<Option<Requests>> = Mutex::new(None);

/// A runtime on this thread, for the layer's timers (a store or a body that answers at once
/// never starts one).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Deliveries sent through a layer before its allocations are counted: a new in-process store
/// allocates each of its 64 shards' tables on the shard's first id, which a store in service
/// has long done.
const WARM_UP: usize = 3_000;

#[test]
fn typing_a_payload_allocates_a_handful_not_one_per_field() {
    let _alone = alone();
    let envelope = allocations(body, |body| {
        VerifiedEvent::from_trusted_body(body).expect("the fixture is an envelope")
    });
    let typed = allocations(
        || VerifiedEvent::from_trusted_body(body()).expect("the fixture is an envelope"),
        |verified| {
            let text = match verified.event() {
                VobizEvent::MessageInbound(message) => message.text().map(str::len),
                _ => None,
            };
            assert!(text.is_some());
            verified
        },
    );
    let model = allocations(
        || VerifiedEvent::from_trusted_body(body()).expect("the fixture is an envelope"),
        |verified| {
            let messages = match verified.event() {
                VobizEvent::MessageInbound(message) => message.messages().count(),
                _ => 0,
            };
            assert_eq!(messages, 1);
            verified
        },
    );
    println!(
        "allocations: envelope {envelope}, typed payload {typed} (its text), \
         {model} (its whole model) (message.inbound/text)"
    );
    // 1: the body's promotion to a shared `Bytes` (its strings are views of it); 1: the `Arc`
    // holding the payload's text (the shortcuts read without the model); 3: the `Arc` and the
    // model's lists of the change's messages and contacts.
    assert!(envelope <= 2, "envelope: {envelope}");
    assert!(typed <= 1, "typed payload: {typed}");
    assert!(model <= 3, "typed payload, its whole model: {model}");
}

#[test]
fn a_delivery_through_the_layer() {
    let _alone = alone();
    let runtime = runtime();
    let _guard = runtime.enter();

    let bare = service_fn(|request: Request<Body>| async move {
        black_box(request.extensions().get::<VerifiedEvent>().is_some());
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let baseline = allocations(delivery, |request| ready(bare.oneshot(request)));

    // (g): the layer around a handler that takes the verified record.
    let layered = tower::ServiceBuilder::new()
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .service(bare);
    for _ in 0..WARM_UP {
        drop(ready(layered.clone().oneshot(delivery())));
    }
    let layer = allocations(delivery, |request| {
        let response = ready(layered.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        response
    });

    // (h): the layer around an axum handler that takes the typed event and reads its text.
    let typed: axum::routing::MethodRouter<(), Infallible> =
        axum::routing::post(|event: VobizEvent| async move {
            let read = match &event {
                VobizEvent::MessageInbound(message) => message.text().map(str::len),
                VobizEvent::MessageStatus(status) => status.status().map(|_| 0),
                _ => None,
            };
            black_box(read);
            StatusCode::OK
        })
        .layer(VobizWebhookLayer::new(SECRET).store(MemoryStore::new()))
        .with_state::<()>(());
    for _ in 0..WARM_UP {
        drop(ready(typed.clone().oneshot(delivery())));
    }
    let handler = allocations(delivery, |request| {
        let response = ready(typed.clone().oneshot(request)).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        response
    });
    println!(
        "allocations a delivery: bare service {baseline}, layer (g) {layer} \
         (+{}), layer + typed axum handler (h) {handler} (+{})",
        layer - baseline,
        handler - baseline
    );
    // Regressions show here first (bench/README, "Typed events", lists what they are): (g)'s
    // 9 are the boxed response future, the extensions' map, its table and two boxed values,
    // the claim handle, `VerifiedEvent`'s `Arc`, `Body`'s box and this test's `Vec`-backed
    // body promoted to a shared `Bytes` (hyper's bodies are shared already).
    assert!(layer - baseline <= 10, "layer: {layer}");
    assert!(handler - baseline <= 23, "typed handler: {handler}");
}

/// The next delivery with its body shaped as hyper hands it over: a slice split off a
/// connection's read buffer, so clones of it share one reference count (a `Vec`-backed
/// `Bytes`, as the other tests send, allocates when first cloned).
fn delivery_as_hyper_reads_it() -> Request<Body> {
    with_requests(|requests| {
        let body = requests.body();
        let mut read_buffer = bytes::BytesMut::with_capacity(body.len() + 512);
        read_buffer.extend_from_slice(&body);
        requests.request_of(read_buffer.split_to(body.len()).freeze())
    })
}

/// A layer that does nothing, and is not zero-sized (no configured layer is): axum boxes a
/// layered route's service, and a clone of its layer for every request, the same way for it
/// as for `VobizWebhookLayer`.
#[derive(Clone)]
struct NoopLayer(#[allow(dead_code)] u64);

impl<S> tower::Layer<S> for NoopLayer {
    type Service = S;

    fn layer(&self, inner: S) -> S {
        inner
    }
}

/// Issue #16's target 5: the crate's own allocations for a typed delivery, mounted as the
/// README mounts it (an axum `Router`, the layer on the webhook route), against the same
/// route with a bare handler behind a layer that does nothing, so what axum allocates for any
/// request to a layered route cancels out.
#[test]
fn a_typed_delivery_through_a_router_costs_the_crate_at_most_eight_allocations() {
    let _alone = alone();
    let runtime = runtime();
    let _guard = runtime.enter();

    let bare = axum::Router::new().route(
        "/webhooks/vobiz",
        axum::routing::post(|| async { StatusCode::OK }).layer(NoopLayer(0)),
    );
    let typed = axum::Router::new().route(
        "/webhooks/vobiz",
        axum::routing::post(|event: VobizEvent| async move {
            black_box(
                event
                    .as_inbound()
                    .and_then(|message| message.text())
                    .map(str::len),
            );
            StatusCode::OK
        })
        .layer(VobizWebhookLayer::new(SECRET)),
    );
    let send = |app: &axum::Router| {
        let app = app.clone();
        move |request: Request<Body>| {
            let response = ready(app.clone().oneshot(request)).expect("infallible");
            assert_eq!(response.status(), StatusCode::OK);
            response
        }
    };
    let baseline = allocations(delivery_as_hyper_reads_it, send(&bare));
    // A store holding a few thousand ids, as in service: a fresh one's shards each allocate
    // their table on their first id.
    let warm_up = send(&typed);
    for _ in 0..WARM_UP {
        drop(warm_up(delivery_as_hyper_reads_it()));
    }
    let handled = allocations(delivery_as_hyper_reads_it, send(&typed));
    let own = handled - baseline;
    println!("allocations a typed delivery through a Router: bare route {baseline}, typed {handled} (the crate's own: {own})");
    // The 8: the response future's box, `VerifiedEvent`'s `Arc`, the claim handle's `Arc`,
    // two boxed extension values and the growth of axum's extension table they cause, the
    // inner request's `Body` box, and the typed payload's one `Arc` (the text is a shortcut,
    // read without the model).
    assert!(own <= 8, "the crate's own allocations: {own}");
}
