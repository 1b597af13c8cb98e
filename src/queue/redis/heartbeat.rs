//! The heartbeat of an entry being handled: keeps the entry and its claim ours, and says so
//! the moment either may not be.

use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use tokio::sync::watch;
use tokio::time::Instant;

use super::entry::parse_token;
use super::scripts::{call, TOUCH};
use super::workers::WorkerShared;
use crate::dedup::redis::Connection;
use crate::dedup::{ClaimToken, DedupStore, EventKey};

/// What the heartbeat knows: the claim token the entry's runs settle with (a delivery enqueued
/// again may hand the entry a new one), and why the entry or its claim is lost, once it is.
#[derive(Clone, Debug)]
pub(super) struct Beat {
    pub(super) token: Option<ClaimToken>,
    pub(super) lost: Option<String>,
}

/// How long a touch of the entry keeps it ours, from before the touch was sent: three quarters
/// of the idle timeout, so this worker stops its handler a quarter of the idle timeout before
/// another worker's `XAUTOCLAIM` can take the entry.
pub(super) fn ownership_window(idle_timeout: Duration) -> Duration {
    idle_timeout / 4 * 3
}

/// One entry's heartbeat; [`run`](Self::run) until the entry or its claim is lost (the task is
/// aborted when the handling ends).
pub(super) struct Heartbeat<D> {
    pub(super) connection: Connection,
    pub(super) shared: Arc<WorkerShared>,
    pub(super) store: Arc<D>,
    pub(super) consumer: String,
    /// The stream of the entry's partition.
    pub(super) stream: String,
    pub(super) id: String,
    pub(super) record: String,
    pub(super) key: EventKey,
    pub(super) beat: watch::Sender<Beat>,
    /// The entry is ours until then (the last touch's send time plus the window).
    pub(super) entry_until: Instant,
    /// The claim is ours until then (the last renewal's send time plus the lease).
    pub(super) claim_until: Instant,
}

impl<D: DedupStore> Heartbeat<D> {
    /// Every quarter of the idle timeout: touch the entry (`XCLAIM … JUSTID` if still ours),
    /// adopt the record's claim token, renew the claim's lease. Losing the entry or the claim,
    /// or going without a successful touch or renewal for its whole window, reports the loss.
    pub(super) async fn run(mut self) {
        let every = self.shared.idle_timeout / 4;
        let window = ownership_window(self.shared.idle_timeout);
        let lease = self.shared.lease;
        let mut next = Instant::now() + every;
        loop {
            tokio::time::sleep_until(next.min(self.entry_until).min(self.claim_until)).await;
            let now = Instant::now();
            if now >= self.entry_until {
                return self.lose(
                    "no heartbeat got through for most of the idle timeout: another worker may reclaim the entry",
                );
            }
            if now >= self.claim_until {
                return self.lose("the dedup claim's lease could not be renewed before it ran out");
            }
            next = now + every;

            let sent = Instant::now();
            let touched = tokio::time::timeout_at(
                self.entry_until,
                call(&TOUCH, &[&self.stream, &self.record])
                    .arg(&self.shared.keys.group)
                    .arg(&self.consumer)
                    .arg(&self.id)
                    .invoke_async::<Option<String>>(&mut self.connection),
            )
            .await;
            match touched {
                Ok(Ok(Some(token))) => {
                    self.entry_until = sent + window;
                    if let Some(token) = parse_token(&token) {
                        // A delivery enqueued again handed the entry its claim: ours to settle.
                        self.beat.send_if_modified(|beat| {
                            let changed = beat.token.as_ref() != Some(&token);
                            beat.token = Some(token);
                            changed
                        });
                    }
                }
                Ok(Ok(None)) => {
                    return self.lose("the entry was reclaimed by another worker");
                }
                Ok(Err(error)) => {
                    log_failure(&self.id, &error);
                    continue;
                }
                Err(_) => continue,
            }

            let Some(token) = self.beat.borrow().token.clone() else {
                continue;
            };
            let sent = Instant::now();
            let renewed = tokio::time::timeout_at(
                self.claim_until,
                self.store.renew(&self.key, &token, lease),
            )
            .await;
            match renewed {
                Ok(Ok(true)) => self.claim_until = sent + lease,
                Ok(Ok(false)) => {
                    return self.lose(
                        "the dedup claim is no longer this entry's (released, expired or claimed by another run)",
                    );
                }
                Ok(Err(error)) => {
                    tracing::warn!(entry = %self.id, %error, "claim renewal failed");
                }
                Err(_) => {}
            }
        }
    }

    fn lose(self, reason: &str) {
        self.beat
            .send_modify(|beat| beat.lost = Some(reason.to_owned()));
    }
}

fn log_failure(id: &str, error: &RedisError) {
    tracing::warn!(entry = %id, %error, "heartbeat failed");
}

/// Resolves with the reason once the heartbeat reports the entry or its claim lost (or the
/// heartbeat itself is gone, which is as good as lost).
pub(super) async fn lost(beat: &mut watch::Receiver<Beat>) -> String {
    loop {
        if let Some(reason) = beat.borrow_and_update().lost.clone() {
            return reason;
        }
        if beat.changed().await.is_err() {
            return "the heartbeat stopped".to_owned();
        }
    }
}
