//! The subscription client against a local fake of Vobiz's documented subscription API.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use vobiz_webhooks::client::{
    ClientErrorKind, SubscriptionClient, SubscriptionStatus, WebhookSecret,
};
use vobiz_webhooks::signature::Verifier;
use vobiz_webhooks::VobizWebhookLayer;

const AUTH_ID: &str = "MA_TESTACCOUNT";
const AUTH_TOKEN: &str = "tok-7f3c9a1b2e";
const READONLY_ID: &str = "MA_READONLY";
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.test.jwt";
const HOOK: &str = "https://app.example.com/webhooks/vobiz";

/// What the fake answers instead of the documented contract.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Normal,
    /// 500 with a JSON error body, for every request.
    Fail500,
    /// 500 for DELETE only.
    FailDeletes,
    /// 200/201 with a body that is not JSON.
    Malformed,
    /// Answers after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Fake {
    requests: AtomicUsize,
    deletes: AtomicUsize,
    mode: Mutex<Option<Mode>>,
    subscriptions: Mutex<Vec<Value>>,
    secrets: Mutex<Vec<(String, String)>>,
    last_create: Mutex<Option<(HeaderMap, Value)>>,
    next_id: AtomicUsize,
}

impl Fake {
    fn mode(&self) -> Mode {
        self.mode.lock().unwrap().unwrap_or(Mode::Normal)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = Some(mode);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn ids(&self) -> Vec<String> {
        self.subscriptions
            .lock()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn secret_of(&self, id: &str) -> Option<String> {
        self.secrets
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
    }
}

/// Counts every request, checks the credentials, applies the failure modes.
async fn gate(State(fake): State<Arc<Fake>>, request: Request, next: Next) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorized = match (header("x-auth-id"), header("x-auth-token")) {
        (Some(AUTH_ID), Some(AUTH_TOKEN)) => true,
        (Some(READONLY_ID), Some(AUTH_TOKEN)) => {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "forbidden", "message": "insufficient permission"})),
            )
                .into_response()
        }
        _ => header("authorization") == Some(&format!("Bearer {BEARER}")),
    };
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "invalid credentials"})),
        )
            .into_response();
    }
    match fake.mode() {
        Mode::Normal => {}
        Mode::Fail500 => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "internal", "message": "database unavailable"})),
            )
                .into_response()
        }
        Mode::FailDeletes if request.method() == axum::http::Method::DELETE => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "try later").into_response()
        }
        Mode::FailDeletes => {}
        Mode::Malformed => {
            let status = if request.method() == axum::http::Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            return (status, "<html>gateway</html>").into_response();
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
    }
    next.run(request).await
}

async fn create(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not json").into_response();
    };
    *fake.last_create.lock().unwrap() = Some((headers, value.clone()));
    let (Some(url), Some(secret)) = (value["url"].as_str(), value["secret"].as_str()) else {
        return (StatusCode::BAD_REQUEST, "url and secret required").into_response();
    };
    if !url.starts_with("https://") || secret.is_empty() {
        return (StatusCode::BAD_REQUEST, "bad url or secret").into_response();
    }
    let n = fake.next_id.fetch_add(1, Ordering::SeqCst);
    let id = format!("00000000-0000-4000-8000-{n:012}");
    let subscription = json!({
        "id": id,
        "url": url,
        "status": "active",
        "created_at": "2026-03-25T10:00:00Z",
        "updated_at": "2026-03-25T10:00:00Z",
        "delivery_stats": {"ok": 0},
    });
    fake.subscriptions
        .lock()
        .unwrap()
        .push(subscription.clone());
    fake.secrets.lock().unwrap().push((id, secret.to_owned()));
    (StatusCode::CREATED, Json(subscription)).into_response()
}

async fn list(State(fake): State<Arc<Fake>>) -> Response {
    let items = fake.subscriptions.lock().unwrap().clone();
    Json(json!({"items": items, "next_cursor": null})).into_response()
}

async fn remove(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    fake.deletes.fetch_add(1, Ordering::SeqCst);
    let mut subscriptions = fake.subscriptions.lock().unwrap();
    let before = subscriptions.len();
    subscriptions.retain(|s| s["id"] != id.as_str());
    if subscriptions.len() == before {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the fake on loopback; returns it and the API base URL.
async fn serve() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/api/v1/messaging/webhooks", get(list).post(create))
        .route("/api/v1/messaging/webhooks/{id}", delete(remove))
        .layer(middleware::from_fn_with_state(Arc::clone(&fake), gate))
        .with_state(Arc::clone(&fake));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, format!("http://{addr}/api/v1/messaging"))
}

