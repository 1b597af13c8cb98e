//! [`RedisStore`]: one memory for every replica, in Redis (or Valkey): a single node or a Redis
//! Cluster, recognised at connect ([`RedisConfig`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError};

use super::{millis_ceil, Claim, ClaimToken, DedupStore, EventKey, StoreError, StoreErrorKind};

pub(crate) mod connection;

#[cfg(feature = "queue")]
pub(crate) use connection::require_redis_7;
#[cfg(all(test, feature = "queue"))]
pub(crate) use connection::same_slot;
pub(crate) use connection::{Connection, Connector};
pub use connection::{RedisConfig, RedisTopology};

/// A store in Redis, shared by every replica of the service. Feature `redis`; needs Redis 7 or
/// later (or Valkey), for `SET … NX GET`.
///
/// **Topologies**: a single node, or a Redis Cluster given by any one node's URL (recognised
/// with `INFO` at connect) or by several comma-separated seed URLs; [`RedisConfig`] for the
/// rest. A Sentinel-managed primary is not supported (see [`RedisConfig`]).
///
/// One key per id, `prefix` + 32 hex digits of the [`EventKey`], and every command and script
/// touches that one key, so on a cluster each id lives on the master that owns its slot and
/// the ids spread over every master:
///
/// | call | Redis |
/// |---|---|
/// | claim | `SET key token NX PX lease GET`: one round trip; nil → fresh, `done` → done, a token → in flight |
/// | complete | a one-key script: if the value is our token, `SET key done PX ttl` |
/// | release | a one-key script: if the value is our token, `DEL key` |
/// | renew | a one-key script: if the value is our token, `PEXPIRE key lease` |
///
/// Tokens are 128 random bits, so replicas never mistake each other's claims. The scripts are sent
/// with `EVAL`, so each settlement is one command even after a Redis restart emptied the script
/// cache. The connection reconnects on its own after Redis restarts or the connection drops
/// (on a cluster it follows `MOVED` and refreshes the slot map after a failover); meanwhile
/// calls fail with [`StoreErrorKind::Unavailable`] or [`StoreErrorKind::Timeout`] (the layer
/// answers 503). Replication is asynchronous: a claim acknowledged by a master that dies before
/// its replica got it is forgotten by the promoted replica (see RELIABILITY.md for the
/// measured figure).
///
/// ```no_run
/// use std::time::Duration;
/// use vobiz_webhooks::{Claim, DedupStore, EventKey, RedisStore};
///
/// # async fn run() -> Result<(), vobiz_webhooks::StoreError> {
/// // One node, or any node of a cluster, or "redis://a:7000,redis://b:7000".
/// let store = RedisStore::new("redis://127.0.0.1:6379").await?.prefix("myapp:vobiz:");
/// let key = EventKey::from_event_id("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f");
/// if let Claim::Fresh(token) = store.claim(&key, Duration::from_secs(60)).await? {
///     // … handle the event …
///     store.complete(&key, &token, Duration::from_secs(86_400)).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Arc<str>,
}

/// The value of a completed id. Tokens are 32 hex digits, so they never equal it.
const DONE: &str = "done";

// Sent whole with `EVAL` (Redis caches the compiled script by its SHA-1), not `EVALSHA`: one
// command whatever the server's script cache holds, so a settlement is always a single command,
// queued before whatever the connection sends next (after a Redis restart `EVALSHA` would fail
// with NOSCRIPT and need two more round trips, letting a retry's claim overtake it).
const COMPLETE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0";

const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0";

