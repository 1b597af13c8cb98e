//! The endpoints behind the real webhook layer, over loopback HTTP.

use std::time::Duration;

use http::HeaderValue;
use serde_json::json;
use vobiz_webhooks::live::{Access, LiveHub, Next};
use vobiz_webhooks::testing::{Fixture, TestEvent};

use crate::server::{ws_connect, ws_frame, ws_read_any, Server, SseClient, WsRead, FAIL, TOKEN};

fn hub() -> LiveHub {
    LiveHub::builder().first_id(1).build()
}

#[tokio::test]
async fn refused_without_a_token_with_a_wrong_one_or_without_a_hook() {
    let server = Server::start(hub()).await;
    for path in [
        "/live/ws",
        "/live/ws?token=nope",
        "/open/ws",
        &format!("/open/ws?token={TOKEN}"),
    ] {
        assert_eq!(
            ws_connect(&server.ws_url(path)).await.err(),
            Some(401),
            "{path}"
        );
    }
    let wrong = [("authorization", "Bearer nope")];
    let right = [("authorization", "Bearer let-me-in")];
    assert_eq!(server.sse("/live/events", &[]).await.status(), 401);
    assert_eq!(server.sse("/live/events", &wrong).await.status(), 401);
    assert_eq!(server.sse("/open/events", &right).await.status(), 401);
    assert_eq!(server.hub.subscribers(), 0);
    // The right token is served.
    assert!(
        ws_connect(&server.ws_url(&format!("/live/ws?token={TOKEN}")))
            .await
            .is_ok()
    );
    assert_eq!(server.sse("/live/events", &right).await.status(), 200);
}

#[tokio::test]
async fn websocket_streams_each_handled_event_once_in_order() {
    let server = Server::start(hub()).await;
    let mut socket = ws_connect(&server.ws_url(&format!("/live/ws?token={TOKEN}")))
        .await
        .expect("connected");

    let text = TestEvent::fixture(Fixture::InboundText);
    let read = TestEvent::fixture(Fixture::StatusRead);
    let call = TestEvent::fixture(Fixture::CallConnect);
    let refused = TestEvent::fixture(Fixture::InboundImage).header(
        http::HeaderName::from_static(FAIL),
        HeaderValue::from_static("1"),
    );
    assert_eq!(server.deliver(&text).await, 200);
    assert_eq!(
        server.deliver(&text).await,
        200,
        "a duplicate, acknowledged"
    );
    assert_eq!(server.deliver(&refused).await, 500, "the handler failed");
    assert_eq!(
        server
            .deliver(&TestEvent::raw("template.status", json!({})))
            .await,
        200
    );
    assert_eq!(server.deliver(&read).await, 200);
    assert_eq!(server.deliver(&call).await, 200);
    // The refused delivery's retry succeeds: published now, once.
    let retried = TestEvent::fixture(Fixture::InboundImage).event_id(refused.id());
    assert_eq!(server.deliver(&retried).await, 200);

    let mut got = Vec::new();
    for _ in 0..4 {
        let frame = ws_frame(&mut socket).await;
        got.push((
            frame["id"].as_u64().expect("id"),
            frame["type"].as_str().expect("type").to_owned(),
            frame["event_id"].as_str().expect("event_id").to_owned(),
        ));
    }
    let expected = [
        (1, "message.created", text.id()),
        (2, "message.updated", read.id()),
        (3, "call.incoming", call.id()),
        (4, "message.created", refused.id()),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(id, kind, event)| (*id, (*kind).to_owned(), (*event).to_owned()))
        .collect();
    assert_eq!(got, expected);
    // Nothing else was published: the next frame is the next delivery's.
    let marker = TestEvent::fixture(Fixture::CallTerminate);
    assert_eq!(server.deliver(&marker).await, 200);
    let next = ws_frame(&mut socket).await;
    assert_eq!(
        (next["id"].as_u64(), next["type"].as_str()),
        (Some(5), Some("call.status"))
    );
    assert_eq!(next["event_id"], marker.id());
}

