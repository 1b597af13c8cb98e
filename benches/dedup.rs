//! Benchmarks of the dedup stores (filled in next).

fn main() {}
