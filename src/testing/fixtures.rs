//! The bundled fixtures: one complete delivery body per event and message type.

use std::fmt;
use std::str::FromStr;

macro_rules! fixtures {
    ($( $(#[doc = $doc:literal])* $variant:ident => ($name:literal, $event_type:literal), )*) => {
        /// A complete delivery body (envelope and Meta payload) shipped with the crate, one per
        /// event and message type.
        ///
        /// The bodies are the crate's own test fixtures (`tests/fixtures/<name>.json`):
        /// realistic, pretty-printed JSON in Meta's full-notification form, with a fixed
        /// `event_id`. Send one with [`TestEvent::fixture`](super::TestEvent::fixture), which
        /// gives it a fresh `event_id`, or read [`body`](Self::body) directly.
        ///
        /// ```
        /// use vobiz_webhooks::testing::Fixture;
        ///
        /// assert_eq!(Fixture::InboundImage.name(), "message.inbound/image");
        /// assert_eq!(Fixture::InboundImage.event_type(), "message.inbound");
        /// assert!(Fixture::InboundImage.body().contains(r#""type": "image""#));
        /// assert_eq!("call/connect".parse::<Fixture>(), Ok(Fixture::CallConnect));
        ///
        /// for fixture in Fixture::ALL {
        ///     assert!(fixture.body().contains(fixture.event_type()));
        /// }
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Fixture {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Fixture {
            /// Every fixture, in a stable order (inbound messages, statuses, calls).
            pub const ALL: &'static [Fixture] = &[ $(Fixture::$variant,)* ];

            /// The fixture's name: its path under `tests/fixtures/` without `.json`, e.g.
            /// `"message.inbound/image"`. [`FromStr`] accepts it back.
            pub const fn name(self) -> &'static str {
                match self { $(Fixture::$variant => $name,)* }
            }

            /// The `event_type` of the fixture's envelope, e.g. `"call.connect"`.
            pub const fn event_type(self) -> &'static str {
                match self { $(Fixture::$variant => $event_type,)* }
            }

            /// The complete delivery body, byte for byte as shipped.
            pub const fn body(self) -> &'static str {
                match self {
                    $(Fixture::$variant => include_str!(concat!("../../tests/fixtures/", $name, ".json")),)*
                }
            }
        }
    };
}

