//! Envelope-only parse vs. full typed parse of a ~1.2 KiB `message.inbound` text delivery,
//! with `serde_json::Value` of the same body as a baseline. The typed payload is timed with
//! what a handler asks of it: its text (a shortcut, read without the model) or its messages
//! (the whole model). The envelope pass is also timed
//! with serde_json alone (as before the walker, `envelope::__from_slice_with_serde_json`), for
//! the fixture as shipped (pretty-printed, 1,255 bytes) and compact (652 bytes). Two floors
//! for the typed payload: the envelope with `{}` as its payload (subtracted from the envelope,
//! what the crate's strict check of the payload costs) and serde_json merely skipping the
//! payload.
//!
//! `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vobiz_webhooks::envelope::__from_slice_with_serde_json;
use vobiz_webhooks::{Envelope, EventType, VerifiedEvent, VobizEvent};

#[path = "common/mod.rs"]
mod common;

const TEXT: &str = include_str!("../tests/fixtures/message.inbound/text.json");

/// The raw `payload` of the body, as the layer would hand it to `from_payload`.
fn payload_of(body: &Bytes) -> &[u8] {
    let start = TEXT
        .find("\"payload\"")
        .map_or(0, |i| i + "\"payload\":".len());
    let end = TEXT.rfind('}').unwrap_or(TEXT.len());
    body.get(start..end).unwrap_or_default()
}

fn parse(c: &mut Criterion) {
    let body = Bytes::from_static(TEXT.as_bytes());
    let mut group = c.benchmark_group("message.inbound text");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("envelope only (Envelope::from_slice)", |b| {
        b.iter(|| Envelope::from_slice(black_box(&body)))
    });
    group.bench_function("envelope only, serde_json alone", |b| {
        b.iter(|| __from_slice_with_serde_json(black_box(&body)))
    });
    group.bench_function("typed (VerifiedEvent::event)", |b| {
        b.iter(|| {
            let verified = VerifiedEvent::from_trusted_body(black_box(body.clone()));
            match verified {
                Ok(verified) => match verified.event() {
                    VobizEvent::MessageInbound(msg) => msg.text().map(str::len),
                    _ => None,
                },
                Err(_) => None,
            }
        })
    });
    let payload = payload_of(&body);
    assert!(
        VobizEvent::from_payload(&EventType::MessageInbound, payload)
            .as_inbound()
            .and_then(|m| m.text())
            .is_some(),
        "the bench payload is the fixture's payload"
    );
    // A typed event reads its payload when first asked: time it with what is asked. The text
    // (what the loopback servers (h) and (c) read) is a shortcut, read without the model; the
    // messages are the whole model.
    group.bench_function("typed payload, its text (from_payload + text())", |b| {
        b.iter(|| {
            let event = VobizEvent::from_payload(&EventType::MessageInbound, black_box(payload));
            event.as_inbound().and_then(|m| m.text()).map(str::len)
        })
    });
    group.bench_function(
        "typed payload, its whole model (from_payload + messages())",
        |b| {
            b.iter(|| {
                let event =
                    VobizEvent::from_payload(&EventType::MessageInbound, black_box(payload));
                event.as_inbound().map(|m| m.messages().count())
            })
        },
    );
    // What checking the payload alone costs, the least any typing of untrusted bytes spends:
    // the envelope with the payload minus the envelope with `{}` in its place (the crate's
    // strict scanner), and serde_json skipping the payload (`IgnoredAny`).
    let emptied =
        Bytes::from(TEXT.replacen(std::str::from_utf8(payload).unwrap_or_default(), "{}", 1));
    group.bench_function("envelope only, payload {} (Envelope::from_slice)", |b| {
        b.iter(|| Envelope::from_slice(black_box(&emptied)))
    });
    group.bench_function("payload checked only, serde_json IgnoredAny", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(payload)).is_ok())
    });
    group.bench_function("baseline serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)))
    });
    group.finish();

    let compact = Bytes::from(common::compact(TEXT));
    let mut group = c.benchmark_group("message.inbound text, compact");
    group.throughput(Throughput::Bytes(compact.len() as u64));
    group.bench_function("envelope only (Envelope::from_slice)", |b| {
        b.iter(|| Envelope::from_slice(black_box(&compact)))
    });
    group.bench_function("envelope only, serde_json alone", |b| {
        b.iter(|| __from_slice_with_serde_json(black_box(&compact)))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
