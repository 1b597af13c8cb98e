//! Small future plumbing shared by the layer, the claim, the router and the queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::error::Elapsed;
use tokio::time::Instant;

/// The error type inner services and bodies are converted into.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Polls `future` once without waiting; `Pending` leaves it to be polled again.
///
/// The layer's fast paths: what answers on this poll (an in-process store, a body already
/// received, a synchronous handler) needs no clock read and no timer.
pub(crate) async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Runs `future` to completion or until the deadline `deadline()` names.
///
/// The future is polled once before the clock is read: what is ready then (an in-process store,
/// a body already received, a handler that does not wait) gets no timer. The timer, when one is
/// needed, is boxed, so it is kept out of the state of every request that never waits.
pub(crate) async fn timeout_unless_ready<F: Future + ?Sized>(
    mut future: Pin<&mut F>,
    deadline: impl FnOnce() -> Instant,
) -> Result<F::Output, Elapsed> {
    if let Poll::Ready(output) = poll_once(future.as_mut()).await {
        return Ok(output);
    }
    Box::pin(tokio::time::timeout_at(deadline(), future)).await
}

/// `now + after`, or the far future when that overflows the clock.
pub(crate) fn deadline_after(after: std::time::Duration) -> Instant {
    let now = Instant::now();
    // About 30 years: tokio's own "far future".
    now.checked_add(after)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(86_400 * 365 * 30))
}

/// A future that is either already resolved or boxed: the services' answers refused up front
/// cost no allocation.
pub(crate) enum ReadyOrBoxed<T> {
    /// Resolved at once; `None` once taken.
    Ready(Option<T>),
    /// Still running.
    Boxed(BoxFuture<T>),
}

impl<T> ReadyOrBoxed<T> {
    pub(crate) fn ready(value: T) -> Self {
        Self::Ready(Some(value))
    }

    pub(crate) fn boxed(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self::Boxed(Box::pin(future))
    }
}

// Neither variant is ever pinned in place: the value is moved out, the future is boxed.
impl<T> Unpin for ReadyOrBoxed<T> {}

impl<T> Future for ReadyOrBoxed<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::Ready(value) => match value.take() {
                Some(value) => Poll::Ready(value),
                None => panic!("future polled after completion"),
            },
            Self::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for ReadyOrBoxed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(_) => f.write_str("Ready"),
            Self::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

/// Aborts a spawned task when the side waiting for it goes away (shutdown, a timeout, a drop).
#[cfg(feature = "queue")]
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

#[cfg(feature = "queue")]
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_needs_no_deadline() {
        let ready = std::pin::pin!(async { 7 });
        let output = timeout_unless_ready(ready, || panic!("no clock read for a ready future"));
        assert_eq!(output.await.ok(), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_is_bounded_by_the_deadline() {
        let waiting = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        let bounded = timeout_unless_ready(waiting, || deadline_after(Duration::from_secs(1)));
        assert!(bounded.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_that_finishes_in_time_is_returned() {
        let waiting = std::pin::pin!(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            3
        });
        let bounded = timeout_unless_ready(waiting, || deadline_after(Duration::from_secs(1)));
        assert_eq!(bounded.await.ok(), Some(3));
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let _ = deadline_after(Duration::MAX);
    }

    #[tokio::test]
    async fn ready_or_boxed_yields_either_value() {
        assert_eq!(ReadyOrBoxed::ready(1).await, 1);
        assert_eq!(ReadyOrBoxed::boxed(async { 2 }).await, 2);
    }
}
