//! How [`RedisStore`](super::RedisStore) and [`RedisQueue`](crate::queue::RedisQueue) reach
//! Redis: one node or a Redis Cluster, through one code path.
//!
//! [`RedisConfig`] says where (one URL, or several comma-separated seed URLs) and how (timeouts,
//! reconnection attempts, the topology if it should not be recognised). At connect the first
//! node that answers is asked `INFO`: its version (Redis ≥ 7.0 is required) and whether it is a
//! cluster node (`cluster_enabled:1`). A cluster node, or several URLs, give a Redis Cluster
//! connection (the `redis` crate's `cluster-async`: it follows `MOVED`/`ASK` and refreshes the
//! slot map after a failover); a lone standalone node gives a reconnecting connection manager.
//! Both sit behind one private connection type implementing the crate's
//! [`ConnectionLike`](redis::aio::ConnectionLike), so every command and script is written once.
//!
//! **Sentinel is not supported.** The `redis` crate's async Sentinel client finds the current
//! primary when a connection is made, but nothing moves an open connection to the new primary
//! after a failover (it keeps answering `READONLY`). A Sentinel node's URL is refused at connect
//! with an error saying so, rather than failing every delivery after the first failover.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::store_error;
use crate::dedup::{StoreError, StoreErrorKind};

/// Which kind of Redis deployment a [`RedisConfig`] connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// Recognise it at connect (the default): several URLs, or one node answering
    /// `cluster_enabled:1` to `INFO`, make a cluster; one standalone node makes a single node.
    Auto,
    /// One Redis (or Valkey) server; refused when the node is a cluster node.
    Standalone,
    /// A Redis Cluster, reached through the seed URLs; refused when a seed is not a cluster node.
    Cluster,
}

/// Where and how [`RedisStore`](super::RedisStore) and
/// [`RedisQueue`](crate::queue::RedisQueue) connect: one node, or a Redis Cluster given by one
/// node's URL (recognised) or a list of seed URLs. Feature `redis`.
///
/// **How the topology is chosen.** At connect the first URL that answers is asked `INFO`: its
/// version (Redis ≥ 7.0 is required) and whether it is a cluster node (`cluster_enabled:1`). A
/// cluster node, or several URLs, give a Redis Cluster connection (the `redis` crate's
/// `cluster-async`: it follows `MOVED`/`ASK` and refreshes the slot map after a failover); a
/// lone standalone node gives a reconnecting connection manager. [`topology`](Self::topology)
/// makes the expectation explicit, and a node that does not match it is refused by name.
///
/// **Sentinel is not supported.** The `redis` crate's async Sentinel client finds the current
/// primary when a connection is made, but nothing moves an open connection to the new primary
/// after a failover (it would keep answering `READONLY`). A Sentinel's URL is refused at
/// connect with an error saying so, rather than failing every delivery after the first
/// failover.
///
/// The defaults fail fast, since a webhook sender retries anyway: 1 s to connect, 1 s per
/// answer, and at most two quick reconnection attempts (about 50 ms, then 100 ms apart) before
/// a call fails.
///
/// ```no_run
/// use std::time::Duration;
/// use vobiz_webhooks::{RedisConfig, RedisStore, RedisTopology};
///
/// # async fn run() -> Result<(), vobiz_webhooks::StoreError> {
/// // Any one node of a cluster is enough; several seeds survive one being down at start.
/// let config = RedisConfig::new("redis://10.0.0.1:7000,redis://10.0.0.2:7000")
///     .topology(RedisTopology::Cluster)
///     .response_timeout(Duration::from_millis(500));
/// let store = RedisStore::connect(&config).await?.prefix("myapp:vobiz:");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    urls: Vec<String>,
    topology: RedisTopology,
    connection_timeout: Duration,
    response_timeout: Duration,
    retries: usize,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry a password: only their count.
        f.debug_struct("RedisConfig")
            .field("urls", &self.urls.len())
            .field("topology", &self.topology)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl RedisConfig {
    /// One URL (`redis://[user:password@]host:port[/db]`), or several separated by commas (the
    /// seed nodes of a cluster). Spaces around them are ignored.
    pub fn new(urls: &str) -> RedisConfig {
        Self::from_urls(urls.split(','))
    }

    /// The seed URLs, one per item (empty items are ignored).
    pub fn from_urls<I, S>(urls: I) -> RedisConfig
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RedisConfig {
            urls: urls
                .into_iter()
                .map(|url| url.as_ref().trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect(),
            topology: RedisTopology::Auto,
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retries: 2,
        }
    }

    /// The topology to expect (default [`RedisTopology::Auto`]: recognised at connect).
    #[must_use]
    pub fn topology(mut self, topology: RedisTopology) -> RedisConfig {
        self.topology = topology;
        self
    }

    /// How long connecting to one node may take (default 1 s).
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.connection_timeout = timeout;
        self
    }

    /// How long one answer may take (default 1 s).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.response_timeout = timeout;
        self
    }

    /// Reconnection (single node) or retry (cluster) attempts before a call fails (default 2).
    #[must_use]
    pub fn retries(mut self, retries: usize) -> RedisConfig {
        self.retries = retries;
        self
    }

    /// The seed URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

