//! Benchmarks of signals-core against hand-written sqlx: see `benches/seed.rs` and
//! `BENCHMARKS.md`. Run with `cargo bench -p signals-bench`.

use signals_core::{Backend, Db};

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

/// Runs `bench` with a fresh database on each backend that `--only` allows, in table order:
/// `sqlite-memory`, `sqlite-file`, `postgres`, `mysql` (the last three scratch databases,
/// dropped afterwards; a server that cannot be reached prints a "skipped" row).
pub async fn each_backend(name: &str, mut bench: impl AsyncFnMut(&'static str, &Db)) {
    let only = arg("--only");
    for (label, backend) in [
        ("sqlite-memory", Backend::Sqlite),
        ("sqlite-file", Backend::Sqlite),
        ("postgres", Backend::Postgres),
        ("mysql", Backend::MySql),
    ] {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        if label == "sqlite-memory" {
            let db = Db::connect("sqlite::memory:")
                .await
                .expect("in-memory SQLite");
            bench(label, &db).await;
            db.close().await;
            continue;
        }
        let Some(scratch) = signals_tests::Scratch::create(backend, name).await else {
            println!("| {label:<13} | (server not reachable: skipped) |");
            continue;
        };
        let db = Db::connect(&scratch.url)
            .await
            .expect("the scratch database");
        bench(label, &db).await;
        db.close().await;
        scratch.drop_now().await;
    }
}
