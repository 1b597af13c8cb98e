//! The subscription API client (feature `client`).

#[path = "../support/mod.rs"]
mod support;

mod subscription;