/// Opens connections of one recognised topology: the store's and queue's one, and each queue
/// worker's own (their reads block).
#[derive(Clone)]
pub(crate) struct Connector {
    target: Target,
    config: RedisConfig,
}

#[derive(Clone)]
enum Target {
    Single(redis::Client),
    Cluster(Vec<redis::ConnectionInfo>),
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("topology", &self.topology())
            .field("config", &self.config)
            .finish()
    }
}

impl Connector {
    /// Asks the first node that answers its version and cluster mode, and settles the topology.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Connector, StoreError> {
        if config.urls.is_empty() {
            return Err(topology_error("no Redis URL given".to_owned()));
        }
        let mut last_error = None;
        let mut probed = None;
        for url in &config.urls {
            match probe(url, config).await {
                Ok(info) => {
                    probed = Some((url, info));
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some((url, info)) = probed else {
            return Err(last_error.unwrap_or_else(|| topology_error("no Redis answered".into())));
        };
        let several = config.urls.len() > 1;
        let cluster = match (config.topology, info.cluster) {
            (RedisTopology::Auto, cluster) => cluster || several,
            (RedisTopology::Standalone, false) if !several => false,
            (RedisTopology::Standalone, false) => {
                return Err(topology_error(
                    "several Redis URLs given with RedisTopology::Standalone: give one".to_owned(),
                ))
            }
            (RedisTopology::Standalone, true) => {
                return Err(topology_error(format!(
                    "{} is a Redis Cluster node (cluster_enabled:1), but RedisTopology::Standalone \
                     was asked for: most keys would be answered MOVED; use RedisTopology::Auto or Cluster",
                    redacted(url)
                )))
            }
            (RedisTopology::Cluster, _) => true,
        };
        if cluster && !info.cluster {
            return Err(topology_error(format!(
                "{} is a standalone Redis (cluster_enabled:0), but a Redis Cluster was expected \
                 (several URLs, or RedisTopology::Cluster): give one URL for a single node",
                redacted(url)
            )));
        }
        let target = if cluster {
            let infos = config
                .urls
                .iter()
                .map(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error)?;
            Target::Cluster(infos)
        } else {
            Target::Single(redis::Client::open(url.as_str()).map_err(store_error)?)
        };
        Ok(Connector {
            target,
            config: config.clone(),
        })
    }

    /// A single node's connector over a client the caller configured (no probe).
    #[cfg(feature = "queue")]
    pub(crate) fn single(client: redis::Client) -> Connector {
        Connector {
            target: Target::Single(client),
            config: RedisConfig::from_urls(std::iter::empty::<&str>()),
        }
    }

    /// What was recognised: [`RedisTopology::Standalone`] or [`RedisTopology::Cluster`].
    pub(crate) fn topology(&self) -> RedisTopology {
        match self.target {
            Target::Single(_) => RedisTopology::Standalone,
            Target::Cluster(_) => RedisTopology::Cluster,
        }
    }

    /// A new connection; `response_timeout` overrides the configured one (a worker's blocking
    /// reads need longer).
    pub(crate) async fn open(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<Connection, StoreError> {
        let config = &self.config;
        let response_timeout = response_timeout.unwrap_or(config.response_timeout);
        match &self.target {
            Target::Single(client) => {
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connection_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(config.retries)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(client.clone(), manager)
                    .await
                    .map(Connection::Single)
                    .map_err(store_error)
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(response_timeout)
                    .retries(u32::try_from(config.retries).unwrap_or(u32::MAX))
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()
                    .map_err(store_error)?;
                client
                    .get_async_connection()
                    .await
                    .map(Connection::Cluster)
                    .map_err(store_error)
            }
        }
    }
}

/// A connection to one node or to a cluster: every command and script of the crate goes
/// through it, written once.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub(crate) fn topology(&self) -> RedisTopology {
        match self {
            Connection::Single(_) => RedisTopology::Standalone,
            Connection::Cluster(_) => RedisTopology::Cluster,
        }
    }
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// What `INFO` said of a node.
#[derive(Debug)]
struct NodeInfo {
    cluster: bool,
}

/// Asks one node `INFO` (on a connection of its own, closed after): refuses an old Redis and a
/// Sentinel, and tells whether it is a cluster node.
async fn probe(url: &str, config: &RedisConfig) -> Result<NodeInfo, StoreError> {
    let client = redis::Client::open(url).map_err(store_error)?;
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connection_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&settings)
        .await
        .map_err(store_error)?;
    let info: String = redis::cmd("INFO")
        .query_async(&mut connection)
        .await
        .map_err(store_error)?;
    read_info(&info)
}

/// The decision of [`probe`] on an `INFO` reply.
fn read_info(info: &str) -> Result<NodeInfo, StoreError> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("redis_mode") == Some("sentinel") {
        return Err(topology_error(
            "this is a Redis Sentinel: vobiz-webhooks does not follow a Sentinel-managed primary \
             (an open connection would stay on the old primary after a failover); give the \
             primary's URL or use a Redis Cluster"
                .to_owned(),
        ));
    }
    check_version(info)?;
    Ok(NodeInfo {
        cluster: field("cluster_enabled") == Some("1"),
    })
}