fn client(base: &str) -> SubscriptionClient {
    SubscriptionClient::builder()
        .auth_id_token(AUTH_ID, AUTH_TOKEN)
        .base_url(base)
        .build()
        .unwrap()
}

#[tokio::test]
async fn create_list_delete_follow_the_contract() {
    let (fake, base) = serve().await;
    let client = client(&base);

    let created = client.create(HOOK, "s3cret-value").await.unwrap();
    assert_eq!(created.url, HOOK);
    assert_eq!(created.status, SubscriptionStatus::Active);
    assert_eq!(created.created_at.unix_timestamp(), 1_774_432_800);
    assert_eq!(fake.secret_of(&created.id).as_deref(), Some("s3cret-value"));

    let (headers, body) = fake.last_create.lock().unwrap().clone().unwrap();
    assert_eq!(body, json!({"url": HOOK, "secret": "s3cret-value"}));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-auth-id"], AUTH_ID);
    assert_eq!(headers["x-auth-token"], AUTH_TOKEN);

    let listed = client.list().await.unwrap();
    assert_eq!(listed, vec![created.clone()]);

    client.delete(&created.id).await.unwrap();
    assert!(client.list().await.unwrap().is_empty());

    let err = client.delete(&created.id).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Api);
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn bearer_token_is_accepted() {
    let (_fake, base) = serve().await;
    let client = SubscriptionClient::builder()
        .bearer_token(BEARER)
        .base_url(&base)
        .build()
        .unwrap();
    assert!(client.list().await.unwrap().is_empty());

    let wrong = SubscriptionClient::builder()
        .bearer_token("not-the-jwt")
        .base_url(&base)
        .build()
        .unwrap();
    assert_eq!(
        wrong.list().await.unwrap_err().kind(),
        ClientErrorKind::Auth
    );
}

#[tokio::test]
async fn wrong_credentials_are_named_in_the_error() {
    let (fake, base) = serve().await;
    let client = SubscriptionClient::builder()
        .auth_id_token(AUTH_ID, "wrong-token")
        .base_url(&base)
        .build()
        .unwrap();
    let err = client.create(HOOK, "secret").await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Auth);
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(err.body().unwrap().contains("invalid credentials"));
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("credentials"),
        "{text}"
    );
    assert!(!err.is_retryable());
    assert!(fake.ids().is_empty());
}

#[tokio::test]
async fn forbidden_names_the_permission() {
    let (_fake, base) = serve().await;
    let client = SubscriptionClient::builder()
        .auth_id_token(READONLY_ID, AUTH_TOKEN)
        .base_url(&base)
        .build()
        .unwrap();
    let err = client.list().await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Auth);
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert!(err.to_string().contains("credentials"), "{err}");
}

#[tokio::test]
async fn server_error_keeps_status_and_body() {
    let (fake, base) = serve().await;
    fake.set_mode(Mode::Fail500);
    let err = client(&base).list().await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Api);
    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(err.body().unwrap().contains("database unavailable"));
    assert!(err.to_string().contains("500"), "{err}");
    assert!(err.to_string().contains("database unavailable"), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn malformed_body_is_its_own_kind() {
    let (fake, base) = serve().await;
    fake.set_mode(Mode::Malformed);
    let client = client(&base);
    for err in [
        client.list().await.unwrap_err(),
        client.create(HOOK, "secret").await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ClientErrorKind::MalformedResponse);
        assert!(err.status().unwrap().is_success());
        assert_eq!(err.body(), Some("<html>gateway</html>"));
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[tokio::test]
async fn slow_answer_times_out() {
    let (fake, base) = serve().await;
    fake.set_mode(Mode::Slow(Duration::from_secs(3)));
    let client = SubscriptionClient::builder()
        .auth_id_token(AUTH_ID, AUTH_TOKEN)
        .base_url(&base)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.list().await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Timeout, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn refused_connection_is_connect_kind() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client(&format!("http://{addr}/api/v1/messaging"));
    let err = client.list().await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Connect, "{err:?}");
    assert_eq!(err.status(), None);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unknown_fields_and_status_are_kept() {
    let (fake, base) = serve().await;
    fake.subscriptions.lock().unwrap().push(json!({
        "id": "b5e0c2a1-0000-4000-8000-000000000001",
        "url": HOOK,
        "status": "suspended",
        "created_at": "2026-03-25T10:00:00Z",
        "updated_at": "2026-03-26T11:30:00+05:30",
        "events": ["message.inbound"],
        "nested": {"anything": [1, 2, 3]},
    }));
    let listed = client(&base).list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].status,
        SubscriptionStatus::Other("suspended".to_owned())
    );
    assert_eq!(listed[0].status.to_string(), "suspended");
    assert_eq!(listed[0].updated_at.offset().whole_minutes(), 330);
}

