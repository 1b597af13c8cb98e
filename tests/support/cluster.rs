//! A private Redis Cluster for one test: three masters and three replicas of the machine's
//! `redis-server` on free loopback ports, made with `redis-cli --cluster create
//! --cluster-replicas 1`, in a temporary directory; killed and removed on drop. Skips loudly
//! without `redis-server`/`redis-cli` (a failure under `CI=true`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of the cluster: its port and process.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running cluster of six nodes (three masters, three replicas).
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

fn binary(name: &str) -> Option<String> {
    [format!("/usr/bin/{name}"), name.to_owned()]
        .into_iter()
        .find(|path| Command::new(path).arg("--version").output().is_ok())
}

/// A loopback port that binds now, outside the kernel's ephemeral range.
fn port() -> u16 {
    super::free_port()
}

impl RedisCluster {
    /// Starts the cluster and waits for `cluster_state:ok` on every node; `None` after a loud
    /// skip (a panic under `CI=true`) when it cannot.
    pub fn start() -> Option<Self> {
        // A node can lose its port (or its bus port) to a server another test starts at the
        // same moment: start again on fresh ports before giving up.
        let mut why = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return Some(cluster),
                Err(error) => why = error,
            }
        }
        super::skip_or_fail("a local Redis Cluster (redis-server, redis-cli)", &why);
        None
    }

    fn try_start() -> Result<Self, String> {
        let server = binary("redis-server").ok_or("redis-server not installed")?;
        let cli = binary("redis-cli").ok_or("redis-cli not installed")?;
        let dir = std::env::temp_dir().join(format!("vobiz-cluster-{}", super::unique_name()));
        std::fs::create_dir_all(&dir).map_err(|error| format!("temp dir: {error}"))?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let (port, bus) = (port(), port());
            let child = Command::new(&server)
                .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
                .args(["--port", &port.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .args(["--cluster-node-timeout", "1000"])
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dbfilename")
                .arg(format!("dump-{port}.rdb"))
                // A replica whose first sync was slow on a loaded machine may still be
                // promoted: the test counts what it lost instead.
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--maxmemory-policy", "noeviction"])
                .arg("--logfile")
                .arg(cluster.dir.join(format!("node-{port}.log")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|error| format!("redis-server: {error}"))?;
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok()
            })
            .then_some(())
            .ok_or_else(|| {
                let log =
                    std::fs::read_to_string(cluster.dir.join(format!("node-{}.log", node.port)))
                        .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                format!("node {} never answered (its log ends: {tail:?})", node.port)
            })?;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("redis-cli --cluster create: {error}"))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&created.stdout)
            ));
        }
        if !cluster.wait_ok(Duration::from_secs(30)) {
            return Err("cluster_state never became ok on every node".to_owned());
        }
        Ok(cluster)
    }

    /// Whether, within `within`, every live node says `cluster_state:ok`, three masters serve
    /// the slots, and every live replica's link to its master is up (synchronised).
    pub fn wait_ok(&self, within: Duration) -> bool {
        wait_until(within, || {
            self.live_ports().all(|port| {
                let info = cli(port, &["cluster", "info"]);
                let replication = cli(port, &["info", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_size:3")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            }) && self.masters().len() == 3
        })
    }

    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
    }

    /// Every node's URL, comma-separated (the seed list form).
    pub fn urls(&self) -> String {
        self.live_ports()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node's URL (the first live one).
    pub fn url(&self) -> String {
        let port = self.live_ports().next().unwrap_or_default();
        format!("redis://127.0.0.1:{port}")
    }

    /// The ports of the live masters that serve slots, as a live node sees them.
    pub fn masters(&self) -> Vec<u16> {
        let Some(port) = self.live_ports().next() else {
            return Vec::new();
        };
        cli(port, &["cluster", "nodes"])
            .lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 8
                    && fields[2].contains("master")
                    && !fields[2].contains("fail")
                    && fields[7] == "connected"
            })
            .filter_map(|line| {
                let address = line.split_whitespace().nth(1)?;
                address
                    .split(['@', ','])
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> Option<u16> {
        let port = self.live_ports().next()?;
        let slot = cli(port, &["cluster", "keyslot", key])
            .trim()
            .parse::<u16>()
            .ok()?;
        // `CLUSTER NODES`: the master line whose ranges contain the slot.
        cli(port, &["cluster", "nodes"]).lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                return None;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut bounds = range.split('-').map(|bound| bound.parse::<u16>().ok());
                match (bounds.next().flatten(), bounds.next().flatten()) {
                    (Some(low), Some(high)) => (low..=high).contains(&slot),
                    (Some(only), None) => only == slot,
                    _ => false,
                }
            });
            serves
                .then(|| {
                    fields[1]
                        .split(['@', ','])
                        .next()?
                        .rsplit(':')
                        .next()?
                        .parse()
                        .ok()
                })
                .flatten()
        })
    }

    /// SIGKILLs the node on `port` (no goodbye); its replica is promoted after the node
    /// timeout (1 s) and an election.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("VOBIZ_KEEP_CLUSTER_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `redis-cli -p port args…`'s output (empty on failure).
fn cli(port: u16, args: &[&str]) -> String {
    static CLI: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(cli) = CLI.get_or_init(|| binary("redis-cli")) else {
        return String::new();
    };
    Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