/// A URL without its password, for error messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn topology_error(text: String) -> StoreError {
    StoreError::new(StoreErrorKind::Protocol, text)
}

/// The oldest Redis the crate works with: 7.0 brought `SET … NX GET` (the claim) and the
/// `XAUTOCLAIM` reply the queue reads.
const MINIMUM_VERSION: (u32, u32) = (7, 0);

/// Asks the server its version and refuses one older than [`MINIMUM_VERSION`], so an old Redis
/// is named at start instead of failing every delivery with 503.
#[cfg(feature = "queue")]
pub(crate) async fn require_redis_7(
    connection: &mut impl redis::aio::ConnectionLike,
) -> Result<(), StoreError> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .map_err(store_error)?;
    check_version(&info)
}

/// The decision of [`require_redis_7`] on an `INFO server` reply.
fn check_version(info: &str) -> Result<(), StoreError> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim);
    let parsed = version.and_then(|version| {
        let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    });
    match parsed {
        Some(found) if found >= MINIMUM_VERSION => Ok(()),
        _ => Err(StoreError::new(
            StoreErrorKind::Protocol,
            format!(
                "Redis {} is too old: vobiz-webhooks needs Redis >= {}.{} (SET NX GET, XAUTOCLAIM)",
                version.unwrap_or("of unknown version"),
                MINIMUM_VERSION.0,
                MINIMUM_VERSION.1
            ),
        )),
    }
}

/// Whether every key is in one Redis Cluster hash slot (a multi-key script needs it).
#[cfg(test)]
pub(crate) fn same_slot<K: AsRef<[u8]>>(keys: &[K]) -> bool {
    use redis::cluster_routing::Slot;
    let mut slots = keys.iter().map(|key| Slot::for_key(key.as_ref()));
    match slots.next() {
        Some(first) => slots.all(|slot| slot == first),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_7_and_later_pass_the_version_check() {
        for version in ["7.0.0", "7.0.15", "7.2.4", "8.0.1", "10.1.0"] {
            let info = format!("# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\n");
            assert!(check_version(&info).is_ok(), "{version}");
        }
    }

    #[test]
    fn older_or_unknown_versions_are_refused_by_name() {
        for version in ["6.2.14", "5.0.7", "garbage", ""] {
            let info = format!("redis_version:{version}\r\n");
            let error = check_version(&info).expect_err(version);
            assert_eq!(error.kind(), StoreErrorKind::Protocol);
            let text = format!("{error} {:?}", std::error::Error::source(&error));
            assert!(text.contains(">= 7.0"), "{text}");
        }
        assert!(check_version("# Server\r\n").is_err(), "no version line");
    }

    #[test]
    fn info_tells_a_cluster_node_and_refuses_a_sentinel() {
        let node = |mode: &str, cluster: &str| {
            format!("# Server\r\nredis_version:7.0.15\r\nredis_mode:{mode}\r\n# Cluster\r\ncluster_enabled:{cluster}\r\n")
        };
        assert!(read_info(&node("cluster", "1")).expect("cluster").cluster);
        assert!(!read_info(&node("standalone", "0")).expect("single").cluster);
        let error = read_info(&node("sentinel", "0")).expect_err("sentinel");
        assert_eq!(error.kind(), StoreErrorKind::Protocol);
        assert!(error.to_string().contains("Sentinel"), "{error}");
        assert!(read_info("redis_version:6.2.0\r\ncluster_enabled:1\r\n").is_err());
    }

    #[test]
    fn urls_are_split_on_commas_and_passwords_never_shown() {
        let config = RedisConfig::new(" redis://a:7000 ,redis://b:7001,, ");
        assert_eq!(config.urls(), ["redis://a:7000", "redis://b:7001"]);
        let config = RedisConfig::new("redis://user:secret@a:7000");
        assert!(!format!("{config:?}").contains("secret"));
        assert!(!redacted("redis://user:secret@a:7000").contains("secret"));
        assert_eq!(redacted("redis://a:7000"), "redis://a:7000");
    }

    #[test]
    fn slots_follow_hash_tags() {
        assert!(same_slot(&["{a}x", "{a}y", "zz{a}"]));
        assert!(!same_slot(&["x", "y"]));
        assert!(same_slot::<&str>(&[]));
    }
}
