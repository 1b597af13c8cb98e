//! The load generator of `bench/run.sh`: N keep-alive HTTP/1.1 connections on one thread, each
//! sending one request at a time (closed loop), every request a fresh, validly signed ~1.2 KiB
//! `message.inbound` delivery with a unique `event_id`, except a share of exact re-sends of an
//! earlier delivery (duplicates) and a share with a wrong signature.
//!
//! Bodies are built and signed on the fly (HMAC keyed once, ~1 µs of the generator's core per
//! request, the same for every server). Responses are parsed just enough to be complete
//! (`Content-Length`; `Connection: close` reconnects, as gunicorn's sync workers ask).
//!
//! It prints one JSON line: requests/s, p50/p99 latency, the status mix, the generator's own CPU
//! share and the server's CPU time per request, from the utime+stime of `--pids` in
//! `/proc/<pid>/stat` over the measured window.
//!
//! ```text
//! loadgen --addr 127.0.0.1:39101 --secret s --connections 32 --warmup 2 --duration 10 \
//!         --pids "1234 1235" --label bare [--dup-every 20] [--bad-every 20]
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TEMPLATE: &str = include_str!("../../../../tests/fixtures/message.inbound/text.json");
const ID_FIELD: &str = "\"event_id\": \"";

struct Args {
    addr: String,
    path: String,
    secret: String,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    pids: Vec<u32>,
    label: String,
    dup_every: u64,
    bad_every: u64,
    clk_tck: u64,
}

fn args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:3000".into(),
        path: "/webhooks/vobiz".into(),
        secret: "your-shared-secret".into(),
        connections: 32,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(10),
        pids: Vec::new(),
        label: "server".into(),
        dup_every: 20,
        bad_every: 20,
        clk_tck: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let secs = |v: &str| Duration::from_secs_f64(v.parse().expect("seconds"));
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--path" => args.path = value,
            "--secret" => args.secret = value,
            "--connections" => args.connections = value.parse().expect("connections"),
            "--warmup" => args.warmup = secs(&value),
            "--duration" => args.duration = secs(&value),
            "--pids" => {
                args.pids = value
                    .split_whitespace()
                    .map(|p| p.parse().expect("pid"))
                    .collect()
            }
            "--label" => args.label = value,
            "--dup-every" => args.dup_every = value.parse().expect("n"),
            "--bad-every" => args.bad_every = value.parse().expect("n"),
            "--clk-tck" => args.clk_tck = value.parse().expect("ticks"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn total_ticks(pids: &[u32]) -> u64 {
    pids.iter().map(|pid| cpu_ticks(&pid.to_string())).sum()
}

/// Builds the requests of one connection.
struct Maker {
    head: String,
    prefix: String,
    suffix: String,
    keyed: Hmac<Sha256>,
    id_high: u64,
    seq: u64,
    /// Recent fresh requests, re-sent whole as duplicates once they are a few requests old.
    recent: VecDeque<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Duplicate,
    BadSignature,
}

impl Maker {
    fn new(args: &Args, conn: usize, nonce: u64) -> Self {
        let start = TEMPLATE.find(ID_FIELD).expect("template has an event_id") + ID_FIELD.len();
        let end = start + TEMPLATE[start..].find('"').expect("closing quote");
        Self {
            head: format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 X-Webhook-Event: message.inbound\r\n",
                args.path, args.addr
            ),
            prefix: TEMPLATE[..start].to_owned(),
            suffix: TEMPLATE[end..].to_owned(),
            keyed: Hmac::<Sha256>::new_from_slice(args.secret.as_bytes()).expect("key"),
            id_high: nonce ^ ((conn as u64) << 48),
            seq: 0,
            recent: VecDeque::new(),
        }
    }

    fn next(&mut self, dup_every: u64, bad_every: u64) -> (Kind, Vec<u8>) {
        self.seq += 1;
        let n = self.seq;
        if dup_every > 0 && n % dup_every == dup_every / 4 && self.recent.len() >= 8 {
            if let Some(old) = self.recent.pop_front() {
                return (Kind::Duplicate, old);
            }
        }
        let bad = bad_every > 0 && n % bad_every == (3 * bad_every) / 4;
        let id = format!("{:016x}{:016x}", self.id_high, n);
        let id = format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        );
        let body = format!("{}{}{}", self.prefix, id, self.suffix);
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        let mut signature = hex::encode(mac.finalize().into_bytes());
        if bad {
            // Still 64 hex digits, one of them wrong.
            let flipped = if signature.starts_with('0') { "1" } else { "0" };
            signature.replace_range(0..1, flipped);
        }
        let mut request = Vec::with_capacity(self.head.len() + body.len() + 160);
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(b"X-Webhook-Signature: ");
        request.extend_from_slice(signature.as_bytes());
        request.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body.as_bytes());
        if bad {
            return (Kind::BadSignature, request);
        }
        self.recent.push_back(request.clone());
        if self.recent.len() > 32 {
            self.recent.pop_front();
        }
        (Kind::Fresh, request)
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    ok: u64,
    unauthorized: u64,
    other: u64,
    /// Answers other than 2xx for fresh/duplicate or 401 for a bad signature.
    unexpected: u64,
    reconnects: u64,
    io_errors: u64,
}

