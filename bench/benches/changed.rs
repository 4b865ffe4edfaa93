//! What `changed(..)` costs: updates of one row through a model whose `post_save` receiver is
//! conditioned on a field (the save reads the row it replaces, locked) and through the same
//! model with the receiver unconditioned, alternated over several rounds on the same pool:
//! µs per update and the median of the per-round ratios. The seed workload, whose models ask
//! for no old values, is measured by the `seed` bench.
//!
//! `cargo bench -p signals-bench --bench changed` (options after `--`: `--saves N`,
//! `--rounds R`, `--only sqlite-memory|sqlite-file|postgres|mysql`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use signals_bench::{arg, each_backend, median};
use signals_core::{Db, Model, PostSave, Result};

#[derive(Debug, Clone, Model)]
#[model(table = "bench_plain")]
#[post_save(noop)]
struct Plain {
    id: Option<i64>,
    status: String,
    views: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "bench_tracked")]
#[post_save(noop, changed(status))]
struct Tracked {
    id: Option<i64>,
    status: String,
    views: i64,
}

async fn noop<M>(_: &M, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

async fn bench(label: &str, db: &Db, saves: usize, rounds: usize) {
    db.create_tables::<(Plain, Tracked)>().await.unwrap();
    let mut plain = Plain {
        id: None,
        status: "draft".into(),
        views: 0,
    };
    plain.save(db).await.unwrap();
    let mut tracked = Tracked {
        id: None,
        status: "draft".into(),
        views: 0,
    };
    tracked.save(db).await.unwrap();
    // Each update changes `views` and, every other time, `status` (so the receiver runs half
    // the time; the read happens every time).
    let mut plain_run = async |n: usize| {
        let start = Instant::now();
        for i in 0..n {
            plain.views += 1;
            plain.status = if i % 2 == 0 { "draft" } else { "published" }.into();
            plain.save(db).await.unwrap();
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let _ = plain_run(saves / 4).await;
    let (mut ours, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let tracked_run = async |t: &mut Tracked, n: usize| {
            let start = Instant::now();
            for i in 0..n {
                t.views += 1;
                t.status = if i % 2 == 0 { "draft" } else { "published" }.into();
                t.save(db).await.unwrap();
            }
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        let (a, b);
        if round % 2 == 0 {
            a = tracked_run(&mut tracked, saves).await;
            b = plain_run(saves).await;
        } else {
            b = plain_run(saves).await;
            a = tracked_run(&mut tracked, saves).await;
        }
        ours.push(a);
        base.push(b);
        ratios.push(a / b);
    }
    println!(
        "| {label:<13} | {:>8.1} | {:>8.1} | {:>5.2} |",
        median(&ours),
        median(&base),
        median(&ratios)
    );
}

#[tokio::main]
async fn main() {
    let saves: usize = arg("--saves").and_then(|s| s.parse().ok()).unwrap_or(500);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(9);
    println!("updates of one row: µs per update, median of {rounds} rounds of {saves}");
    println!();
    println!("| backend       | changed(..) | plain receiver | ratio |");
    println!("|---------------|---------:|---------:|------:|");
    each_backend("bench_changed", async |label, db| {
        bench(label, db, saves, rounds).await
    })
    .await;
}
