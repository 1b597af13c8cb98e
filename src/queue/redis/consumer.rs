//! One consumer of the group: read or reclaim an entry, make sure its claim is this entry's,
//! run the handler with retries and a heartbeat, then acknowledge or dead-letter it and settle
//! its claim.

use std::sync::Arc;
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::Request;
use redis::streams::{StreamAutoClaimReply, StreamPendingCountReply, StreamReadReply};
use redis::RedisError;
use tower_service::Service;

use tokio::sync::watch;
use tokio::time::Instant;

use super::create_groups;
use super::entry::{parse_token, Entry};
use super::heartbeat::{lost, ownership_window, Beat, Heartbeat};
use super::keys::PartitionKeys;
use super::scripts::{
    call, ACK, ATTEMPT, DEAD_LETTER, NOTE_FAILURE, PICKUP, RECORD_TOKEN, SET_TOKEN,
};
use super::workers::WorkerShared;
use crate::dedup::redis::{token_text, Connection};
use crate::dedup::{millis_ceil, Claim, ClaimToken, DedupStore, EventKey};
use crate::future::AbortOnDrop;
use crate::queue::{run_attempt, BoxError, Counter, QueueAttempt};

/// One consumer of the group: its own connection (its reads block) and name. It reads every
/// partition: a pass without blocking over all of them (starting after the last one that gave
/// an entry), then a blocking read on its home partition (its index modulo the partitions).
pub(super) struct Consumer<D> {
    pub(super) shared: Arc<WorkerShared>,
    pub(super) store: Arc<D>,
    pub(super) connection: Connection,
    pub(super) consumer: String,
    /// The partition its blocking reads wait on.
    pub(super) home: usize,
    /// The partition the next pass starts at (read, reclaim).
    pub(super) next: usize,
}

