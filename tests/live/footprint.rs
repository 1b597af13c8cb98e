//! The memory of 1,000 idle connected clients, measured on the inbox example's process (its
//! resident set before and after they connect), WebSocket and SSE. Ignored by default:
//!
//! ```sh
//! cargo build --release --features live --example inbox
//! VOBIZ_INBOX_BIN=target/release/examples/inbox \
//!   cargo test --release --features live --test live footprint -- --ignored --nocapture
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vobiz_webhooks::testing::{Fixture, TestEvent};

use crate::server::{ws_connect, ws_frame, SseClient, SECRET, TOKEN};

const CLIENTS: usize = 1000;

fn inbox_binary() -> PathBuf {
    if let Ok(path) = std::env::var("VOBIZ_INBOX_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join("examples").join("inbox"))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no inbox binary: cargo build --features live --example inbox"))
}

struct Inbox(Child);

impl Drop for Inbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by hand (see the module docs)"]
async fn footprint_of_1000_idle_clients() {
    let port = crate::support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(inbox_binary())
        .env("VOBIZ_WEBHOOK_SECRET", SECRET)
        .env("VOBIZ_LIVE_TOKEN", TOKEN)
        .env("VOBIZ_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the inbox example starts");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let pid = child.id();
    let inbox = Inbox(child);
    let http = reqwest::Client::new();
    let health = format!("http://{addr}/health");
    assert!(
        crate::support::eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr).is_ok()
        })
        .await
    );
    assert_eq!(
        http.get(&health).send().await.expect("health").status(),
        200
    );
    // Warm the paths once (page, one delivery, one stream) so the figures are the clients'.
    let url = format!("http://{addr}/webhooks/vobiz");
    let deliver = |event: TestEvent| {
        let http = http.clone();
        let url = url.clone();
        async move {
            crate::support::http_post(&http, &url, SECRET, &event)
                .send()
                .await
                .expect("delivery")
                .status()
        }
    };
    assert_eq!(deliver(TestEvent::fixture(Fixture::InboundText)).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let ws_url = format!("ws://{addr}/live/ws?token={TOKEN}");
    let mut sockets = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        sockets.push(ws_connect(&ws_url).await.expect("connected"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_ws = rss_kib(pid);
    // They are live: one delivery reaches all of them.
    let event = TestEvent::fixture(Fixture::StatusRead);
    assert_eq!(deliver(event.clone()).await, 200);
    for socket in &mut sockets {
        assert_eq!(ws_frame(socket).await["event_id"], event.id());
    }
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_ws = rss_kib(pid);

    let mut streams = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let response = http
            .get(format!("http://{addr}/live/events?token={TOKEN}"))
            .send()
            .await
            .expect("SSE");
        streams.push(SseClient::new(response));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_sse = rss_kib(pid);
    let event = TestEvent::fixture(Fixture::CallConnect);
    assert_eq!(deliver(event.clone()).await, 200);
    for stream in &mut streams {
        assert_eq!(stream.next_event().await.json()["event_id"], event.id());
    }
    drop(streams);
    drop(inbox);

    let per = |with: u64, base: u64| with.saturating_sub(base) * 1024 / CLIENTS as u64;
    crate::support::figure(
        "live idle clients",
        format!(
            "RSS {before} KiB; {CLIENTS} WebSocket clients {with_ws} KiB (+{} B each); \
             after they left {after_ws} KiB; {CLIENTS} SSE clients {with_sse} KiB (+{} B each)",
            per(with_ws, before),
            per(with_sse, after_ws),
        ),
    );
}
