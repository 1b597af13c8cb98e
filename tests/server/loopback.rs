//! Dedup through real servers on loopback: retries, duplicate storms, replicas sharing Redis,
//! and a Redis outage in the middle of a run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use http::StatusCode;
use tokio::sync::Barrier;
use vobiz_webhooks::{DedupStore, VerifiedEvent, VobizWebhookLayer};

use crate::support::{event, http_post};

const SECRET: &str = "loopback-secret";

/// How often each event id ran the handler, and which ids fail on their first run.
#[derive(Clone, Default)]
struct Ledger {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    fail_first: Arc<Mutex<Vec<String>>>,
}

impl Ledger {
    fn runs_of(&self, id: &str) -> usize {
        self.runs
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    #[cfg(feature = "redis")]
    fn total(&self) -> usize {
        self.runs.lock().expect("lock").values().sum()
    }
}

/// Serves the webhook route with `layer` on 127.0.0.1, on a free port.
async fn serve<D: DedupStore>(layer: VobizWebhookLayer<D>, ledger: Ledger) -> SocketAddr {
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move |event: VerifiedEvent| {
            let ledger = ledger.clone();
            async move {
                let id = event.event_id().to_owned();
                let run = {
                    let mut runs = ledger.runs.lock().expect("lock");
                    let run = runs.entry(id.clone()).or_default();
                    *run += 1;
                    *run
                };
                // A little work, so concurrent duplicates really overlap.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let fails = run == 1 && ledger.fail_first.lock().expect("lock").contains(&id);
                if fails {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        })
        .layer(layer),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One delivery as Vobiz sends it; answers the status and whether it was marked a duplicate.
async fn deliver(client: &reqwest::Client, addr: SocketAddr, id: &str) -> (StatusCode, bool) {
    let url = format!("http://{addr}/webhooks/vobiz");
    let response = http_post(client, &url, SECRET, &event(id, "message.inbound"))
        .send()
        .await
        .expect("the server answers");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    if matches!(status.as_u16(), 409 | 503) {
        assert!(response.headers().contains_key("retry-after"), "{status}");
    }
    (status, response.headers().contains_key("x-vobiz-duplicate"))
}

fn layer() -> VobizWebhookLayer {
    VobizWebhookLayer::new(SECRET)
}

/// 256 deliveries of `id` released at once, spread over `addrs`; every answer 200 or 409.
async fn storm(client: &reqwest::Client, addrs: &[SocketAddr], id: &str) {
    let barrier = Arc::new(Barrier::new(256));
    let tasks: Vec<_> = (0..256)
        .map(|n| {
            let (client, barrier, id) = (client.clone(), barrier.clone(), id.to_owned());
            let addr = addrs[n % addrs.len()];
            tokio::spawn(async move {
                barrier.wait().await;
                deliver(&client, addr, &id).await.0
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.expect("join");
        assert!(matches!(status.as_u16(), 200 | 409), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_duplicate_storms_on_a_real_server() {
    let ledger = Ledger::default();
    ledger
        .fail_first
        .lock()
        .expect("lock")
        .push("evt-fails-once".into());
    let addr = serve(layer(), ledger.clone()).await;
    let client = reqwest::Client::new();

    // A handler that fails its first attempt runs again on the retry and is done once.
    assert_eq!(
        deliver(&client, addr, "evt-fails-once").await,
        (StatusCode::INTERNAL_SERVER_ERROR, false)
    );
    assert_eq!(
        deliver(&client, addr, "evt-fails-once").await,
        (StatusCode::OK, false)
    );
    assert_eq!(
        deliver(&client, addr, "evt-fails-once").await,
        (StatusCode::OK, true)
    );
    assert_eq!(ledger.runs_of("evt-fails-once"), 2);

    storm(&client, &[addr], "evt-storm").await;
    assert_eq!(ledger.runs_of("evt-storm"), 1);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_one_redis_run_the_handler_once() {
    let Some(store) = crate::support::redis::store("replicas").await else {
        return;
    };
    let ledger = Ledger::default();
    // Two replicas: separate layers and servers, one Redis under one prefix.
    let a = serve(layer().store(store.clone()), ledger.clone()).await;
    let b = serve(layer().store(store), ledger.clone()).await;
    let client = reqwest::Client::new();
    for round in 0..5 {
        let id = format!("evt-replicas-{round}");
        storm(&client, &[a, b], &id).await;
        assert_eq!(ledger.runs_of(&id), 1, "round {round}");
        assert_eq!(deliver(&client, b, &id).await, (StatusCode::OK, true));
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_and_loses_nothing() {
    let Some(mut redis) = crate::support::RedisServer::start() else {
        return;
    };
    let store = vobiz_webhooks::RedisStore::new(&redis.url())
        .await
        .expect("our redis-server");
    let ledger = Ledger::default();
    let layer = layer()
        .store(store)
        .store_timeout(Duration::from_millis(500));
    let addr = serve(layer, ledger.clone()).await;
    let client = reqwest::Client::new();

    let before: Vec<String> = (0..20).map(|n| format!("evt-before-{n}")).collect();
    for id in &before {
        assert_eq!(deliver(&client, addr, id).await, (StatusCode::OK, false));
    }

    // Redis goes away mid-run: every delivery is refused with 503, no handler runs.
    redis.stop();
    let during: Vec<String> = (0..20).map(|n| format!("evt-during-{n}")).collect();
    for id in &during {
        assert_eq!(
            deliver(&client, addr, id).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(ledger.total(), 20);

    // Redis comes back (empty: no persistence). The sender's retries run each event once.
    assert!(redis.restart(), "redis-server did not come back");
    for id in &during {
        let mut answer = deliver(&client, addr, id).await;
        for _ in 0..100 {
            if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = deliver(&client, addr, id).await;
        }
        assert_eq!(answer, (StatusCode::OK, false), "{id}");
        assert_eq!(
            deliver(&client, addr, id).await,
            (StatusCode::OK, true),
            "{id}"
        );
    }
    for id in before.iter().chain(&during) {
        assert_eq!(ledger.runs_of(id), 1, "{id}: nothing lost, nothing doubled");
    }
    assert_eq!(ledger.total(), 40);
}
