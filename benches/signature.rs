//! Signature verification per body size, with one secret and with three (a rotation where the
//! signing secret is tried last), against the floor: a bare HMAC-SHA256 with a pre-keyed state.
//!
//! `cargo bench --bench signature -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use vobiz_webhooks::sign;
use vobiz_webhooks::signature::{parse_signature, Secrets, Verifier};

const SECRET: &str = "your-shared-secret";
const SIZES: [(&str, usize); 4] = [
    ("256B", 256),
    ("1KiB", 1024),
    ("4KiB", 4096),
    ("64KiB", 64 * 1024),
];

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn signature(c: &mut Criterion) {
    let one = Verifier::new([SECRET]).expect("secret");
    // The layer's live handle: what reading the swappable set costs over a fixed verifier.
    let live = Secrets::new([SECRET]).expect("secret");
    // The signing secret last: every other secret is tried (and fails) first.
    let three = Verifier::new(["old-secret-1", "old-secret-2", SECRET]).expect("secrets");
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");

    let mut group = c.benchmark_group("signature");
    for (label, len) in SIZES {
        let body = body(len);
        let header = sign(SECRET, &body);
        let tag = parse_signature(header.as_bytes()).expect("tag");
        assert!(one.verify(header.as_bytes(), &body).is_ok());
        assert!(three.verify(header.as_bytes(), &body).is_ok());
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(
            BenchmarkId::new("floor: pre-keyed hmac clone+update+verify", label),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = keyed.clone();
                    mac.update(black_box(body));
                    mac.verify_slice(black_box(&tag)).is_ok()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("Verifier::verify, 1 secret", label),
            &body,
            |b, body| b.iter(|| one.verify(black_box(header.as_bytes()), black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("Secrets::verify (live handle), 1 secret", label),
            &body,
            |b, body| b.iter(|| live.verify(black_box(header.as_bytes()), black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("Verifier::verify, 3 secrets (match last)", label),
            &body,
            |b, body| b.iter(|| three.verify(black_box(header.as_bytes()), black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("naive: keyed per request + hex compare", label),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
                    mac.update(black_box(body));
                    hex::encode(mac.finalize().into_bytes()) == black_box(header.as_str())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, signature);
criterion_main!(benches);
