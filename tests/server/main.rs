//! Real servers on loopback: the layer behind hyper, and the example server binary.

#[path = "../support/mod.rs"]
mod support;

mod example_server;
#[cfg(feature = "meta")]
mod example_server_meta;
mod loopback;
