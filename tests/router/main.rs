//! `VobizRouter` (feature `router`): dispatch, precedence, fallback, state, errors, and the
//! integrity of the `X-Webhook-Event` header.

#[path = "../support/mod.rs"]
mod support;

mod dispatch;
mod event_header;