#[tokio::test]
async fn non_https_url_is_refused_before_any_request() {
    let (fake, base) = serve().await;
    let client = client(&base);
    for url in [
        "http://app.example.com/webhooks/vobiz",
        "app.example.com/webhooks/vobiz",
        "ws://app.example.com/",
        "",
    ] {
        let err = client.create(url, "secret").await.unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::InvalidWebhookUrl, "{url}");
        let err = client.rotate_begin(url).await.unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::InvalidWebhookUrl, "{url}");
    }
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn empty_secret_is_refused_before_any_request() {
    let (fake, base) = serve().await;
    let err = client(&base).create(HOOK, "").await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::EmptySecret);
    assert_eq!(
        WebhookSecret::new("").unwrap_err().kind(),
        ClientErrorKind::EmptySecret
    );
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn generated_secrets_are_strong_and_usable() {
    let a = WebhookSecret::generate().unwrap();
    let b = WebhookSecret::generate().unwrap();
    assert_ne!(a.expose(), b.expose());
    assert_eq!(a.expose().len(), 64);
    assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    VobizWebhookLayer::try_new(&a).unwrap();
}

#[tokio::test]
async fn rotation_deletes_old_only_after_finish() {
    let (fake, base) = serve().await;
    let client = client(&base);
    let other = client
        .create("https://other.example.com/hook", "other-secret")
        .await
        .unwrap();
    let old = client.create(HOOK, "old-secret").await.unwrap();

    let rotation = client.rotate_begin(HOOK).await.unwrap();
    let new_id = rotation.new_subscription().id.clone();
    let new_secret = rotation.new_secret().clone();
    assert_eq!(
        rotation
            .old_subscriptions()
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        [old.id.as_str()]
    );
    assert_eq!(
        fake.secret_of(&new_id).as_deref(),
        Some(new_secret.expose())
    );
    // Both live: nothing deleted yet.
    assert_eq!(
        fake.ids(),
        [other.id.clone(), old.id.clone(), new_id.clone()]
    );
    assert_eq!(fake.deletes.load(Ordering::SeqCst), 0);

    // Meanwhile the server accepts both secrets.
    let _layer = VobizWebhookLayer::new("old-secret").secret(rotation.new_secret());
    let body = br#"{"event_id":"e1","event_type":"message.inbound","payload":{}}"#;
    let verifier = Verifier::new(["old-secret", new_secret.expose()]).unwrap();
    for secret in ["old-secret", new_secret.expose()] {
        let header = vobiz_webhooks::sign(secret, body);
        verifier.verify(header.as_bytes(), body).unwrap();
    }

    let new = rotation.finish(&client).await.unwrap();
    assert_eq!(new.id, new_id);
    assert_eq!(fake.ids(), [other.id, new_id]);
}

#[tokio::test]
async fn rotation_with_own_secret_and_abort() {
    let (fake, base) = serve().await;
    let client = client(&base);
    let old = client.create(HOOK, "old-secret").await.unwrap();
    let secret = WebhookSecret::new("pre-deployed-secret").unwrap();

    let rotation = client.rotate_begin_with_secret(HOOK, secret).await.unwrap();
    let new_id = rotation.new_subscription().id.clone();
    assert_eq!(
        fake.secret_of(&new_id).as_deref(),
        Some("pre-deployed-secret")
    );

    rotation.abort(&client).await.unwrap();
    assert_eq!(fake.ids(), [old.id]);
}

