//! Deduplication: the store contract for every backend, bounds and footprint, dedup through
//! the layer, duplicate storms, and Redis outages.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod footprint;
mod memory_bound;
#[cfg(feature = "moka")]
mod moka_bound;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_outage;
#[cfg(feature = "redis")]
mod redis_restart;
mod storms;
mod through_layer;