const RENEW: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://`
    /// where the `redis` crate's TLS features are on): one node, any node of a Redis Cluster
    /// (recognised), or several comma-separated seed URLs of a cluster. The same as
    /// [`connect`](Self::connect) with [`RedisConfig::new`]`(url)`.
    ///
    /// The connection is tuned to fail fast, since a webhook sender retries anyway: 1 s to
    /// connect, 1 s per answer, and while Redis is away each call makes at most two quick
    /// reconnection attempts (about 50 ms, then 100 ms apart) before it fails.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the URL is invalid or the first connection fails, and one of kind
    /// [`Protocol`](crate::StoreErrorKind::Protocol) naming the problem when the server is older
    /// than Redis 7.0 (every claim would fail there) or is a Sentinel.
    pub async fn new(url: &str) -> Result<RedisStore, StoreError> {
        Self::connect(&RedisConfig::new(url)).await
    }

    /// Connects as `config` says: its URLs, topology, timeouts and retries.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and a [`Protocol`](crate::StoreErrorKind::Protocol) error naming
    /// the node when the topology found is not the one asked for (a cluster node under
    /// [`RedisTopology::Standalone`], a standalone one among several URLs or under
    /// [`RedisTopology::Cluster`]).
    pub async fn connect(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        let connector = Connector::connect(config).await?;
        let connection = connector.open(None).await?;
        Ok(Self::with_connection(connection))
    }

    /// A store over a connection manager you configured (timeouts, retries, TLS, auth).
    ///
    /// Unlike [`new`](Self::new) it does not ask the server its version: the store needs
    /// Redis ≥ 7.0 (or Valkey), whose `SET … NX GET` the claim is.
    #[must_use]
    pub fn from_manager(connection: ConnectionManager) -> RedisStore {
        Self::with_connection(Connection::Single(connection))
    }

    /// A store over a Redis Cluster connection you configured
    /// (`redis::cluster::ClusterClient`), without the version check of [`new`](Self::new).
    #[must_use]
    pub fn from_cluster(connection: ClusterConnection) -> RedisStore {
        Self::with_connection(Connection::Cluster(connection))
    }

    fn with_connection(connection: Connection) -> RedisStore {
        RedisStore {
            connection,
            prefix: Arc::from(super::DEFAULT_PREFIX),
        }
    }

    /// The topology this store talks to: [`RedisTopology::Standalone`] or
    /// [`RedisTopology::Cluster`].
    pub fn topology(&self) -> RedisTopology {
        self.connection.topology()
    }

    /// Puts every key under `prefix` instead of [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX).
    #[must_use]
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> RedisStore {
        self.prefix = Arc::from(prefix.as_ref());
        self
    }

    /// The Redis key of `key`: the prefix and 32 lowercase hex digits.
    pub fn redis_key(&self, key: &EventKey) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.topology())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A fresh claim token from the operating system's generator; a failing generator fails the claim.
fn new_token() -> Result<ClaimToken, StoreError> {
    crate::random::u128()
        .map(ClaimToken::from_u128)
        .map_err(|error| StoreError::new(StoreErrorKind::Other, error))
}

/// A claim token as Redis stores it: 32 lowercase hex digits.
pub(crate) fn token_text(token: &ClaimToken) -> String {
    format!("{:032x}", token.as_u128())
}

/// Redis wants a positive expiry that does not overflow its clock; 2^42 ms is 139 years.
fn millis(duration: Duration) -> u64 {
    millis_ceil(duration).clamp(1, 1 << 42)
}

/// A Redis failure as a [`StoreError`] of the matching kind (the one mapping for every Redis
/// user in the crate: the dedup store and the queue).
pub(crate) fn store_error(error: RedisError) -> StoreError {
    let kind = if error.is_timeout() {
        StoreErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_refusal() || error.is_connection_dropped()
    {
        StoreErrorKind::Unavailable
    } else {
        match error.kind() {
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType | ErrorKind::Server(_) => {
                StoreErrorKind::Protocol
            }
            ErrorKind::ClusterConnectionNotFound => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        }
    };
    StoreError::new(kind, error)
}

impl DedupStore for RedisStore {
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        let mut connection = self.connection.clone();
        let redis_key = self.redis_key(key);
        async move {
            let token = new_token()?;
            let previous: Option<String> = redis::cmd("SET")
                .arg(&redis_key)
                .arg(token_text(&token))
                .arg("NX")
                .arg("PX")
                .arg(millis(lease))
                .arg("GET")
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            Ok(match previous.as_deref() {
                None => Claim::Fresh(token),
                Some(DONE) => Claim::Done,
                Some(_) => Claim::InFlight,
            })
        }
    }

    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut connection = self.connection.clone();
        let redis_key = self.redis_key(key);
        let token = token_text(token);
        async move {
            let done: i64 = redis::cmd("EVAL")
                .arg(COMPLETE)
                .arg(1)
                .arg(redis_key)
                .arg(token)
                .arg(DONE)
                .arg(millis(ttl))
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            Ok(done == 1)
        }
    }

    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut connection = self.connection.clone();
        let redis_key = self.redis_key(key);
        let token = token_text(token);
        async move {
            let released: i64 = redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(redis_key)
                .arg(token)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            Ok(released == 1)
        }
    }

    fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let mut connection = self.connection.clone();
        let redis_key = self.redis_key(key);
        let token = token_text(token);
        async move {
            let renewed: i64 = redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(redis_key)
                .arg(token)
                .arg(millis(lease))
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            Ok(renewed == 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_digits_and_never_done() {
        let token = new_token().expect("random");
        let text = token_text(&token);
        assert_eq!(text.len(), 32);
        assert_ne!(text, DONE);
        assert_ne!(new_token().expect("random"), new_token().expect("random"));
        assert_eq!(token_text(&ClaimToken::from_u128(1)).len(), 32);
    }

    #[test]
    fn expiries_are_positive_milliseconds() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1_500)), 2);
        assert_eq!(millis(Duration::from_secs(60)), 60_000);
    }
}
