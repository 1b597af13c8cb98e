//! The Meta leg's metrics (feature `metrics`): items by outcome, POSTs by outcome and reason.

use std::time::Duration;

use axum::http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use vobiz_webhooks::meta::MetaWebhookLayer;

use super::{app, message, notification, status, Seen, SECRET};

#[test]
fn items_and_posts_are_counted_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let seen = Seen::default();
            seen.fail
                .lock()
                .expect("lock")
                .insert("wamid.mf".to_owned());
            let layer = MetaWebhookLayer::new(SECRET)
                .replay_window(Duration::from_secs(3600), Duration::from_secs(60));
            let app = app(layer, &seen);
            let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            let mut fresh = message("wamid.m1", "x");
            fresh["timestamp"] = now.clone().into();
            let mut failing = message("wamid.mf", "x");
            failing["timestamp"] = now.into();
            let old = message("wamid.old", "x");
            let post = notification(&[fresh, failing, old], &[]);
            assert_eq!(status(&app, &post).await, StatusCode::INTERNAL_SERVER_ERROR);
            seen.fail.lock().expect("lock").clear();
            assert_eq!(status(&app, &post).await, StatusCode::OK);
            assert_eq!(status(&app, &post.clone().bad_signature()).await, 401);
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let count = |name: &str, outcome: &str, reason: Option<&str>| -> u64 {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                let labels = || key.key().labels();
                key.kind() == MetricKind::Counter
                    && key.key().name() == name
                    && labels().any(|l| l.key() == "outcome" && l.value() == outcome)
                    && reason
                        .is_none_or(|r| labels().any(|l| l.key() == "reason" && l.value() == r))
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(count) => *count,
                _ => 0,
            })
            .sum()
    };
    const ITEMS: &str = "vobiz_webhook_meta_items_total";
    const POSTS: &str = "vobiz_webhook_meta_posts_total";
    assert_eq!(count(ITEMS, "handled", None), 2, "m1, then mf on the retry");
    assert_eq!(count(ITEMS, "failed", None), 1);
    assert_eq!(count(ITEMS, "duplicate", None), 1, "m1 on the retry");
    assert_eq!(count(ITEMS, "skipped", None), 2, "the old item, twice");
    assert_eq!(count(POSTS, "failed", None), 1);
    assert_eq!(count(POSTS, "handled", None), 1);
    assert_eq!(count(POSTS, "rejected", Some("signature_mismatch")), 1);
}
