//! The sample events `trigger` builds: the short kinds and the fixture each sends, `--status`,
//! `--file` (a full envelope or a payload), and the options that alter a delivery.

use clap::ValueEnum;
use vobiz_webhooks::testing::{Fixture, TestEvent};

use super::{Failure, TriggerArgs};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Status {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

/// Short kinds and the fixture each sends (`text`, `status` and `call.*` are built instead).
const SHORT_KINDS: &[(&str, Fixture)] = &[
    ("reply", Fixture::InboundTextReply),
    ("referral", Fixture::InboundTextReferral),
    ("image", Fixture::InboundImage),
    ("video", Fixture::InboundVideo),
    ("audio", Fixture::InboundAudio),
    ("document", Fixture::InboundDocument),
    ("sticker", Fixture::InboundSticker),
    ("location", Fixture::InboundLocation),
    ("contacts", Fixture::InboundContacts),
    ("button", Fixture::InboundButton),
    ("interactive", Fixture::InboundInteractiveButtonReply),
    ("interactive-list", Fixture::InboundInteractiveListReply),
    ("flow", Fixture::InboundInteractiveNfmReply),
    (
        "call-permission",
        Fixture::InboundInteractiveCallPermissionReply,
    ),
    ("reaction", Fixture::InboundReaction),
    ("reaction-removed", Fixture::InboundReactionRemoved),
    ("order", Fixture::InboundOrder),
    ("system", Fixture::InboundSystem),
    ("unsupported", Fixture::InboundUnsupported),
];

pub(crate) fn kinds_text() -> String {
    let mut out =
        String::from("message.inbound:\n  text (alias message.inbound; --text, --from)\n");
    for (name, fixture) in SHORT_KINDS {
        out.push_str(&format!("  {name:<18} fixture {fixture}\n"));
    }
    out.push_str(
        "message.status:\n  status (alias message.status; --status sent|delivered|read|failed, \
         --wamid)\n",
    );
    out.push_str(
        "call.<event>:\n  call.connect, call.terminate, call.<any event> (built; --from)\n",
    );
    out.push_str("every bundled fixture, by name:\n");
    for fixture in Fixture::ALL {
        out.push_str(&format!("  {fixture}\n"));
    }
    out.push_str(
        "your own JSON: --file FILE (a full envelope, or a payload with KIND = its event type)\n",
    );
    out
}

/// The event the arguments describe.
pub(crate) fn build_event(args: &TriggerArgs) -> Result<TestEvent, Failure> {
    let kind = args.kind.as_deref();
    let only_for = |flag: &str, set: bool, wanted: &str| {
        if set {
            Err(Failure::usage(format!(
                "{flag} applies to the `{wanted}` kind only"
            )))
        } else {
            Ok(())
        }
    };
    let is_text = matches!(kind, Some("text" | "message.inbound")) && args.file.is_none();
    let is_status = matches!(kind, Some("status" | "message.status")) && args.file.is_none();
    only_for("--text", args.text.is_some() && !is_text, "text")?;
    only_for("--status", args.status.is_some() && !is_status, "status")?;
    only_for("--wamid", args.wamid.is_some() && !is_status, "status")?;

    let mut event = if let Some(path) = &args.file {
        from_file(path, kind, args.event_id.is_some())?
    } else {
        match kind.unwrap_or_default() {
            "text" | "message.inbound" => {
                TestEvent::inbound_text(args.text.as_deref().unwrap_or("Hello from the vobiz CLI"))
            }
            "status" | "message.status" => TestEvent::status(
                args.wamid
                    .as_deref()
                    .unwrap_or("wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG"),
                args.status.unwrap_or(Status::Delivered).as_str(),
            ),
            call if call.starts_with("call.") && call.len() > "call.".len() => {
                TestEvent::call(call)
            }
            other => {
                let fixture = SHORT_KINDS
                    .iter()
                    .find(|(name, _)| *name == other)
                    .map(|(_, fixture)| *fixture)
                    .or_else(|| other.parse::<Fixture>().ok())
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "unknown kind `{other}`; run `vobiz kinds` to list them"
                        ))
                    })?;
                TestEvent::fixture(fixture)
            }
        }
    };
    if let Some(from) = &args.from {
        event = event.from(from.clone());
    }
    if let Some(id) = &args.event_id {
        event = event.event_id(id.clone());
    }
    if args.bad_signature {
        event = event.bad_signature();
    }
    if args.no_signature {
        event = event.without_signature();
    }
    if let Some(value) = &args.event_header {
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|err| Failure::usage(format!("--event-header: {err}")))?;
        event = event.event_header(value);
    }
    Ok(event)
}

/// A full envelope (sent as is) or a payload (wrapped in an envelope of type `kind`).
fn from_file(
    path: &std::path::Path,
    kind: Option<&str>,
    event_id_set: bool,
) -> Result<TestEvent, Failure> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::usage(format!("cannot read --file {shown}: {err}")))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| Failure::usage(format!("--file {shown} is not JSON: {err}")))?;
    if json.get("event_type").is_some() && json.get("payload").is_some() {
        if event_id_set {
            return Err(Failure::usage(format!(
                "--file {shown} is a full envelope, sent as is: change its event_id in the file \
                 rather than with --event-id"
            )));
        }
        return TestEvent::envelope_json(text)
            .map_err(|err| Failure::usage(format!("--file {shown}: {err}")));
    }
    let event_type = match kind {
        Some(kind) if kind.contains('.') && !kind.contains('/') => kind,
        _ => {
            return Err(Failure::usage(format!(
                "--file {shown} is a payload, not an envelope: give its event type as KIND, e.g. \
                 `vobiz trigger message.inbound --file {shown} ...`"
            )))
        }
    };
    TestEvent::payload_json(event_type, text)
        .map_err(|err| Failure::usage(format!("--file {shown}: {err}")))
}
