//! Per-event handler registration: one ordinary axum handler per event type.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::handler::Handler;
use axum_core::extract::Request;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use tower_service::Service;

use crate::envelope::EventType;
use crate::extract::MissingVobizLayer;
use crate::verified::VerifiedEvent;

type BoxFuture = crate::future::BoxFuture<Response>;

/// A handler with its extractor tuple `T` erased, so handlers of any signature share one map.
trait ErasedHandler<S>: Send + Sync {
    fn call(&self, request: Request, state: S) -> BoxFuture;
}

struct Erased<H, T> {
    handler: H,
    _extractors: PhantomData<fn() -> T>,
}

impl<H, T, S> ErasedHandler<S> for Erased<H, T>
where
    H: Handler<T, S>,
    T: 'static,
    S: 'static,
{
    fn call(&self, request: Request, state: S) -> BoxFuture {
        Box::pin(self.handler.clone().call(request, state))
    }
}

/// A handler whose state was supplied by [`VobizRouter::with_state`].
struct WithState<S> {
    handler: Arc<dyn ErasedHandler<S>>,
    state: S,
}

impl<S: Clone + Send + Sync + 'static> ErasedHandler<()> for WithState<S> {
    fn call(&self, request: Request, (): ()) -> BoxFuture {
        self.handler.call(request, self.state.clone())
    }
}

type Route<S> = Arc<dyn ErasedHandler<S>>;

/// Dispatches each verified delivery to the handler registered for its event type.
///
/// Handlers are ordinary axum handlers: any extractors ([`State`](axum::extract::State),
/// headers, [`VerifiedEvent`], [`VobizEvent`](crate::VobizEvent), the narrow event kinds). The
/// router reads the event type the layer verified, so it sits behind
/// [`VobizWebhookLayer`](crate::VobizWebhookLayer); without it every request answers 500
/// naming the fix.
///
/// Precedence: a handler for one `call.<event>` beats [`on_call`](Self::on_call), which beats the
/// fallback. The default fallback answers 200 and logs the event at `info`, so event types added
/// later are acknowledged and not retried forever.
///
/// ```
/// use axum::{extract::State, routing::post, Router};
/// use vobiz_webhooks::{VerifiedEvent, VobizRouter, VobizWebhookLayer};
///
/// #[derive(Clone)]
/// struct AppState { /* db pool, queue, ... */ }
///
/// async fn on_message(State(_app): State<AppState>, event: VerifiedEvent) { /* ... */ }
/// async fn on_status(event: VerifiedEvent) { /* ... */ }
/// async fn on_connect(event: VerifiedEvent) { /* ... */ }
/// async fn on_any_call(event: VerifiedEvent) { /* ... */ }
///
/// let events = VobizRouter::new()
///     .on_message(on_message)         // message.inbound
///     .on_status(on_status)           // message.status
///     .on("call.connect", on_connect) // one call event
///     .on_call(on_any_call);          // every other call.*
///
/// let app: Router = Router::new()
///     .route(
///         "/webhooks/vobiz",
///         post(events).layer(VobizWebhookLayer::new("your-shared-secret")),
///     )
///     .with_state(AppState {});
/// ```
pub struct VobizRouter<S = ()> {
    message: Option<Route<S>>,
    status: Option<Route<S>>,
    calls: HashMap<Box<str>, Route<S>>,
    any_call: Option<Route<S>>,
    fallback: Option<Route<S>>,
}

impl<S> Clone for VobizRouter<S> {
    fn clone(&self) -> Self {
        Self {
            message: self.message.clone(),
            status: self.status.clone(),
            calls: self.calls.clone(),
            any_call: self.any_call.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S> Default for VobizRouter<S> {
    fn default() -> Self {
        Self {
            message: None,
            status: None,
            calls: HashMap::new(),
            any_call: None,
            fallback: None,
        }
    }
}

impl<S> fmt::Debug for VobizRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut calls: Vec<&str> = self.calls.keys().map(AsRef::as_ref).collect();
        calls.sort_unstable();
        f.debug_struct("VobizRouter")
            .field("message", &self.message.is_some())
            .field("status", &self.status.is_some())
            .field("calls", &calls)
            .field("any_call", &self.any_call.is_some())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

fn erase<H, T, S>(handler: H) -> Route<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: 'static,
{
    Arc::new(Erased {
        handler,
        _extractors: PhantomData,
    })
}

impl<S> VobizRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// A router with no handlers: every event goes to the default fallback (200, logged).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles `message.inbound`.
    #[must_use]
    pub fn on_message<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.message = Some(erase(handler));
        self
    }

    /// Handles `message.status`.
    #[must_use]
    pub fn on_status<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.status = Some(erase(handler));
        self
    }

