//! What the crate tells operators: one `tracing` span per delivery, and (feature `metrics`)
//! counters and histograms through the `metrics` facade. The names and labels are documented in
//! the crate docs ("Observing it"). Without the feature the metric functions are empty and
//! compile away; a span that no subscriber enables costs a callsite check.

use tracing::field::Empty;
use tracing::Span;

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
pub(crate) fn delivery(metrics: &Metrics, outcome: Outcome) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("outcome", outcome.label());
        if let Outcome::Rejected(reason) | Outcome::Unavailable(reason) = outcome {
            span.record("reason", reason);
        }
    }
    metrics.count(outcome);
}

/// The layer's metric handles, registered once when the layer is built (looking a metric up
/// in the recorder on every delivery would cost more than the rest of the metrics together).
/// Empty without the feature.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    registered: Option<std::sync::Arc<Registered>>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Registered {
    handled: metrics::Counter,
    duplicate: metrics::Counter,
    in_flight: metrics::Counter,
    failed: metrics::Counter,
    rejected: Vec<(&'static str, metrics::Counter)>,
    unavailable: Vec<(&'static str, metrics::Counter)>,
    handler: metrics::Histogram,
    store: metrics::Histogram,
}

/// The `reason` labels of each outcome (`Rejection::reason`).
#[cfg(feature = "metrics")]
const REJECTED: [&str; 9] = [
    "missing_signature",
    "malformed_signature",
    "signature_mismatch",
    "too_large",
    "body_timeout",
    "body_read_failed",
    "bad_envelope",
    "event_mismatch",
    "stale",
];
#[cfg(feature = "metrics")]
const UNAVAILABLE: [&str; 3] = ["store_unavailable", "lease_expired", "body_budget"];

impl Metrics {
    /// Registers every handle with the recorder installed now (a no-op recorder when none is).
    #[cfg(feature = "metrics")]
    pub(crate) fn register() -> Self {
        const NAME: &str = "vobiz_webhook_deliveries_total";
        let with_reason = |outcome: &'static str, reasons: &[&'static str]| {
            reasons
                .iter()
                .map(|&reason| {
                    let counter = metrics::counter!(NAME, "outcome" => outcome, "reason" => reason);
                    (reason, counter)
                })
                .collect()
        };
        Self {
            registered: Some(std::sync::Arc::new(Registered {
                handled: metrics::counter!(NAME, "outcome" => "handled"),
                duplicate: metrics::counter!(NAME, "outcome" => "duplicate"),
                in_flight: metrics::counter!(NAME, "outcome" => "in_flight"),
                failed: metrics::counter!(NAME, "outcome" => "failed"),
                rejected: with_reason("rejected", &REJECTED),
                unavailable: with_reason("unavailable", &UNAVAILABLE),
                handler: metrics::histogram!("vobiz_webhook_handler_seconds"),
                store: metrics::histogram!("vobiz_webhook_store_seconds"),
            })),
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn register() -> Self {
        Self {}
    }

    #[cfg(feature = "metrics")]
    fn count(&self, outcome: Outcome) {
        let Some(registered) = &self.registered else {
            return;
        };
        let find = |counters: &[(&'static str, metrics::Counter)], reason: &str| {
            counters
                .iter()
                .find(|(known, _)| *known == reason)
                .map(|(_, counter)| counter.increment(1))
        };
        match outcome {
            Outcome::Handled => registered.handled.increment(1),
            Outcome::Duplicate => registered.duplicate.increment(1),
            Outcome::InFlight => registered.in_flight.increment(1),
            Outcome::Failed => registered.failed.increment(1),
            Outcome::Rejected(reason) => {
                let _ = find(&registered.rejected, reason);
            }
            Outcome::Unavailable(reason) => {
                let _ = find(&registered.unavailable, reason);
            }
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    fn count(&self, _outcome: Outcome) {}

    /// Records the time since `started` of the handler.
    #[cfg(feature = "metrics")]
    pub(crate) fn handler_time(&self, started: Started) {
        if let Some(registered) = &self.registered {
            registered
                .handler
                .record(started.at.elapsed().as_secs_f64());
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn handler_time(&self, _started: Started) {}

    /// Records the time since `started` of a store claim.
    /// Records the store's time since `started` and answers the end, so the next timing
    /// starts there without reading the clock again.
    #[cfg(feature = "metrics")]
    pub(crate) fn store_time(&self, started: Started) -> Started {
        let now = Started::at(tokio::time::Instant::now());
        if let Some(registered) = &self.registered {
            let taken = now.at.saturating_duration_since(started.at);
            registered.store.record(taken.as_secs_f64());
        }
        now
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn store_time(&self, _started: Started) -> Started {
        Started {}
    }
}

/// A clock reading for the histograms; empty (and no clock read) without the feature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Started {
    #[cfg(feature = "metrics")]
    at: tokio::time::Instant,
}

impl Started {
    /// Now (no clock read without the feature).
    #[inline(always)]
    pub(crate) fn now() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            at: tokio::time::Instant::now(),
        }
    }

    /// A reading taken anyway (the claim's lease starts there): no second clock read.
    #[inline(always)]
    pub(crate) fn at(_at: tokio::time::Instant) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            at: _at,
        }
    }
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

/// How one item of a Meta POST ended (the `outcome` label of `vobiz_webhook_meta_items_total`).
#[cfg(feature = "meta")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum ItemOutcome {
    /// The handler answered 2xx.
    Handled,
    /// Done already: not run again.
    Duplicate,
    /// Being handled by another POST.
    InFlight,
    /// The handler answered non-2xx or failed.
    Failed,
    /// The store failed, or the handler outlived its lease.
    Unavailable,
    /// Outside the replay window: not run, not a failure.
    Skipped,
}

/// The Meta layer's metric handles (feature `metrics`), registered once per layer: items by
/// outcome, POSTs by outcome, and the same handler and store histograms as the Vobiz layer.
#[cfg(feature = "meta")]
#[derive(Clone, Debug, Default)]
pub(crate) struct MetaMetrics {
    #[cfg(feature = "metrics")]
    registered: Option<std::sync::Arc<MetaRegistered>>,
}

#[cfg(all(feature = "meta", feature = "metrics"))]
#[derive(Debug)]
struct MetaRegistered {
    /// Indexed by `ItemOutcome as usize`.
    items: [metrics::Counter; 6],
    handler: metrics::Histogram,
    store: metrics::Histogram,
}

#[cfg(feature = "meta")]
impl MetaMetrics {
    /// Registers every handle with the recorder installed now.
    #[cfg(feature = "metrics")]
    pub(crate) fn register() -> Self {
        const NAME: &str = "vobiz_webhook_meta_items_total";
        Self {
            registered: Some(std::sync::Arc::new(MetaRegistered {
                items: [
                    metrics::counter!(NAME, "outcome" => "handled"),
                    metrics::counter!(NAME, "outcome" => "duplicate"),
                    metrics::counter!(NAME, "outcome" => "in_flight"),
                    metrics::counter!(NAME, "outcome" => "failed"),
                    metrics::counter!(NAME, "outcome" => "unavailable"),
                    metrics::counter!(NAME, "outcome" => "skipped"),
                ],
                handler: metrics::histogram!("vobiz_webhook_handler_seconds"),
                store: metrics::histogram!("vobiz_webhook_store_seconds"),
            })),
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn register() -> Self {
        Self {}
    }

    /// Counts one item.
    #[cfg(feature = "metrics")]
    pub(crate) fn item(&self, outcome: ItemOutcome) {
        if let Some(registered) = &self.registered {
            registered.items[outcome as usize].increment(1);
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn item(&self, _outcome: ItemOutcome) {}

    /// Counts one POST's answer: `handled`, `failed` (an item's handler), `rejected` or
    /// `unavailable` (with the reason). Rare enough to look the counter up each time.
    #[cfg(feature = "metrics")]
    pub(crate) fn post(&self, outcome: &'static str, reason: Option<&'static str>) {
        const NAME: &str = "vobiz_webhook_meta_posts_total";
        match reason {
            Some(reason) => {
                metrics::counter!(NAME, "outcome" => outcome, "reason" => reason).increment(1);
            }
            None => metrics::counter!(NAME, "outcome" => outcome).increment(1),
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn post(&self, _outcome: &'static str, _reason: Option<&'static str>) {}

    /// Records the time since `started` of an item's handler.
    #[cfg(feature = "metrics")]
    pub(crate) fn handler_time(&self, started: Started) {
        if let Some(registered) = &self.registered {
            registered
                .handler
                .record(started.at.elapsed().as_secs_f64());
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn handler_time(&self, _started: Started) {}

    /// Records the time since `started` of an item's claim.
    #[cfg(feature = "metrics")]
    pub(crate) fn store_time(&self, started: Started) {
        if let Some(registered) = &self.registered {
            registered.store.record(started.at.elapsed().as_secs_f64());
        }
    }

    #[cfg(not(feature = "metrics"))]
    #[inline(always)]
    pub(crate) fn store_time(&self, _started: Started) {}
}
