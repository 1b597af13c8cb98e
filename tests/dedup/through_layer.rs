//! Never twice, never lost: the dedup contract through the layer.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http::{Request, Response, StatusCode};
use tokio::sync::{Barrier, Notify};
use tower::{service_fn, ServiceExt};
use vobiz_webhooks::{
    sign, Claim, ClaimToken, DedupStore, EventKey, MemoryStore, Rejection, StoreError,
    StoreErrorKind, VobizWebhookLayer,
};

const SECRET: &str = "dedup-secret";

fn delivery(id: &str) -> Request<Body> {
    crate::support::delivery(SECRET, id)
}

fn layer() -> VobizWebhookLayer {
    VobizWebhookLayer::new(SECRET)
}

/// An app whose handler counts its runs and answers what `outcome` says for run number n.
fn app<D: DedupStore>(
    layer: VobizWebhookLayer<D>,
    runs: Arc<AtomicUsize>,
    outcome: impl Fn(usize) -> StatusCode + Clone + Send + Sync + 'static,
) -> Router {
    Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let runs = runs.clone();
            let outcome = outcome.clone();
            async move { outcome(runs.fetch_add(1, Ordering::SeqCst)) }
        })
        .layer(layer),
    )
}

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("infallible")
}

#[tokio::test]
async fn completed_duplicate_is_200_marked_and_not_handled_again() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer(), runs.clone(), |_| StatusCode::OK);
    let first = send(&app, delivery("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("x-vobiz-duplicate").is_none());

    // The same UUID spelled in upper case is the same event.
    for id in [
        "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f",
        "F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F",
    ] {
        let again = send(&app, delivery(id)).await;
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_handler_runs_again_on_the_retry_and_is_done_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer(), runs.clone(), |run| {
        if run == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    });
    assert_eq!(send(&app, delivery("evt-fail-once")).await.status(), 500);
    assert_eq!(send(&app, delivery("evt-fail-once")).await.status(), 200);
    let third = send(&app, delivery("evt-fail-once")).await;
    assert_eq!(third.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn in_flight_duplicate_is_409_with_retry_after() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (e, r, n) = (entered.clone(), release.clone(), runs.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let (e, r, n) = (e.clone(), r.clone(), n.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                e.notify_one();
                r.notified().await;
                StatusCode::OK
            }
        })
        .layer(layer()),
    );
    let first = tokio::spawn(send_owned(app.clone(), delivery("evt-slow")));
    entered.notified().await;
    let second = send(&app, delivery("evt-slow")).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(second.headers()["retry-after"], "5");
    assert!(matches!(
        second.extensions().get::<Rejection>(),
        Some(Rejection::InFlight { retry_after: 5 })
    ));
    release.notify_one();
    assert_eq!(first.await.expect("join").status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn send_owned(app: Router, request: Request<Body>) -> Response<Body> {
    app.oneshot(request).await.expect("infallible")
}

/// Retries `id` until the answer is no longer 409 (the release runs in a spawned task).
async fn retry_until_not_in_flight(app: &Router, id: &str) -> Response<Body> {
    for _ in 0..200 {
        let response = send(app, delivery(id)).await;
        if response.status() != StatusCode::CONFLICT {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("claim of {id} was never released");
}

#[tokio::test]
async fn a_panicking_handler_releases_its_claim() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer(), runs.clone(), |run| {
        if run == 0 {
            panic!("handler bug on the first attempt");
        }
        StatusCode::OK
    });
    let crashed = tokio::spawn(send_owned(app.clone(), delivery("evt-panic"))).await;
    assert!(crashed.is_err_and(|err| err.is_panic()));
    let retry = retry_until_not_in_flight(&app, "evt-panic").await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert!(retry.headers().get("x-vobiz-duplicate").is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dropped_response_future_releases_its_claim() {
    let entered = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (e, n) = (entered.clone(), runs.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let (e, n) = (e.clone(), n.clone());
            async move {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    e.notify_one();
                    std::future::pending::<()>().await; // the client gives up meanwhile
                }
                StatusCode::OK
            }
        })
        .layer(layer()),
    );
    let first = tokio::spawn(send_owned(app.clone(), delivery("evt-dropped")));
    entered.notified().await;
    first.abort();
    assert!(first.await.is_err_and(|err| err.is_cancelled()));
    let retry = retry_until_not_in_flight(&app, "evt-dropped").await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_duplicates_run_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer(), runs.clone(), |_| StatusCode::OK);
    let barrier = Arc::new(Barrier::new(256));
    let tasks: Vec<_> = (0..256)
        .map(|_| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                send_owned(app, delivery("evt-storm")).await.status()
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.expect("join");
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn handled_ids_are_forgotten_after_the_ttl() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer().ttl(Duration::from_millis(50)), runs.clone(), |_| {
        StatusCode::OK
    });
    send(&app, delivery("evt-ttl")).await;
    let again = send(&app, delivery("evt-ttl")).await;
    assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
    tokio::time::sleep(Duration::from_millis(120)).await;
    let after = send(&app, delivery("evt-ttl")).await;
    assert!(after.headers().get("x-vobiz-duplicate").is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A handler still running when its lease ends is cancelled (503 + Retry-After), so the retry
/// that takes the expired claim over never runs alongside it, and the event is done once.
/// (Fencing of a late finisher's `complete`/`release` is covered by the store conformance.)
#[tokio::test]
async fn a_handler_that_outlives_its_lease_is_cancelled_and_the_retry_runs_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let slow_first = Arc::new(Notify::new());
    let (n, f, s1) = (runs.clone(), finished.clone(), slow_first.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let (n, f, s1) = (n.clone(), f.clone(), s1.clone());
            async move {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    s1.notified().await;
                }
                f.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        })
        .layer(layer().lease(Duration::from_millis(50))),
    );
    let first = send(&app, delivery("evt-lease")).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.headers().contains_key("retry-after"));
    assert!(matches!(
        first.extensions().get::<Rejection>(),
        Some(Rejection::LeaseExpired { .. })
    ));
    // The first run was dropped: waking it does nothing.
    slow_first.notify_one();
    let retry = send(&app, delivery("evt-lease")).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let after = send(&app, delivery("evt-lease")).await;
    assert_eq!(after.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

/// A store that fails every call, or answers slowly, counting calls.
#[derive(Clone, Default)]
struct BrokenStore {
    slow: Option<Duration>,
    calls: Arc<AtomicUsize>,
}

impl DedupStore for BrokenStore {
    fn claim(
        &self,
        _key: &EventKey,
        _lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let slow = self.slow;
        async move {
            match slow {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(Claim::Done)
                }
                None => Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                )),
            }
        }
    }

    fn complete(
        &self,
        _key: &EventKey,
        _token: &ClaimToken,
        _ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        async { Err(StoreError::from_kind(StoreErrorKind::Unavailable)) }
    }

    fn release(
        &self,
        _key: &EventKey,
        _token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        async { Err(StoreError::from_kind(StoreErrorKind::Unavailable)) }
    }

    fn renew(
        &self,
        _key: &EventKey,
        _token: &ClaimToken,
        _lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        async { Err(StoreError::from_kind(StoreErrorKind::Unavailable)) }
    }
}

