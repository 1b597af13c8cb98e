//! `vobiz trigger --meta` and `vobiz meta-handshake` against a local app behind
//! `MetaWebhookLayer` and `MetaHandshake`.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use vobiz_webhooks::meta::{MetaHandshake, MetaWebhookLayer};
use vobiz_webhooks::VerifiedEvent;

use crate::commands::{show, text, vobiz};

const APP_SECRET: &str = "cli-app-secret";
const TOKEN: &str = "cli-verify-token";

type Seen = Arc<Mutex<Vec<String>>>;

/// An app serving Meta's leg on 127.0.0.1:0; returns its URL.
async fn serve(seen: Seen) -> String {
    let handler = move |item: VerifiedEvent| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .expect("lock")
                .push(format!("{} {}", item.event_type(), item.event_id()));
        }
    };
    let app = Router::new().route(
        "/webhooks/meta",
        post(handler)
            .layer(MetaWebhookLayer::new(APP_SECRET))
            .get_service(MetaHandshake::new(TOKEN)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/webhooks/meta")
}

fn trigger<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["trigger", "--meta", "--url", url, "--allow-http"];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn trigger_meta_batches_items_in_one_signed_post_and_its_retry_runs_none() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let args = trigger(
        &url,
        &[
            "text",
            "--batch",
            "3",
            "--repeat",
            "2",
            "--app-secret",
            APP_SECRET,
        ],
    );
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("meta notification, 3 item(s) of message.inbound"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("200 OK").count(), 2, "{stdout}");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "three items, once each: {seen:?}");
    assert!(seen
        .iter()
        .all(|line| line.starts_with("message.inbound wamid.")));

    let statuses = Seen::default();
    let url = serve(statuses.clone()).await;
    let args = trigger(
        &url,
        &[
            "status",
            "--status",
            "read",
            "--batch",
            "2",
            "--app-secret",
            APP_SECRET,
        ],
    );
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let statuses = statuses.lock().expect("lock").clone();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|line| line.starts_with("message.status ") && line.ends_with(":read")));
}

#[tokio::test]
async fn trigger_meta_refusals_and_usage_errors() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let output = vobiz(
        &trigger(
            &url,
            &["text", "--bad-signature", "--app-secret", APP_SECRET],
        ),
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(text(&output.stdout).contains("401"), "{}", show(&output));
    let output = vobiz(
        &trigger(&url, &["text", "--app-secret", "another-app"]),
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let output = vobiz(&trigger(&url, &["text"]), b"").await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("META_APP_SECRET"),
        "{}",
        show(&output)
    );
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--batch",
            "2",
            "--url",
            &url,
            "--secret",
            "s",
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn meta_handshake_prints_what_the_endpoint_answered() {
    let url = serve(Seen::default()).await;
    let args = [
        "meta-handshake",
        "--url",
        &url,
        "--verify-token",
        TOKEN,
        "--allow-http",
    ];
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("200 OK"), "{stdout}");
    assert!(stdout.contains("content-type: text/plain"), "{stdout}");
    assert!(stdout.contains("ok: the challenge was echoed"), "{stdout}");
    assert!(
        !stdout.contains(TOKEN),
        "the token is not printed: {stdout}"
    );

    let args = [
        "meta-handshake",
        "--url",
        &url,
        "--verify-token",
        "wrong",
        "--challenge",
        "abc",
        "--allow-http",
    ];
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("403 Forbidden"), "{stdout}");
    assert!(
        stdout.contains("hub.verify_token does not match"),
        "{stdout}"
    );

    let args = [
        "meta-handshake",
        "--url",
        &url,
        "--verify-token",
        TOKEN,
        "--challenge",
        "x y/z",
        "--allow-http",
    ];
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
}
