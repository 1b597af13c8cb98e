//! `vobiz`: send signed sample Vobiz webhooks to your endpoint (like `stripe trigger`), and sign
//! or verify bodies by hand. Built with the crate's `cli` feature:
//!
//! ```sh
//! cargo run --features cli --bin vobiz -- trigger text --text "hi" \
//!     --url http://127.0.0.1:3000/webhooks/vobiz --secret your-shared-secret --allow-http
//! ```
//!
//! Like `stripe trigger`, for Vobiz: it builds the delivery Vobiz would send (envelope, fresh
//! `event_id`, `Content-Type`, `X-Webhook-Event`, `X-Webhook-Signature`), signs it with your
//! secret and POSTs it; `vobiz --help` and `vobiz <command> --help` list every option.
//!
//! ```sh
//! cargo install vobiz-webhooks --features cli
//! export VOBIZ_WEBHOOK_SECRET=your-shared-secret   # or --secret on every command
//!
//! vobiz trigger text --text "hi" --from 918888888888 --url https://example.com/webhooks/vobiz
//! vobiz trigger image --url ...                  # any message type: video, audio, document, ...
//! vobiz trigger status --status read --url ...   # sent | delivered | read | failed
//! vobiz trigger call.connect --url ...           # call.terminate, call.<any event>
//! vobiz trigger message.status/played --url ...  # any bundled fixture by name
//! vobiz trigger --file delivery.json --url ...   # a full envelope from a file, byte for byte
//! vobiz trigger message.inbound --file payload.json --url ...   # a payload, wrapped
//! vobiz kinds                                    # every kind
//!
//! vobiz trigger text --repeat 2 --url ...        # same event twice: the second is a duplicate
//! vobiz trigger text --event-id evt-1 --url ...  # choose the event_id (re-send it later)
//! vobiz trigger text --bad-signature --url ...   # expect 401 (also --no-signature)
//! vobiz trigger text --event-header message.status --url ...   # expect 400
//!
//! export META_APP_SECRET=your-meta-app-secret     # Meta's own webhooks (or --app-secret)
//! vobiz trigger text --meta --batch 5 --url .../webhooks/meta   # one POST of 5 items, X-Hub-Signature-256
//! vobiz trigger status --meta --repeat 2 --url ...             # Meta's retry: no item runs twice
//! vobiz meta-handshake --url .../webhooks/meta --verify-token T # what the endpoint answers Meta
//!
//! vobiz sign < body.json                         # prints the X-Webhook-Signature of stdin
//! vobiz verify --signature 6c82a2db… < body.json # "valid" (exit 0) or "invalid: <reason>"
//! ```
//!
//! Each response's status, `x-vobiz-duplicate` header and body are printed. `sign` signs stdin
//! byte for byte: `echo` adds a newline, which changes the signature (the tool warns); use
//! `printf` or a file. `--allow-http` is needed for a plain-HTTP URL: Vobiz only delivers to
//! HTTPS, so the tool refuses `http://` unless asked.
//!
//! Exit codes: 0 when every response was 2xx (and for `sign`, a `valid` verification); 1 when a
//! response was not 2xx or a signature is invalid; 2 when nothing could be sent (bad arguments,
//! empty secret, refused URL, connection refused, timeout).

use std::error::Error as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `trigger --meta` and `meta-handshake`.
#[path = "vobiz/meta.rs"]
mod meta;
/// The sample events `trigger` builds.
#[path = "vobiz/sample.rs"]
mod sample;
use reqwest::Url;
use sample::{build_event, kinds_text, Status};
use vobiz_webhooks::headers::X_VOBIZ_DUPLICATE;
use vobiz_webhooks::signature::Verifier;

const AFTER_HELP: &str = "\
Exit codes: 0 every response was 2xx / the signature is valid; 1 a response was not 2xx / the \
signature is invalid; 2 nothing could be sent (arguments, secret, URL, connection, timeout).";

#[derive(Parser)]
#[command(
    name = "vobiz",
    version,
    about = "Send signed sample Vobiz WhatsApp webhooks, sign and verify bodies",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign a sample event of any kind and POST it to a webhook URL.
    #[command(after_help = TRIGGER_HELP)]
    Trigger(Box<TriggerArgs>),
    /// Print the X-Webhook-Signature of the body read from stdin (every byte counts, a trailing
    /// newline too).
    Sign(SecretArgs),
    /// Check a signature against the body read from stdin: prints `valid` (exit 0) or
    /// `invalid: <reason>` (exit 1).
    Verify {
        /// The X-Webhook-Signature value to check (64 hex digits).
        #[arg(long)]
        signature: String,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// List the event kinds `trigger` sends.
    Kinds,
    /// Send Meta's verification handshake (GET ?hub.mode=subscribe&hub.verify_token=…&
    /// hub.challenge=…) and print what the endpoint answered: exit 0 when it is 200 with the
    /// challenge echoed exactly, 1 otherwise.
    MetaHandshake(meta::HandshakeArgs),
}

