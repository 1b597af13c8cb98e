//! Step 2 of a delivery's way: buffering the body, within the limit and the body timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::future::{deadline_after, timeout_unless_ready, BoxError};
use crate::rejection::Rejection;

/// Buffers the body within `limit`, and within `timeout` unless it is complete at the first look.
pub(crate) async fn read_body<B>(
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let collecting = pin!(collect(Limited::new(body, limit)));
    // Only a body still on its way pays for a timer.
    let Ok(collected) = timeout_unless_ready(collecting, || deadline_after(timeout)).await else {
        return Err(Rejection::BodyTimeout { timeout });
    };
    match collected {
        Ok(bytes) => Ok(bytes),
        Err(err) if err.is::<LengthLimitError>() => Err(Rejection::PayloadTooLarge { limit }),
        Err(err) => Err(Rejection::BodyReadFailed(Arc::from(err))),
    }
}

/// The body's data frames as one `Bytes` (trailers are dropped).
///
/// `BodyExt::collect` would do, but it lists every frame in a `VecDeque`: an allocation on
/// every delivery, although a body nearly always arrives as one frame. The one frame is kept
/// as it came (no copy). More are listed as they come and joined once at the end, into a
/// buffer of the exact size: a buffer grown as frames arrive may reserve twice what it holds,
/// and the limit bounds what is held, not what is reserved.
async fn collect<B: Body>(body: B) -> Result<Bytes, B::Error> {
    let mut body = pin!(body);
    let mut first = Bytes::new();
    let mut rest = Vec::new();
    while let Some(frame) = body.as_mut().frame().await {
        // Trailers and empty frames add nothing.
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        if !data.has_remaining() {
            continue;
        }
        let data = data.copy_to_bytes(data.remaining());
        if first.is_empty() {
            first = data;
        } else {
            rest.push(data);
        }
    }
    if rest.is_empty() {
        return Ok(first);
    }
    let length = first.len() + rest.iter().map(Bytes::len).sum::<usize>();
    let mut joined = BytesMut::with_capacity(length);
    joined.extend_from_slice(&first);
    for part in &rest {
        joined.extend_from_slice(part);
    }
    Ok(joined.freeze())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;

    fn frames(
        parts: &[&'static str],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let mut frames: Vec<_> = parts
            .iter()
            .map(|part| Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
            .collect();
        frames.insert(
            1.min(frames.len()),
            Ok(Frame::trailers(http::HeaderMap::new())),
        );
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn frames_are_joined_in_order_and_trailers_dropped() {
        for parts in [
            &[][..],
            &["{}"],
            &["", "{\"a\":", "", "1}"],
            &["{\"a\"", ":1", "}"],
        ] {
            let bytes = collect(frames(parts)).await.expect("infallible");
            assert_eq!(bytes, parts.concat().as_bytes(), "{parts:?}");
        }
    }

    #[tokio::test]
    async fn one_frame_is_kept_as_it_came() {
        let body = Bytes::from_static(b"{\"event_id\":\"e\"}");
        let bytes = collect(http_body_util::Full::new(body.clone()))
            .await
            .expect("infallible");
        assert_eq!(bytes.as_ptr(), body.as_ptr(), "no copy");
    }

    #[tokio::test]
    async fn the_limit_still_holds_across_frames() {
        let result = read_body(frames(&["12345", "67890"]), 8, Duration::from_secs(5)).await;
        assert!(matches!(
            result,
            Err(Rejection::PayloadTooLarge { limit: 8 })
        ));
    }
}
