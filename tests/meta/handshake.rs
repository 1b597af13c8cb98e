//! The verification handshake, through a router, as Meta sends it.

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use http::Request;
use tower::ServiceExt;
use vobiz_webhooks::meta::{HandshakeRejection, MetaHandshake, MetaWebhookLayer};
use vobiz_webhooks::testing::MetaPost;
use vobiz_webhooks::VobizEvent;

use super::SECRET;

fn app() -> Router {
    Router::new().route(
        "/webhooks/meta",
        post(|_: VobizEvent| async {})
            .layer(MetaWebhookLayer::new(SECRET))
            .get_service(MetaHandshake::new("verify-me")),
    )
}

async fn get(query: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::get(format!("/webhooks/meta?{query}"))
        .body(Body::empty())
        .expect("request");
    let response = app().oneshot(request).await.expect("infallible");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    (status, kind, crate::support::body_text(response).await)
}

#[tokio::test]
async fn the_right_token_gets_the_challenge_back_exactly() {
    let (status, kind, body) =
        get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(body, "1158201444");
    let (status, _, body) =
        get("hub.verify_token=verify-me&hub.challenge=a%2Bb%2Fc+d&hub.mode=subscribe").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "a+b/c d"));
}

#[tokio::test]
async fn a_wrong_token_or_mode_is_403_and_no_challenge_400() {
    for (query, status, rejection) in [
        (
            "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            StatusCode::FORBIDDEN,
            HandshakeRejection::WrongToken,
        ),
        (
            "hub.mode=subscribe&hub.verify_token=verify-m&hub.challenge=1",
            StatusCode::FORBIDDEN,
            HandshakeRejection::WrongToken,
        ),
        (
            "hub.mode=subscribe&hub.challenge=1",
            StatusCode::FORBIDDEN,
            HandshakeRejection::WrongToken,
        ),
        (
            "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
            StatusCode::FORBIDDEN,
            HandshakeRejection::WrongMode,
        ),
        (
            "hub.verify_token=verify-me&hub.challenge=1",
            StatusCode::FORBIDDEN,
            HandshakeRejection::WrongMode,
        ),
        ("", StatusCode::FORBIDDEN, HandshakeRejection::WrongMode),
        (
            "hub.mode=subscribe&hub.verify_token=verify-me",
            StatusCode::BAD_REQUEST,
            HandshakeRejection::MissingChallenge,
        ),
    ] {
        let (got, _, body) = get(query).await;
        assert_eq!(got, status, "{query}");
        assert_eq!(body, rejection.to_string(), "{query}");
        assert!(!body.contains("verify-me"));
    }
}

#[tokio::test]
async fn the_post_on_the_same_route_still_needs_its_signature() {
    let post = MetaPost::new(r#"{"object":"whatsapp_business_account","entry":[]}"#);
    let response = app()
        .oneshot(post.request(SECRET))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let response = app()
        .oneshot(post.without_signature().request(SECRET))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn an_empty_verify_token_is_refused() {
    assert!(MetaHandshake::try_new("").is_err());
}
