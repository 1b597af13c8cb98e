//! The property: however a set of items is split into POSTs, batched, repeated, sent at once and
//! redelivered, and whichever fail on their first run, each item is handled exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use proptest::prelude::*;
use serde_json::Value;
use vobiz_webhooks::meta::MetaWebhookLayer;
use vobiz_webhooks::testing::MetaPost;
use vobiz_webhooks::VerifiedEvent;

use super::{message, notification, status, status_update, SECRET};

/// Item `i`: a message or a status, each with its own content key.
fn item(i: usize) -> (bool, Value) {
    if i % 2 == 0 {
        (true, message(&format!("wamid.m{i}"), "x"))
    } else {
        (false, status_update(&format!("wamid.s{i}"), "delivered"))
    }
}

fn post_of(indices: &[usize]) -> MetaPost {
    let (messages, statuses): (Vec<_>, Vec<_>) =
        indices.iter().map(|&i| item(i)).partition(|(m, _)| *m);
    let messages: Vec<Value> = messages.into_iter().map(|(_, v)| v).collect();
    let statuses: Vec<Value> = statuses.into_iter().map(|(_, v)| v).collect();
    notification(&messages, &statuses)
}

#[derive(Default)]
struct Runs {
    /// Successful runs per key.
    handled: HashMap<String, usize>,
    /// Keys whose first run fails.
    fail_once: std::collections::HashSet<String>,
}

fn scenario(n: usize, posts: Vec<Vec<usize>>, fail: Vec<bool>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let runs: Arc<Mutex<Runs>> = Arc::default();
        {
            let mut runs = runs.lock().expect("lock");
            for (i, fails) in fail.iter().enumerate() {
                if *fails {
                    let key = if i % 2 == 0 {
                        format!("wamid.m{i}")
                    } else {
                        format!("wamid.s{i}:delivered")
                    };
                    runs.fail_once.insert(key);
                }
            }
        }
        let sink = runs.clone();
        let handler = move |item: VerifiedEvent| {
            let sink = sink.clone();
            async move {
                tokio::task::yield_now().await;
                let mut runs = sink.lock().expect("lock");
                let key = item.event_id().to_owned();
                if runs.fail_once.remove(&key) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                *runs.handled.entry(key).or_default() += 1;
                StatusCode::OK
            }
        };
        let app = Router::new().route(
            "/webhooks/meta",
            post(handler).layer(MetaWebhookLayer::new(SECRET)),
        );
        // The POSTs Meta happened to batch, sent at once (so some meet in flight: 409).
        let sends = posts
            .iter()
            .filter(|indices| !indices.is_empty())
            .map(|indices| {
                let app = app.clone();
                let post = post_of(indices);
                async move { status(&app, &post).await }
            });
        let _ = futures_util::future::join_all(sends).await;
        // Meta retries every item until its POST is answered 200.
        let everything: Vec<usize> = (0..n).collect();
        let mut retries = 0;
        while status(&app, &post_of(&everything)).await != StatusCode::OK {
            retries += 1;
            assert!(retries < 10, "never answered 200");
        }
        let runs = runs.lock().expect("lock");
        assert_eq!(runs.handled.len(), n, "every item handled");
        for (key, count) in &runs.handled {
            assert_eq!(*count, 1, "{key} handled {count} times");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn each_item_is_handled_exactly_once_however_it_is_batched_and_redelivered(
        (n, posts, fail) in (1usize..16).prop_flat_map(|n| (
            Just(n),
            prop::collection::vec(prop::collection::vec(0..n, 0..12), 0..8),
            prop::collection::vec(any::<bool>(), n),
        ))
    ) {
        scenario(n, posts, fail);
    }
}
