//! The hub: sequence numbers, the replay buffer, the subscribers and their bounded queues.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::access::Access;
use super::frame::{Frame, StreamEvent};
use crate::verified::VerifiedEvent;

/// The default number of frames the replay buffer keeps (1024).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1024;

/// The default age after which a frame leaves the replay buffer (5 minutes).
pub const DEFAULT_REPLAY_AGE: Duration = Duration::from_secs(5 * 60);

/// The default number of frames a client may have waiting before it is sent `resync` and
/// disconnected (256).
pub const DEFAULT_CLIENT_QUEUE: usize = 256;

/// The live stream's hub: publishes handled events as frames to every subscribed client.
///
/// Cloning is cheap and gives another handle to the same hub. Publishing takes one short lock
/// and never waits: each client has a bounded queue, and a client whose queue is full is sent
/// `resync` and dropped instead of slowing the webhook path. Feed it with
/// [`LiveLayer`](super::LiveLayer) (after your handler succeeded); serve it with
/// [`LiveEndpoints`](super::LiveEndpoints).
///
/// ```
/// use vobiz_webhooks::live::{Access, LiveHub, Next};
/// use vobiz_webhooks::VerifiedEvent;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let hub = LiveHub::builder().first_id(1).build();
/// let mut client = hub.subscribe(Access::all(), None);
///
/// let body = br#"{"event_id":"evt_1","event_type":"message.inbound","account_id":"acc_1",
///   "payload":{"messages":[{"from":"918888888888","id":"wamid.1","type":"text","text":{"body":"hi"}}]}}"#;
/// let event = VerifiedEvent::from_trusted_body(bytes::Bytes::from_static(body)).unwrap();
/// assert_eq!(hub.publish(&event), Some(1));
///
/// let Some(Next::Frame(frame)) = client.recv().await else { panic!("a frame") };
/// assert_eq!(frame.kind().as_str(), "message.created");
/// assert!(frame.json().contains(r#""text":"hi""#));
/// # }
/// ```
#[derive(Clone)]
pub struct LiveHub {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    replay_capacity: usize,
    replay_age: Duration,
    client_queue: usize,
}

struct State {
    /// The id of the next frame.
    next_id: u64,
    /// The id of the newest frame no longer in the replay buffer (`first_id - 1` at start).
    evicted_through: u64,
    replay: VecDeque<(Instant, Arc<Frame>)>,
    subscribers: Vec<Subscriber>,
    next_key: u64,
    closed: bool,
}

struct Subscriber {
    key: u64,
    access: Access,
    queue: mpsc::Sender<Arc<Frame>>,
    overflowed: Arc<AtomicBool>,
}

/// Configures a [`LiveHub`]: the replay buffer's bounds, each client's queue, the first id.
///
/// ```
/// use std::time::Duration;
/// use vobiz_webhooks::live::LiveHub;
///
/// let hub = LiveHub::builder()
///     .replay_capacity(4096)
///     .replay_age(Duration::from_secs(60))
///     .client_queue(64)
///     .build();
/// # let _ = hub;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LiveHubBuilder {
    replay_capacity: usize,
    replay_age: Duration,
    client_queue: usize,
    first_id: Option<u64>,
}

impl LiveHubBuilder {
    /// How many frames the replay buffer keeps for clients that resume (default 1024; 0 turns
    /// resuming off: every resume gets `resync`).
    pub fn replay_capacity(mut self, frames: usize) -> Self {
        self.replay_capacity = frames;
        self
    }

    /// How long a frame stays in the replay buffer (default 5 minutes).
    pub fn replay_age(mut self, age: Duration) -> Self {
        self.replay_age = age;
        self
    }

    /// How many frames one client may have waiting (default 256, at least 1). A client whose
    /// queue is full when a frame is published is sent `resync` and disconnected.
    pub fn client_queue(mut self, frames: usize) -> Self {
        self.client_queue = frames.max(1);
        self
    }