fixtures! {
    /// A text message (`"Hi, is my order shipped?"`).
    InboundText => ("message.inbound/text", "message.inbound"),
    /// A text message replying to an earlier message (`context`).
    InboundTextReply => ("message.inbound/text_reply", "message.inbound"),
    /// A text message from a Click-to-WhatsApp ad (`referral`).
    InboundTextReferral => ("message.inbound/text_referral", "message.inbound"),
    /// An image with a caption.
    InboundImage => ("message.inbound/image", "message.inbound"),
    /// A video.
    InboundVideo => ("message.inbound/video", "message.inbound"),
    /// A voice note / audio file.
    InboundAudio => ("message.inbound/audio", "message.inbound"),
    /// A document (PDF) with a file name.
    InboundDocument => ("message.inbound/document", "message.inbound"),
    /// A sticker.
    InboundSticker => ("message.inbound/sticker", "message.inbound"),
    /// A shared location.
    InboundLocation => ("message.inbound/location", "message.inbound"),
    /// A shared location whose coordinates are JSON strings.
    InboundLocationStringCoordinates => ("message.inbound/location_string_coordinates", "message.inbound"),
    /// Shared contact cards.
    InboundContacts => ("message.inbound/contacts", "message.inbound"),
    /// A template quick-reply button press (`button`).
    InboundButton => ("message.inbound/button", "message.inbound"),
    /// An interactive reply button press.
    InboundInteractiveButtonReply => ("message.inbound/interactive_button_reply", "message.inbound"),
    /// An interactive list selection.
    InboundInteractiveListReply => ("message.inbound/interactive_list_reply", "message.inbound"),
    /// A WhatsApp Flow response (`nfm_reply`).
    InboundInteractiveNfmReply => ("message.inbound/interactive_nfm_reply", "message.inbound"),
    /// A reply to a call-permission request.
    InboundInteractiveCallPermissionReply => ("message.inbound/interactive_call_permission_reply", "message.inbound"),
    /// A reaction (emoji) to a message.
    InboundReaction => ("message.inbound/reaction", "message.inbound"),
    /// A reaction removed (empty emoji).
    InboundReactionRemoved => ("message.inbound/reaction_removed", "message.inbound"),
    /// A catalog order.
    InboundOrder => ("message.inbound/order", "message.inbound"),
    /// A system message (the user changed number).
    InboundSystem => ("message.inbound/system", "message.inbound"),
    /// A message type Meta does not support (`unsupported` with `errors`).
    InboundUnsupported => ("message.inbound/unsupported", "message.inbound"),
    /// A message type this crate does not know.
    InboundUnknownType => ("message.inbound/unknown_type", "message.inbound"),
    /// Status `sent`, with conversation and pricing.
    StatusSent => ("message.status/sent", "message.status"),
    /// Status `delivered`.
    StatusDelivered => ("message.status/delivered", "message.status"),
    /// Status `read`.
    StatusRead => ("message.status/read", "message.status"),
    /// Status `failed`, with an error.
    StatusFailed => ("message.status/failed", "message.status"),
    /// Status `played` (a voice message was played).
    StatusPlayed => ("message.status/played", "message.status"),
    /// A status of a group message.
    StatusGroup => ("message.status/group", "message.status"),
    /// `call.connect` of a user-initiated call, with the SDP offer.
    CallConnect => ("call/connect", "call.connect"),
    /// `call.connect` of a business-initiated call.
    CallConnectBusinessInitiated => ("call/connect_business_initiated", "call.connect"),
    /// `call.status_change` in Meta's `statuses[]` form.
    CallStatusChange => ("call/status_change", "call.status_change"),
    /// `call.status_change` in the `calls[]` form.
    CallStatusChangeCalls => ("call/status_change_calls", "call.status_change"),
    /// `call.terminate` of a completed call.
    CallTerminate => ("call/terminate", "call.terminate"),
    /// `call.terminate` of a failed call.
    CallTerminateFailed => ("call/terminate_failed", "call.terminate"),
    /// `call.call_recording_available`.
    CallRecordingAvailable => ("call/call_recording_available", "call.call_recording_available"),
}

impl fmt::Display for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given to [`Fixture::from_str`] is no fixture's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFixture(pub String);

impl fmt::Display for UnknownFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no fixture is named `{}`", self.0)
    }
}

impl std::error::Error for UnknownFixture {}

impl FromStr for Fixture {
    type Err = UnknownFixture;

    /// Parses a [`Fixture::name`], with or without a trailing `.json`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let bare = name.strip_suffix(".json").unwrap_or(name);
        Fixture::ALL
            .iter()
            .copied()
            .find(|fixture| fixture.name() == bare)
            .ok_or_else(|| UnknownFixture(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    #[test]
    fn every_fixture_is_a_listed_envelope_of_its_type() {
        let on_disk = ["message.inbound", "message.status", "call"]
            .iter()
            .map(|dir| {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
                std::fs::read_dir(format!("{path}{dir}"))
                    .expect("fixture dir")
                    .count()
            })
            .sum::<usize>();
        assert_eq!(Fixture::ALL.len(), on_disk, "a fixture file is not listed");
        for fixture in Fixture::ALL {
            let envelope = Envelope::from_slice(fixture.body().as_bytes()).expect("envelope");
            assert_eq!(envelope.event_type.as_str(), fixture.event_type());
            assert_eq!(fixture.name().parse::<Fixture>(), Ok(*fixture));
            assert_eq!(format!("{fixture}.json").parse::<Fixture>(), Ok(*fixture));
        }
        assert!("nope".parse::<Fixture>().is_err());
    }
}
