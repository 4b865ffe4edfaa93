//! Benchmarks of signals-core against hand-written sqlx: see `benches/seed.rs` and
//! `BENCHMARKS.md`. Run with `cargo bench -p signals-bench`.

/// The value after `--name` on the bench's command line (`cargo bench .. -- --rounds 9`).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The median of `values` (the upper one of an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
