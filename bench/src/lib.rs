//! Benchmarks of signals-core against hand-written sqlx: see `benches/seed.rs` and
//! `BENCHMARKS.md`. Run with `cargo bench -p signals-bench`.