#[tokio::test]
async fn store_failure_is_503_with_retry_after_and_no_handler_call() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = BrokenStore::default();
    let app = app(layer().store(store.clone()), runs.clone(), |_| {
        StatusCode::OK
    });
    let response = send(&app, delivery("evt-store-down")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    match response.extensions().get::<Rejection>() {
        Some(Rejection::StoreUnavailable { error, .. }) => {
            assert_eq!(error.kind(), StoreErrorKind::Unavailable)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_store_times_out_into_503() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = BrokenStore {
        slow: Some(Duration::from_secs(30)),
        ..BrokenStore::default()
    };
    let layer = layer()
        .store(store)
        .store_timeout(Duration::from_millis(50))
        .retry_after(Duration::from_millis(1500));
    let app = app(layer, runs.clone(), |_| StatusCode::OK);
    let started = std::time::Instant::now();
    let response = send(&app, delivery("evt-store-slow")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
    match response.extensions().get::<Rejection>() {
        Some(Rejection::StoreUnavailable { error, .. }) => {
            assert_eq!(error.kind(), StoreErrorKind::Timeout)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fail_open_runs_the_handler_when_the_store_fails() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(
        layer().store(BrokenStore::default()).fail_open(true),
        runs.clone(),
        |_| StatusCode::OK,
    );
    assert_eq!(send(&app, delivery("evt-open")).await.status(), 200);
    assert_eq!(send(&app, delivery("evt-open")).await.status(), 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "no store, no dedup");
}

#[tokio::test]
async fn rejected_requests_never_touch_the_store() {
    let store = BrokenStore::default();
    let service = tower::Layer::layer(
        &layer().store(store.clone()),
        service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }),
    );
    let mut unsigned = delivery("evt-unsigned");
    unsigned.headers_mut().remove("x-webhook-signature");
    let mut forged = delivery("evt-forged");
    forged.headers_mut().insert(
        "x-webhook-signature",
        sign("wrong", b"x").parse().expect("header"),
    );
    for request in [unsigned, forged] {
        let response = service.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn clones_of_a_layer_share_one_store() {
    let runs = Arc::new(AtomicUsize::new(0));
    let shared = layer();
    let a = app(shared.clone(), runs.clone(), |_| StatusCode::OK);
    let b = app(shared, runs.clone(), |_| StatusCode::OK);
    send(&a, delivery("evt-shared")).await;
    let response = send(&b, delivery("evt-shared")).await;
    assert_eq!(response.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // An explicit store can be shared by two different layers too.
    let store = Arc::new(MemoryStore::new());
    let c = app(layer().store(store.clone()), runs.clone(), |_| {
        StatusCode::OK
    });
    let d = app(layer().store(store), runs.clone(), |_| StatusCode::OK);
    send(&c, delivery("evt-shared-2")).await;
    let response = send(&d, delivery("evt-shared-2")).await;
    assert_eq!(response.headers()["x-vobiz-duplicate"], "completed");
    assert!(crate::support::body_text(response)
        .await
        .contains("duplicate"));
}

#[tokio::test]
async fn an_inner_service_can_take_the_claim_over_and_settle_it_later() {
    use vobiz_webhooks::{ClaimHandle, OwnedClaim};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OwnedClaim>();
    let service = tower::Layer::layer(
        &layer(),
        service_fn(move |req: Request<Body>| {
            let claim = req
                .extensions()
                .get::<ClaimHandle>()
                .and_then(ClaimHandle::take);
            let tx = tx.clone();
            async move {
                if let Some(claim) = claim {
                    let _ = tx.send(claim);
                }
                // Answered at once; the work (and the claim) goes on elsewhere.
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        }),
    );
    let send = |id: &str| service.clone().oneshot(delivery(id));

    // Taken over: the 2xx does not complete it, the layer leaves it in flight.
    assert_eq!(
        send("evt-queued").await.expect("ok").status(),
        StatusCode::OK
    );
    let claim = rx.recv().await.expect("claim handed over");
    assert_eq!(
        send("evt-queued").await.expect("ok").status(),
        StatusCode::CONFLICT
    );
    assert!(claim.complete().await.expect("store"));
    let after = send("evt-queued").await.expect("ok");
    assert_eq!(after.headers()["x-vobiz-duplicate"], "completed");

    // Taken over and dropped unsettled: released, so a redelivery is handled again.
    assert_eq!(
        send("evt-dropped-claim").await.expect("ok").status(),
        StatusCode::OK
    );
    drop(rx.recv().await.expect("claim handed over"));
    let mut status = StatusCode::CONFLICT;
    for _ in 0..200 {
        status = send("evt-dropped-claim").await.expect("ok").status();
        if status != StatusCode::CONFLICT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, StatusCode::OK);
    assert!(
        rx.recv().await.is_some(),
        "handed over again on the redelivery"
    );
}

/// `MemoryStore` whose completions and releases take `delay` (a networked store, say).
#[derive(Clone)]
struct SlowSettling {
    inner: MemoryStore,
    delay: Duration,
}

impl DedupStore for SlowSettling {
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        self.inner.claim(key, lease)
    }

    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let (inner, key, token, delay) = (self.inner.clone(), *key, token.clone(), self.delay);
        async move {
            tokio::time::sleep(delay).await;
            inner.complete(&key, &token, ttl).await
        }
    }

    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let (inner, key, token, delay) = (self.inner.clone(), *key, token.clone(), self.delay);
        async move {
            tokio::time::sleep(delay).await;
            inner.release(&key, &token).await
        }
    }

    fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.renew(key, token, lease)
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_completion_lands_behind_the_response_and_settled_waits_for_it() {
    let store = SlowSettling {
        inner: MemoryStore::new(),
        delay: Duration::from_millis(300),
    };
    let layer = layer().store(store.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(layer.clone(), runs.clone(), |_| StatusCode::OK);

    let started = tokio::time::Instant::now();
    let response = send(&app, delivery("evt-slow-complete")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the 200 does not wait for the store"
    );
    let key = EventKey::from_event_id("evt-slow-complete");
    assert!(
        matches!(
            store.inner.claim(&key, Duration::from_secs(1)).await,
            Ok(Claim::InFlight)
        ),
        "not done yet: the completion is still on its way"
    );

    layer.settled().await;
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert!(matches!(
        store.inner.claim(&key, Duration::from_secs(1)).await,
        Ok(Claim::Done)
    ));
    let again = send(&app, delivery("evt-slow-complete")).await;
    assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn settled_waits_for_the_release_of_a_dropped_request() {
    let store = SlowSettling {
        inner: MemoryStore::new(),
        delay: Duration::from_millis(200),
    };
    let layer = layer().store(store.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(std::future::pending::<StatusCode>).layer(layer.clone()),
    );
    // The client goes away while the handler runs: the response future is dropped.
    let call = app.clone().oneshot(delivery("evt-dropped"));
    assert!(tokio::time::timeout(Duration::from_millis(50), call)
        .await
        .is_err());

    layer.settled().await;
    let key = EventKey::from_event_id("evt-dropped");
    assert!(
        matches!(
            store.inner.claim(&key, Duration::from_secs(1)).await,
            Ok(Claim::Fresh(_))
        ),
        "released: the retry runs the handler"
    );
    // Nothing left running: settled() answers at once.
    let before = tokio::time::Instant::now();
    layer.settled().await;
    assert_eq!(before.elapsed(), Duration::ZERO);
}