struct Response {
    status: u16,
    close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response; `buf` keeps nothing between responses (no pipelining).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Response> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(std::io::Error::other)?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut length = 0usize;
    let mut close = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(std::io::Error::other)?;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(std::io::Error::other("chunked responses are not supported"));
        }
    }
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Response { status, close })
}

async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

struct Window {
    start: Cell<Option<Instant>>,
    stop: Cell<bool>,
}

async fn connection(
    args: Rc<Args>,
    conn: usize,
    nonce: u64,
    window: Rc<Window>,
    stats: Rc<RefCell<Stats>>,
) {
    let mut maker = Maker::new(&args, conn, nonce);
    let mut buf = Vec::with_capacity(4096);
    let mut stream: Option<TcpStream> = None;
    while !window.stop.get() {
        let (kind, request) = maker.next(args.dup_every, args.bad_every);
        let sent = Instant::now();
        let result = async {
            if stream.is_none() {
                stream = Some(connect(&args.addr).await?);
                stats.borrow_mut().reconnects += 1;
            }
            let s = stream.as_mut().expect("connected");
            s.write_all(&request).await?;
            read_response(s, &mut buf).await
        }
        .await;
        let response = match result {
            Ok(response) => response,
            Err(_) => {
                stats.borrow_mut().io_errors += 1;
                stream = None;
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        if response.close {
            stream = None;
        }
        let Some(start) = window.start.get() else {
            continue;
        };
        if sent < start || window.stop.get() {
            continue;
        }
        let mut stats = stats.borrow_mut();
        let elapsed = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        stats.latencies_us.push(elapsed);
        let expected = match kind {
            Kind::Fresh | Kind::Duplicate => (200..300).contains(&response.status),
            Kind::BadSignature => response.status == 401,
        };
        stats.unexpected += u64::from(!expected);
        match response.status {
            200..=299 => stats.ok += 1,
            401 => stats.unauthorized += 1,
            _ => stats.other += 1,
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = Rc::new(args());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        & 0x0000_ffff_ffff_ffff;
    let window = Rc::new(Window {
        start: Cell::new(None),
        stop: Cell::new(false),
    });
    let stats = Rc::new(RefCell::new(Stats::default()));
    let local = tokio::task::LocalSet::new();
    let (measured, server_ticks, gen_ticks) = local.block_on(&runtime, async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|conn| {
                tokio::task::spawn_local(connection(
                    Rc::clone(&args),
                    conn,
                    nonce,
                    Rc::clone(&window),
                    Rc::clone(&stats),
                ))
            })
            .collect();
        tokio::time::sleep(args.warmup).await;
        let server0 = total_ticks(&args.pids);
        let gen0 = cpu_ticks("self");
        let start = Instant::now();
        window.start.set(Some(start));
        tokio::time::sleep(args.duration).await;
        window.stop.set(true);
        let measured = start.elapsed();
        let server1 = total_ticks(&args.pids);
        let gen1 = cpu_ticks("self");
        for task in tasks {
            let _ = task.await;
        }
        (measured, server1 - server0, gen1 - gen0)
    });
    let mut stats = stats.borrow_mut();
    let requests = stats.latencies_us.len() as u64;
    stats.latencies_us.sort_unstable();
    let secs = measured.as_secs_f64();
    let tick_us = 1e6 / args.clk_tck as f64;
    let server_cpu_us = server_ticks as f64 * tick_us;
    println!(
        "{{\"label\":\"{}\",\"requests\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\
\"server_cpu_us_per_req\":{:.3},\"server_cpu_pct\":{:.1},\"gen_cpu_pct\":{:.1},\"ok\":{},\"unauthorized\":{},\
\"other\":{},\"unexpected\":{},\"connects\":{},\"io_errors\":{}}}",
        args.label,
        requests,
        secs,
        requests as f64 / secs,
        percentile(&stats.latencies_us, 50.0),
        percentile(&stats.latencies_us, 99.0),
        if requests > 0 { server_cpu_us / requests as f64 } else { 0.0 },
        server_cpu_us / (secs * 1e4),
        gen_ticks as f64 * tick_us / (secs * 1e4),
        stats.ok,
        stats.unauthorized,
        stats.other,
        stats.unexpected,
        stats.reconnects,
        stats.io_errors,
    );
}
