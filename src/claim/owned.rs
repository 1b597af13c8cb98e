//! The claim a delivery's handler may own, and how it is settled.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use super::background::SettleStore;
use crate::dedup::{ClaimToken, EventKey, StoreError, StoreErrorKind};
use crate::future::{deadline_after, poll_once, timeout_unless_ready, ReadyOrBoxed};

/// The claim of the delivery being handled, in the request extensions while the inner service
/// runs (absent when the layer runs fail-open without a claim).
///
/// Leave it alone and the layer settles the claim from the response status. [`take`] it to settle
/// the claim yourself, later: the layer then does nothing, and an [`OwnedClaim`] dropped without
/// being settled releases itself.
///
/// [`take`]: ClaimHandle::take
#[derive(Clone)]
pub struct ClaimHandle {
    slot: Arc<Mutex<Option<OwnedClaim>>>,
}

impl ClaimHandle {
    pub(crate) fn new(claim: OwnedClaim) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Some(claim))),
        }
    }

    /// Takes the claim over; `None` when someone already took it.
    pub fn take(&self) -> Option<OwnedClaim> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl fmt::Debug for ClaimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let claim = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ClaimHandle")
            .field("claim", &*claim)
            .finish()
    }
}

/// A fresh claim on one `event_id`, owned by whoever handles the event.
///
/// Settle it with [`complete`](Self::complete) once the handler succeeded, or
/// [`release`](Self::release) so a redelivery runs the handler again. Dropped unsettled, it is
/// released in a spawned task (when a Tokio runtime is there; otherwise it expires with its
/// lease). [`into_parts`](Self::into_parts) hands key and token to code that settles through the
/// store directly, e.g. a worker in another process.
pub struct OwnedClaim {
    store: Arc<dyn SettleStore>,
    key: EventKey,
    token: ClaimToken,
    /// Whether the claim still needs settling (false once settled or handed out).
    armed: bool,
    ttl: Duration,
    timeout: Duration,
    /// Dropped unsettled: complete (the work succeeded, the settling did not finish) or release.
    complete_on_drop: bool,
}

impl OwnedClaim {
    pub(crate) fn new(
        store: Arc<dyn SettleStore>,
        key: EventKey,
        token: ClaimToken,
        ttl: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            key,
            token,
            armed: true,
            ttl,
            timeout,
            complete_on_drop: false,
        }
    }

    /// The store key of the claimed `event_id`.
    pub fn key(&self) -> &EventKey {
        &self.key
    }

    /// The token that owns the claim, without giving the claim up: to record it (e.g. in a
    /// queue entry) before deciding whether to [`into_parts`](Self::into_parts) or
    /// [`release`](Self::release).
    pub fn token(&self) -> &ClaimToken {
        &self.token
    }

    /// How long the event is remembered once completed: the layer's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Marks the event done for the layer's TTL. `Ok(false)` when the claim was no longer ours
    /// (the lease ran out and another delivery took it over).
    ///
    /// # Errors
    ///
    /// The store's error, or a timeout after the layer's store timeout.
    pub async fn complete(mut self) -> Result<bool, StoreError> {
        // Dropped from here on (the caller gave up waiting), the claim is still completed.
        self.complete_on_drop = true;
        self.settle().await
    }

    /// Forgets the claim so the next delivery of the event runs the handler again.
    ///
    /// # Errors
    ///
    /// The store's error, or a timeout after the layer's store timeout.
    pub async fn release(mut self) -> Result<bool, StoreError> {
        self.complete_on_drop = false;
        self.settle().await
    }

    /// The layer's settlement: done when `complete`, released otherwise. Polled once here: an
    /// in-process store is done then. A networked store has had the command sent, and its answer
    /// (bounded by the store timeout) is awaited in a background task, so the response does not
    /// wait for it. Outcomes are logged.
    pub(crate) async fn settle_behind_response(mut self, complete: bool) {
        // Settled here from now on, not by this claim's drop.
        self.armed = false;
        let ttl = complete.then_some(self.ttl);
        let mut operation = ask(&*self.store, self.key, self.token.clone(), ttl);
        if let Poll::Ready(outcome) = poll_once(std::pin::Pin::new(&mut operation)).await {
            log_settlement(&self.key, complete, &outcome);
            return;
        }
        let (key, timeout) = (self.key, self.timeout);
        if tokio::runtime::Handle::try_current().is_err() {
            // No runtime, so no task and no timer either: wait here.
            let outcome = operation.await;
            log_settlement(&key, complete, &outcome);
            return;
        }
        let rest = async move {
            let outcome = with_timeout(timeout, operation).await;
            log_settlement(&key, complete, &outcome);
        };
        let _ = self.store.background().spawn(rest);
    }

    /// Key and token, without settling: the caller settles through a store of its own.
    pub fn into_parts(mut self) -> (EventKey, ClaimToken, Duration) {
        self.armed = false;
        (self.key, self.token.clone(), self.ttl)
    }

    async fn settle(&mut self) -> Result<bool, StoreError> {
        let complete = self.complete_on_drop.then_some(self.ttl);
        let outcome = settle(
            &*self.store,
            self.key,
            self.token.clone(),
            complete,
            self.timeout,
        )
        .await;
        // Only now: dropped while the store call was pending, the claim settles again on drop.
        self.armed = false;
        log_settlement(&self.key, self.complete_on_drop, &outcome);
        outcome
    }
}

