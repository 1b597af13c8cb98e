//! Store work that outlives its request, and the store behind a pointer that does it.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dedup::{ClaimToken, DedupStore, EventKey, MemoryStore, StoreError};
use crate::future::ReadyOrBoxed;

/// A [`DedupStore`] behind a pointer, settling claims in futures that own what they need
/// (answered at once, with nothing boxed, by the in-process store).
pub(crate) trait SettleStore: Send + Sync {
    fn complete(
        &self,
        key: EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> ReadyOrBoxed<Result<bool, StoreError>>;
    fn release(&self, key: EventKey, token: ClaimToken) -> ReadyOrBoxed<Result<bool, StoreError>>;
    /// Where store work that outlives its request runs.
    fn background(&self) -> &Background;
}

/// The store of one layer (and its clones) with the tracker of its background work.
pub(crate) struct Settler<D> {
    pub(crate) store: Arc<D>,
    pub(crate) background: Background,
}

impl<D: DedupStore> SettleStore for Settler<D> {
    fn complete(
        &self,
        key: EventKey,
        token: ClaimToken,
        ttl: Duration,
    ) -> ReadyOrBoxed<Result<bool, StoreError>> {
        if let Some(memory) = in_process(&*self.store) {
            return ReadyOrBoxed::ready(Ok(memory.complete_now(&key, &token, ttl)));
        }
        let store = Arc::clone(&self.store);
        ReadyOrBoxed::boxed(async move { DedupStore::complete(&*store, &key, &token, ttl).await })
    }

    fn release(&self, key: EventKey, token: ClaimToken) -> ReadyOrBoxed<Result<bool, StoreError>> {
        if let Some(memory) = in_process(&*self.store) {
            return ReadyOrBoxed::ready(Ok(memory.release_now(&key, &token)));
        }
        let store = Arc::clone(&self.store);
        ReadyOrBoxed::boxed(async move { DedupStore::release(&*store, &key, &token).await })
    }

    fn background(&self) -> &Background {
        &self.background
    }
}

/// `store` as the crate's [`MemoryStore`] (or one shared in an `Arc`), when it is one: it
/// answers synchronously, so its claims and settlements need no future (a boxed one each, on
/// every delivery, otherwise). The type check is resolved at compile time for each store type.
pub(crate) fn in_process<D: DedupStore>(store: &D) -> Option<&MemoryStore> {
    let store = store as &dyn Any;
    store.downcast_ref::<MemoryStore>().or_else(|| {
        store
            .downcast_ref::<Arc<MemoryStore>>()
            .map(|shared| &**shared)
    })
}

/// Store work moved off the response path (settlements behind the response, releases of dropped
/// or late claims), counted so a shutting-down app can wait for it.
#[derive(Clone, Default)]
pub(crate) struct Background(Arc<BackgroundInner>);

#[derive(Default)]
struct BackgroundInner {
    running: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one task from its spawn to its end, or to its drop by a runtime that shuts down.
struct Running(Background);

impl Drop for Running {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        if inner.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            inner.idle.notify_waiters();
        }
    }
}

impl Background {
    /// Runs `work` in a task of the current Tokio runtime; without one, hands it back.
    pub(crate) fn spawn<F>(&self, work: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(work);
        };
        self.0.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(self.clone());
        drop(runtime.spawn(async move {
            let _running = running;
            work.await;
        }));
        Ok(())
    }

    /// Store work running now.
    pub(crate) fn running(&self) -> usize {
        self.0.running.load(Ordering::Acquire)
    }

    /// Resolves once no background work is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a task ending in between still wakes us.
            notified.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_store_is_recognised_alone_or_shared_and_no_other() {
        let memory = MemoryStore::new();
        assert!(std::ptr::eq(in_process(&memory).expect("alone"), &memory));
        let shared = Arc::new(MemoryStore::new());
        assert!(std::ptr::eq(in_process(&shared).expect("shared"), &*shared));
        // Another store type (here an `Arc` of an `Arc`) takes the general path.
        assert!(in_process(&Arc::new(Arc::clone(&shared))).is_none());
    }
}
