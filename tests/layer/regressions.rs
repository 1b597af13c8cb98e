//! Regressions the reliability suite (RELIABILITY.md) found, kept as tests.
//!
//! Both run on Tokio's paused clock: the lease, the store timeout and the late claim are Tokio
//! timers, so the probes keep their order however loaded the machine is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http::{Request, StatusCode};
use tower::ServiceExt;
use vobiz_webhooks::{Rejection, VobizWebhookLayer};

const SECRET: &str = "regression-secret";

fn delivery(id: &str) -> Request<Body> {
    crate::support::delivery(SECRET, id)
}

struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Found by case 9: a handler outliving its lease ran alongside the retry that claimed the
/// expired id (10 of 10 slow ids overlapped and were handled twice). The layer now cancels the
/// handler at the end of its lease and answers 503 + Retry-After.
#[tokio::test(start_paused = true)]
async fn a_handler_outliving_its_lease_is_cancelled_and_never_overlaps_the_retry() {
    const LEASE: Duration = Duration::from_millis(200);
    let (active, peak, runs, finished) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (a, p, r, f) = (active.clone(), peak.clone(), runs.clone(), finished.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let (active, peak, runs, finished) = (a.clone(), p.clone(), r.clone(), f.clone());
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let _active = Active(active);
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(LEASE * 5).await;
                }
                finished.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        })
        .layer(VobizWebhookLayer::new(SECRET).lease(LEASE)),
    );
    let first = tokio::spawn(app.clone().oneshot(delivery("evt-slow")));
    tokio::time::sleep(LEASE / 2).await;
    let during = app
        .clone()
        .oneshot(delivery("evt-slow"))
        .await
        .expect("infallible");
    assert_eq!(during.status(), StatusCode::CONFLICT);

    let first = first.await.expect("task").expect("infallible");
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.headers().contains_key("retry-after"));
    assert!(matches!(
        first.extensions().get::<Rejection>(),
        Some(Rejection::LeaseExpired { .. })
    ));
    // The slow run was cancelled, not left running.
    assert_eq!(active.load(Ordering::SeqCst), 0);
    assert_eq!(finished.load(Ordering::SeqCst), 0);

    let retry = app
        .clone()
        .oneshot(delivery("evt-slow"))
        .await
        .expect("infallible");
    assert_eq!(retry.status(), StatusCode::OK);
    let again = app.oneshot(delivery("evt-slow")).await.expect("infallible");
    assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    assert_eq!(peak.load(Ordering::SeqCst), 1, "two runs overlapped");
}

/// A store whose claims land late, like a Redis command queued while the connection
/// reconnects: the claim is sent at once and lands after `delay` even if the caller gave up.
#[derive(Clone)]
struct LateStore {
    inner: vobiz_webhooks::MemoryStore,
    delay: Arc<std::sync::Mutex<Duration>>,
}

impl vobiz_webhooks::DedupStore for LateStore {
    fn claim(
        &self,
        key: &vobiz_webhooks::EventKey,
        lease: Duration,
    ) -> impl std::future::Future<Output = Result<vobiz_webhooks::Claim, vobiz_webhooks::StoreError>>
           + Send {
        let (inner, key) = (self.inner.clone(), *key);
        let delay = *self.delay.lock().expect("lock");
        let sent = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            inner.claim(&key, lease).await
        });
        async move { sent.await.expect("claim task") }
    }

    fn complete(
        &self,
        key: &vobiz_webhooks::EventKey,
        token: &vobiz_webhooks::ClaimToken,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<bool, vobiz_webhooks::StoreError>> + Send {
        self.inner.complete(key, token, ttl)
    }

    fn release(
        &self,
        key: &vobiz_webhooks::EventKey,
        token: &vobiz_webhooks::ClaimToken,
    ) -> impl std::future::Future<Output = Result<bool, vobiz_webhooks::StoreError>> + Send {
        self.inner.release(key, token)
    }

    fn renew(
        &self,
        key: &vobiz_webhooks::EventKey,
        token: &vobiz_webhooks::ClaimToken,
        lease: Duration,
    ) -> impl std::future::Future<Output = Result<bool, vobiz_webhooks::StoreError>> + Send {
        self.inner.renew(key, token, lease)
    }
}

/// Found by case 12 (Redis outage): a claim that timed out in the layer still landed in Redis
/// once the connection came back, orphaned with its 60 s lease, and every retry of that event
/// was answered 409 until the lease ran out. The layer now keeps a timed-out claim alive in the
/// background and releases it if it lands.
#[tokio::test(start_paused = true)]
async fn a_claim_that_lands_after_its_timeout_is_released_not_orphaned() {
    let store = LateStore {
        inner: vobiz_webhooks::MemoryStore::new(),
        delay: Arc::new(std::sync::Mutex::new(Duration::from_millis(300))),
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        })
        .layer(
            VobizWebhookLayer::new(SECRET)
                .store(store.clone())
                .store_timeout(Duration::from_millis(100)),
        ),
    );
    let first = app
        .clone()
        .oneshot(delivery("evt-late"))
        .await
        .expect("infallible");
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The store is fast again; the late claim has landed and been released by now.
    *store.delay.lock().expect("lock") = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retry = app
        .clone()
        .oneshot(delivery("evt-late"))
        .await
        .expect("infallible");
    assert_eq!(
        retry.status(),
        StatusCode::OK,
        "the orphaned claim blocked the retry"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
