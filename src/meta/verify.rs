//! The checks of a Meta POST that need no I/O: the signature header before the body is read,
//! then the signature over the exact bytes and the split into items.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName};

use super::rejection::MetaRejection;
use crate::content::{self, Item};
use crate::rejection::Rejection;
use crate::signature::{parse_signature, Verifier, TAG_LEN};

/// `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed by the app
/// secret.
pub const X_HUB_SIGNATURE_256: HeaderName = HeaderName::from_static("x-hub-signature-256");

/// Meta's prefix of the signature value.
const PREFIX: &[u8] = b"sha256=";

/// What the header checks learned.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) tag: [u8; TAG_LEN],
    /// The declared `Content-Length`, within the limit.
    pub(super) declared: Option<usize>,
}

/// The signature header present once and well formed; the declared length within the limit.
pub(super) fn check_headers(headers: &HeaderMap, limit: usize) -> Result<Checked, MetaRejection> {
    let mut values = headers.get_all(X_HUB_SIGNATURE_256).iter();
    let value = values.next().ok_or(MetaRejection::MissingSignature)?;
    if values.next().is_some() {
        return Err(MetaRejection::MalformedSignature);
    }
    let tag = parse_header(value.as_bytes()).ok_or(MetaRejection::MalformedSignature)?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    let declared = match declared {
        Some(declared) if declared > limit as u64 => {
            return Err(Rejection::PayloadTooLarge { limit }.into())
        }
        Some(declared) => usize::try_from(declared).ok(),
        None => None,
    };
    Ok(Checked { tag, declared })
}

/// `sha256=` followed by exactly 64 hex digits, either case.
fn parse_header(value: &[u8]) -> Option<[u8; TAG_LEN]> {
    let hex = value.strip_prefix(PREFIX)?;
    parse_signature(hex).ok()
}

/// Verifies `tag` over the exact `body` and splits the notification into its items.
pub(super) fn verify(
    verifier: &Verifier,
    tag: &[u8; TAG_LEN],
    body: &[u8],
) -> Result<Vec<Item>, MetaRejection> {
    verifier
        .verify_tag(tag, body)
        .map_err(|_| MetaRejection::SignatureMismatch)?;
    let text = std::str::from_utf8(body).map_err(|_| {
        // serde_json's own error, so the rejection's source says what is wrong.
        let error = serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("body is not valid UTF-8"));
        MetaRejection::InvalidNotification(Arc::new(error))
    })?;
    content::split(text).map_err(|error| MetaRejection::InvalidNotification(Arc::new(error.0)))
}

/// The `X-Hub-Signature-256` value Meta sends for `body` under `app_secret`:
/// `sha256=<lowercase hex HMAC-SHA256>`.
///
/// ```
/// use vobiz_webhooks::meta::sign;
///
/// // The spec's test vector.
/// let header = sign("meta-app-secret", br#"{"object":"whatsapp_business_account","entry":[]}"#);
/// assert_eq!(header, "sha256=ee9f05f989bc0aa2693d85691a477f8b8403933cde7959a1c5c6be7ea85e8d3d");
/// ```
pub fn sign(app_secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    format!("sha256={}", crate::signature::sign(app_secret, body))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::signature::Secret;

    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_HUB_SIGNATURE_256, value.parse().expect("header"));
        headers
    }

    #[test]
    fn the_header_is_sha256_and_64_hex_digits_of_either_case() {
        let signed = sign("meta-app-secret", BODY);
        assert!(check_headers(&headers(&signed), 100).is_ok());
        let upper = format!("sha256={}", signed[7..].to_uppercase());
        let checked = check_headers(&headers(&upper), 100).expect("upper case");
        let verifier = Verifier::from_secret(Secret::new("meta-app-secret").expect("secret"));
        assert!(verify(&verifier, &checked.tag, BODY).is_ok());
        for bad in [
            &signed[7..],
            "sha256=",
            "sha1=00",
            &format!("SHA256={}", &signed[7..]),
            &format!("{signed}0"),
            &format!("sha256= {}", &signed[7..]),
            &format!("sha256={}g", &signed[7..70]),
        ] {
            let rejection = check_headers(&headers(bad), 100).expect_err(bad);
            assert!(
                matches!(rejection, MetaRejection::MalformedSignature),
                "{bad}"
            );
        }
        let mut twice = headers(&signed);
        twice.append(
            X_HUB_SIGNATURE_256,
            HeaderValue::from_str(&signed).expect("header"),
        );
        assert!(matches!(
            check_headers(&twice, 100),
            Err(MetaRejection::MalformedSignature)
        ));
        assert!(matches!(
            check_headers(&HeaderMap::new(), 100),
            Err(MetaRejection::MissingSignature)
        ));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused() {
        let mut headers = headers(&sign("s", BODY));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(101));
        let rejection = check_headers(&headers, 100).expect_err("too large");
        assert_eq!(rejection.status(), 413);
    }

    #[test]
    fn a_signed_body_that_is_no_object_is_a_bad_notification() {
        let verifier = Verifier::from_secret(Secret::new("s").expect("secret"));
        for body in [&b"[]"[..], b"nope", b"\xff{}"] {
            let tag = parse_header(sign("s", body).as_bytes()).expect("tag");
            let rejection = verify(&verifier, &tag, body).expect_err("refused");
            assert_eq!(rejection.reason(), "bad_notification");
        }
        let tag = parse_header(sign("other", BODY).as_bytes()).expect("tag");
        assert!(matches!(
            verify(&verifier, &tag, BODY),
            Err(MetaRejection::SignatureMismatch)
        ));
    }
}
