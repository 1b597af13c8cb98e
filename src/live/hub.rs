//! The hub: sequence numbers, one ring of frames (the replay buffer and every client's
//! bounded queue at once), and each client's cursor into it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
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
/// Cloning is cheap and gives another handle to the same hub. Publishing takes one short lock,
/// appends the frame to one ring and never waits, whatever the number of clients: each client
/// reads the ring through its own cursor, and a client more than
/// [`client_queue`](LiveHubBuilder::client_queue) frames behind is sent `resync` and dropped
/// instead of slowing the webhook path. Parked clients are woken by a task of their own (the
/// publisher wakes one task), started with the first subscription made inside a Tokio runtime. Feed it with
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
    /// Wakes the fan-out task, which wakes the parked clients off the publishing thread.
    fanout: Arc<Notify>,
    replay_capacity: usize,
    replay_age: Duration,
    client_queue: usize,
}

struct State {
    /// The id of the next frame.
    next_id: u64,
    /// The newest frames, ids contiguous: `ring[i].id() == front id + i`. Holds at most
    /// `max(replay_capacity, client_queue)` frames, none older than `replay_age` after a
    /// publish.
    ring: VecDeque<(Instant, Arc<Frame>)>,
    /// Clients parked on `recv`, by key: woken when a frame is published.
    waiters: HashMap<u64, Waker>,
    subscribers: usize,
    next_key: u64,
    closed: bool,
    /// Whether a fan-out task is running (else a publish wakes the parked clients itself).
    fanout_alive: bool,
}

impl State {
    fn front_id(&self) -> u64 {
        self.ring
            .front()
            .map_or(self.next_id, |(_, frame)| frame.id())
    }

    fn frame(&self, id: u64) -> Option<&Arc<Frame>> {
        let index = usize::try_from(id.checked_sub(self.front_id())?).ok()?;
        self.ring.get(index).map(|(_, frame)| frame)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The fan-out task holds a weak handle: let it see the hub is gone and end.
        self.fanout.notify_one();
    }
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
    /// resuming off: every resume that missed a frame gets `resync`).
    pub fn replay_capacity(mut self, frames: usize) -> Self {
        self.replay_capacity = frames;
        self
    }

    /// How long a frame stays in the replay buffer (default 5 minutes).
    pub fn replay_age(mut self, age: Duration) -> Self {
        self.replay_age = age;
        self
    }

    /// How far behind one client may fall, in frames published (those its [`Access`] hides
    /// count too; default 256, at least 1). A client further behind is sent `resync` and
    /// disconnected when it next reads. The ring holds
    /// `max(replay_capacity, client_queue)` frames.
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
                    ring: VecDeque::new(),
                    waiters: HashMap::new(),
                    subscribers: 0,
                    next_key: 0,
                    closed: false,
                    fanout_alive: false,
                }),
                fanout: Arc::new(Notify::new()),
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
        self.shared.state()
    }

    /// Publishes a handled event: returns the frame's id, or `None` for an event type that is
    /// not streamed (see [`StreamEvent::of`]) or a [closed](Self::close) hub.
    ///
    /// Never waits, and costs the same however many clients are connected: the frame is
    /// appended to the hub's ring (each client reads it from there at its own pace, through
    /// its [`Access`]) and one task is told to wake the clients parked on it. A client more
    /// than [`client_queue`](LiveHubBuilder::client_queue) frames behind is sent `resync` and
    /// dropped when it next reads. [`LiveLayer`](super::LiveLayer) calls this after a 2xx;
    /// call it yourself only for events your code handled (the stream promises "handled,
    /// once").
    pub fn publish(&self, event: &VerifiedEvent) -> Option<u64> {
        let kind = StreamEvent::of(event.event_type())?;
        let now = Instant::now();
        let mut state = self.state();
        if state.closed {
            return None;
        }
        let id = state.next_id;
        state.next_id = id.saturating_add(1);
        state
            .ring
            .push_back((now, Arc::new(Frame::new(id, kind, event.clone()))));
        self.shared.evict(&mut state, now);
        if state.waiters.is_empty() {
            return Some(id);
        }
        if state.fanout_alive {
            drop(state);
            self.shared.fanout.notify_one();
        } else {
            let waiters = std::mem::take(&mut state.waiters);
            drop(state);
            waiters.into_values().for_each(Waker::wake);
        }
        Some(id)
    }

    /// Subscribes a client that `access` allows, resuming after frame `since` when given.
    ///
    /// - `None`: only frames published from now on.
    /// - `Some(id)`: the frames after `id` still in the replay buffer (the last
    ///   [`replay_capacity`](LiveHubBuilder::replay_capacity) frames, none older than
    ///   [`replay_age`](LiveHubBuilder::replay_age)), then live frames. When frames after `id`
    ///   already left it, or `id` is newer than anything this hub published (another
    ///   process's id), the client gets `resync` first, then live frames.
    /// - `Some(0)`: whatever the replay buffer still holds, then live frames (a page that has
    ///   no state of its own yet).
    ///
    /// Replay and live frames join without a gap or a duplicate: the client reads one ring.
    pub fn subscribe(&self, access: Access, since: Option<u64>) -> Subscription {
        let mut state = self.state();
        self.shared.evict(&mut state, Instant::now());
        if !state.fanout_alive && tokio::runtime::Handle::try_current().is_ok() {
            state.fanout_alive = true;
            tokio::spawn(fan_out(
                Arc::downgrade(&self.shared),
                Arc::clone(&self.shared.fanout),
            ));
        }
        let next_id = state.next_id;
        let replay_from =
            state
                .front_id()
                .max(next_id.saturating_sub(
                    u64::try_from(self.shared.replay_capacity).unwrap_or(u64::MAX),
                ));
        let (cursor, resync) = match since {
            None => (next_id, false),
            Some(0) => (replay_from, false),
            Some(since) if since < next_id && since.saturating_add(1) >= replay_from => {
                (since + 1, false)
            }
            Some(_) => (next_id, true),
        };
        let key = state.next_key;
        state.next_key += 1;
        state.subscribers += 1;
        drop(state);
        Subscription {
            hub: self.clone(),
            key,
            access,
            cursor,
            resync,
            ended: false,
        }
    }

    /// How many clients are subscribed (a client that fell too far behind counts until it
    /// reads its `resync`).
    pub fn subscribers(&self) -> usize {
        self.state().subscribers
    }

    /// The id the next published frame will get.
    pub fn next_id(&self) -> u64 {
        self.state().next_id
    }

    /// Ends every subscription (after the frames already published) and refuses new frames:
    /// call it on shutdown, so open SSE responses and WebSockets finish and a graceful
    /// shutdown does not wait for them.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        waiters.into_values().for_each(Waker::wake);
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state consistent (every change
        // is one push, removal or counter step), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops frames over the count or older than the age.
    fn evict(&self, state: &mut State, now: Instant) {
        let capacity = self.replay_capacity.max(self.client_queue);
        while let Some((at, _)) = state.ring.front() {
            let over = state.ring.len() > capacity;
            if !over && now.saturating_duration_since(*at) <= self.replay_age {
                break;
            }
            state.ring.pop_front();
        }
    }
}