    /// Handles one event type by its wire name: `"call.connect"`, `"message.inbound"`, or a type
    /// this crate does not know yet. Beats [`on_call`](Self::on_call) for that call event.
    #[must_use]
    pub fn on<H, T>(mut self, event_type: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        match EventType::parse(event_type) {
            EventType::MessageInbound => self.message = Some(erase(handler)),
            EventType::MessageStatus => self.status = Some(erase(handler)),
            EventType::Call(_) | EventType::Unknown(_) => {
                self.calls.insert(event_type.into(), erase(handler));
            }
        }
        self
    }

    /// Handles every `call.*` event that has no handler of its own.
    #[must_use]
    pub fn on_call<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.any_call = Some(erase(handler));
        self
    }

    /// Handles every event no other handler takes (default: 200, logged at `info`).
    #[must_use]
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.fallback = Some(erase(handler));
        self
    }

    /// Supplies the state, giving a router that needs none: a tower [`Service`] of its own.
    #[must_use]
    pub fn with_state<S2>(self, state: S) -> VobizRouter<S2>
    where
        S2: Send + 'static,
    {
        let bind = |route: Route<S>| -> Route<S2> {
            let bound: Arc<dyn ErasedHandler<()>> = Arc::new(WithState {
                handler: route,
                state: state.clone(),
            });
            erase(StatelessRoute(bound))
        };
        VobizRouter {
            message: self.message.map(bind),
            status: self.status.map(bind),
            calls: self
                .calls
                .into_iter()
                .map(|(name, route)| (name, bind(route)))
                .collect(),
            any_call: self.any_call.map(bind),
            fallback: self.fallback.map(bind),
        }
    }

    fn route_for(&self, event_type: &EventType) -> Option<&Route<S>> {
        match event_type {
            EventType::MessageInbound => self.message.as_ref(),
            EventType::MessageStatus => self.status.as_ref(),
            EventType::Call(name) => self.calls.get(name.as_str()).or(self.any_call.as_ref()),
            EventType::Unknown(name) => self.calls.get(name.as_str()),
        }
        .or(self.fallback.as_ref())
    }

    fn dispatch(&self, request: Request, state: S) -> BoxFuture {
        let Some(event) = request.extensions().get::<VerifiedEvent>() else {
            return Box::pin(std::future::ready(MissingVobizLayer.into_response()));
        };
        match self.route_for(event.event_type()) {
            Some(route) => route.call(request, state),
            None => {
                tracing::info!(
                    event_id = event.event_id(),
                    event_type = event.event_type().as_str(),
                    "no handler for this Vobiz event; acknowledged"
                );
                Box::pin(std::future::ready(StatusCode::OK.into_response()))
            }
        }
    }
}

/// A state-bound route seen as a handler of any state (the state is already inside).
#[derive(Clone)]
struct StatelessRoute(Arc<dyn ErasedHandler<()>>);

impl<S2> Handler<(), S2> for StatelessRoute
where
    S2: Send + 'static,
{
    type Future = BoxFuture;

    fn call(self, request: Request, _state: S2) -> Self::Future {
        self.0.call(request, ())
    }
}

/// The router is itself an axum handler, so `post(router)` mounts it and axum supplies the state.
impl<S> Handler<(), S> for VobizRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    type Future = BoxFuture;

    fn call(self, request: Request, state: S) -> Self::Future {
        self.dispatch(request, state)
    }
}

/// A stateless router is a tower service. Like axum's own router it is always ready: handlers
/// are called fresh per request, so there is no inner readiness to wait for.
impl<B> Service<http::Request<B>> for VobizRouter<()>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let request = request.map(axum_core::body::Body::new);
        RouterFuture(self.dispatch(request, ()))
    }
}

/// The future [`VobizRouter`] returns as a tower service.
pub struct RouterFuture(BoxFuture);

impl Future for RouterFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for RouterFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterFuture").finish_non_exhaustive()
    }
}
