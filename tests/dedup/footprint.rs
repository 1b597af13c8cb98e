//! Bytes per remembered id of the in-process stores, measured as the growth of this process'
//! resident memory (`/proc/self/statm`) while a store takes one million completed ids.
//!
//! Ignored by default (it wants a release build and a quiet process); run it with
//!
//! ```text
//! cargo test --release --all-features --test dedup footprint -- --ignored --test-threads=1 --nocapture
//! ```
//!
//! Each test prints bytes per id and the mean cost of one claim + complete while filling, in
//! wall-clock time and in this thread's CPU time (`/proc/thread-self/stat`, 10 ms ticks; the
//! CPU figure is the one to trust on a machine busy with other work, since it does not count
//! time the thread spent preempted). The MemoryStore test then also measures the steady state
//! of a full store: another million new ids, each one making room.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use vobiz_webhooks::{Claim, DedupStore, EventKey, MemoryStore};

const IDS: usize = 1_000_000;
const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(86_400);

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-process store waited"),
    }
}

/// Resident bytes of this process (Linux).
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// CPU time this thread has used, in nanoseconds (user + system; 10 ms resolution).
fn thread_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10_000_000)
}

/// Claims and completes the new ids `range`; answers (wall ns, CPU ns) per id.
fn fill(store: &impl DedupStore, range: std::ops::Range<usize>) -> (f64, f64) {
    let count = range.len() as f64;
    let cpu_before = thread_cpu_nanos().unwrap_or_default();
    let started = Instant::now();
    for n in range {
        let key = key(n);
        match ready(store.claim(&key, LEASE)) {
            Ok(Claim::Fresh(token)) => {
                assert!(matches!(ready(store.complete(&key, &token, TTL)), Ok(true)))
            }
            other => panic!("{other:?}"),
        }
    }
    let wall = started.elapsed().as_nanos() as f64 / count;
    let cpu = thread_cpu_nanos()
        .unwrap_or_default()
        .saturating_sub(cpu_before) as f64
        / count;
    (wall, cpu)
}

fn key(n: usize) -> EventKey {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    bytes[8..].copy_from_slice(&(n as u64).to_le_bytes());
    EventKey::from_bytes(bytes)
}

fn measure(name: &str, store: &impl DedupStore, len: impl Fn() -> usize) {
    let Some(before) = resident_bytes() else {
        crate::support::skip_or_fail("/proc/self/statm", &"not Linux");
        return;
    };
    let (wall, cpu) = fill(store, 0..IDS);
    let after = resident_bytes().unwrap_or(before);
    let held = len();
    // 100 % recall: every id is still remembered.
    for n in 0..IDS {
        assert_eq!(
            ready(store.claim(&key(n), LEASE)).ok(),
            Some(Claim::Done),
            "{n}"
        );
    }
    let per_id = (after.saturating_sub(before)) as f64 / held as f64;
    println!(
        "{name}: {held} ids, {:.1} MB resident growth, {per_id:.1} bytes per id; \
         claim+complete while filling: {wall:.0} ns wall, {cpu:.0} ns CPU",
        (after - before) as f64 / 1e6,
    );
}

#[test]
#[ignore = "measurement: run in release, alone (see the file's docs)"]
fn memory_store_bytes_per_id() {
    let store = MemoryStore::with_capacity(IDS);
    measure("MemoryStore", &store, || store.len());
    assert_eq!(store.len(), IDS);
    // Full: every new id now makes room (drops the oldest completed ids, a batch at a time).
    let (wall, cpu) = fill(&store, IDS..2 * IDS);
    println!("MemoryStore full at {IDS}: claim+complete {wall:.0} ns wall, {cpu:.0} ns CPU");
    assert!(store.len() <= IDS);
    // Lookups of held ids (the duplicate path).
    let cpu_before = thread_cpu_nanos().unwrap_or_default();
    let started = Instant::now();
    for n in IDS + IDS / 2..2 * IDS {
        assert_eq!(ready(store.claim(&key(n), LEASE)).ok(), Some(Claim::Done));
    }
    let count = (IDS / 2) as f64;
    println!(
        "MemoryStore duplicate claim at {IDS}: {:.0} ns wall, {:.0} ns CPU",
        started.elapsed().as_nanos() as f64 / count,
        thread_cpu_nanos()
            .unwrap_or_default()
            .saturating_sub(cpu_before) as f64
            / count
    );
}

#[cfg(feature = "moka")]
#[test]
#[ignore = "measurement: run in release, alone (see the file's docs)"]
fn moka_store_bytes_per_id() {
    // Room for all: this measures memory per id, not eviction.
    let store = vobiz_webhooks::MokaStore::with_capacity(2 * IDS as u64);
    measure("MokaStore", &store, || {
        store.run_pending_tasks();
        store.len() as usize
    });
}