/// Wakes the parked clients whenever a frame is published, so the publisher wakes one task
/// instead of every client. Ends when the hub is gone; if the runtime drops it, the hub goes
/// back to waking clients itself (and the next subscriber in a runtime starts a new one).
async fn fan_out(hub: Weak<Shared>, notify: Arc<Notify>) {
    struct Alive(Weak<Shared>);
    impl Drop for Alive {
        fn drop(&mut self) {
            if let Some(shared) = self.0.upgrade() {
                let mut state = shared.state();
                state.fanout_alive = false;
                let waiters = std::mem::take(&mut state.waiters);
                drop(state);
                waiters.into_values().for_each(Waker::wake);
            }
        }
    }
    let _alive = Alive(hub.clone());
    loop {
        notify.notified().await;
        let Some(shared) = hub.upgrade() else { return };
        let waiters = std::mem::take(&mut shared.state().waiters);
        drop(shared);
        waiters.into_values().for_each(Waker::wake);
    }
}

impl fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("LiveHub")
            .field("next_id", &state.next_id)
            .field("buffered", &state.ring.len())
            .field("subscribers", &state.subscribers)
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

/// One client's view of a [`LiveHub`]: replayed frames, then live ones, in id order, each
/// through the client's [`Access`].
///
/// Dropping it unsubscribes the client.
pub struct Subscription {
    hub: LiveHub,
    key: u64,
    access: Access,
    /// The id of the next frame to read.
    cursor: u64,
    resync: bool,
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
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
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
        let shared = Arc::clone(&self.hub.shared);
        let mut state = shared.state();
        let behind = state.next_id.saturating_sub(self.cursor);
        let queue = u64::try_from(shared.client_queue).unwrap_or(u64::MAX);
        if behind > queue || (behind > 0 && self.cursor < state.front_id()) {
            // Too slow: what it would read next is stale or gone; it reloads its state.
            tracing::debug!(
                subscriber = self.access.subscriber_name(),
                behind,
                "live client too slow: sent resync and dropped"
            );
            self.end(&mut state);
            return Poll::Ready(Some(Next::Resync));
        }
        while self.cursor < state.next_id {
            let id = self.cursor;
            self.cursor += 1;
            if let Some(frame) = state.frame(id) {
                if self.access.allows(frame) {
                    return Poll::Ready(Some(Next::Frame(Arc::clone(frame))));
                }
            }
        }
        if state.closed {
            self.end(&mut state);
            return Poll::Ready(None);
        }
        match state.waiters.get(&self.key) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => {
                state.waiters.insert(self.key, cx.waker().clone());
            }
        }
        Poll::Pending
    }

    fn end(&mut self, state: &mut State) {
        if !self.ended {
            self.ended = true;
            state.waiters.remove(&self.key);
            state.subscribers = state.subscribers.saturating_sub(1);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.hub.shared);
        let mut state = shared.state();
        self.end(&mut state);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("cursor", &self.cursor)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
