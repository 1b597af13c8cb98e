//! Queue mode (feature `queue`): the in-process queue, the Redis Streams queue (feature
//! `redis`), throughput.

#[path = "../support/mod.rs"]
mod support;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_once;
mod throughput;
