//! The workers: take a job, run one attempt, then done, a retry later, or a dead letter; and
//! what a job given up at the shutdown deadline becomes.

use std::sync::Arc;
use std::time::SystemTime;

use axum_core::body::Body;
use axum_core::response::Response;
use http::Request;
use tokio::sync::{mpsc, watch};
use tower_service::Service;

use super::{lock, DeadLetter, Job, Shared};
use crate::queue::{run_attempt, BoxError, Counter, QueueAttempt};

/// Resolves once the shutdown deadline passed.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

pub(super) async fn worker<H>(shared: Arc<Shared>, handler: H, index: usize)
where
    H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    tracing::debug!(worker = index, "queue worker started");
    loop {
        let next = async { shared.receiver.lock().await.recv().await };
        let job = tokio::select! {
            biased;
            () = stopped(shared.stop.subscribe()) => break,
            job = next => job,
        };
        let Some(job) = job else { break };
        shared.counters.sub(Counter::Queued);
        process(&shared, handler.clone(), job).await;
    }
    tracing::debug!(worker = index, "queue worker stopped");
}

/// One attempt; then done, another attempt later, or a dead letter.
async fn process<H>(shared: &Arc<Shared>, handler: H, mut job: Job)
where
    H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let config = &shared.config;
    job.attempts += 1;
    let attempt = QueueAttempt {
        number: job.attempts,
        max: config.max_attempts,
    };
    let request = job.delivery.request(attempt);
    shared.counters.add(Counter::InProgress);
    let outcome = tokio::select! {
        biased;
        () = stopped(shared.stop.subscribe()) => None,
        outcome = run_attempt(handler, request, config.handler_timeout) => Some(outcome),
    };
    shared.counters.sub(Counter::InProgress);
    let event_id = job.delivery.event.event_id().to_owned();
    match outcome {
        None => give_up(shared, job).await,
        Some(Ok(())) => {
            if let Some(claim) = job.claim.take() {
                let _ = claim.complete().await;
            }
            // Counted once settled, so a reader of the metrics sees the claim done.
            shared.counters.add(Counter::Succeeded);
            tracing::debug!(%event_id, attempt = job.attempts, "handled");
        }
        Some(Err(error)) if job.attempts < config.max_attempts => {
            let delay = config.backoff.delay(job.attempts);
            shared.counters.add(Counter::Retried);
            shared.counters.add(Counter::Queued);
            tracing::warn!(%event_id, attempt = job.attempts, %error, ?delay, "handler failed; retrying");
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                tokio::select! {
                    biased;
                    () = stopped(shared.stop.subscribe()) => {
                        shared.counters.sub(Counter::Queued);
                        give_up(&shared, job).await;
                    }
                    () = tokio::time::sleep(delay) => {
                        if let Err(error) = shared.sender.try_send(job) {
                            shared.counters.sub(Counter::Queued);
                            let job = match error {
                                mpsc::error::TrySendError::Full(job)
                                | mpsc::error::TrySendError::Closed(job) => job,
                            };
                            give_up(&shared, job).await;
                        }
                    }
                }
            });
        }
        Some(Err(error)) => dead_letter(shared, job, error).await,
    }
}

/// Every attempt failed: keep it with its error, log it, and complete the claim so a stray
/// redelivery does not run the failing handler again.
async fn dead_letter(shared: &Shared, mut job: Job, error: String) {
    if let Some(claim) = job.claim.take() {
        let _ = claim.complete().await;
    }
    let event_id = job.delivery.event.event_id();
    tracing::error!(
        event_id,
        event_type = job.delivery.event.event_type().as_str(),
        attempts = job.attempts,
        %error,
        "every attempt failed: event dead-lettered"
    );
    {
        let mut dead = lock(&shared.dead);
        if shared.config.dead_letter_capacity == 0 {
            tracing::error!(
                event_id,
                "dead-letter list has no room: event dropped after logging"
            );
        } else {
            while dead.len() >= shared.config.dead_letter_capacity {
                if let Some(old) = dead.pop_front() {
                    tracing::error!(
                        event_id = old.event.event_id(),
                        error = %old.error,
                        "dead-letter list full: the oldest dead letter dropped"
                    );
                }
            }
            dead.push_back(DeadLetter {
                event: job.delivery.event.clone(),
                attempts: job.attempts,
                error,
                at: SystemTime::now(),
            });
        }
    }
    shared.counters.add(Counter::DeadLettered);
}

/// The shutdown deadline passed with this event unfinished: release its claim and say so.
pub(super) async fn give_up(shared: &Shared, mut job: Job) {
    let event_id = job.delivery.event.event_id().to_owned();
    shared.counters.add(Counter::Released);
    tracing::error!(
        %event_id,
        attempts = job.attempts,
        "shutdown deadline: event acknowledged but not handled; claim released"
    );
    if let Some(claim) = job.claim.take() {
        let _ = claim.release().await;
    }
    lock(&shared.released).push(event_id);
}
