//! The crate's plain-text answers: one builder for every status it sends on its own.

use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;

/// A `text/plain` response with `body`, and `Retry-After` (whole seconds) when given.
pub(crate) fn text_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    retry_after: Option<u64>,
) -> Response {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(secs) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A delay as a `Retry-After` value: whole seconds, rounded up so a sender never comes early.
pub(crate) fn retry_after_secs(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 0);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
        assert_eq!(retry_after_secs(Duration::from_millis(5001)), 6);
    }

    #[test]
    fn text_responses_are_plain_text_with_retry_after() {
        let response = text_response(StatusCode::SERVICE_UNAVAILABLE, "busy", Some(3));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let plain = text_response(StatusCode::OK, "ok", None);
        assert!(plain.headers().get(RETRY_AFTER).is_none());
    }
}
