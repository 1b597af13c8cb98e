//! The future the service returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::Response;

use crate::future::ReadyOrBoxed;

/// The future [`VobizWebhook`](super::VobizWebhook) returns.
pub struct ResponseFuture<E> {
    // Refused from the headers alone: resolved, nothing boxed.
    inner: ReadyOrBoxed<Result<Response, E>>,
}

impl<E> ResponseFuture<E> {
    pub(super) fn new(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            inner: ReadyOrBoxed::boxed(future),
        }
    }

    pub(super) fn ready(response: Response) -> Self {
        Self {
            inner: ReadyOrBoxed::ready(Ok(response)),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
