//! Registers this app's webhook endpoint with Vobiz, then lists the account's subscriptions.
//!
//! ```text
//! VOBIZ_AUTH_ID=MA_XXXXXXXX VOBIZ_AUTH_TOKEN=... \
//! VOBIZ_PUBLIC_URL=https://your-tunnel.example/webhooks/vobiz \
//! cargo run --example register --features client
//! ```
//!
//! Environment:
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `VOBIZ_AUTH_ID` | yes | the account's auth id (console.vobiz.ai → Settings → API) |
//! | `VOBIZ_AUTH_TOKEN` | yes | the account's auth token |
//! | `VOBIZ_PUBLIC_URL` | yes | the public `https://` URL of your webhook route |
//! | `VOBIZ_WEBHOOK_SECRET` | no | the secret to register; one is generated and printed if absent |
//! | `VOBIZ_API_BASE` | no | the API base URL (default `https://api.vobiz.ai/api/v1/messaging`) |

use std::process::ExitCode;

use time::format_description::well_known::Rfc3339;
use vobiz_webhooks::client::{ClientError, ClientErrorKind, SubscriptionClient, WebhookSecret};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let auth_id = required("VOBIZ_AUTH_ID")?;
    let auth_token = required("VOBIZ_AUTH_TOKEN")?;
    let public_url = required("VOBIZ_PUBLIC_URL")?;
    if !public_url.trim().starts_with("https://") {
        return Err(format!(
            "VOBIZ_PUBLIC_URL is {public_url:?}: Vobiz only delivers to https:// URLs \
             (use a tunnel that gives you one)"
        ));
    }

    let mut builder = SubscriptionClient::builder().auth_id_token(auth_id, auth_token);
    if let Some(base) = optional("VOBIZ_API_BASE") {
        builder = builder.base_url(base);
    }
    let client = builder.build().map_err(|err| explain(&err))?;

    // Registering the same URL twice would make Vobiz deliver every event twice.
    let existing = client.list().await.map_err(|err| explain(&err))?;
    let same_url = |url: &str| url.trim_end_matches('/') == public_url.trim().trim_end_matches('/');
    if let Some(found) = existing.iter().find(|s| same_url(&s.url)) {
        println!(
            "{} is already registered (subscription {}, {}); not creating another.",
            found.url, found.id, found.status
        );
        println!("To change its secret, rotate it (see SubscriptionClient::rotate_begin).");
        return Ok(());
    }

    let secret = match optional("VOBIZ_WEBHOOK_SECRET") {
        Some(secret) => WebhookSecret::new(secret).map_err(|err| explain(&err))?,
        None => {
            let secret = WebhookSecret::generate().map_err(|err| explain(&err))?;
            println!("Generated a webhook secret. Start your server with it:");
            println!();
            println!("    VOBIZ_WEBHOOK_SECRET={}", secret.expose());
            println!();
            secret
        }
    };

    let created = client
        .create(&public_url, &secret)
        .await
        .map_err(|err| explain(&err))?;
    println!(
        "Registered subscription {} for {} ({})",
        created.id, created.url, created.status
    );

    let subscriptions = client.list().await.map_err(|err| explain(&err))?;
    println!("{} subscription(s) on this account:", subscriptions.len());
    for subscription in subscriptions {
        let created = subscription
            .created_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| subscription.created_at.to_string());
        println!(
            "  {}  {:<8}  {}  (created {created})",
            subscription.id, subscription.status, subscription.url
        );
    }
    Ok(())
}

fn required(name: &str) -> Result<String, String> {
    optional(name).ok_or_else(|| format!("{name} is not set (see the top of examples/register.rs)"))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The error, with a hint on what to do about it.
fn explain(err: &ClientError) -> String {
    let hint = match err.kind() {
        ClientErrorKind::Auth => "check VOBIZ_AUTH_ID and VOBIZ_AUTH_TOKEN",
        ClientErrorKind::InvalidWebhookUrl => {
            "VOBIZ_PUBLIC_URL must be the public https:// URL of your webhook route"
        }
        ClientErrorKind::EmptySecret => "VOBIZ_WEBHOOK_SECRET must not be empty",
        ClientErrorKind::Config => "check VOBIZ_API_BASE and the credentials",
        ClientErrorKind::Timeout | ClientErrorKind::Connect | ClientErrorKind::Transport => {
            "check the network and VOBIZ_API_BASE, then try again"
        }
        ClientErrorKind::MalformedResponse => {
            "the subscription may exist anyway; run again to list what is registered"
        }
        _ => "see Vobiz's answer above",
    };
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    if let (ClientErrorKind::MalformedResponse, Some(body)) = (err.kind(), err.body()) {
        message.push_str(&format!("\n  body: {body}"));
    }
    format!("{message}\n  hint: {hint}")
}
