//! The test kit (feature `testing`) as a user of the crate uses it.

#[path = "../support/mod.rs"]
mod support;

mod user_app;
