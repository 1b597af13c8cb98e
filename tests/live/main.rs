//! The live stream (feature `live`): the hub through its public API (mapping, order, resume,
//! bounds), then the WebSocket and SSE endpoints behind the real webhook layer over loopback
//! HTTP (auth, exactly once, failing handlers, resume after a disconnect, slow consumers,
//! heartbeats) and queue mode.

#[path = "../support/mod.rs"]
mod support;

mod footprint;
mod hub;
mod server;
mod stream;
