//! The example server's Meta contract (built with `--features meta`): `GET`/`POST
//! /webhooks/meta` with `META_APP_SECRET` (the handshake with `META_VERIFY_TOKEN`, 403 without
//! it), 404 without `META_APP_SECRET`, one line per item with `"source":"meta"`; and
//! `VOBIZ_DEDUP_CONTENT=1` on `/webhooks/vobiz`. `#[ignore]`: build the binary first (see
//! `example_server.rs`).

use std::time::{Duration, Instant};

use serde_json::Value;
use vobiz_webhooks::testing::{MetaPost, TestEvent};

use super::example_server::{Server, SECRET};

const APP_SECRET: &str = "example-meta-app-secret";
const TOKEN: &str = "example-verify-token";

fn meta_url(server: &Server) -> String {
    server.url.replace("/webhooks/vobiz", "/webhooks/meta")
}

/// The JSON lines printed so far, once at least `count` are there (or after 5 s).
fn lines(server: &Server, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = server.lines.lock().expect("lock").clone();
        if lines.len() >= count || Instant::now() > deadline {
            return lines
                .iter()
                .map(|line| serde_json::from_str(line).expect("a JSON line"))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn post(client: &reqwest::Client, url: &str, post: &MetaPost) -> u16 {
    client
        .post(url)
        .headers(post.headers_for(APP_SECRET))
        .body(post.body_bytes())
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

async fn handshake(client: &reqwest::Client, url: &str, query: &str) -> (u16, String) {
    let response = client
        .get(format!("{url}?{query}"))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the example server binary built with --features meta"]
async fn meta_route_serves_the_handshake_and_one_line_per_item() {
    let server = Server::start(&[
        ("META_APP_SECRET", APP_SECRET.to_owned()),
        ("META_VERIFY_TOKEN", TOKEN.to_owned()),
    ]);
    let url = meta_url(&server);
    let client = reqwest::Client::new();
    let ok = format!("hub.mode=subscribe&hub.verify_token={TOKEN}&hub.challenge=1158201444");
    assert_eq!(
        handshake(&client, &url, &ok).await,
        (200, "1158201444".to_owned())
    );
    let wrong = "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1";
    assert_eq!(handshake(&client, &url, wrong).await.0, 403);
    let no_challenge = format!("hub.mode=subscribe&hub.verify_token={TOKEN}");
    assert_eq!(handshake(&client, &url, &no_challenge).await.0, 400);

    let batch = MetaPost::from_events([
        &TestEvent::inbound_text("hola").from("918888888888"),
        &TestEvent::status("wamid.EX", "delivered"),
    ]);
    assert_eq!(post(&client, &url, &batch).await, 200);
    let printed = lines(&server, 2);
    assert_eq!(printed.len(), 2, "{printed:?}");
    assert_eq!(printed[0]["source"], "meta");
    assert_eq!(printed[0]["event_type"], "message.inbound");
    assert_eq!(printed[0]["kind"], "message");
    assert_eq!(printed[0]["detail"]["text"], "hola");
    assert!(printed[0]["event_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("wamid.")));
    assert_eq!(printed[1]["source"], "meta");
    assert_eq!(printed[1]["event_id"], "wamid.EX:delivered");
    assert_eq!(printed[1]["event_type"], "message.status");
    assert_eq!(printed[1]["kind"], "status");
    assert_eq!(printed[1]["detail"]["status"], "delivered");

    // Meta's retry: 200, nothing printed again; a forged POST: 401.
    assert_eq!(post(&client, &url, &batch).await, 200);
    assert_eq!(
        post(&client, &url, &batch.clone().bad_signature()).await,
        401
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lines(&server, 3).len(), 2);
    // Vobiz's route is unchanged: no "source" on its lines.
    let delivery = TestEvent::inbound_text("vobiz");
    let response = crate::support::http_post(&client, &server.url, SECRET, &delivery)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let printed = lines(&server, 3);
    assert_eq!(printed[2]["event_id"], delivery.id());
    assert!(printed[2].get("source").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the example server binary built with --features meta"]
async fn without_a_verify_token_every_handshake_is_403() {
    let server = Server::start(&[("META_APP_SECRET", APP_SECRET.to_owned())]);
    let url = meta_url(&server);
    let client = reqwest::Client::new();
    let query = "hub.mode=subscribe&hub.verify_token=anything&hub.challenge=1";
    assert_eq!(handshake(&client, &url, query).await.0, 403);
    let batch = MetaPost::from_events([&TestEvent::inbound_text("x")]);
    assert_eq!(post(&client, &url, &batch).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the example server binary built with --features meta"]
async fn without_meta_app_secret_the_route_is_not_served() {
    let server = Server::start(&[("META_VERIFY_TOKEN", TOKEN.to_owned())]);
    let url = meta_url(&server);
    let client = reqwest::Client::new();
    let query = format!("hub.mode=subscribe&hub.verify_token={TOKEN}&hub.challenge=1");
    assert_eq!(handshake(&client, &url, &query).await.0, 404);
    let batch = MetaPost::from_events([&TestEvent::inbound_text("x")]);
    assert_eq!(post(&client, &url, &batch).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the example server binary built with --features meta"]
async fn vobiz_dedup_content_prints_one_update_once() {
    let client = reqwest::Client::new();
    for (content, expected) in [(true, 1), (false, 2)] {
        let env: Vec<(&str, String)> = if content {
            vec![("VOBIZ_DEDUP_CONTENT", "1".to_owned())]
        } else {
            Vec::new()
        };
        let server = Server::start(&env);
        for _ in 0..2 {
            // The same status under a fresh event_id each time.
            let delivery = TestEvent::status("wamid.TWICE", "read");
            let response = crate::support::http_post(&client, &server.url, SECRET, &delivery)
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 200);
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            lines(&server, 2).len(),
            expected,
            "VOBIZ_DEDUP_CONTENT={content}"
        );
    }
}
