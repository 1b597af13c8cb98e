//! The `vobiz` binary (feature `cli`) against a local app behind `VobizWebhookLayer`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};

const SECRET: &str = "cli-secret";

type Seen = Arc<Mutex<Vec<String>>>;

/// An app on 127.0.0.1:0 that records what its handler saw; returns its URL.
async fn serve(seen: Seen) -> String {
    async fn handle(
        axum::extract::State(seen): axum::extract::State<Seen>,
        event: VobizEvent,
    ) -> StatusCode {
        let line = match &event {
            VobizEvent::MessageInbound(msg) => match msg.text() {
                Some(text) => format!("text {text}"),
                None => format!("inbound {}", msg.kind().unwrap_or("?")),
            },
            VobizEvent::MessageStatus(st) => {
                format!("status {}", st.status().map_or("?", |s| s.as_str()))
            }
            VobizEvent::Call(call) => format!("call {}", call.event()),
            _ => "other".to_owned(),
        };
        seen.lock().expect("lock").push(line);
        StatusCode::OK
    }
    async fn slow() -> StatusCode {
        tokio::time::sleep(Duration::from_secs(5)).await;
        StatusCode::OK
    }
    let app = Router::new()
        .route(
            "/webhooks/vobiz",
            post(handle).layer(VobizWebhookLayer::new(SECRET)),
        )
        .route("/slow", post(slow))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/webhooks/vobiz")
}

/// Runs the binary (off the async runtime) with `args` and `stdin`, without the environment's
/// secret.
pub(crate) async fn vobiz(args: &[&str], stdin: &[u8]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vobiz"))
            .args(&args)
            .env_remove("VOBIZ_WEBHOOK_SECRET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vobiz");
        // The tool may exit (on a usage error) before it reads stdin: a broken pipe is fine.
        let written = child.stdin.take().expect("stdin").write_all(&stdin);
        if let Err(error) = written {
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write stdin: {error}"
            );
        }
        child.wait_with_output().expect("vobiz runs")
    })
    .await
    .expect("join")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn show(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

#[tokio::test]
async fn trigger_text_is_handled() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--text",
            "hello there",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("200 OK"), "{stdout}");
    assert!(stdout.contains("message.inbound event_id="), "{stdout}");
    assert!(!stdout.contains("x-vobiz-duplicate"), "{stdout}");
    assert_eq!(*seen.lock().expect("lock"), ["text hello there"]);
}

