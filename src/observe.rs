//! What the crate tells operators: one `tracing` span per delivery, and (feature `metrics`)
//! counters and histograms through the `metrics` facade. The names and labels are documented in
//! the crate docs ("Observing it"). Without the feature the metric functions are empty and
//! compile away; a span that no subscriber enables costs a callsite check.

use tracing::field::Empty;
use tracing::Span;

#[cfg(feature = "metrics")]
use std::time::Duration;

/// How a delivery ended, as the `outcome` (and `reason`) labels say it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    /// The handler answered 2xx.
    Handled,
    /// A completed `event_id` again: 200, handler not called.
    Duplicate,
    /// The `event_id` is being handled right now: 409.
    InFlight,
    /// Refused as bad input (401, 413, 408, 400).
    Rejected(&'static str),
    /// The handler answered something else than 2xx, or failed.
    Failed,
    /// Refused for now: the store, the lease or the body budget (503).
    Unavailable(&'static str),
}

impl Outcome {
    /// The `outcome` label and span field.
    fn label(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Duplicate => "duplicate",
            Self::InFlight => "in_flight",
            Self::Rejected(_) => "rejected",
            Self::Failed => "failed",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// The span of one delivery, `vobiz.webhook`, its fields filled in as the delivery goes:
/// `event_id`, `event_type`, `outcome`, `reason`, `status`, `latency_us`. Never a secret or a
/// byte of the body.
pub(crate) fn delivery_span() -> Span {
    tracing::info_span!(
        "vobiz.webhook",
        event_id = Empty,
        event_type = Empty,
        outcome = Empty,
        reason = Empty,
        status = Empty,
        latency_us = Empty,
    )
}

/// Notes how the delivery ended: on the current span, and in the deliveries counter.
pub(crate) fn delivery(outcome: Outcome) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("outcome", outcome.label());
        if let Outcome::Rejected(reason) | Outcome::Unavailable(reason) = outcome {
            span.record("reason", reason);
        }
    }
    count(outcome);
}

/// Counts one delivery.
#[cfg(feature = "metrics")]
fn count(outcome: Outcome) {
    const NAME: &str = "vobiz_webhook_deliveries_total";
    let counter = match outcome {
        Outcome::Handled => metrics::counter!(NAME, "outcome" => "handled"),
        Outcome::Duplicate => metrics::counter!(NAME, "outcome" => "duplicate"),
        Outcome::InFlight => metrics::counter!(NAME, "outcome" => "in_flight"),
        Outcome::Failed => metrics::counter!(NAME, "outcome" => "failed"),
        Outcome::Rejected(reason) => {
            metrics::counter!(NAME, "outcome" => "rejected", "reason" => reason)
        }
        Outcome::Unavailable(reason) => {
            metrics::counter!(NAME, "outcome" => "unavailable", "reason" => reason)
        }
    };
    counter.increment(1);
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
fn count(_outcome: Outcome) {}

/// A clock reading for the histograms; empty (and no clock read) without the feature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Started {
    #[cfg(feature = "metrics")]
    at: std::time::Instant,
}

#[inline(always)]
pub(crate) fn start() -> Started {
    Started {
        #[cfg(feature = "metrics")]
        at: std::time::Instant::now(),
    }
}

/// Records the time since `started` of the handler.
#[cfg(feature = "metrics")]
pub(crate) fn handler_time(started: Started) {
    metrics::histogram!("vobiz_webhook_handler_seconds").record(seconds(started.at.elapsed()));
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn handler_time(_started: Started) {}

/// Records the time since `started` of a store claim.
#[cfg(feature = "metrics")]
pub(crate) fn store_time(started: Started) {
    metrics::histogram!("vobiz_webhook_store_seconds").record(seconds(started.at.elapsed()));
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn store_time(_started: Started) {}

#[cfg(feature = "metrics")]
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Counts one queue event (`accepted`, `succeeded`, ...).
#[cfg(all(feature = "metrics", feature = "queue"))]
pub(crate) fn queue_event(event: &'static str) {
    metrics::counter!("vobiz_webhook_queue_events_total", "event" => event).increment(1);
}

#[cfg(all(not(feature = "metrics"), feature = "queue"))]
#[inline(always)]
pub(crate) fn queue_event(_event: &'static str) {}

/// Moves the queue depth gauge of `state` (`queued`, `in_progress`) by `delta`.
#[cfg(all(feature = "metrics", feature = "queue"))]
pub(crate) fn queue_depth(state: &'static str, delta: f64) {
    metrics::gauge!("vobiz_webhook_queue_depth", "state" => state).increment(delta);
}

#[cfg(all(not(feature = "metrics"), feature = "queue"))]
#[inline(always)]
pub(crate) fn queue_depth(_state: &'static str, _delta: f64) {}
