//! Step 2 of a delivery's way: buffering the body, within the limit and the body timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
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
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let collecting = std::pin::pin!(Limited::new(body, limit).collect());
    // Only a body still on its way pays for a timer.
    let Ok(collected) = timeout_unless_ready(collecting, || deadline_after(timeout)).await else {
        return Err(Rejection::BodyTimeout { timeout });
    };
    match collected {
        Ok(collected) => {
            let mut buf = collected.aggregate();
            Ok(buf.copy_to_bytes(buf.remaining()))
        }
        Err(err) if err.is::<LengthLimitError>() => Err(Rejection::PayloadTooLarge { limit }),
        Err(err) => Err(Rejection::BodyReadFailed(Arc::from(err))),
    }
}
