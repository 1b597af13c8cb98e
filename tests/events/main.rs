//! Typed events, through the public API only: every fixture, in both payload forms.

#[path = "../support/mod.rs"]
mod support;

mod typed;