    /// The id of the first frame. By default the hub's start time in microseconds since the
    /// Unix epoch, so ids keep increasing across restarts (a client resuming from an id of the
    /// previous process gets `resync`, not someone else's frames) and stay below 2⁵³, exact as
    /// JavaScript numbers, until the year 2255. At least 1.
    pub fn first_id(mut self, id: u64) -> Self {
        self.first_id = Some(id.max(1));
        self
    }

    /// The hub.
    pub fn build(self) -> LiveHub {
        let first_id = self.first_id.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |since| u64::try_from(since.as_micros()).unwrap_or(1))
                .max(1)
        });
        LiveHub {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_id: first_id,
                    evicted_through: first_id - 1,
                    replay: VecDeque::new(),
                    subscribers: Vec::new(),
                    next_key: 0,
                    closed: false,
                }),
                replay_capacity: self.replay_capacity,
                replay_age: self.replay_age,
                client_queue: self.client_queue,
            }),
        }
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveHub {
    /// A hub with the default bounds ([`DEFAULT_REPLAY_CAPACITY`], [`DEFAULT_REPLAY_AGE`],
    /// [`DEFAULT_CLIENT_QUEUE`]).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a hub.
    pub fn builder() -> LiveHubBuilder {
        LiveHubBuilder {
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            replay_age: DEFAULT_REPLAY_AGE,
            client_queue: DEFAULT_CLIENT_QUEUE,
            first_id: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state consistent (every change
        // is one push or removal), so a poisoned lock is used as it is.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes a handled event: returns the frame's id, or `None` for an event type that is
    /// not streamed (see [`StreamEvent::of`]) or a [closed](Self::close) hub.
    ///
    /// Never waits: the frame goes into the replay buffer and into the queue of every client
    /// whose [`Access`] allows it; a client whose queue is full is sent `resync` and dropped.
    /// [`LiveLayer`](super::LiveLayer) calls this after a 2xx; call it yourself only for events
    /// your code handled (the stream promises "handled, once").
    pub fn publish(&self, event: &VerifiedEvent) -> Option<u64> {
        let kind = StreamEvent::of(event.event_type())?;
        let now = Instant::now();
        let mut state = self.state();
        if state.closed {
            return None;
        }
        let id = state.next_id;
        state.next_id = id.saturating_add(1);
        let frame = Arc::new(Frame::new(id, kind, event.clone()));
        if self.shared.replay_capacity > 0 {
            state.replay.push_back((now, Arc::clone(&frame)));
        } else {
            state.evicted_through = id;
        }
        self.evict(&mut state, now);
        state.subscribers.retain(|subscriber| {
            if !subscriber.access.allows(&frame) {
                return true;
            }
            match subscriber.queue.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.overflowed.store(true, Ordering::Release);
                    tracing::debug!(
                        subscriber = subscriber.access.subscriber_name(),
                        "live client too slow: sent resync and dropped"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Some(id)
    }

    /// Drops frames over the count or older than the age, remembering the newest dropped id.
    fn evict(&self, state: &mut State, now: Instant) {
        while let Some((at, frame)) = state.replay.front() {
            let over = state.replay.len() > self.shared.replay_capacity;
            if !over && now.saturating_duration_since(*at) <= self.shared.replay_age {
                break;
            }
            state.evicted_through = frame.id();
            state.replay.pop_front();
        }
    }

    /// Subscribes a client that `access` allows, resuming after frame `since` when given.
    ///
    /// - `None`: only frames published from now on.
    /// - `Some(id)`: the frames after `id` still in the replay buffer, then live frames. When
    ///   frames after `id` already left the buffer, or `id` is newer than anything this hub
    ///   published (another process's id), the client gets `resync` first, then live frames.
    /// - `Some(0)`: whatever the replay buffer still holds, then live frames (a page that has
    ///   no state of its own yet).
    ///
    /// Replay and live frames join without a gap or a duplicate (both are taken under the
    /// publish lock).
    pub fn subscribe(&self, access: Access, since: Option<u64>) -> Subscription {
        let (sender, receiver) = mpsc::channel(self.shared.client_queue);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut state = self.state();
        self.evict(&mut state, Instant::now());
        let last = state.next_id - 1;
        let mut replay = VecDeque::new();
        let mut resync = false;
        match since {
            None => {}
            Some(since) if since != 0 && (since > last || since < state.evicted_through) => {
                resync = true;
            }
            Some(since) => replay.extend(
                state
                    .replay
                    .iter()
                    .map(|(_, frame)| frame)
                    .filter(|frame| frame.id() > since && access.allows(frame))
                    .cloned(),
            ),
        }
        let key = state.next_key;
        state.next_key += 1;
        let closed = state.closed;
        if !closed {
            state.subscribers.push(Subscriber {
                key,
                access,
                queue: sender,
                overflowed: Arc::clone(&overflowed),
            });
        }
        drop(state);
        Subscription {
            hub: self.clone(),
            key,
            resync,
            replay,
            receiver,
            overflowed,
            ended: false,
        }
    }

    /// How many clients are subscribed.
    pub fn subscribers(&self) -> usize {
        self.state().subscribers.len()
    }

    /// The id the next published frame will get.
    pub fn next_id(&self) -> u64 {
        self.state().next_id
    }

    /// Ends every subscription (their streams close after what they already hold) and refuses
    /// new frames: call it on shutdown, so open SSE responses and WebSockets finish and a
    /// graceful shutdown does not wait for them.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.subscribers.clear();
    }

    fn unsubscribe(&self, key: u64) {
        self.state()
            .subscribers
            .retain(|subscriber| subscriber.key != key);
    }
}

impl fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("LiveHub")
            .field("next_id", &state.next_id)
            .field("replay", &state.replay.len())
            .field("subscribers", &state.subscribers.len())
            .field("replay_capacity", &self.shared.replay_capacity)
            .field("replay_age", &self.shared.replay_age)
            .field("client_queue", &self.shared.client_queue)
            .finish()
    }
}

/// What a [`Subscription`] yields next.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Next {
    /// A frame.
    Frame(Arc<Frame>),
    /// The client missed frames: it must reload its state. After an overflow the subscription
    /// ends right after this; after a resume gap live frames follow.
    Resync,
}

/// One client's view of a [`LiveHub`]: replayed frames, then live ones, in id order.
///
/// Dropping it unsubscribes the client.
pub struct Subscription {
    hub: LiveHub,
    key: u64,
    resync: bool,
    replay: VecDeque<Arc<Frame>>,
    receiver: mpsc::Receiver<Arc<Frame>>,
    overflowed: Arc<AtomicBool>,
    ended: bool,
}

impl Subscription {
    /// The next frame or `resync`; `None` once the subscription ended (after an overflow's
    /// `resync`, or when the hub was closed).
    pub async fn recv(&mut self) -> Option<Next> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// What is ready now, without waiting.
    pub fn try_recv(&mut self) -> Option<Next> {
        let waker = std::task::Waker::noop();
        match self.poll_recv(&mut Context::from_waker(waker)) {
            Poll::Ready(next) => next,
            Poll::Pending => None,
        }
    }

    /// Polls for the next frame (cancel-safe: nothing is lost when the poll is abandoned).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Next>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut self.resync) {
            return Poll::Ready(Some(Next::Resync));
        }
        if let Some(frame) = self.replay.pop_front() {
            return Poll::Ready(Some(Next::Frame(frame)));
        }
        let received = std::task::ready!(self.receiver.poll_recv(cx));
        if self.overflowed.load(Ordering::Acquire) {
            // Whatever is still queued is stale: the client reloads its state instead.
            self.ended = true;
            return Poll::Ready(Some(Next::Resync));
        }
        match received {
            Some(frame) => Poll::Ready(Some(Next::Frame(frame))),
            None => {
                self.ended = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.unsubscribe(self.key);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("replay", &self.replay.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
