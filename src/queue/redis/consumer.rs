//! One consumer of the group: read or reclaim an entry, run the handler with retries and a
//! heartbeat, then acknowledge or dead-letter it and settle its claim.

use std::sync::Arc;
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::Request;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamPendingCountReply, StreamReadReply};
use redis::RedisError;
use tower_service::Service;

use super::create_group;
use super::entry::Entry;
use super::scripts::{ACK, DEAD_LETTER, TOUCH};
use super::workers::WorkerShared;
use crate::dedup::{millis_ceil, Claim, ClaimToken, DedupStore, EventKey};
use crate::future::AbortOnDrop;
use crate::queue::{run_attempt, BoxError, Counter, QueueAttempt};

/// One consumer of the group: its own connection (its reads block) and name.
pub(super) struct Consumer<D> {
    pub(super) shared: Arc<WorkerShared>,
    pub(super) store: Arc<D>,
    pub(super) connection: ConnectionManager,
    pub(super) consumer: String,
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
                    if let Err(error) = create_group(&mut self.connection, &self.shared.keys).await
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

    /// A crashed or stalled consumer's entry, idle past the timeout, with its delivery count.
    async fn reclaim(&mut self) -> Result<Option<Entry>, RedisError> {
        let keys = &self.shared.keys;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&keys.stream)
            .arg(&keys.group)
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
            .arg(&keys.stream)
            .arg(&keys.group)
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
            earlier_deliveries = earlier,
            "reclaimed an entry from a lost worker"
        );
        Ok(Some(Entry::parse(entry, earlier)))
    }

    async fn read(&mut self) -> Result<Option<Entry>, RedisError> {
        let keys = &self.shared.keys;
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&keys.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(millis_ceil(self.shared.block))
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(">")
            .query_async(&mut self.connection)
            .await?;
        Ok(reply
            .and_then(|reply| reply.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().next())
            .map(|entry| Entry::parse(&entry, 0)))
    }

    async fn process<H>(&mut self, handler: H, entry: Entry)
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let delivery = match &entry.delivery {
            Ok(delivery) => delivery.clone(),
            Err(error) => {
                let error = error.clone();
                return self.dead_letter(&entry, None, entry.earlier, error).await;
            }
        };
        if entry.earlier >= shared.max_attempts {
            let error = format!(
                "worker lost {} times while handling it (crash or stall)",
                entry.earlier
            );
            return self
                .dead_letter(&entry, entry.token.clone(), entry.earlier, error)
                .await;
        }
        // Re-check the claim: done → a duplicate; expired → ours anew.
        let mut token = entry.token.clone();
        if let Some(key) = entry.key {
            match self.store.claim(&key, shared.lease).await {
                Ok(Claim::Done) => {
                    tracing::debug!(event_id = %entry.event_id, "queued event already done: acknowledged");
                    shared.counters.add(Counter::Duplicates);
                    let _ = self.ack(&entry.id).await;
                    return;
                }
                Ok(Claim::Fresh(fresh)) => token = Some(fresh),
                Ok(Claim::InFlight) => {}
                Err(error) => {
                    // Left pending: reclaimed after the idle timeout, when the store is back.
                    tracing::warn!(event_id = %entry.event_id, %error, "dedup store failed; entry left pending");
                    return;
                }
            }
        }

        let heartbeat = tokio::spawn(heartbeat(
            self.connection.clone(),
            Arc::clone(&shared),
            self.consumer.clone(),
            entry.id.clone(),
        ));
        let heartbeat = AbortOnDrop(heartbeat);
        let mut attempts = entry.earlier;
        let error = loop {
            attempts += 1;
            let request = delivery.request(QueueAttempt {
                number: attempts,
                max: shared.max_attempts,
            });
            shared.counters.add(Counter::InProgress);
            let outcome = run_attempt(handler.clone(), request, shared.handler_timeout).await;
            shared.counters.sub(Counter::InProgress);
            match outcome {
                Ok(()) => break None,
                Err(error) if attempts < shared.max_attempts => {
                    let delay = shared.backoff.delay(attempts);
                    shared.counters.add(Counter::Retried);
                    tracing::warn!(event_id = %entry.event_id, attempt = attempts, %error, ?delay, "handler failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => break Some(error),
            }
        };
        drop(heartbeat);
        match error {
            None => {
                if let (Some(key), Some(token)) = (entry.key, &token) {
                    settle(&*self.store, &key, token, entry.ttl, &entry.event_id).await;
                }
                match self.ack(&entry.id).await {
                    Ok(()) => shared.counters.add(Counter::Succeeded),
                    Err(error) => {
                        // Handled and done in the store: a reclaim finds it done.
                        tracing::warn!(event_id = %entry.event_id, %error, "XACK failed");
                        shared.counters.add(Counter::Succeeded);
                    }
                }
            }
            Some(error) => self.dead_letter(&entry, token, attempts, error).await,
        }
    }

    async fn ack(&mut self, id: &str) -> Result<(), RedisError> {
        let keys = &self.shared.keys;
        ACK.key(&keys.stream)
            .arg(&keys.group)
            .arg(id)
            .invoke_async::<i64>(&mut self.connection)
            .await
            .map(|_| ())
    }

    async fn dead_letter(
        &mut self,
        entry: &Entry,
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
        let moved: Result<String, RedisError> = DEAD_LETTER
            .key(&keys.stream)
            .key(&keys.dead)
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
                    settle(&*self.store, &key, token, entry.ttl, &entry.event_id).await;
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

async fn settle<D: DedupStore>(
    store: &D,
    key: &EventKey,
    token: &ClaimToken,
    ttl: Duration,
    event_id: &str,
) {
    match store.complete(key, token, ttl).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            event_id,
            "claim no longer ours when completing (lease ran out): a redelivery may run again"
        ),
        Err(error) => tracing::error!(event_id, %error, "could not mark the event done"),
    }
}

/// Resets the entry's idle time every third of the idle timeout while it is being handled.
async fn heartbeat(
    mut connection: ConnectionManager,
    shared: Arc<WorkerShared>,
    consumer: String,
    id: String,
) {
    let every = shared.idle_timeout / 3;
    loop {
        tokio::time::sleep(every).await;
        let touched: Result<i64, RedisError> = TOUCH
            .key(&shared.keys.stream)
            .arg(&shared.keys.group)
            .arg(&consumer)
            .arg(&id)
            .invoke_async(&mut connection)
            .await;
        match touched {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(entry = %id, %consumer, "entry reclaimed by another worker while handling: it may run twice");
                return;
            }
            Err(error) => tracing::warn!(entry = %id, %error, "heartbeat failed"),
        }
    }
}
