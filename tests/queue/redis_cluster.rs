//! `RedisQueue` on a real Redis Cluster of our own (`support::cluster`: three masters, three
//! replicas on loopback): three partitions on three masters, each event handled once, a
//! worker process SIGKILLed mid-run, and an unpartitioned queue's entries still read after it
//! is raised to three partitions. Skipped loudly without `redis-server`, failed under
//! `CI=true`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::StatusCode;
use vobiz_webhooks::RedisTopology;

use super::redis::{connect, kill_scenario, wait_for};
use crate::support::{figure, unique_prefix, RedisCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_partitions_spread_over_three_masters_and_run_each_event_once() {
    const EVENTS: usize = 300;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let setup = connect(cluster.url(), unique_prefix("cluster-queue"), 3).await;
    assert_eq!(setup.queue.topology(), RedisTopology::Cluster);
    let streams: Vec<String> = setup.queue.stream_keys().map(str::to_owned).collect();
    assert_eq!(streams.len(), 3);
    let masters: HashSet<u16> = streams
        .iter()
        .filter_map(|stream| cluster.master_of(stream))
        .collect();
    let started = Instant::now();
    for n in 0..EVENTS {
        let response = setup.send(&format!("evt-{n}")).await;
        assert_eq!(response.status(), StatusCode::OK, "evt-{n}");
    }
    let enqueued = started.elapsed();
    // Every partition got entries.
    let workers = setup.workers("cluster", Duration::ZERO, 3).await;
    assert!(
        wait_for(Duration::from_secs(60), async || setup
            .queue
            .is_empty()
            .await
            .unwrap_or(false)
            && setup.handled().await.len() == EVENTS)
        .await,
        "not drained: {:?}",
        workers.metrics()
    );
    // A straggler would have run by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = setup.counter("runs").await;
    figure(
        "cluster-queue",
        format!(
            "{EVENTS} events over 3 partitions ({streams:?}) on masters {masters:?}: enqueued in \
             {enqueued:?}, handled {} unique, {runs} runs, in {:?}",
            setup.handled().await.len(),
            started.elapsed()
        ),
    );
    assert_eq!(masters.len(), 3, "partitions on {masters:?}: not spread");
    assert_eq!(runs, EVENTS as u64, "an event ran twice");
    workers.shutdown(Duration::from_secs(3)).await;
}

/// Entries queued by an unpartitioned queue are read by workers of the same queue raised to
/// three partitions (partition 0 is the old layout), and a delivery of a pending event
/// through the new queue adds no second entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpartitioned_queue_s_entries_are_read_after_raising_to_three_partitions() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let prefix = unique_prefix("cluster-upgrade");
    let old = connect(cluster.url(), prefix.clone(), 1).await;
    for n in 0..30 {
        assert_eq!(old.send(&format!("old-{n}")).await.status(), StatusCode::OK);
    }
    let new = connect(cluster.urls(), prefix, 3).await;
    assert_eq!(
        new.queue.len().await.expect("len"),
        30,
        "the old stream counts"
    );
    for n in 0..30 {
        assert_eq!(new.send(&format!("new-{n}")).await.status(), StatusCode::OK);
    }
    let workers = new.workers("upgraded", Duration::ZERO, 3).await;
    assert!(
        wait_for(Duration::from_secs(60), async || new
            .queue
            .is_empty()
            .await
            .unwrap_or(false)
            && new.handled().await.len() == 60)
        .await,
        "not drained: {:?}",
        workers.metrics()
    );
    assert_eq!(new.counter("runs").await, 60);
    workers.shutdown(Duration::from_secs(3)).await;
}

/// The SIGKILL case on three partitions of a cluster: a worker process is killed mid-run,
/// another reclaims its entries partition by partition; nothing lost, nothing run twice,
/// poisoned events dead-lettered per partition. `VOBIZ_CLUSTER_KILL_EVENTS` sets the size
/// (default 2 000; the 10 000 of RELIABILITY.md with
/// `VOBIZ_CLUSTER_KILL_EVENTS=10000 cargo test --release --features queue,redis --test queue
/// redis_cluster::a_sigkilled -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_on_three_partitions_loses_nothing() {
    let events = crate::support::env_usize("VOBIZ_CLUSTER_KILL_EVENTS", 2_000);
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let setup = connect(cluster.url(), unique_prefix("cluster-kill"), 3).await;
    let kill_after = (events as u64 * 3 / 10).max(3);
    kill_scenario(
        setup,
        "cluster-kill",
        events,
        100,
        Duration::from_millis(2),
        kill_after,
    )
    .await;
}

/// Figures for bench/README.md (not a check): the claim's latency p50/p99 on one Redis and on
/// the cluster, and queue throughput (enqueue, then 6 workers drain) with 1 and 3 partitions
/// on the cluster, in one run.
/// `cargo test --release --features queue,redis --test queue redis_cluster::figures -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn figures_one_redis_vs_cluster() {
    use vobiz_webhooks::{DedupStore, EventKey, RedisStore};
    const CLAIMS: usize = 5_000;
    const EVENTS: usize = 3_000;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let Some(single) = crate::support::RedisServer::start() else {
        return;
    };
    for (name, url) in [("one Redis", single.url()), ("cluster", cluster.url())] {
        let store = RedisStore::new(&url)
            .await
            .expect("store")
            .prefix(format!("bench:{}:", crate::support::unique_name()));
        let mut samples = Vec::with_capacity(CLAIMS);
        let started = Instant::now();
        for n in 0..CLAIMS {
            let key = EventKey::from_event_id(&format!("claim-{n}"));
            let at = Instant::now();
            store
                .claim(&key, Duration::from_secs(60))
                .await
                .expect("claim");
            samples.push(at.elapsed());
        }
        let total = started.elapsed();
        figure(
            "bench-claim",
            format!(
                "{name}: {CLAIMS} sequential claims, p50 {:?}, p99 {:?}, {:.0} claims/s",
                crate::support::percentile(&mut samples, 50),
                crate::support::percentile(&mut samples, 99),
                CLAIMS as f64 / total.as_secs_f64()
            ),
        );
    }
    for partitions in [1, 3] {
        let setup = connect(
            cluster.url(),
            unique_prefix(&format!("bench-{partitions}")),
            partitions,
        )
        .await;
        let started = Instant::now();
        let ids: Vec<String> = (0..EVENTS).map(|n| format!("evt-{n}")).collect();
        for chunk in ids.chunks(64) {
            let sends = chunk.iter().map(|id| setup.send(id));
            for response in futures_util::future::join_all(sends).await {
                assert_eq!(response.status(), StatusCode::OK);
            }
        }
        let enqueued = started.elapsed();
        let drain = Instant::now();
        let workers = setup.workers("bench", Duration::ZERO, 6).await;
        assert!(
            wait_for(Duration::from_secs(300), async || setup
                .queue
                .is_empty()
                .await
                .unwrap_or(false))
            .await
        );
        let drained = drain.elapsed();
        figure(
            "bench-queue",
            format!(
                "cluster, {partitions} partition(s): {EVENTS} events enqueued at {:.0}/s, drained by 6 workers at {:.0}/s",
                EVENTS as f64 / enqueued.as_secs_f64(),
                EVENTS as f64 / drained.as_secs_f64()
            ),
        );
        workers.shutdown(Duration::from_secs(3)).await;
    }
}