impl<D: DedupStore> Consumer<D> {
    pub(super) async fn run<H>(mut self, handler: H)
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let mut stop = self.shared.stop.subscribe();
        let sweep_every = self.shared.idle_timeout / 2;
        let mut next_sweep = tokio::time::Instant::now();
        while !*stop.borrow_and_update() {
            let now = tokio::time::Instant::now();
            let next = if now >= next_sweep {
                match self.reclaim().await {
                    Ok(Some(entry)) => Ok(Some(entry)),
                    Ok(None) => {
                        next_sweep = now + sweep_every;
                        self.read().await
                    }
                    Err(error) => Err(error),
                }
            } else {
                self.read().await
            };
            match next {
                Ok(Some(entry)) => self.process(handler.clone(), entry).await,
                Ok(None) => {}
                Err(error) if error.code() == Some("NOGROUP") => {
                    // Redis lost the group (restarted without persistence, or the keys were
                    // deleted): entries queued since would wait for ever. Make it again, from
                    // the start of the stream, and read on.
                    tracing::warn!(consumer = %self.consumer, "Redis queue consumer group missing; creating it again");
                    if let Err(error) = create_groups(&mut self.connection, &self.shared.keys).await
                    {
                        tracing::warn!(consumer = %self.consumer, %error, "cannot create the consumer group; retrying");
                        tokio::select! {
                            _ = stop.changed() => {}
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.consumer, %error, "Redis queue read failed; retrying");
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        tracing::debug!(consumer = %self.consumer, "Redis queue worker stopped");
    }

    /// A crashed or stalled consumer's entry, idle past the timeout, with its delivery count:
    /// `XAUTOCLAIM` on each partition in turn, the first found.
    async fn reclaim(&mut self) -> Result<Option<Entry>, RedisError> {
        let shared = Arc::clone(&self.shared);
        let count = shared.keys.partitions.len();
        for step in 0..count {
            let part = shared.keys.partition((self.next + step) % count);
            if let Some(entry) = self.reclaim_from(part).await? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    async fn reclaim_from(&mut self, part: &PartitionKeys) -> Result<Option<Entry>, RedisError> {
        let group = &self.shared.keys.group;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&part.stream)
            .arg(group)
            .arg(&self.consumer)
            .arg(millis_ceil(self.shared.idle_timeout))
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection)
            .await?;
        let Some(entry) = reply.claimed.first() else {
            return Ok(None);
        };
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&part.stream)
            .arg(group)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1)
            .query_async(&mut self.connection)
            .await?;
        let delivered = pending
            .ids
            .first()
            .map_or(1, |pending| pending.times_delivered);
        let earlier = u32::try_from(delivered.saturating_sub(1)).unwrap_or(u32::MAX);
        tracing::warn!(
            consumer = %self.consumer,
            entry = %entry.id,
            partition = part.index,
            earlier_deliveries = earlier,
            "reclaimed an entry from a lost worker"
        );
        Ok(Some(Entry::parse(part.index, entry, earlier)))
    }

    /// The next new entry: one partition blocks; several are read without blocking in turn,
    /// then the home partition blocks.
    async fn read(&mut self) -> Result<Option<Entry>, RedisError> {
        let shared = Arc::clone(&self.shared);
        let count = shared.keys.partitions.len();
        if count > 1 {
            for step in 0..count {
                let index = (self.next + step) % count;
                if let Some(entry) = self.read_from(shared.keys.partition(index), false).await? {
                    self.next = (index + 1) % count;
                    return Ok(Some(entry));
                }
            }
        }
        self.read_from(shared.keys.partition(self.home), true).await
    }

    async fn read_from(
        &mut self,
        part: &PartitionKeys,
        block: bool,
    ) -> Result<Option<Entry>, RedisError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.shared.keys.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1);
        if block {
            command.arg("BLOCK").arg(millis_ceil(self.shared.block));
        }
        let reply: Option<StreamReadReply> = command
            .arg("STREAMS")
            .arg(&part.stream)
            .arg(">")
            .query_async(&mut self.connection)
            .await?;
        Ok(reply
            .and_then(|reply| reply.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().next())
            .map(|entry| Entry::parse(part.index, &entry, 0)))
    }

    async fn process<H>(&mut self, handler: H, entry: Entry)
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let part = shared.keys.partition(entry.partition);
        let delivery = match &entry.delivery {
            Ok(delivery) => delivery.clone(),
            Err(error) => {
                let error = error.clone();
                let record = part.record(entry.key.as_ref());
                return self
                    .dead_letter(&entry, &record, None, entry.earlier, error)
                    .await;
            }
        };
        let key = entry
            .key
            .unwrap_or_else(|| EventKey::from_event_id(delivery.event.event_id()));
        let record = part.record(Some(&key));

        // 1. Still ours (touched now), and the record: the claim token, the attempts started.
        let picked_at = Instant::now();
        let pickup = match self.pickup(&entry, &record).await {
            Ok(Some(pickup)) => pickup,
            Ok(None) => {
                tracing::debug!(entry = %entry.id, "entry taken by another worker meanwhile");
                return;
            }
            Err(error) => {
                tracing::warn!(event_id = %entry.event_id, %error, "Redis failed picking the entry up; left pending");
                return;
            }
        };

        // 2. Run only while the claim is this entry's: the recorded token still owns it, or
        //    the claim ran out and is taken anew. A store that cannot answer is not an attempt.
        let claimed_at = Instant::now();
        let failure = pickup.failure;
        let token = match self.own_claim(&entry, &key, &record, pickup.token).await {
            Ownership::Ours(token) => token,
            Ownership::Done => {
                tracing::debug!(event_id = %entry.event_id, "queued event already done: acknowledged");
                shared.counters.add(Counter::Duplicates);
                let _ = self.ack(&entry, &record).await;
                return;
            }
            Ownership::Elsewhere => {
                // Someone else holds the claim (a delivery being enqueued again, which hands
                // it to this entry, or another entry of the event): never run beside it. Left
                // pending, reclaimed after the idle timeout; not an attempt.
                tracing::debug!(event_id = %entry.event_id, entry = %entry.id, "claim held elsewhere; entry left pending");
                return;
            }
            Ownership::Unknown(error) => {
                tracing::warn!(event_id = %entry.event_id, %error, "dedup store failed; entry left pending (not an attempt)");
                return;
            }
        };

        let attempts_started = pickup.attempts.unwrap_or(entry.earlier);
        if attempts_started >= shared.max_attempts {
            let mut error = format!(
                "gave up after {attempts_started} started attempts: the last never finished (its worker crashed, stalled or lost the entry)"
            );
            if let Some(failure) = failure {
                error.push_str("; an earlier one failed: ");
                error.push_str(&failure);
            }
            return self
                .dead_letter(&entry, &record, Some(token), attempts_started, error)
                .await;
        }
        let window = ownership_window(shared.idle_timeout);
        if Instant::now() >= picked_at + window {
            tracing::warn!(event_id = %entry.event_id, "picking the entry up took most of the idle timeout; left pending");
            return;
        }

        // 3. Heartbeat, attempts.
        let (beat, mut beats) = watch::channel(Beat {
            token: Some(token),
            lost: None,
        });
        let heartbeat = Heartbeat {
            connection: self.connection.clone(),
            shared: Arc::clone(&shared),
            store: Arc::clone(&self.store),
            consumer: self.consumer.clone(),
            stream: part.stream.clone(),
            id: entry.id.clone(),
            record: record.clone(),
            key,
            beat,
            entry_until: picked_at + window,
            claim_until: claimed_at + shared.lease,
        };
        let heartbeat = AbortOnDrop(tokio::spawn(heartbeat.run()));
        let mut attempts = attempts_started;
        let outcome = loop {
            match self.start_attempt(&record, &entry).await {
                Ok(Some(started)) => attempts = started,
                Ok(None) => attempts += 1,
                Err(error) => {
                    tracing::warn!(event_id = %entry.event_id, %error, "cannot count the attempt in Redis; entry left pending");
                    break Outcome::Stopped(None);
                }
            }
            let request = delivery.request(QueueAttempt {
                number: attempts,
                max: shared.max_attempts,
            });
            shared.counters.add(Counter::InProgress);
            let outcome = tokio::select! {
                outcome = run_attempt(handler.clone(), request, shared.handler_timeout) => outcome,
                reason = lost(&mut beats) => {
                    shared.counters.sub(Counter::InProgress);
                    break Outcome::Stopped(Some(reason));
                }
            };
            shared.counters.sub(Counter::InProgress);
            match outcome {
                Ok(()) => break Outcome::Succeeded,
                Err(error) if attempts < shared.max_attempts => {
                    self.note_failure(&record, &entry, &error).await;
                    let delay = shared.backoff.delay(attempts);
                    shared.counters.add(Counter::Retried);
                    tracing::warn!(event_id = %entry.event_id, attempt = attempts, %error, ?delay, "handler failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        reason = lost(&mut beats) => break Outcome::Stopped(Some(reason)),
                    }
                }
                Err(error) => break Outcome::Failed(error),
            }
        };
        drop(heartbeat);
        let token = beats.borrow().token.clone();
        match outcome {
            Outcome::Succeeded => {
                if let Some(token) = &token {
                    self.settle(&key, &record, &entry, token).await;
                }
                match self.ack(&entry, &record).await {
                    Ok(()) => shared.counters.add(Counter::Succeeded),
                    Err(error) => {
                        // Handled and done in the store: a reclaim finds it done.
                        tracing::warn!(event_id = %entry.event_id, %error, "XACK failed");
                        shared.counters.add(Counter::Succeeded);
                    }
                }
            }
            Outcome::Failed(error) => {
                self.dead_letter(&entry, &record, token, attempts, error)
                    .await;
            }
            Outcome::Stopped(Some(reason)) => tracing::warn!(
                event_id = %entry.event_id,
                entry = %entry.id,
                %reason,
                "handler stopped: the entry or its claim is no longer this worker's; left to the one that has it"
            ),
            Outcome::Stopped(None) => {}
        }
    }

    /// Touches the entry and reads (or makes) its record. `None`: not ours any more.
    async fn pickup(&mut self, entry: &Entry, record: &str) -> Result<Option<Pickup>, RedisError> {
        let keys = &self.shared.keys;
        let stream = &keys.partition(entry.partition).stream;
        let reply: Option<(i64, String, u32, String)> = call(&PICKUP, &[stream, record])
            .arg(&keys.group)
            .arg(&self.consumer)
            .arg(&entry.id)
            .arg(entry.token.as_ref().map(token_text).unwrap_or_default())
            .arg(millis_ceil(entry.ttl).max(1))
            .invoke_async(&mut self.connection)
            .await?;
        Ok(reply.map(|(own, token, attempts, failure)| {
            if own == 1 {
                Pickup {
                    token: parse_token(&token),
                    attempts: Some(attempts),
                    failure: Some(failure).filter(|failure| !failure.is_empty()),
                }
            } else {
                // The record is another entry's (this one outlived its record): this entry's
                // own token, and its deliveries as its attempts.
                Pickup {
                    token: entry.token.clone(),
                    attempts: None,
                    failure: None,
                }
            }
        }))
    }

    /// Whether this entry may run now, and with which claim token.
    async fn own_claim(
        &mut self,
        entry: &Entry,
        key: &EventKey,
        record: &str,
        token: Option<ClaimToken>,
    ) -> Ownership {
        let lease = self.shared.lease;
        if let Some(token) = token {
            match self.store.renew(key, &token, lease).await {
                Ok(true) => return Ownership::Ours(token),
                Ok(false) => {}
                Err(error) => return Ownership::Unknown(error.to_string()),
            }
        }
        match self.store.claim(key, lease).await {
            Ok(Claim::Done) => Ownership::Done,
            Ok(Claim::InFlight) => Ownership::Elsewhere,
            Ok(Claim::Fresh(token)) => {
                // The entry's token from now on, so a worker reclaiming it after a crash finds
                // the claim its own instead of waiting for the lease to run out.
                let recorded: Result<i64, RedisError> = call(&SET_TOKEN, &[record])
                    .arg(&entry.id)
                    .arg(token_text(&token))
                    .invoke_async(&mut self.connection)
                    .await;
                match recorded {
                    Ok(_) => Ownership::Ours(token),
                    Err(error) => {
                        // Give the claim back: unrecorded, a crash would strand it.
                        let _ = self.store.release(key, &token).await;
                        Ownership::Unknown(format!("cannot record the claim token: {error}"))
                    }
                }
            }
            Err(error) => Ownership::Unknown(error.to_string()),
        }
    }

    /// Counts an attempt as started, before the handler runs (a crash mid-handler counts).
    /// `None`: the record is another entry's, so the count is kept here only.
    async fn start_attempt(
        &mut self,
        record: &str,
        entry: &Entry,
    ) -> Result<Option<u32>, RedisError> {
        let started: i64 = call(&ATTEMPT, &[record])
            .arg(&entry.id)
            .arg(millis_ceil(entry.ttl).max(1))
            .invoke_async(&mut self.connection)
            .await?;
        Ok(u32::try_from(started).ok())
    }

    /// Keeps a failed attempt's error in the record (best effort: only a later worker's dead
    /// letter reads it).
    async fn note_failure(&mut self, record: &str, entry: &Entry, error: &str) {
        let noted: Result<i64, RedisError> = call(&NOTE_FAILURE, &[record])
            .arg(&entry.id)
            .arg(error)
            .invoke_async(&mut self.connection)
            .await;
        if let Err(redis_error) = noted {
            tracing::debug!(event_id = %entry.event_id, %redis_error, "cannot keep the failure in the record");
        }
    }

    /// Completes the claim; when the token no longer owns it, with the record's token (a
    /// delivery enqueued again handed the entry a new claim since the last heartbeat).
    async fn settle(&mut self, key: &EventKey, record: &str, entry: &Entry, token: &ClaimToken) {
        match self.store.complete(key, token, entry.ttl).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(event_id = %entry.event_id, %error, "could not mark the event done");
                return;
            }
        }
        let recorded: Result<String, RedisError> = call(&RECORD_TOKEN, &[record])
            .arg(&entry.id)
            .invoke_async(&mut self.connection)
            .await;
        let completed = match recorded.ok().as_deref().and_then(parse_token) {
            Some(current) if &current != token => {
                matches!(
                    self.store.complete(key, &current, entry.ttl).await,
                    Ok(true)
                )
            }
            _ => false,
        };
        if !completed {
            tracing::warn!(
                event_id = %entry.event_id,
                "claim no longer ours when completing (lease ran out): a redelivery may run again"
            );
        }
    }

    async fn ack(&mut self, entry: &Entry, record: &str) -> Result<(), RedisError> {
        let keys = &self.shared.keys;
        let stream = &keys.partition(entry.partition).stream;
        let id = &entry.id;
        call(&ACK, &[stream, record])
            .arg(&keys.group)
            .arg(id)
            .invoke_async::<i64>(&mut self.connection)
            .await
            .map(|_| ())
    }

    async fn dead_letter(
        &mut self,
        entry: &Entry,
        record: &str,
        token: Option<ClaimToken>,
        attempts: u32,
        error: String,
    ) {
        let keys = Arc::clone(&self.shared.keys);
        let (event_type, body) = match &entry.delivery {
            Ok(delivery) => (
                delivery.event.event_type().as_str().to_owned(),
                delivery.event.body().clone(),
            ),
            Err(_) => (String::new(), Bytes::new()),
        };
        let part = keys.partition(entry.partition);
        let moved: Result<String, RedisError> =
            call(&DEAD_LETTER, &[&part.stream, &part.dead, record])
                .arg(&keys.group)
                .arg(&entry.id)
                .arg("event_id")
                .arg(&entry.event_id)
                .arg("event_type")
                .arg(event_type)
                .arg("error")
                .arg(&error)
                .arg("attempts")
                .arg(attempts)
                .arg("source_entry")
                .arg(&entry.id)
                .arg("body")
                .arg(body.as_ref())
                .invoke_async(&mut self.connection)
                .await;
        match moved {
            Ok(dead_id) => {
                tracing::error!(
                    event_id = %entry.event_id,
                    attempts,
                    %error,
                    dead_letter = %dead_id,
                    "every attempt failed: event moved to the dead-letter stream"
                );
                if let (Some(key), Some(token)) = (entry.key, &token) {
                    self.settle(&key, record, entry, token).await;
                }
                self.shared.counters.add(Counter::DeadLettered);
            }
            Err(redis_error) => tracing::error!(
                event_id = %entry.event_id,
                %error,
                %redis_error,
                "could not dead-letter the event; it stays pending and is retried on reclaim"
            ),
        }
    }
}

/// What picking an entry up found in its record.
struct Pickup {
    /// The claim token the entry's runs settle with.
    token: Option<ClaimToken>,
    /// Attempts started so far; `None` when the record is another entry's.
    attempts: Option<u32>,
    /// The last failed attempt's error, if one failed.
    failure: Option<String>,
}

/// Whether the entry's claim is this worker's to run with.
enum Ownership {
    Ours(ClaimToken),
    Done,
    Elsewhere,
    Unknown(String),
}

/// How handling an entry ended.
enum Outcome {
    Succeeded,
    Failed(String),
    /// Not to be acknowledged or settled here: the entry or its claim was lost (with why), or
    /// Redis could not count the attempt.
    Stopped(Option<String>),
}
