//! Meta's verification handshake: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use sha2::{Digest, Sha256};
use tower_service::Service;

use super::rejection::HandshakeRejection;
use crate::response::text_response;

/// The verify token was empty: any empty `hub.verify_token` would then pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmptyVerifyToken;

impl fmt::Display for EmptyVerifyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Meta verify token must not be empty")
    }
}

impl std::error::Error for EmptyVerifyToken {}

/// Answers Meta's verification handshake: a tower [`Service`] to mount with `get_service` on the
/// same path as the [`MetaWebhookLayer`](super::MetaWebhookLayer)'s POST route.
///
/// Meta sends `GET <callback>?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=<random>`
/// when the callback URL or the verify token is set. The service answers 200 `text/plain` with
/// the challenge exactly (percent-decoded as any query value) when the mode is `subscribe` and
/// the token is the one you typed into Meta's app dashboard (compared in constant time); 403
/// when the mode or the token is wrong or missing; 400 when the challenge is missing or empty. The
/// method is the router's business (mount it with `get_service`).
///
/// ```
/// use axum::{routing::post, Router};
/// use vobiz_webhooks::meta::{MetaHandshake, MetaWebhookLayer};
/// use vobiz_webhooks::VobizEvent;
///
/// async fn handle(_event: VobizEvent) {}
///
/// let app: Router = Router::new().route(
///     "/webhooks/meta",
///     post(handle)
///         .layer(MetaWebhookLayer::new("my-app-secret"))
///         // Added after `layer`, so not behind it: the handshake is not signed.
///         .get_service(MetaHandshake::new("my-verify-token")),
/// );
/// ```
#[derive(Clone)]
pub struct MetaHandshake {
    /// The SHA-256 of the token: compared, never printed.
    token: Arc<[u8; 32]>,
}

impl MetaHandshake {
    /// A handshake that accepts `verify_token`.
    ///
    /// # Panics
    ///
    /// When `verify_token` is empty; [`try_new`](Self::try_new) returns the error instead.
    #[must_use]
    #[track_caller]
    pub fn new(verify_token: impl AsRef<[u8]>) -> Self {
        match Self::try_new(verify_token) {
            Ok(handshake) => handshake,
            Err(EmptyVerifyToken) => panic!(
                "MetaHandshake::new: the verify token is empty; \
                 use MetaHandshake::try_new to handle that as an error"
            ),
        }
    }

    /// Like [`new`](Self::new), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptyVerifyToken`] when `verify_token` is empty.
    pub fn try_new(verify_token: impl AsRef<[u8]>) -> Result<Self, EmptyVerifyToken> {
        let token = verify_token.as_ref();
        if token.is_empty() {
            return Err(EmptyVerifyToken);
        }
        Ok(Self {
            token: Arc::new(Sha256::digest(token).into()),
        })
    }

    /// What the handshake answers for a request with this `query` (the part after `?`): the
    /// challenge to echo, or why not.
    ///
    /// ```
    /// use vobiz_webhooks::meta::{HandshakeRejection, MetaHandshake};
    ///
    /// let handshake = MetaHandshake::new("token");
    /// let query = "hub.mode=subscribe&hub.verify_token=token&hub.challenge=1158201444";
    /// assert_eq!(handshake.check(Some(query)).as_deref(), Ok("1158201444"));
    /// let wrong = "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1";
    /// assert_eq!(handshake.check(Some(wrong)), Err(HandshakeRejection::WrongToken));
    /// ```
    ///
    /// # Errors
    ///
    /// The [`HandshakeRejection`] to answer.
    pub fn check(&self, query: Option<&str>) -> Result<String, HandshakeRejection> {
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for pair in query.unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode(name).as_ref() {
                "hub.mode" => &mut mode,
                "hub.verify_token" => &mut token,
                "hub.challenge" => &mut challenge,
                _ => continue,
            };
            // The first of a repeated parameter counts.
            if slot.is_none() {
                *slot = Some(decode(value).into_owned());
            }
        }
        if mode.as_deref() != Some("subscribe") {
            return Err(HandshakeRejection::WrongMode);
        }
        let token = token.ok_or(HandshakeRejection::WrongToken)?;
        if !self.matches(token.as_bytes()) {
            return Err(HandshakeRejection::WrongToken);
        }
        challenge
            .filter(|challenge| !challenge.is_empty())
            .ok_or(HandshakeRejection::MissingChallenge)
    }

    /// Compares digests of equal length in constant time: neither the token's length nor where
    /// it differs shows in the time taken.
    fn matches(&self, candidate: &[u8]) -> bool {
        let candidate: [u8; 32] = Sha256::digest(candidate).into();
        let difference = candidate
            .iter()
            .zip(self.token.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }

    /// The response for `query`.
    fn answer(&self, query: Option<&str>) -> Response {
        match self.check(query) {
            Ok(challenge) => text_response(StatusCode::OK, challenge, None),
            Err(rejection) => {
                tracing::debug!(reason = rejection.reason(), "meta handshake refused");
                rejection.into_response()
            }
        }
    }
}

impl fmt::Debug for MetaHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaHandshake")
            .field("verify_token", &"<redacted>")
            .finish()
    }
}

impl<B> Service<Request<B>> for MetaHandshake {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.answer(request.uri().query())))
    }
}

/// Percent-decodes a query component (`+` is a space); invalid escapes stay as they are, bytes
/// that do not form UTF-8 are replaced.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|byte| byte == b'%' || byte == b'+') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| {
                let mut value = [0u8; 1];
                crate::signature::decode_hex(hex, &mut value).map(|()| value[0])
            });
        match (byte, escaped) {
            (_, Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("caf%C3%A9"), "café");
        assert_eq!(decode("%FF"), "\u{fffd}");
    }

    #[test]
    fn the_handshake_checks_mode_then_token_then_challenge() {
        let handshake = MetaHandshake::new("s3cret token");
        let ok = "hub.mode=subscribe&hub.verify_token=s3cret+token&hub.challenge=abc%2F1";
        assert_eq!(handshake.check(Some(ok)).as_deref(), Ok("abc/1"));
        let cases = [
            (None, HandshakeRejection::WrongMode),
            (
                Some("hub.mode=unsubscribe&hub.verify_token=s3cret+token&hub.challenge=1"),
                HandshakeRejection::WrongMode,
            ),
            (
                Some("hub.mode=subscribe&hub.challenge=1"),
                HandshakeRejection::WrongToken,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1"),
                HandshakeRejection::WrongToken,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=s3cret%20token"),
                HandshakeRejection::MissingChallenge,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=s3cret%20token&hub.challenge="),
                HandshakeRejection::MissingChallenge,
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(handshake.check(query), Err(expected), "{query:?}");
        }
        assert!(MetaHandshake::try_new("").is_err());
    }
}
