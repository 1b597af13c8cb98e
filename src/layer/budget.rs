//! The budget for bodies not yet verified: what the layer may buffer across all requests before it
//! knows who sent them.
//!
//! The body limit bounds one request; without a shared bound, N clients that each send all but
//! the last byte of a body just under the limit make the server hold N × limit bytes, no secret
//! needed. Every request therefore reserves its body's room before a byte is read, and gives it
//! back once the signature is checked (verified or not): the bytes a handler then holds were
//! signed by Vobiz.
//!
//! What a request reserves is its declared `Content-Length`, or the body limit when it declares
//! none (a chunked body may grow to the limit). Reserving the whole size up front, rather than
//! byte by byte as the body arrives, refuses a flood's large bodies before they are read. And
//! bodies over [`SMALL_BODY`] may hold at most 7/8 of the budget between them: a flood of large
//! uploads, however well its sizes pack, always leaves room for webhook-sized deliveries (a few
//! KiB), which keep being received while the flood is refused.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The largest body that may use the last eighth of the budget (64 KiB): a webhook's body is a
/// few KiB, a flood's as large as the limit allows.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// Bytes reserved for bodies not yet verified, shared by every clone of one layer.
#[derive(Clone)]
pub(crate) struct Budget {
    inner: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Shared {
                capacity,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The most bytes reserved at once.
    pub(crate) fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Reserves `bytes`, or `None` when they do not fit beside what is reserved already: within
    /// the whole budget for a body of at most [`SMALL_BODY`], within 7/8 of it for a larger one.
    ///
    /// Any body fits when nothing else is reserved, and one larger than the whole budget then
    /// reserves the whole budget, so it is received eventually (it would otherwise be refused
    /// for ever, and Vobiz retry it for ever).
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let shared = &self.inner;
        // At least one byte for a non-empty body, so that a budget of 0 refuses every body
        // rather than reserving nothing for each.
        let bytes = bytes.min(shared.capacity.max(1));
        let ceiling = if bytes <= SMALL_BODY {
            shared.capacity
        } else {
            shared.capacity - shared.capacity / 8
        };
        shared
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| (used == 0 && shared.capacity > 0) || total <= ceiling)
            })
            .ok()?;
        Some(Reservation {
            shared: Arc::clone(shared),
            bytes,
        })
    }

    /// Bytes reserved right now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("capacity", &self.inner.capacity)
            .field("used", &self.inner.used.load(Ordering::Relaxed))
            .finish()
    }
}

/// Room for one body, given back when dropped.
pub(crate) struct Reservation {
    shared: Arc<Shared>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_within_the_capacity_and_come_back_on_drop() {
        let budget = Budget::new(100);
        let a = budget.try_reserve(60).expect("fits");
        assert!(budget.try_reserve(41).is_none(), "61 + 41 > 100");
        let b = budget.try_reserve(40).expect("fits exactly");
        assert_eq!(budget.used(), 100);
        assert!(budget.try_reserve(1).is_none());
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(budget.try_reserve(60).is_some());
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_body_larger_than_the_budget_takes_the_whole_budget_when_it_is_free() {
        let budget = Budget::new(100);
        let whole = budget.try_reserve(1_000).expect("the whole budget");
        assert_eq!(budget.used(), 100);
        assert!(budget.try_reserve(1).is_none());
        drop(whole);
        let small = budget.try_reserve(1).expect("fits");
        assert!(budget.try_reserve(1_000).is_none(), "only 99 left");
        drop(small);
        let large = Budget::new(2 * SMALL_BODY);
        let whole = large
            .try_reserve(10 * SMALL_BODY)
            .expect("nothing else reserved");
        assert_eq!(large.used(), 2 * SMALL_BODY);
        drop(whole);
    }

    #[test]
    fn large_bodies_leave_the_last_eighth_to_small_ones() {
        let budget = Budget::new(8 * SMALL_BODY * 2);
        let large = SMALL_BODY + 1;
        let mut held = Vec::new();
        while let Some(reservation) = budget.try_reserve(large) {
            held.push(reservation);
        }
        assert!(budget.used() <= budget.capacity() - budget.capacity() / 8);
        let mut small = Vec::new();
        while let Some(reservation) = budget.try_reserve(1_500) {
            small.push(reservation);
        }
        assert!(!small.is_empty(), "webhook-sized bodies still fit");
        assert!(budget.used() <= budget.capacity());
    }

    #[test]
    fn a_budget_of_zero_refuses_every_non_empty_body() {
        let budget = Budget::new(0);
        assert!(budget.try_reserve(1).is_none());
        assert!(budget.try_reserve(1_000).is_none());
        assert!(
            budget.try_reserve(0).is_some(),
            "an empty body needs no room"
        );
    }

    #[test]
    fn clones_share_one_budget() {
        let budget = Budget::new(10);
        let clone = budget.clone();
        let _held = budget.try_reserve(10).expect("fits");
        assert!(clone.try_reserve(1).is_none());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_capacity() {
        let budget = Budget::new(1_000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let budget = budget.clone();
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(reservation) = budget.try_reserve(300) {
                            assert!(budget.used() <= 1_000);
                            drop(reservation);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.used(), 0);
    }
}