async fn settle(
    store: &dyn SettleStore,
    key: EventKey,
    token: ClaimToken,
    complete: Option<Duration>,
    timeout: Duration,
) -> Result<bool, StoreError> {
    with_timeout(timeout, ask(store, key, token, complete)).await
}

/// The store call that completes the claim (for `ttl`) or, without one, releases it.
fn ask(
    store: &dyn SettleStore,
    key: EventKey,
    token: ClaimToken,
    complete: Option<Duration>,
) -> ReadyOrBoxed<Result<bool, StoreError>> {
    match complete {
        Some(ttl) => store.complete(key, token, ttl),
        None => store.release(key, token),
    }
}

/// A store call bounded by `timeout`; running out is a store error.
///
/// An in-process store answers on the first poll, and then no clock is read and no timer made.
pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let operation = std::pin::pin!(operation);
    match timeout_unless_ready(operation, || deadline_after(timeout)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(StoreError::from_kind(StoreErrorKind::Timeout)),
    }
}

fn log_settlement(key: &EventKey, completed: bool, outcome: &Result<bool, StoreError>) {
    match (completed, outcome) {
        (_, Ok(true)) => {}
        (true, Ok(false)) => tracing::warn!(
            %key,
            "handler outlived its lease: another delivery may have run it too; not marked done"
        ),
        (false, Ok(false)) => tracing::debug!(%key, "claim already expired before release"),
        (true, Err(error)) => tracing::error!(
            %key,
            %error,
            "could not mark the event done; a retry after the lease runs the handler again"
        ),
        (false, Err(error)) => tracing::warn!(
            %key,
            %error,
            "could not release the claim; a retry waits for the lease to expire"
        ),
    }
}

impl Drop for OwnedClaim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let token = self.token.clone();
        let store = Arc::clone(&self.store);
        let key = self.key;
        let complete = self.complete_on_drop.then_some(self.ttl);
        let timeout = self.timeout;
        let settling = async move {
            let outcome = settle(&*store, key, token, complete, timeout).await;
            log_settlement(&key, complete.is_some(), &outcome);
        };
        if self.store.background().spawn(settling).is_err() {
            tracing::warn!(
                %key,
                "no Tokio runtime to settle the claim; it expires with its lease"
            );
        }
    }
}

impl fmt::Debug for OwnedClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedClaim")
            .field("key", &self.key)
            .field("armed", &self.armed)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
