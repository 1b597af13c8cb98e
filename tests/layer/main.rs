//! The layer: behaviour per status code, signatures, rejections, resource bounds, regressions.

#[path = "../support/mod.rs"]
mod support;

mod behaviour;
mod budget;
mod content;
#[cfg(feature = "metrics")]
mod metrics;
mod regressions;
mod resources;
mod signature;
mod spans;
