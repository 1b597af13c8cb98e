//! Who may connect, and which frames they see.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::request::Parts;

use super::frame::Frame;

/// What one connected client may see: every frame, some accounts' frames, or what a filter
/// allows. Made by an [`Authorize`] hook for each connection.
///
/// ```
/// use vobiz_webhooks::live::Access;
///
/// let everything = Access::all().subscriber("ops-dashboard");
/// let one_account = Access::accounts(["acc_1"]).subscriber("alice");
/// let one_number = Access::filter(|frame| frame.phone_number_id() == Some("1234567890"));
/// # let _ = (everything, one_account, one_number);
/// ```
#[derive(Clone)]
pub struct Access {
    subscriber: Arc<str>,
    filter: Filter,
}

#[derive(Clone)]
enum Filter {
    All,
    Accounts(Arc<[Box<str>]>),
    Custom(Arc<dyn Fn(&Frame) -> bool + Send + Sync>),
}

impl Access {
    /// Every frame.
    pub fn all() -> Self {
        Self {
            subscriber: Arc::from(""),
            filter: Filter::All,
        }
    }

    /// The frames of these `account_id`s (a frame without an `account_id` is not shown).
    pub fn accounts<I, A>(accounts: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Box<str>>,
    {
        Self {
            subscriber: Arc::from(""),
            filter: Filter::Accounts(accounts.into_iter().map(Into::into).collect()),
        }
    }

    /// The frames `allow` returns `true` for. It runs under the hub's publish lock, once per
    /// client and frame: keep it cheap (compare ids; [`Frame::phone_number_id`] parses the
    /// payload once per frame, shared by every filter).
    pub fn filter<F>(allow: F) -> Self
    where
        F: Fn(&Frame) -> bool + Send + Sync + 'static,
    {
        Self {
            subscriber: Arc::from(""),
            filter: Filter::Custom(Arc::new(allow)),
        }
    }

    /// Names the client in logs (a user id, a session id; never a token).
    #[must_use]
    pub fn subscriber(mut self, name: impl AsRef<str>) -> Self {
        self.subscriber = Arc::from(name.as_ref());
        self
    }

    /// The name given with [`subscriber`](Self::subscriber) (empty by default).
    pub fn subscriber_name(&self) -> &str {
        &self.subscriber
    }

    /// Whether this client sees `frame`.
    pub fn allows(&self, frame: &Frame) -> bool {
        match &self.filter {
            Filter::All => true,
            Filter::Accounts(accounts) => frame
                .account_id()
                .is_some_and(|account| accounts.iter().any(|allowed| **allowed == *account)),
            Filter::Custom(allow) => allow(frame),
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filter = match &self.filter {
            Filter::All => "all",
            Filter::Accounts(_) => "accounts",
            Filter::Custom(_) => "custom",
        };
        f.debug_struct("Access")
            .field("subscriber", &self.subscriber)
            .field("filter", &filter)
            .finish()
    }
}

/// Decides who may connect to the live endpoints and what they see: `Some(access)` serves the
/// connection, `None` answers 401.
///
/// A closure `Fn(&Parts) -> Option<Access>` is one (headers, query, cookies are all in the
/// request [`Parts`]). For a check that waits (a session store), implement the trait.
///
/// ```
/// use vobiz_webhooks::live::{Access, Authorize};
///
/// struct Sessions; // e.g. a handle to your session store
///
/// impl Authorize for Sessions {
///     async fn authorize(&self, request: &http::request::Parts) -> Option<Access> {
///         let cookie = request.headers.get(http::header::COOKIE)?.to_str().ok()?;
///         // … look the session up, then:
///         let account = cookie.strip_prefix("session=")?;
///         Some(Access::accounts([account]).subscriber(account))
///     }
/// }
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// The access of the client making `request`, or `None` to refuse it (401).
    fn authorize(&self, request: &Parts) -> impl Future<Output = Option<Access>> + Send;
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> Option<Access> + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> impl Future<Output = Option<Access>> + Send {
        std::future::ready(self(request))
    }
}

/// The hook of endpoints nobody configured: refuses every connection (401).
#[derive(Clone, Copy, Debug, Default)]
pub struct RefuseAll;

impl Authorize for RefuseAll {
    fn authorize(&self, _request: &Parts) -> impl Future<Output = Option<Access>> + Send {
        std::future::ready(None)
    }
}

/// The value of query parameter `name` in `request`'s URI, percent-decoded (`+` as a space).
///
/// For hooks that read a token from the query string, where a browser's `WebSocket` and
/// `EventSource` must put it (they cannot set headers).
///
/// ```
/// use vobiz_webhooks::live::query_param;
///
/// let (parts, ()) = http::Request::get("/live?since=7&token=a%2Fb").body(()).unwrap().into_parts();
/// assert_eq!(query_param(&parts, "token").as_deref(), Some("a/b"));
/// assert_eq!(query_param(&parts, "since").as_deref(), Some("7"));
/// assert_eq!(query_param(&parts, "nope"), None);
/// ```
pub fn query_param(request: &Parts, name: &str) -> Option<String> {
    let query = request.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key)? == name).then(|| decode(value)).flatten()
    })
}

/// Percent-decoding of a query component; `None` when it is not UTF-8 once decoded.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(decoded) => {
                        out.push(decoded);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