#[tokio::test]
async fn rotation_refuses_to_finish_without_the_new_subscription() {
    let (fake, base) = serve().await;
    let client = client(&base);
    let old = client.create(HOOK, "old-secret").await.unwrap();
    let rotation = client.rotate_begin(HOOK).await.unwrap();
    let new_id = rotation.new_subscription().id.clone();

    // Someone deleted the new subscription meanwhile.
    client.delete(&new_id).await.unwrap();
    let err = rotation.finish(&client).await.unwrap_err();
    assert_eq!(err.error().kind(), ClientErrorKind::RotationRefused);
    assert_eq!(err.rotation().old_subscriptions().len(), 1);
    assert_eq!(fake.ids(), std::slice::from_ref(&old.id));

    // An inactive new subscription is refused too.
    let rotation = client.rotate_begin(HOOK).await.unwrap();
    let new_id = rotation.new_subscription().id.clone();
    for s in fake.subscriptions.lock().unwrap().iter_mut() {
        if s["id"] == new_id.as_str() {
            s["status"] = json!("inactive");
        }
    }
    let err = rotation.finish(&client).await.unwrap_err();
    assert_eq!(err.error().kind(), ClientErrorKind::RotationRefused);
    assert_eq!(fake.ids(), [old.id, new_id]);
}

#[tokio::test]
async fn failed_finish_can_be_retried() {
    let (fake, base) = serve().await;
    let client = client(&base);
    let old = client.create(HOOK, "old-secret").await.unwrap();
    let rotation = client.rotate_begin(HOOK).await.unwrap();
    let new_id = rotation.new_subscription().id.clone();

    fake.set_mode(Mode::FailDeletes);
    let err = rotation.finish(&client).await.unwrap_err();
    assert_eq!(
        err.error().status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert!(err.error().is_retryable());
    assert_eq!(fake.ids(), [old.id.clone(), new_id.clone()]);

    fake.set_mode(Mode::Normal);
    let rotation = err.into_rotation();
    assert_eq!(rotation.old_subscriptions()[0].id, old.id);
    rotation.finish(&client).await.unwrap();
    assert_eq!(fake.ids(), [new_id]);
}

/// Collects everything the crate logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_and_secrets_never_show_in_debug_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global, not scoped: a callsite first hit by a concurrent test without a subscriber would
    // stay disabled for a thread-local one. Other tests' logs land here too, which is fine.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (fake, base) = serve().await;
    let secret = WebhookSecret::new("super-secret-webhook-key").unwrap();
    let builder = SubscriptionClient::builder()
        .auth_id_token(AUTH_ID, AUTH_TOKEN)
        .base_url(&base);
    let mut shown = format!("{builder:?}");
    let client = builder.build().unwrap();
    shown += &format!("{client:?}{secret:?}");

    client.create(HOOK, &secret).await.unwrap();
    let rotation = client.rotate_begin(HOOK).await.unwrap();
    shown += &format!("{rotation:?}");
    let rotated_secret = rotation.new_secret().expose().to_owned();

    // Errors: wrong token, a server that echoes the request, a failed rotation step.
    let wrong = SubscriptionClient::builder()
        .auth_id_token(AUTH_ID, "wrong-token-value")
        .base_url(&base)
        .build()
        .unwrap();
    let err = wrong.list().await.unwrap_err();
    shown += &format!("{err:?}{err}");
    fake.set_mode(Mode::FailDeletes);
    let err = rotation.finish(&client).await.unwrap_err();
    shown += &format!("{err:?}{err}");
    fake.set_mode(Mode::Fail500);
    let err = client.create(HOOK, &secret).await.unwrap_err();
    shown += &format!("{err:?}{err}");

    let bearer = SubscriptionClient::builder()
        .bearer_token(BEARER)
        .base_url(&base)
        .build()
        .unwrap();
    shown += &format!("{bearer:?}");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("vobiz subscription API answered"),
        "the capture works: {logs}"
    );
    for (name, text) in [("Debug/Display", &shown), ("logs", &logs)] {
        for leaked in [
            AUTH_ID,
            AUTH_TOKEN,
            "wrong-token-value",
            BEARER,
            "super-secret-webhook-key",
            rotated_secret.as_str(),
        ] {
            assert!(!text.contains(leaked), "{name} shows {leaked}: {text}");
        }
    }
    assert!(shown.contains("<redacted>"));
}

#[tokio::test]
async fn echoed_secret_is_redacted_from_error_bodies() {
    // A server that answers 400 echoing the request body.
    let app = Router::new().route(
        "/api/v1/messaging/webhooks",
        axum::routing::post(|body: Bytes| async move { (StatusCode::BAD_REQUEST, body) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = client(&format!("http://{addr}/api/v1/messaging"));

    let err = client.create(HOOK, "echoed-secret").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    let body = err.body().unwrap();
    assert!(body.contains(HOOK) && body.contains("<redacted>"), "{body}");
    assert!(!format!("{err:?}{err}").contains("echoed-secret"));
}
