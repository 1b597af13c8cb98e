//! A claim's whole life: claim, lease, settle, release, and the store work left running behind
//! responses.
//!
//! The layer claims an `event_id` before it calls the inner service and settles the claim
//! afterwards: done on 2xx, released otherwise. An inner service that finishes the work later
//! (a queue that answers at once and runs the handler in a worker) takes the claim over from the
//! [`ClaimHandle`] in the request extensions and settles it itself; the layer then leaves it alone.
//!
//! This file is the layer's side: [`Dedup::claim`] takes a claim within the store timeout and
//! [`Lease`] holds it while the inner service runs. [`owned`] is the claim a handler may own;
//! [`background`] the store work that outlives its request.

mod background;
mod owned;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::dedup::{Claim, DedupStore, EventKey, StoreError, StoreErrorKind};
use crate::future::{deadline_after, timeout_unless_ready};

pub(crate) use self::background::Background;
use self::background::{in_process, SettleStore, Settler};
pub use self::owned::{ClaimHandle, OwnedClaim};

/// What the claim needs of the layer's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms {
    /// How long a claim holds before another delivery may take it over.
    pub(crate) lease: Duration,
    /// How long a completed id is remembered.
    pub(crate) ttl: Duration,
    /// How long the store may take per operation.
    pub(crate) store_timeout: Duration,
}

/// The store, shared by every clone of a layer: typed for the claim on the hot path, erased for
/// the [`OwnedClaim`] that settles it.
pub(crate) struct Dedup<D> {
    store: Arc<D>,
    settler: Arc<dyn SettleStore>,
}

impl<D: DedupStore> Dedup<D> {
    pub(crate) fn new(store: D) -> Self {
        let store = Arc::new(store);
        Self {
            settler: Arc::new(Settler {
                store: Arc::clone(&store),
                background: Background::default(),
            }),
            store,
        }
    }
}

impl<D> Clone for Dedup<D> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            settler: Arc::clone(&self.settler),
        }
    }
}

impl<D> Dedup<D> {
    /// Where this store's work that outlives its request runs.
    pub(crate) fn background(&self) -> &Background {
        self.settler.background()
    }
}

/// What a claim on a delivery's `event_id` found.
pub(crate) enum Claimed {
    /// Ours: handle the delivery, then settle the lease.
    Fresh(Lease),
    /// Being handled by another delivery right now.
    InFlight,
    /// Handled already.
    Done,
}

impl<D: DedupStore> Dedup<D> {
    /// Claims `key` for one lease, within the store timeout. Takes the request's own clone of
    /// the store, which a fresh claim keeps for its settling.
    ///
    /// The lease runs from `now`, read before the claim is sent, so the handler's deadline falls
    /// before the store lets anyone else claim the id.
    pub(crate) async fn claim(
        self,
        key: EventKey,
        terms: Terms,
        now: Instant,
    ) -> Result<Claimed, StoreError> {
        let deadline = now.checked_add(terms.lease);
        Ok(match self.claim_within(key, terms).await? {
            Claim::Fresh(token) => Claimed::Fresh(Lease {
                handle: ClaimHandle::new(OwnedClaim::new(
                    self.settler,
                    key,
                    token,
                    terms.ttl,
                    terms.store_timeout,
                )),
                deadline,
            }),
            Claim::InFlight => Claimed::InFlight,
            Claim::Done => Claimed::Done,
        })
    }

    /// Claims `key` within the store timeout. A claim that times out may still land later (a Redis
    /// command queued while the connection reconnects runs once it is back): its future is kept
    /// alive in a background task, for at most one lease, and a late `Fresh` claim is released at
    /// once, so the sender's retry is not answered 409 until the orphaned lease expires.
    async fn claim_within(&self, key: EventKey, terms: Terms) -> Result<Claim, StoreError> {
        let lease = terms.lease;
        if let Some(memory) = in_process(&*self.store) {
            return memory.claim_now(&key, lease);
        }
        let claiming = {
            let store = Arc::clone(&self.store);
            async move { store.claim(&key, lease).await }
        };
        let mut claiming = Box::pin(claiming);
        // An in-process store answers on the first poll: then no clock is read, no timer made.
        let timeout = terms.store_timeout;
        match timeout_unless_ready(claiming.as_mut(), || deadline_after(timeout)).await {
            Ok(claim) => claim,
            Err(_) => {
                let store = Arc::clone(&self.store);
                // Without a runtime there is no timer either, so this point is never reached then.
                let _ = self.background().spawn(async move {
                    if let Ok(Ok(Claim::Fresh(token))) = tokio::time::timeout(lease, claiming).await
                    {
                        tracing::debug!(%key, "releasing a claim that landed after its timeout");
                        let _ = DedupStore::release(&*store, &key, &token).await;
                    }
                });
                Err(StoreError::from_kind(StoreErrorKind::Timeout))
            }
        }
    }
}

/// A fresh claim held while the inner service runs: its handle (which the request extensions
/// carry) and the end of its lease.
pub(crate) struct Lease {
    handle: ClaimHandle,
    /// `None` when the lease reaches past the clock's range: then it never ends here.
    deadline: Option<Instant>,
}

/// The inner service outlived the lease and was cancelled.
pub(crate) struct LeaseExpired;

impl Lease {
    /// The handle to put in the request extensions.
    pub(crate) fn handle(&self) -> &ClaimHandle {
        &self.handle
    }

    /// Gives the claim up after [`within_lease`] ran out of lease.
    ///
    /// The lease is over, so the release is fenced and nearly always a no-op; the unsettled
    /// claim's drop sends it off the response path. (A claim the inner service took over was
    /// dropped with its future, or is its own.)
    pub(crate) fn expire(self) {
        drop(self.handle.take());
    }

    /// Settles the claim, unless the inner service took it over: done when `success`, released
    /// otherwise so the retry runs the handler. Failures are logged where they happen.
    ///
    /// Inline when the store answers at once (an in-process store, so a retry that follows the
    /// response always finds the event done); a networked store's acknowledgement is awaited
    /// behind the response, and a retry on the same connection is queued after it.
    pub(crate) async fn settle(self, success: bool) {
        if let Some(claim) = self.handle.take() {
            claim.settle_behind_response(success).await;
        }
    }
}

/// Runs the inner service's `call` until it answers or, when there is a `lease`, the lease ends.
///
/// A handler must not outlive its claim: once the lease is over a retry may claim the id,
/// and two runs of one event would overlap. Cancel it instead ([`Lease::expire`]); the claim
/// is released and the sender retries. A handler that answers on its first poll gets no timer.
pub(crate) async fn within_lease<F: Future + ?Sized>(
    lease: Option<&Lease>,
    call: Pin<&mut F>,
) -> Result<F::Output, LeaseExpired> {
    match lease.and_then(|lease| lease.deadline) {
        Some(deadline) => timeout_unless_ready(call, || deadline)
            .await
            .map_err(|_elapsed| LeaseExpired),
        None => Ok(call.await),
    }
}
