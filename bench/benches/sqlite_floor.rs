//! What a SQLite transaction costs before any statement of its own, on `sqlite::memory:`:
//! the pieces a `Tx` is made of, each timed alone over N repetitions (µs per repetition).
//!
//! `cargo bench -p signals-bench --bench sqlite_floor` (option after `--`: `--n N`). For the
//! context switches behind these figures, run the built binary under
//! `perf stat -e context-switches`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use signals_core::sqlx::{self, Connection as _};
use signals_core::{Db, PoolRef};

fn report(what: &str, start: Instant, n: usize) {
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("| {what:<58} | {us:>6.1} |");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = signals_bench::arg("--n")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    // A `Db` keeps a connection, handle held, between its transactions; asked for its pool
    // (on `:memory:`), it stops: `db` measures the pooled path, `kept` the kept one.
    let kept = Db::connect("sqlite::memory:").await.unwrap();
    let db = Db::connect("sqlite::memory:").await.unwrap();
    let PoolRef::Sqlite(pool) = db.pool() else {
        unreachable!()
    };
    println!("sqlite::memory:, {n} repetitions each, µs per repetition");
    println!();
    println!("| {:<58} | {:>6} |", "what", "µs");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(8));
    for round in 0..2 {
        let suffix = if round == 0 { " (warm-up)" } else { "" };
        let t = Instant::now();
        for _ in 0..n {
            db.begin().await.unwrap().commit().await.unwrap();
        }
        report(
            &format!("empty transaction, pooled connection{suffix}"),
            t,
            n,
        );
        let t = Instant::now();
        for _ in 0..n {
            kept.begin().await.unwrap().commit().await.unwrap();
        }
        report(&format!("empty transaction, kept connection{suffix}"), t, n);

        let t = Instant::now();
        for _ in 0..n {
            drop(pool.acquire().await.unwrap());
        }
        report(
            &format!("pool: take a connection, give it back{suffix}"),
            t,
            n,
        );

        // Taking the handle back to back can deadlock in sqlx (see `settle` in
        // signals-core's `sqlite_raw.rs`): a ping between lets the worker catch up.
        let mut conn = pool.acquire().await.unwrap();
        let t = Instant::now();
        for _ in 0..n {
            conn.ping().await.unwrap();
        }
        report(
            &format!("a ping: one round trip to the worker{suffix}"),
            t,
            n,
        );
        let t = Instant::now();
        for _ in 0..n {
            conn.ping().await.unwrap();
            drop(conn.lock_handle().await.unwrap());
        }
        report(
            &format!("a ping, then take the handle and give it back{suffix}"),
            t,
            n,
        );
        drop(conn);

        let t = Instant::now();
        for _ in 0..n {
            sqlx::query("SELECT 1").execute(pool).await.unwrap();
        }
        report(
            &format!("one statement through sqlx on the pool{suffix}"),
            t,
            n,
        );
    }
}
