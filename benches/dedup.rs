//! What one delivery costs the dedup store: a claim of a new id plus its completion.
//!
//! ```text
//! cargo bench --bench dedup --all-features              # every backend
//! cargo bench --bench dedup --all-features -- memory    # one backend
//! ```
//!
//! In-process stores are measured holding `held` ids: `empty` starts from an empty store (of
//! capacity 1 M) that fills as the benchmark runs; `100k` and `1M` are stores of that capacity
//! prefilled with completed ids, so every new id is measured in the steady state of a full
//! store, which must make room for it. Redis is measured on loopback (`VOBIZ_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`), keys under a prefix of their own that expire in a minute.
//!
//! Bytes per id are measured by `tests/dedup/footprint.rs` (resident memory before and after
//! a million ids), not here.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vobiz_webhooks::{Claim, DedupStore, EventKey, MemoryStore};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(86_400);

/// Runs an in-process store's future, which never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-process store waited"),
    }
}

/// Distinct, UUID-like (uniformly spread) keys.
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> EventKey {
        self.0 += 1;
        let high = splitmix(self.0);
        let low = splitmix(self.0 ^ 0x6a09_e667_f3bc_c909);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_le_bytes());
        bytes[8..].copy_from_slice(&low.to_le_bytes());
        EventKey::from_bytes(bytes)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

async fn claim_and_complete(store: &impl DedupStore, key: &EventKey) {
    match store.claim(key, LEASE).await {
        Ok(Claim::Fresh(token)) => {
            black_box(store.complete(key, &token, TTL).await.ok());
        }
        other => panic!("a new id was not fresh: {other:?}"),
    }
}

/// (label, capacity, ids held before measuring)
const LEVELS: [(&str, usize, usize); 3] = [
    ("empty", 1_000_000, 0),
    ("100k", 100_000, 100_000),
    ("1M", 1_000_000, 1_000_000),
];

fn in_process<S: DedupStore>(c: &mut Criterion, name: &str, make: impl Fn(usize) -> S) {
    let mut group = c.benchmark_group(format!("claim+complete/{name}"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (label, capacity, held) in LEVELS {
        let store = make(capacity);
        let mut keys = Keys(0);
        for _ in 0..held {
            ready(claim_and_complete(&store, &keys.next()));
        }
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| ready(claim_and_complete(&store, &keys.next())));
        });
    }
    group.finish();
}

fn memory(c: &mut Criterion) {
    in_process(c, "memory", MemoryStore::with_capacity);
}

#[cfg(feature = "moka")]
fn moka(c: &mut Criterion) {
    in_process(c, "moka", |capacity| {
        vobiz_webhooks::MokaStore::with_capacity(capacity as u64)
    });
}

#[cfg(not(feature = "moka"))]
fn moka(_: &mut Criterion) {}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("no tokio runtime: {error}"),
    };
    let url = std::env::var("VOBIZ_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let store = match runtime.block_on(vobiz_webhooks::RedisStore::new(&url)) {
        Ok(store) => store.prefix(format!("vobiz-bench:{}:", std::process::id())),
        Err(error) => {
            eprintln!("!!!!!!!! skipping the Redis benchmark: {url}: {error}");
            return;
        }
    };
    let mut group = c.benchmark_group("claim+complete/redis");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut keys = Keys(0);
    group.bench_function(BenchmarkId::from_parameter("loopback"), |b| {
        b.iter(|| {
            let key = keys.next();
            runtime.block_on(async {
                match store.claim(&key, LEASE).await {
                    // Short TTL: the benchmark's keys leave the shared Redis within a minute.
                    Ok(Claim::Fresh(token)) => {
                        black_box(store.complete(&key, &token, LEASE).await.ok());
                    }
                    other => panic!("a new id was not fresh: {other:?}"),
                }
            })
        });
    });
    group.finish();
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {}

criterion_group!(benches, memory, moka, redis);
criterion_main!(benches);
