//! A small TCP proxy on loopback in front of a Redis, whose behaviour a test switches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the [`Proxy`] does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes as they come.
    Pass,
    /// Hold every chunk this many milliseconds before forwarding it.
    Delay(u64),
    /// Close every connection, and every new one at once.
    Cut,
    /// Accept and read, forward nothing (a silent peer).
    Blackhole,
}

/// A small TCP proxy on loopback in front of `upstream`, whose behaviour a test switches.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<std::sync::Mutex<ProxyMode>>,
    cut: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(std::sync::Mutex::new(ProxyMode::Pass));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (m, c) = (mode.clone(), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = *m.lock().expect("mode");
                if mode == ProxyMode::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, m.clone(), c.clone()));
                tokio::spawn(pump(sr, cw, m.clone(), c.clone()));
            }
        });
        Proxy {
            addr,
            mode,
            cut,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().expect("mode") = mode;
        if mode == ProxyMode::Cut {
            self.cut.notify_waiters();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.notify_waiters();
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<std::sync::Mutex<ProxyMode>>,
    cut: Arc<tokio::sync::Notify>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            () = cut.notified() => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.lock().expect("mode");
        match current {
            ProxyMode::Pass => {}
            ProxyMode::Delay(ms) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = cut.notified() => return,
                }
            }
            ProxyMode::Cut => return,
            ProxyMode::Blackhole => continue,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
