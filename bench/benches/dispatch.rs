//! Receiver dispatch costs no allocation: the derive calls receivers statically, each
//! receiver's future stored inline in the save's future. This saves a model with one no-op
//! `post_save` receiver and one with ten, on in-memory SQLite, counting heap allocations with a
//! counting global allocator; the difference divided by nine is the cost per receiver.
//!
//! `cargo bench -p signals-bench --bench dispatch`
#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::System;
use std::time::Instant;

use signals_core::{Db, Model, PostSave, Result};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

async fn noop<M>(_: &M, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

#[derive(Model)]
#[model(table = "one")]
#[post_save(noop)]
struct One {
    id: Option<i64>,
    n: i64,
}

#[derive(Model)]
#[model(table = "ten")]
#[post_save(noop, noop1, noop2, noop3, noop4, noop5, noop6, noop7, noop8, noop9)]
struct Ten {
    id: Option<i64>,
    n: i64,
}

macro_rules! noops {
    ($($name:ident),*) => {$(
        async fn $name(_: &Ten, _: &mut PostSave<'_>) -> Result<()> {
            Ok(())
        }
    )*};
}
noops!(
    noop1, noop2, noop3, noop4, noop5, noop6, noop7, noop8, noop9
);

const SAVES: u64 = 20_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE one (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE ten (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);",
    )
    .await
    .unwrap();
    let mut one = One { id: None, n: 0 };
    let mut ten = Ten { id: None, n: 0 };
    one.save(&db).await.unwrap();
    ten.save(&db).await.unwrap();

    let mut results = Vec::new();
    for round in 0..3 {
        let count = |region: Region<'_, System>| {
            let stats = region.change();
            (stats.allocations + stats.reallocations) as f64 / SAVES as f64
        };
        let region = Region::new(GLOBAL);
        let t0 = Instant::now();
        for i in 0..SAVES {
            one.n = i as i64;
            one.save(&db).await.unwrap();
        }
        let (one_alloc, t1) = (count(region), Instant::now());
        let region = Region::new(GLOBAL);
        for i in 0..SAVES {
            ten.n = i as i64;
            ten.save(&db).await.unwrap();
        }
        let (ten_alloc, t2) = (count(region), Instant::now());
        let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6 / SAVES as f64;
        if round > 0 {
            results.push((one_alloc, ten_alloc, us(t0, t1), us(t1, t2)));
        }
    }
    println!("update of a saved row (transaction, UPDATE, post_save receivers), {SAVES} saves:");
    println!();
    println!("| model | receivers | allocations/save | µs/save |");
    println!("|---|---:|---:|---:|");
    for (one_alloc, ten_alloc, one_us, ten_us) in &results {
        println!("| One | 1 | {one_alloc:.2} | {one_us:.1} |");
        println!("| Ten | 10 | {ten_alloc:.2} | {ten_us:.1} |");
        println!(
            "| per extra receiver | | {:+.3} | {:+.3} |",
            (ten_alloc - one_alloc) / 9.0,
            (ten_us - one_us) / 9.0
        );
    }
}