#[tokio::test]
async fn sse_streams_the_same_frames_with_id_lines() {
    let server = Server::start(hub()).await;
    let response = server
        .sse("/live/events", &[("authorization", "Bearer let-me-in")])
        .await;
    let mut events = SseClient::new(response);
    let text = TestEvent::fixture(Fixture::InboundText);
    let read = TestEvent::fixture(Fixture::StatusRead);
    assert_eq!(server.deliver(&text).await, 200);
    assert_eq!(server.deliver(&text).await, 200);
    assert_eq!(server.deliver(&read).await, 200);
    for (id, kind, event) in [
        ("1", "message.created", &text),
        ("2", "message.updated", &read),
    ] {
        let sse = events.next_event().await;
        assert_eq!(sse.id.as_deref(), Some(id));
        let json = sse.json();
        assert_eq!(json["id"].to_string(), id);
        assert_eq!(json["type"], kind);
        assert_eq!(json["event_id"], event.id());
    }
}

#[tokio::test]
async fn sse_resumes_after_a_disconnect_with_last_event_id() {
    let server = Server::start(hub()).await;
    let auth = ("authorization", "Bearer let-me-in");
    let first = TestEvent::fixture(Fixture::InboundText);
    let mut events = SseClient::new(server.sse("/live/events", &[auth]).await);
    assert_eq!(server.deliver(&first).await, 200);
    let seen = events.next_event().await;
    let last_id = seen.id.expect("an id");
    drop(events);

    let missed: Vec<_> = [Fixture::StatusDelivered, Fixture::StatusRead]
        .into_iter()
        .map(TestEvent::fixture)
        .collect();
    for event in &missed {
        assert_eq!(server.deliver(event).await, 200);
    }
    let mut resumed = SseClient::new(
        server
            .sse("/live/events", &[auth, ("last-event-id", &last_id)])
            .await,
    );
    for event in &missed {
        assert_eq!(resumed.next_event().await.json()["event_id"], event.id());
    }
    // Then live, with nothing repeated.
    let live = TestEvent::fixture(Fixture::CallConnect);
    assert_eq!(server.deliver(&live).await, 200);
    assert_eq!(resumed.next_event().await.json()["event_id"], live.id());

    // `?since=` works for SSE too.
    let mut since = SseClient::new(
        server
            .sse(&format!("/live/events?since={last_id}"), &[auth])
            .await,
    );
    assert_eq!(since.next_event().await.json()["event_id"], missed[0].id());
}

#[tokio::test]
async fn websocket_resumes_after_a_disconnect_with_since() {
    let server = Server::start(hub()).await;
    let url = server.ws_url(&format!("/live/ws?token={TOKEN}"));
    let mut socket = ws_connect(&url).await.expect("connected");
    assert_eq!(
        server
            .deliver(&TestEvent::fixture(Fixture::InboundText))
            .await,
        200
    );
    let last = ws_frame(&mut socket).await["id"].as_u64().expect("id");
    drop(socket);

    let missed = TestEvent::fixture(Fixture::StatusRead);
    assert_eq!(server.deliver(&missed).await, 200);
    let mut resumed = ws_connect(&format!("{url}&since={last}"))
        .await
        .expect("connected");
    let frame = ws_frame(&mut resumed).await;
    assert_eq!(
        (frame["id"].as_u64(), &frame["event_id"]),
        (Some(last + 1), &json!(missed.id()))
    );

    // Resuming from an id this hub never published (another process's): resync, then live.
    let mut stranger = ws_connect(&format!("{url}&since=999999"))
        .await
        .expect("connected");
    assert_eq!(ws_frame(&mut stranger).await, json!({"type": "resync"}));
    let live = TestEvent::fixture(Fixture::CallTerminate);
    assert_eq!(server.deliver(&live).await, 200);
    assert_eq!(ws_frame(&mut stranger).await["event_id"], live.id());
}

