//! A store wrapper that counts every call, so a test can assert "0 store writes".

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vobiz_webhooks::{Claim, ClaimToken, DedupStore, EventKey, StoreError};

/// Counts every store call, so a test can assert "0 store writes".
#[derive(Clone, Debug, Default)]
pub struct CountingStore<D> {
    pub inner: D,
    pub counts: Arc<Counts>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub claims: AtomicUsize,
    pub fresh: AtomicUsize,
    pub completes: AtomicUsize,
    pub completed: AtomicUsize,
    pub releases: AtomicUsize,
    pub renews: AtomicUsize,
}

impl Counts {
    /// Every call that may write (claim, complete, release).
    pub fn writes(&self) -> usize {
        self.claims.load(Ordering::SeqCst)
            + self.completes.load(Ordering::SeqCst)
            + self.releases.load(Ordering::SeqCst)
    }
}

impl<D> CountingStore<D> {
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }
}

impl<D: DedupStore> DedupStore for CountingStore<D> {
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        let counts = Arc::clone(&self.counts);
        counts.claims.fetch_add(1, Ordering::SeqCst);
        let call = self.inner.claim(key, lease);
        async move {
            let claim = call.await;
            if matches!(claim, Ok(Claim::Fresh(_))) {
                counts.fresh.fetch_add(1, Ordering::SeqCst);
            }
            claim
        }
    }

    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let counts = Arc::clone(&self.counts);
        counts.completes.fetch_add(1, Ordering::SeqCst);
        let call = self.inner.complete(key, token, ttl);
        async move {
            let done = call.await;
            if matches!(done, Ok(true)) {
                counts.completed.fetch_add(1, Ordering::SeqCst);
            }
            done
        }
    }

    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.counts.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, token)
    }

    fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.counts.renews.fetch_add(1, Ordering::SeqCst);
        self.inner.renew(key, token, lease)
    }
}
