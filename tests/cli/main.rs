//! The `vobiz` binary (feature `cli`).

#[path = "../support/mod.rs"]
mod support;

mod commands;
mod meta;
