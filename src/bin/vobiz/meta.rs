//! The `vobiz` tool's Meta commands: `trigger --meta` (Meta's notification of several items,
//! signed with `X-Hub-Signature-256`) and `meta-handshake` (what an endpoint answers Meta's GET).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vobiz_webhooks::testing::{MetaPost, TestEvent};

use super::sample::{build_event, Status};
use super::{check_url, client, exchange, post_repeatedly, runtime, Failure, TriggerArgs};

#[derive(Args)]
pub(crate) struct HandshakeArgs {
    /// The callback URL configured in Meta's app dashboard (HTTPS unless --allow-http).
    #[arg(long)]
    url: String,
    /// The verify token typed into Meta's app dashboard.
    #[arg(long, env = "META_VERIFY_TOKEN", hide_env_values = true)]
    verify_token: String,
    /// The challenge to send (default: a random number, as Meta sends).
    #[arg(long)]
    challenge: Option<String>,
    /// The hub.mode to send (Meta always sends `subscribe`).
    #[arg(long, default_value = "subscribe")]
    mode: String,
    /// Allow a plain-HTTP URL (e.g. a local server). Meta itself only calls HTTPS.
    #[arg(long)]
    allow_http: bool,
    /// Seconds to wait for the response.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

/// `trigger --meta`: `--batch` items of the kind in one notification, signed with the app secret.
pub(crate) fn trigger(args: &TriggerArgs) -> Result<ExitCode, Failure> {
    let app_secret =
        match args.app_secret.as_deref() {
            Some(secret) if !secret.is_empty() => secret,
            _ => return Err(Failure::usage(
                "no app secret: pass --app-secret or set META_APP_SECRET to your Meta app's secret",
            )),
        };
    if args.event_id.is_some() || args.event_header.is_some() {
        return Err(Failure::usage(
            "--event-id and --event-header are Vobiz's: Meta's POSTs have neither",
        ));
    }
    let url = check_url(&args.url, args.allow_http)?;
    let mut events = Vec::new();
    for item in 0..args.batch {
        let mut event = build_event(args)?;
        // Distinct statuses unless a wamid was given (a text gets a fresh wamid of its own).
        if args.batch > 1 && args.wamid.is_none() && matches!(event.event_type(), "message.status")
        {
            let status = args.status.unwrap_or(Status::Delivered).as_str();
            event = TestEvent::status(format!("wamid.CLI{item}.{}", std::process::id()), status);
        }
        events.push(event);
    }
    let mut post = MetaPost::from_events(events.iter());
    if args.bad_signature {
        post = post.bad_signature();
    }
    if args.no_signature {
        post = post.without_signature();
    }
    let body = post.body_bytes();
    let headers = post.headers_for(app_secret);
    let what = format!(
        "meta notification, {} item(s) of {}",
        args.batch,
        events.first().map_or("?", TestEvent::event_type)
    );
    post_repeatedly(args, url, &headers, &body, &what)
}

/// `meta-handshake`: what the endpoint answers Meta's verification GET.
pub(crate) fn handshake(args: &HandshakeArgs) -> Result<ExitCode, Failure> {
    let mut url = check_url(&args.url, args.allow_http)?;
    let challenge = match &args.challenge {
        Some(challenge) => challenge.clone(),
        None => {
            // A random number, as Meta's own challenges are.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.subsec_nanos())
                .unwrap_or_default();
            (u64::from(nanos) * 7919 + u64::from(std::process::id()) + 1_000_000_000).to_string()
        }
    };
    url.query_pairs_mut()
        .append_pair("hub.mode", &args.mode)
        .append_pair("hub.verify_token", &args.verify_token)
        .append_pair("hub.challenge", &challenge);
    runtime()?.block_on(async {
        let timeout = Duration::from_secs(args.timeout);
        let client = client(timeout)?;
        // The token is in the query: print the URL without it.
        println!(
            "GET {} (hub.mode={}, hub.challenge={challenge})",
            args.url, args.mode
        );
        let (status, content_type, text) = exchange(
            client.get(url.clone()),
            reqwest::header::CONTENT_TYPE,
            &url,
            timeout,
        )
        .await?;
        println!("{status}");
        if let Some(content_type) = content_type {
            println!("content-type: {content_type}");
        }
        println!("{text}");
        let echoed = status == reqwest::StatusCode::OK && text == challenge;
        if echoed {
            println!("ok: the challenge was echoed; Meta would accept this endpoint");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("refused: Meta accepts only 200 with the challenge as the body");
            Ok(ExitCode::FAILURE)
        }
    })
}
