//! Meta's leg: the handshake, `X-Hub-Signature-256`, one event per item exactly once, through
//! the same handlers and `VobizRouter`.

#[path = "../support/mod.rs"]
mod support;

mod batches;
mod handshake;
#[cfg(feature = "metrics")]
mod metrics;
mod once;
mod rejections;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Response;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;
use vobiz_webhooks::meta::MetaWebhookLayer;
use vobiz_webhooks::testing::MetaPost;
use vobiz_webhooks::{DedupStore, VerifiedEvent, VobizEvent};

pub(crate) const SECRET: &str = "meta-app-secret";

/// What the handler saw, and which keys fail while they are in `fail`.
#[derive(Clone, Default)]
pub(crate) struct Seen {
    pub(crate) calls: Arc<Mutex<Vec<(String, String)>>>,
    pub(crate) fail: Arc<Mutex<HashSet<String>>>,
}

impl Seen {
    pub(crate) fn keys(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|(key, _)| key.clone())
            .collect()
    }

    pub(crate) fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().expect("lock").clone()
    }

    pub(crate) fn clear(&self) {
        self.calls.lock().expect("lock").clear();
    }
}

/// A route with `layer` around a handler that records each item's key and type, and answers
/// 500 for keys in `seen.fail`.
pub(crate) fn app<D: DedupStore>(layer: MetaWebhookLayer<D>, seen: &Seen) -> Router {
    let seen = seen.clone();
    let handler = move |item: VerifiedEvent, event: VobizEvent| {
        let seen = seen.clone();
        async move {
            assert_eq!(event.event_type(), *item.event_type(), "typed as named");
            let key = item.event_id().to_owned();
            seen.calls
                .lock()
                .expect("lock")
                .push((key.clone(), item.event_type().to_string()));
            if seen.fail.lock().expect("lock").contains(&key) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
    };
    Router::new().route("/webhooks/meta", post(handler).layer(layer))
}

pub(crate) async fn send(app: &Router, post: &MetaPost) -> Response<Body> {
    app.clone()
        .oneshot(post.request(SECRET))
        .await
        .expect("infallible")
}

pub(crate) async fn status(app: &Router, post: &MetaPost) -> StatusCode {
    send(app, post).await.status()
}

// ---- Meta's payload shapes ----

pub(crate) fn message(wamid: &str, text: &str) -> Value {
    json!({"from": "918888888888", "id": wamid, "timestamp": "1711360800",
           "type": "text", "text": {"body": text}})
}

pub(crate) fn status_update(wamid: &str, status: &str) -> Value {
    json!({"id": wamid, "status": status, "timestamp": "1711360900",
           "recipient_id": "918888888888"})
}

/// One notification with one entry and one `messages` change holding `messages` and `statuses`.
pub(crate) fn notification(messages: &[Value], statuses: &[Value]) -> MetaPost {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "919876543210", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Asha"}, "wa_id": "918888888888"}],
    });
    if !messages.is_empty() {
        value["messages"] = Value::from(messages.to_vec());
    }
    if !statuses.is_empty() {
        value["statuses"] = Value::from(statuses.to_vec());
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
    ]});
    MetaPost::new(serde_json::to_vec(&body).expect("json"))
}