/// The server's tasks share this test's single thread, so publishing in a loop fills the
/// client's queue before its connection task can send a single frame.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_websocket_client_gets_resync_and_is_disconnected() {
    let hub = LiveHub::builder().first_id(1).client_queue(4).build();
    let server = Server::start(hub.clone()).await;
    let mut slow = ws_connect(&server.ws_url(&format!("/live/ws?token={TOKEN}")))
        .await
        .expect("connected");
    let mut steady = hub.subscribe(Access::all(), None);
    let event = crate::hub::verified(&TestEvent::fixture(Fixture::InboundText));
    for _ in 0..20 {
        hub.publish(&event);
        while steady.try_recv().is_some() {}
    }
    match ws_read_any(&mut slow).await {
        WsRead::Json(json) => assert_eq!(json, json!({"type": "resync"})),
        other => panic!("expected resync, got {other:?}"),
    }
    assert!(matches!(ws_read_any(&mut slow).await, WsRead::Closed));
    assert_eq!(hub.subscribers(), 1, "only the steady client is left");
    // The steady one is still subscribed and served.
    hub.publish(&event);
    assert!(matches!(steady.try_recv(), Some(Next::Frame(_))));
}

#[tokio::test]
async fn a_slow_sse_client_gets_resync_and_the_stream_ends() {
    let hub = LiveHub::builder().first_id(1).client_queue(2).build();
    let server = Server::start(hub.clone()).await;
    let mut events = SseClient::new(
        server
            .sse("/live/events", &[("authorization", "Bearer let-me-in")])
            .await,
    );
    let event = crate::hub::verified(&TestEvent::fixture(Fixture::InboundText));
    for _ in 0..10 {
        hub.publish(&event);
    }
    let first = events.next_event().await;
    assert_eq!(
        first.id, None,
        "resync carries no id, so Last-Event-ID stays"
    );
    assert_eq!(first.json(), json!({"type": "resync"}));
    assert!(events.next_block().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn heartbeats_on_idle_connections() {
    let server = Server::with_heartbeat(hub(), Duration::from_millis(100)).await;
    let mut events = SseClient::new(
        server
            .sse("/live/events", &[("authorization", "Bearer let-me-in")])
            .await,
    );
    let block = events.next_block().await.expect("a heartbeat");
    assert_eq!(block.comment.as_deref(), Some("ping"));
    assert!(block.data.is_none());

    let mut socket = ws_connect(&server.ws_url(&format!("/live/ws?token={TOKEN}")))
        .await
        .expect("connected");
    assert!(matches!(ws_read_any(&mut socket).await, WsRead::Ping));
    // The client answers pings (tungstenite does as it reads), so it stays connected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(ws_read_any(&mut socket).await, WsRead::Ping));
}

#[cfg(feature = "queue")]
#[tokio::test]
async fn queue_workers_publish_once_when_an_attempt_succeeds() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::handler::Handler;
    use axum::routing::post_service;
    use tower::Layer;
    use vobiz_webhooks::live::LiveLayer;
    use vobiz_webhooks::queue::{Backoff, MemoryQueue};
    use vobiz_webhooks::VobizWebhookLayer;

    let hub = hub();
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    // Fails every event's first attempt.
    let handler = move || {
        let counter = Arc::clone(&counter);
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                http::StatusCode::OK
            }
        }
    };
    let queue = MemoryQueue::builder()
        .workers(1)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .start(LiveLayer::new(hub.clone()).layer(handler.with_state(())));
    let app: axum::Router = axum::Router::new().route(
        "/webhooks/vobiz",
        post_service(queue.service()).layer(VobizWebhookLayer::new(crate::server::SECRET)),
    );
    let mut client = hub.subscribe(Access::all(), None);
    let event = TestEvent::fixture(Fixture::InboundText);
    let deliver = || tower::ServiceExt::oneshot(app.clone(), event.request(crate::server::SECRET));
    assert_eq!(deliver().await.expect("infallible").status(), 200);
    let next = tokio::time::timeout(crate::server::WAIT, client.recv()).await;
    let Ok(Some(Next::Frame(frame))) = next else {
        panic!("one frame: {next:?}")
    };
    assert_eq!(frame.event_id(), event.id());
    assert!(
        crate::support::eventually(crate::server::WAIT, || queue.metrics().succeeded == 1).await
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "one failed attempt, one success"
    );
    // A redelivery after success is a duplicate: not queued, not published.
    assert_eq!(deliver().await.expect("infallible").status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.try_recv().is_none(), "published once");
}
