//! The checks of a delivery that need no I/O: steps 1 and 3–5 of its way, as pure functions.
//!
//! Headers, the buffered body, the configuration and the clock go in; a [`VerifiedEvent`] or
//! the [`Rejection`] to answer comes out. Kept apart from the service so each check is tested
//! on its own, without a runtime, a store or a body stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::envelope::{self, Envelope};
use crate::headers::{X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::rejection::Rejection;
use crate::signature::{parse_signature, SignatureError, Verifier, TAG_LEN};
use crate::verified::VerifiedEvent;

/// Bounds on `occurred_at` for the opt-in freshness check.
#[derive(Clone, Copy, Debug)]
pub(super) struct Freshness {
    pub(super) max_age: Duration,
    pub(super) max_future_skew: Duration,
}

/// What step 1 learned from the headers.
#[derive(Debug)]
pub(super) struct Checked {
    /// The signature's tag, for [`verify`]: the header is decoded once.
    pub(super) tag: [u8; TAG_LEN],
    /// The declared `Content-Length`, within the limit; `None` when there is none.
    pub(super) declared: Option<usize>,
}

/// Step 1: signature header present and well formed; declared length within the limit.
pub(super) fn check_headers(headers: &HeaderMap, limit: usize) -> Result<Checked, Rejection> {
    // One pass over the few headers of a delivery: cheaper than hashing each custom name.
    let mut signature = None;
    let mut content_length = None;
    for (name, value) in headers {
        if *name == X_WEBHOOK_SIGNATURE {
            if signature.replace(value).is_some() {
                return Err(Rejection::MalformedSignature);
            }
        } else if *name == CONTENT_LENGTH && content_length.is_none() {
            content_length = Some(value);
        }
    }
    let value = signature.ok_or(Rejection::MissingSignature)?;
    let tag = parse_signature(value.as_bytes()).map_err(|_| Rejection::MalformedSignature)?;
    // An unparsable Content-Length is hyper's to refuse; here only the limit matters.
    let declared = content_length
        .and_then(|length| length.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    let declared = match declared {
        Some(declared) if declared > limit as u64 => {
            return Err(Rejection::PayloadTooLarge { limit })
        }
        // Within the limit, so within `usize`.
        Some(declared) => usize::try_from(declared).ok(),
        None => None,
    };
    Ok(Checked { tag, declared })
}

/// Steps 3–5: verify `tag` (from [`check_headers`]) over the exact `body`, read the envelope,
/// check `X-Webhook-Event` against it and, when configured, its freshness.
///
/// `now` is called only when a freshness check is configured: no clock read otherwise.
pub(super) fn verify(
    verifier: &Verifier,
    freshness: Option<Freshness>,
    headers: &HeaderMap,
    tag: &[u8; TAG_LEN],
    body: Bytes,
    now: impl FnOnce() -> OffsetDateTime,
) -> Result<VerifiedEvent, Rejection> {
    verifier.verify_tag(tag, &body).map_err(|err| match err {
        SignatureError::Malformed => Rejection::MalformedSignature,
        _ => Rejection::SignatureMismatch,
    })?;
    let (parsed, text) =
        envelope::parse_shared(&body).map_err(|err| Rejection::InvalidEnvelope(Arc::new(err)))?;
    check_event_header(headers, &parsed.envelope)?;
    if let Some(freshness) = freshness {
        check_freshness(freshness, &parsed.envelope, now())?;
    }
    Ok(VerifiedEvent::new(parsed.envelope, text, parsed.payload))
}

/// The header is not signed, so it only has to agree with the body; its absence is fine.
fn check_event_header(headers: &HeaderMap, envelope: &Envelope) -> Result<(), Rejection> {
    let values = headers.iter().filter(|(name, _)| **name == X_WEBHOOK_EVENT);
    for (_, value) in values {
        if value.as_bytes() != envelope.event_type.as_str().as_bytes() {
            return Err(Rejection::EventTypeMismatch {
                header: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                body: envelope.event_type.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

fn check_freshness(
    freshness: Freshness,
    envelope: &Envelope,
    now: OffsetDateTime,
) -> Result<(), Rejection> {
    let occurred_at = envelope.occurred_at.ok_or(Rejection::MissingTimestamp)?;
    let age = now - occurred_at;
    if age > freshness.max_age {
        return Err(Rejection::Stale);
    }
    if -age > freshness.max_future_skew {
        return Err(Rejection::FromTheFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::signature::Secret;

    const SECRET: &str = "test-secret";
    const BODY: &str = r#"{"event_id":"evt-1","event_type":"message.inbound","account_id":"MA_1","occurred_at":"2026-03-25T10:00:00Z","payload":{"object":"whatsapp_business_account"}}"#;
    const MINUTE: Duration = Duration::from_secs(60);

    /// The fixture's `occurred_at`.
    fn occurred_at() -> OffsetDateTime {
        OffsetDateTime::parse("2026-03-25T10:00:00Z", &Rfc3339).expect("timestamp")
    }

    fn verifier() -> Verifier {
        Verifier::from_secret(Secret::new(SECRET).expect("secret"))
    }

    fn headers(body: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = crate::signature::sign(SECRET, body.as_bytes());
        headers.insert(X_WEBHOOK_SIGNATURE, signature.parse().expect("header"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers
    }

    /// Steps 1 and 3–5 as the service runs them, with the clock at `now`.
    fn run(
        headers: &HeaderMap,
        body: &str,
        freshness: Option<Freshness>,
        now: OffsetDateTime,
    ) -> Result<VerifiedEvent, Rejection> {
        let tag = check_headers(headers, 4096)?.tag;
        let body = Bytes::copy_from_slice(body.as_bytes());
        verify(&verifier(), freshness, headers, &tag, body, || now)
    }

    fn fresh_within(minutes: u32) -> Option<Freshness> {
        Some(Freshness {
            max_age: MINUTE * minutes,
            max_future_skew: MINUTE * minutes,
        })
    }

    #[test]
    fn a_signed_delivery_verifies_and_keeps_its_bytes() {
        let event = run(&headers(BODY), BODY, None, occurred_at()).expect("verified");
        assert_eq!(event.event_id(), "evt-1");
        assert_eq!(event.event_type().as_str(), "message.inbound");
        assert_eq!(event.body().as_ref(), BODY.as_bytes());
    }

    #[test]
    fn a_missing_signature_header_is_refused() {
        let mut headers = headers(BODY);
        headers.remove(X_WEBHOOK_SIGNATURE);
        let rejection = check_headers(&headers, 4096).expect_err("refused");
        assert!(matches!(rejection, Rejection::MissingSignature));
    }

    #[test]
    fn a_malformed_signature_header_is_refused() {
        for bad in ["abc", "sha256=00", &"g".repeat(64), &"0".repeat(65)] {
            let mut headers = headers(BODY);
            headers.insert(X_WEBHOOK_SIGNATURE, bad.parse().expect("header"));
            let rejection = check_headers(&headers, 4096).expect_err(bad);
            assert!(matches!(rejection, Rejection::MalformedSignature), "{bad}");
        }
    }

    #[test]
    fn a_second_signature_header_is_refused() {
        let mut headers = headers(BODY);
        let again = headers[X_WEBHOOK_SIGNATURE].clone();
        headers.append(X_WEBHOOK_SIGNATURE, again);
        let rejection = check_headers(&headers, 4096).expect_err("refused");
        assert!(matches!(rejection, Rejection::MalformedSignature));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_the_body() {
        let headers = headers(BODY);
        let rejection = check_headers(&headers, BODY.len() - 1).expect_err("refused");
        assert!(
            matches!(rejection, Rejection::PayloadTooLarge { limit } if limit == BODY.len() - 1)
        );
        let at_limit = check_headers(&headers, BODY.len()).expect("at the limit");
        assert_eq!(
            at_limit.declared,
            Some(BODY.len()),
            "kept for the body budget"
        );
    }

    #[test]
    fn an_unparsable_content_length_is_left_to_hyper() {
        let mut headers = headers(BODY);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("lots"));
        let checked = check_headers(&headers, 1).expect("not refused here");
        assert_eq!(checked.declared, None, "reserved as the whole limit");
    }

    #[test]
    fn a_signature_of_other_bytes_is_a_mismatch() {
        let other = BODY.replace("evt-1", "evt-2");
        let rejection = run(&headers(BODY), &other, None, occurred_at()).expect_err("refused");
        assert!(matches!(rejection, Rejection::SignatureMismatch));
    }

    #[test]
    fn a_signed_body_that_is_no_envelope_is_refused() {
        for body in [
            "not json",
            r#"{"event_type":"message.inbound"}"#,
            "{\"event_id\":\"\u{0}",
        ] {
            let rejection = run(&headers(body), body, None, occurred_at()).expect_err(body);
            assert!(matches!(rejection, Rejection::InvalidEnvelope(_)), "{body}");
        }
    }

    #[test]
    fn an_event_header_must_agree_with_the_body() {
        let mut headers = headers(BODY);
        headers.insert(X_WEBHOOK_EVENT, HeaderValue::from_static("message.status"));
        let rejection = run(&headers, BODY, None, occurred_at()).expect_err("refused");
        assert!(matches!(
            rejection,
            Rejection::EventTypeMismatch { header, body }
                if header == "message.status" && body == "message.inbound"
        ));
        headers.insert(X_WEBHOOK_EVENT, HeaderValue::from_static("message.inbound"));
        assert!(run(&headers, BODY, None, occurred_at()).is_ok(), "agreeing");
    }

    #[test]
    fn freshness_refuses_stale_future_and_undated_deliveries() {
        let headers = headers(BODY);
        let fresh = fresh_within(5);
        assert!(run(&headers, BODY, fresh, occurred_at() + MINUTE * 4).is_ok());
        assert!(run(&headers, BODY, fresh, occurred_at() - MINUTE * 4).is_ok());
        let stale = run(&headers, BODY, fresh, occurred_at() + MINUTE * 6);
        assert!(matches!(stale, Err(Rejection::Stale)));
        let ahead = run(&headers, BODY, fresh, occurred_at() - MINUTE * 6);
        assert!(matches!(ahead, Err(Rejection::FromTheFuture)));

        let undated = BODY.replace(r#""occurred_at":"2026-03-25T10:00:00Z","#, "");
        let missing = run(&self::headers(&undated), &undated, fresh, occurred_at());
        assert!(matches!(missing, Err(Rejection::MissingTimestamp)));
    }

    #[test]
    fn without_freshness_the_clock_is_not_read() {
        let tag = check_headers(&headers(BODY), 4096).expect("headers").tag;
        let body = Bytes::from_static(BODY.as_bytes());
        let verified = verify(&verifier(), None, &headers(BODY), &tag, body, || {
            panic!("no clock read without a freshness check")
        });
        assert!(verified.is_ok());
    }
}