#[tokio::test]
async fn every_kind_is_accepted() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let kinds = [
        "image",
        "interactive",
        "order",
        "status",
        "call.connect",
        "call.terminate",
        "message.status/played",
        "call/status_change",
    ];
    for kind in kinds {
        let output = vobiz(
            &[
                "trigger",
                kind,
                "--url",
                &url,
                "--secret",
                SECRET,
                "--allow-http",
            ],
            b"",
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{kind}: {}", show(&output));
    }
    let output = vobiz(
        &[
            "trigger",
            "status",
            "--status",
            "read",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [
            "inbound image",
            "inbound interactive",
            "inbound order",
            "status delivered",
            "call connect",
            "call terminate",
            "status played",
            "call status_change",
            "status read",
        ]
    );
}

#[tokio::test]
async fn repeat_shows_the_duplicate_and_the_handler_runs_once() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let args = [
        "trigger",
        "text",
        "--text",
        "once",
        "--repeat",
        "2",
        "--url",
        &url,
        "--secret",
        SECRET,
        "--allow-http",
    ];
    let output = vobiz(&args, b"").await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.matches("200 OK").count(), 2, "{stdout}");
    assert!(
        stdout.contains("[2/2] x-vobiz-duplicate: completed"),
        "{stdout}"
    );
    assert!(!stdout.contains("[1/2] x-vobiz-duplicate"), "{stdout}");
    assert_eq!(seen.lock().expect("lock").len(), 1);

    // The same id in a later run is a duplicate too.
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--event-id",
            "fixed-id",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert!(!text(&output.stdout).contains("duplicate"));
    let output = vobiz(
        &[
            "trigger",
            "image",
            "--event-id",
            "fixed-id",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert!(
        text(&output.stdout).contains("x-vobiz-duplicate: completed"),
        "{}",
        show(&output)
    );
    assert_eq!(seen.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_prints_401_and_fails() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--url",
            &url,
            "--secret",
            "wrong",
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        text(&output.stdout).contains("401 Unauthorized"),
        "{}",
        show(&output)
    );
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
            "--event-header",
            "call.connect",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(text(&output.stdout).contains("400 Bad Request"));
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_file_is_sent_as_an_envelope_or_wrapped_as_a_payload() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let dir = std::env::temp_dir().join(format!("vobiz-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let envelope = dir.join("envelope.json");
    let envelope_body = vobiz_webhooks::testing::Fixture::CallTerminate.body();
    std::fs::write(&envelope, envelope_body).expect("write");
    let payload = dir.join("payload.json");
    std::fs::write(
        &payload,
        r#"{"messages":[{"from":"1","id":"w","type":"text","text":{"body":"from a file"}}]}"#,
    )
    .expect("write");
    let envelope = envelope.to_str().expect("utf-8 path");
    let payload = payload.to_str().expect("utf-8 path");
    let common = ["--url", &url, "--secret", SECRET, "--allow-http"];

    let output = vobiz(
        &[&["trigger", "--file", envelope][..], &common].concat(),
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(text(&output.stdout).contains(&format!(
        "call.terminate event_id=f4c1a0d2-3b6e-4a9c-8e2f-000000000021 ({} bytes)",
        envelope_body.len()
    )));
    let output = vobiz(
        &[
            &["trigger", "message.inbound", "--file", payload][..],
            &common,
        ]
        .concat(),
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    // A payload without an event type cannot be sent.
    let output = vobiz(
        &[&["trigger", "--file", payload][..], &common].concat(),
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(text(&output.stderr).contains("give its event type as KIND"));
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        *seen.lock().expect("lock"),
        ["call terminate", "text from a file"]
    );
}

#[tokio::test]
async fn sign_and_verify_round_trip() {
    let body = br#"{"event_id":"f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f","event_type":"message.inbound","account_id":"MA_XXXXXXXX","occurred_at":"2026-03-25T10:00:00Z","payload":{}}"#;
    let output = vobiz(&["sign", "--secret", "your-shared-secret"], body).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let signature = text(&output.stdout).trim().to_owned();
    // The spec's test vector.
    assert_eq!(
        signature,
        "6c82a2dbcf397903ffaea500dffa3b4875fe6388361c8ea1c590354868bc48b1"
    );

    let verify = ["verify", "--secret", "your-shared-secret", "--signature"];
    let output = vobiz(&[&verify[..], &[&signature]].concat(), body).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(text(&output.stdout).trim(), "valid");

    let mut tampered = body.to_vec();
    tampered.push(b'\n');
    let output = vobiz(&[&verify[..], &[&signature]].concat(), &tampered).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert_eq!(
        text(&output.stdout).trim(),
        "invalid: signature does not match the body"
    );
    let output = vobiz(&[&verify[..], &["sha256=abc"]].concat(), body).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stdout).trim(),
        "invalid: signature is not 64 hex digits"
    );
}

#[tokio::test]
async fn a_refused_connection_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/webhooks/vobiz");
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("cargo run --example server"), "{stderr}");
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let url = serve(Seen::default())
        .await
        .replace("/webhooks/vobiz", "/slow");
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--url",
            &url,
            "--secret",
            SECRET,
            "--allow-http",
            "--timeout",
            "1",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("no response from"),
        "{}",
        show(&output)
    );
}

#[tokio::test]
async fn http_needs_allow_http_and_the_secret_must_not_be_empty() {
    let output = vobiz(
        &[
            "trigger",
            "text",
            "--url",
            "http://127.0.0.1:9/webhooks/vobiz",
            "--secret",
            SECRET,
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not HTTPS"), "{stderr}");
    assert!(stderr.contains("--allow-http"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing was sent");

    // With the flag, loopback goes quietly; another host gets a warning.
    for (url, warned) in [
        ("http://[::1]:9/webhooks/vobiz", false),
        ("http://localhost:9/webhooks/vobiz", false),
        ("http://192.0.2.1:9/webhooks/vobiz", true),
    ] {
        let output = vobiz(
            &[
                "trigger",
                "nope",
                "--url",
                url,
                "--secret",
                SECRET,
                "--allow-http",
            ],
            b"",
        )
        .await;
        let stderr = text(&output.stderr);
        assert_eq!(stderr.contains("clear text"), warned, "{stderr}");
    }

    for args in [
        &[
            "trigger",
            "text",
            "--url",
            "https://example.invalid/",
            "--secret",
            "",
        ][..],
        &["trigger", "text", "--url", "https://example.invalid/"][..],
        &["sign", "--secret", ""][..],
    ] {
        let output = vobiz(args, b"{}").await;
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        assert!(
            text(&output.stderr).contains("VOBIZ_WEBHOOK_SECRET"),
            "{}",
            show(&output)
        );
    }

    let output = vobiz(
        &[
            "trigger",
            "nope",
            "--url",
            "https://example.invalid/",
            "--secret",
            "s",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("vobiz kinds"));
}
