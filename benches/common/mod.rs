//! What the benches share: signed 1.2 KiB deliveries with a fresh `event_id` each, and a way to
//! drive a future that never waits. Included with `#[path]` by benches and by
//! `tests/allocations`.

#![allow(dead_code)] // each includer uses part of it

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use vobiz_webhooks::signature::Secret;

/// The secret every bench delivery is signed with.
pub const SECRET: &str = "your-shared-secret";
/// The `message.inbound/text` fixture.
pub const TEXT: &str = include_str!("../../tests/fixtures/message.inbound/text.json");
const FIXTURE_ID: &str = "\"event_id\": \"";

/// Signed requests of the fixture body with a new UUID-shaped `event_id` each.
pub struct Requests {
    prefix: String,
    suffix: String,
    secret: Secret,
    n: u64,
}

impl Requests {
    pub fn new() -> Self {
        let start = TEXT.find(FIXTURE_ID).expect("fixture has an event_id") + FIXTURE_ID.len();
        let end = start + TEXT[start..].find('"').expect("closing quote");
        Self {
            prefix: TEXT[..start].to_owned(),
            suffix: TEXT[end..].to_owned(),
            secret: Secret::new(SECRET).expect("secret"),
            n: 0,
        }
    }

    pub fn body(&mut self) -> Bytes {
        self.n += 1;
        let n = self.n;
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (n >> 32) as u32 ^ 0x9e37_79b9,
            n as u16,
            (n >> 16) as u16 & 0xfff,
            (n >> 28) as u16 & 0xfff,
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        );
        Bytes::from(format!("{}{}{}", self.prefix, id, self.suffix))
    }

    pub fn request(&mut self) -> Request<Body> {
        let body = self.body();
        self.request_of(body)
    }

    /// The signed request of `body`.
    pub fn request_of(&self, body: Bytes) -> Request<Body> {
        let signature = self.secret.sign(&body);
        Request::post("/webhooks/vobiz")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header("x-webhook-event", "message.inbound")
            .header("x-webhook-signature", signature)
            .body(Body::from(body))
            .expect("request")
    }
}

/// The program's arguments without its name and without cargo's `--bench`-style flags: what
/// the instruction-count benches read their mode and count from.
pub fn program_args() -> impl Iterator<Item = String> {
    std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
}

/// Drives a future that never waits (the in-process store, a pass-through service) to the end.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// `json` without the whitespace between its tokens: the compact form of a pretty-printed
/// fixture (the crate's own test helper, one source).
#[path = "../../src/json/mutate.rs"]
mod mutate;
#[allow(unused_imports)] // not every includer compacts
pub(crate) use mutate::compact;