const TRIGGER_HELP: &str = "\
Examples:
  vobiz trigger text --text 'Hi, is my order shipped?' --url https://example.com/webhooks/vobiz
  vobiz trigger status --status read --url ...
  vobiz trigger call.connect --url ...
  vobiz trigger image --repeat 2 --url ...        (the second is a duplicate)
  vobiz trigger --file delivery.json --url ...     (a full envelope, sent as is)
  vobiz trigger message.inbound --file payload.json --url ...   (a payload, wrapped)
Run `vobiz kinds` for every kind.";

#[derive(Args)]
struct SecretArgs {
    /// The webhook secret (the subscription's `secret`).
    #[arg(long, env = "VOBIZ_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

impl SecretArgs {
    fn get(&self) -> Result<&str, Failure> {
        match self.secret.as_deref() {
            Some(secret) if !secret.is_empty() => Ok(secret),
            Some(_) => Err(Failure::usage(
                "the secret is empty: pass --secret or set VOBIZ_WEBHOOK_SECRET to the \
                 subscription's secret",
            )),
            None => Err(Failure::usage(
                "no secret: pass --secret or set VOBIZ_WEBHOOK_SECRET to the subscription's \
                 secret",
            )),
        }
    }
}

#[derive(Args)]
struct TriggerArgs {
    /// What to send: `text`, `image`, `status`, `call.connect`, a fixture name... (`vobiz
    /// kinds` lists them). With --file: the event type of the payload in the file.
    #[arg(required_unless_present = "file")]
    kind: Option<String>,
    /// The webhook URL to POST to (HTTPS unless --allow-http).
    #[arg(long)]
    url: String,
    #[command(flatten)]
    secret: SecretArgs,
    /// The text of a `text` message.
    #[arg(long)]
    text: Option<String>,
    /// The status of a `status` event.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// The message id (wamid) of a `status` event.
    #[arg(long)]
    wamid: Option<String>,
    /// The customer's WhatsApp number (sender of messages, recipient of statuses, caller).
    #[arg(long)]
    from: Option<String>,
    /// Send this file: a full envelope (sent byte for byte), or a payload wrapped in an
    /// envelope of the event type given as KIND.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The event_id to send (default: a fresh random UUID); reuse one to test deduplication.
    #[arg(long)]
    event_id: Option<String>,
    /// Send the same event (same event_id) this many times.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Allow a plain-HTTP URL (e.g. a local server). Vobiz itself only delivers to HTTPS.
    #[arg(long)]
    allow_http: bool,
    /// Seconds to wait for each response.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// Send a well-formed but wrong signature (the receiver should answer 401).
    #[arg(long, conflicts_with = "no_signature")]
    bad_signature: bool,
    /// Send no X-Webhook-Signature header (the receiver should answer 401).
    #[arg(long)]
    no_signature: bool,
    /// Send this X-Webhook-Event instead of the event type (a mismatch should be 400).
    #[arg(long)]
    event_header: Option<String>,
    /// Send it as Meta's own webhook (for a `meta::MetaWebhookLayer` route): Meta's
    /// notification, signed with X-Hub-Signature-256 and the app secret.
    #[arg(long)]
    meta: bool,
    /// With --meta: the Meta app secret.
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// With --meta: this many items of KIND in one POST (Meta batches up to 1,000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch: u32,
}

/// Why the tool stops, and its exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// Nothing could be sent or checked (exit 2).
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trigger(args) => trigger(&args),
        Command::Sign(secret) => sign(&secret),
        Command::Verify { signature, secret } => verify(&signature, &secret),
        Command::Kinds => {
            print!("{}", kinds_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::MetaHandshake(args) => meta::handshake(&args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|err| Failure::usage(format!("cannot read the body from stdin: {err}")))?;
    Ok(body)
}

fn sign(secret: &SecretArgs) -> Result<ExitCode, Failure> {
    let secret = secret.get()?;
    let body = read_stdin()?;
    if body.ends_with(b"\n") {
        eprintln!("note: the body ends with a newline, which is signed too (use printf or a file, not echo)");
    }
    println!("{}", vobiz_webhooks::sign(secret, &body));
    Ok(ExitCode::SUCCESS)
}

fn verify(signature: &str, secret: &SecretArgs) -> Result<ExitCode, Failure> {
    let verifier = Verifier::new([secret.get()?])
        .map_err(|err| Failure::usage(format!("bad secret: {err}")))?;
    let body = read_stdin()?;
    match verifier.verify(signature.trim().as_bytes(), &body) {
        Ok(()) => {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            println!("invalid: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The URL, if its scheme is acceptable: HTTPS, or HTTP with `--allow-http`.
fn check_url(url: &str, allow_http: bool) -> Result<Url, Failure> {
    let parsed = Url::parse(url)
        .map_err(|err| Failure::usage(format!("--url `{url}` is not a URL: {err}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http => {
            let host = parsed.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                eprintln!(
                    "warning: --allow-http: sending to a non-loopback host in clear text \
                     (message contents are readable on the way)"
                );
            }
            Ok(parsed)
        }
        "http" => Err(Failure::usage(format!(
            "--url `{url}` is not HTTPS. Vobiz only delivers to HTTPS URLs; to send to a local \
             plain-HTTP server anyway, add --allow-http"
        ))),
        other => Err(Failure::usage(format!(
            "--url `{url}` has scheme `{other}`; use an https:// URL (or http:// with --allow-http)"
        ))),
    }
}

fn trigger(args: &TriggerArgs) -> Result<ExitCode, Failure> {
    if args.meta {
        return meta::trigger(args);
    }
    if args.batch > 1 || args.app_secret.is_some() {
        return Err(Failure::usage(
            "--batch and --app-secret apply to Meta POSTs only: add --meta",
        ));
    }
    let secret = args.secret.get()?;
    let url = check_url(&args.url, args.allow_http)?;
    let event = build_event(args)?;
    let body = event.body_bytes();
    let headers = event.headers_for(secret, &body);
    let what = format!("{} event_id={}", event.event_type(), event.id());
    post_repeatedly(args, url, &headers, &body, &what)
}

/// POSTs `body` with `headers` to `url` `--repeat` times, printing each request (`what` it
/// carries) and each answer; fails when any answer is not 2xx. The Vobiz and the Meta trigger's
/// shared last step.
fn post_repeatedly(
    args: &TriggerArgs,
    url: Url,
    headers: &reqwest::header::HeaderMap,
    body: &bytes::Bytes,
    what: &str,
) -> Result<ExitCode, Failure> {
    runtime()?.block_on(async {
        let timeout = Duration::from_secs(args.timeout);
        let client = client(timeout)?;
        let mut all_ok = true;
        for attempt in 1..=args.repeat {
            let prefix = if args.repeat > 1 {
                format!("[{attempt}/{}] ", args.repeat)
            } else {
                String::new()
            };
            println!("{prefix}POST {url} {what} ({} bytes)", body.len());
            let request = client
                .post(url.clone())
                .headers(headers.clone())
                .body(body.clone());
            let (status, duplicate, text) =
                exchange(request, X_VOBIZ_DUPLICATE, &url, timeout).await?;
            all_ok &= status.is_success();
            println!("{prefix}{status}");
            if let Some(duplicate) = duplicate {
                println!("{prefix}x-vobiz-duplicate: {duplicate}");
            }
            if !text.is_empty() {
                println!("{prefix}{}", text.trim_end());
            }
        }
        Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// The single-threaded runtime a command sends its requests on.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::usage(format!("cannot start the async runtime: {err}")))
}

/// Sends `request` to `url` and reads the answer: its status, the value of `header` when the
/// answer has it, and its text. A failed send or read is explained by [`send_error`].
async fn exchange(
    request: reqwest::RequestBuilder,
    header: reqwest::header::HeaderName,
    url: &Url,
    timeout: Duration,
) -> Result<(reqwest::StatusCode, Option<String>, String), Failure> {
    let response = request
        .send()
        .await
        .map_err(|err| send_error(url, timeout, &err))?;
    let status = response.status();
    let value = response
        .headers()
        .get(header)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let text = response
        .text()
        .await
        .map_err(|err| send_error(url, timeout, &err))?;
    Ok((status, value, text))
}

/// The HTTP client of every command.
fn client(timeout: Duration) -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(timeout)
        // A webhook receiver answers; it does not redirect. Show a 3xx as it is.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vobiz-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| Failure::usage(format!("cannot build the HTTP client: {err}")))
}

/// A failed send, explained: refused connection, timeout, or the error chain.
fn send_error(url: &Url, timeout: Duration, err: &reqwest::Error) -> Failure {
    let mut chain = Vec::new();
    let mut refused = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(cause.to_string());
        source = cause.source();
    }
    let message = if refused {
        format!(
            "cannot connect to {url}: connection refused (nothing listens there).\n\
             Start a receiver first, e.g. the crate's example server:\n  \
             VOBIZ_WEBHOOK_SECRET=<secret> VOBIZ_ADDR={host}:{port} cargo run --example server",
            host = url.host_str().unwrap_or("127.0.0.1"),
            port = url.port_or_known_default().unwrap_or(3000),
        )
    } else if err.is_timeout() {
        format!(
            "no response from {url} within {}s (set another limit with --timeout)",
            timeout.as_secs()
        )
    } else if err.is_connect() {
        format!("cannot connect to {url}: {}", chain.join(": "))
    } else {
        let mut message = format!("sending to {url} failed: {err}");
        for cause in chain {
            message.push_str(": ");
            message.push_str(&cause);
        }
        message
    };
    Failure::usage(message)
}
