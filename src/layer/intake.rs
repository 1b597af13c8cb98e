//! What both legs' layers share of a request's intake: the secrets, and the bounds within which
//! a body is received (limit, timeout, the unverified-body budget), claimed and refused.
//!
//! The Vobiz layer and the Meta layer (feature `meta`) each keep one of these in their
//! configuration, so a default or a bound is written once.

use std::time::Duration;

use bytes::Bytes;

use super::body::read_body;
use super::budget::{Budget, Reservation};
use super::{
    DEFAULT_BODY_BUDGET, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_LEASE,
    DEFAULT_RETRY_AFTER, DEFAULT_STORE_TIMEOUT, DEFAULT_TTL,
};
use crate::claim::Terms;
use crate::future::BoxError;
use crate::rejection::Rejection;
use crate::response::retry_after_secs;
use crate::signature::Secrets;

/// The settings a layer receives a body with; every one has the crate's default until set.
#[derive(Clone)]
pub(crate) struct Intake {
    /// A live handle: shared with every clone of the layer and with whoever rotates them.
    pub(crate) secrets: Secrets,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
    /// Shared by every clone of the layer (the budget is behind an `Arc`).
    pub(crate) body_budget: Option<Budget>,
    /// Lease, TTL and store timeout: what the claim module needs of the configuration.
    pub(crate) claim: Terms,
    pub(crate) retry_after: Duration,
}

impl Intake {
    pub(crate) fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_budget: Some(Budget::new(DEFAULT_BODY_BUDGET)),
            claim: Terms {
                lease: DEFAULT_LEASE,
                ttl: DEFAULT_TTL,
                store_timeout: DEFAULT_STORE_TIMEOUT,
            },
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }

    /// Room for `body` among all bodies not yet verified (`None` when the budget is off), or
    /// 503 at once when there is none, while the sender can still be told to come back.
    ///
    /// The body's own bound (hyper knows it from `Content-Length`, and that an empty body is
    /// empty) before the header's `declared` length; a body of unknown length may grow to the
    /// limit.
    pub(crate) fn reserve<B: http_body::Body>(
        &self,
        body: &B,
        declared: Option<usize>,
    ) -> Result<Option<Reservation>, Rejection> {
        let Some(budget) = &self.body_budget else {
            return Ok(None);
        };
        let size = body
            .size_hint()
            .upper()
            .and_then(|upper| usize::try_from(upper).ok())
            .or(declared)
            .map_or(self.body_limit, |size| size.min(self.body_limit));
        match budget.try_reserve(size) {
            Some(reservation) => Ok(Some(reservation)),
            None => Err(Rejection::BodyBudgetExhausted {
                retry_after: retry_after_secs(self.retry_after),
            }),
        }
    }

    /// Buffers `body` within the limit and the body timeout.
    pub(crate) async fn read<B>(&self, body: B) -> Result<Bytes, Rejection>
    where
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        read_body(body, self.body_limit, self.body_timeout).await
    }
}
