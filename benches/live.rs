//! The live stream's cost on the webhook path: `LiveHub::publish` with no client, with 100
//! clients whose queues take every frame, with 100 clients of which 10 see the frame, and with
//! 100 clients parked on `recv` in tasks (a fan-out task wakes them); and, off the webhook path,
//! rendering a frame's JSON once.
//!
//! `cargo bench --features live --bench live -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use vobiz_webhooks::live::{Access, LiveHub, Next, Subscription};
use vobiz_webhooks::testing::{Fixture, TestEvent};
use vobiz_webhooks::VerifiedEvent;

/// Publishes between two drains of the clients' queues (below the default queue of 256).
const CHUNK: u64 = 128;

fn event(account: &str) -> VerifiedEvent {
    let body = TestEvent::fixture(Fixture::InboundText)
        .account_id(Some(account.to_owned()))
        .body_bytes();
    let event = VerifiedEvent::from_trusted_body(body).expect("envelope");
    // The handler parsed it already: publishing after it finds the typed event cached.
    let _ = event.event();
    event
}

fn drain(clients: &mut [Subscription]) {
    for client in clients {
        while let Some(next) = client.try_recv() {
            if matches!(next, Next::Resync) {
                panic!("a bench client overflowed");
            }
        }
    }
}

/// `iters` publishes, timed in chunks; the clients' queues drained between chunks, untimed.
fn publish_timed(
    hub: &LiveHub,
    event: &VerifiedEvent,
    clients: &mut [Subscription],
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..chunk {
            black_box(hub.publish(black_box(event)));
        }
        total += start.elapsed();
        left -= chunk;
        drain(clients);
    }
    total
}

fn live(c: &mut Criterion) {
    let mut group = c.benchmark_group("live");
    let event = event("acc_0");

    // The replay buffer is full (1024) after warm-up, so each publish also evicts one frame.
    let hub = LiveHub::new();
    group.bench_function("publish, no client", |b| {
        b.iter_custom(|iters| publish_timed(&hub, &event, &mut [], iters))
    });

    let hub = LiveHub::new();
    let mut clients: Vec<_> = (0..100)
        .map(|_| hub.subscribe(Access::all(), None))
        .collect();
    group.bench_function("publish, 100 clients see it", |b| {
        b.iter_custom(|iters| publish_timed(&hub, &event, &mut clients, iters))
    });
    drop(clients);

    // 100 clients of 10 accounts: the frame goes to 10 of them.
    let hub = LiveHub::new();
    let mut clients: Vec<_> = (0..100)
        .map(|n| hub.subscribe(Access::accounts([format!("acc_{}", n % 10)]), None))
        .collect();
    group.bench_function("publish, 100 clients, 10 see it (account filter)", |b| {
        b.iter_custom(|iters| publish_timed(&hub, &event, &mut clients, iters))
    });
    drop(clients);

    // What a server does: every client is a task parked on `recv`. Each publish is timed alone,
    // then (untimed) every task takes the frame and parks again, so each timed publish finds 100
    // parked clients to wake (the fan-out task wakes them, not the publisher).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let hub = LiveHub::new();
    let received = Arc::new(AtomicU64::new(0));
    let parked: Vec<_> = (0..100)
        .map(|_| {
            let hub = hub.clone();
            let received = Arc::clone(&received);
            runtime.spawn(async move {
                let mut client = hub.subscribe(Access::all(), None);
                while let Some(Next::Frame(frame)) = client.recv().await {
                    black_box(frame);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while hub.subscribers() < 100 {
        std::thread::yield_now();
    }
    group.bench_function("publish, 100 clients parked in tasks", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = received.load(Ordering::Relaxed) + 100;
                let start = Instant::now();
                black_box(hub.publish(black_box(&event)));
                total += start.elapsed();
                while received.load(Ordering::Relaxed) < target {
                    std::hint::spin_loop();
                }
            }
            total
        })
    });
    hub.close();
    for task in parked {
        let _ = runtime.block_on(task);
    }
    drop(runtime);

    // Off the webhook path: the JSON of a new frame, rendered once and shared by every client.
    let hub = LiveHub::new();
    let mut client = hub.subscribe(Access::all(), None);
    group.bench_function(
        "render a frame's JSON (once per frame, first client)",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    hub.publish(&event);
                    let Some(Next::Frame(frame)) = client.try_recv() else {
                        panic!("a frame")
                    };
                    let start = Instant::now();
                    black_box(frame.json());
                    total += start.elapsed();
                }
                total
            })
        },
    );
    group.finish();
}

criterion_group!(benches, live);
criterion_main!(benches);
