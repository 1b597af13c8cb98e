//! The publish hook: a tower layer around the handler that publishes after a 2xx.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::hub::LiveHub;
use crate::verified::VerifiedEvent;

/// Publishes every event its inner service (your handler) answered with a 2xx to a
/// [`LiveHub`].
///
/// Place it *inside* [`VobizWebhookLayer`](crate::VobizWebhookLayer), around the handler: the
/// webhook layer verifies and deduplicates first, so a redelivered `event_id` never reaches it,
/// and only what the handler accepted is shown (a refused or failed delivery publishes nothing;
/// Vobiz's retry publishes once it succeeds). Requests without a [`VerifiedEvent`] pass through
/// untouched.
///
/// The same layer feeds the hub in queue mode: wrap the handlers given to the queue's workers
/// (`MemoryQueue::builder().start(LiveLayer::new(hub).layer(handlers))`), and each event is
/// published when an attempt succeeds — once, since a failed attempt publishes nothing.
///
/// On an axum handler (or a [`VobizRouter`](crate::VobizRouter), itself a handler) use
/// [`Handler::layer`](axum::handler::Handler::layer), which keeps the error type fixed:
///
/// ```
/// use axum::{handler::Handler, routing::post, Router};
/// use vobiz_webhooks::live::{LiveHub, LiveLayer};
/// use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
///
/// async fn handle(event: VobizEvent) { /* store it */ }
///
/// let hub = LiveHub::new();
/// let app: Router = Router::new().route(
///     "/webhooks/vobiz",
///     // Inside the webhook layer, around the handler: it sees the handler's status.
///     post(handle.layer(LiveLayer::new(hub.clone())))
///         .layer(VobizWebhookLayer::new("your-shared-secret")),
/// );
/// ```
#[derive(Clone, Debug)]
pub struct LiveLayer {
    hub: LiveHub,
}

impl LiveLayer {
    /// Publishes to `hub`.
    pub fn new(hub: LiveHub) -> Self {
        Self { hub }
    }
}

impl<S> Layer<S> for LiveLayer {
    type Service = Live<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Live {
            inner,
            hub: self.hub.clone(),
        }
    }
}

/// The service of [`LiveLayer`]: calls the inner service, publishes on a 2xx.
#[derive(Clone, Debug)]
pub struct Live<S> {
    inner: S,
    hub: LiveHub,
}

impl<S, B, R> Service<Request<B>> for Live<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = LiveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let publish = request
            .extensions()
            .get::<VerifiedEvent>()
            .cloned()
            .map(|event| (self.hub.clone(), event));
        LiveFuture {
            inner: self.inner.call(request),
            publish,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Live`]: the inner service's, publishing when it resolves with a 2xx.
    pub struct LiveFuture<F> {
        #[pin]
        inner: F,
        publish: Option<(LiveHub, VerifiedEvent)>,
    }
}

impl<F, R, E> Future for LiveFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((hub, event))) = (&output, this.publish.take()) {
            if response.status().is_success() {
                hub.publish(&event);
            }
        }
        Poll::Ready(output)
    }
}

impl<F> std::fmt::Debug for LiveFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFuture").finish_non_exhaustive()
    }
}
