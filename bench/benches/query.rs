//! A filtered, ordered, limited query through the typed builder and the same statement written
//! by hand with sqlx, on the same pool, alternated over several rounds: time per query and the
//! median of the per-round ratios, and heap allocations per query at 20 and 200 rows (their
//! difference per row tells what the builder adds per row beyond decoding).
//!
//! `cargo bench -p signals-bench --bench query` (options after `--`: `--queries N`,
//! `--rounds R`, `--only sqlite-memory|sqlite-file|postgres|mysql`).
#![allow(missing_docs, clippy::unwrap_used)]

use signals_bench::{arg, each_backend, median};

use std::alloc::System;
use std::time::Instant;

use chrono::NaiveDate;
use signals_core::sqlx::{self, Row as _};
use signals_core::{Backend, Db, Model, PoolRef};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, Model)]
#[model(table = "bench_post")]
struct Post {
    id: Option<i64>,
    title: String,
    status: String,
    views: i64,
    published: Option<NaiveDate>,
}

/// The hand-written side's row, decoded field by field as one would.
#[allow(dead_code)]
struct Plain {
    id: i64,
    title: String,
    status: String,
    views: i64,
    published: Option<NaiveDate>,
}

const ROWS: i64 = 2_000;

async fn seed(db: &Db) {
    let ddl = match db.backend() {
        Backend::Postgres => {
            "CREATE TABLE bench_post (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL, views BIGINT NOT NULL, published DATE)"
        }
        Backend::MySql => {
            "CREATE TABLE bench_post (id BIGINT AUTO_INCREMENT PRIMARY KEY, title TEXT NOT NULL, status VARCHAR(20) NOT NULL, views BIGINT NOT NULL, published DATE)"
        }
        _ => {
            "CREATE TABLE bench_post (id INTEGER PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL, views INTEGER NOT NULL, published DATE)"
        }
    };
    db.execute_unprepared(ddl).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    for i in 0..ROWS {
        Post {
            id: None,
            title: format!("post number {i}"),
            status: if i % 3 == 0 { "draft" } else { "published" }.into(),
            views: (i * 7919) % 1000,
            published: NaiveDate::from_ymd_opt(2024, 1, 1 + (i % 28) as u32),
        }
        .save(&mut tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn builder(db: &Db, limit: u64) -> usize {
    Post::query()
        .filter(Post::STATUS.eq("published"))
        .filter(Post::VIEWS.gt(100))
        .order_by(Post::VIEWS.desc())
        .limit(limit)
        .all(db)
        .await
        .unwrap()
        .len()
}

/// The statement the builder writes, by hand.
fn sql(backend: Backend, limit: u64) -> String {
    match backend {
        Backend::Postgres => format!(
            r#"SELECT "id", "title", "status", "views", "published" FROM "bench_post" WHERE ("status" = $1 AND "views" > $2) ORDER BY "views" DESC LIMIT {limit}"#
        ),
        Backend::MySql => format!(
            "SELECT `id`, `title`, `status`, `views`, `published` FROM `bench_post` WHERE (`status` = ? AND `views` > ?) ORDER BY `views` DESC LIMIT {limit}"
        ),
        _ => format!(
            r#"SELECT "id", "title", "status", "views", "published" FROM "bench_post" WHERE ("status" = ? AND "views" > ?) ORDER BY "views" DESC LIMIT {limit}"#
        ),
    }
}

macro_rules! hand_written {
    ($pool:expr, $sql:expr) => {{
        let rows = sqlx::query(sqlx::AssertSqlSafe($sql))
            .bind("published")
            .bind(100i64)
            .fetch_all($pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| Plain {
                id: r.get(0),
                title: r.get(1),
                status: r.get(2),
                views: r.get(3),
                published: r.get(4),
            })
            .count()
    }};
}

async fn hand(db: &Db, limit: u64) -> usize {
    let sql = sql(db.backend(), limit);
    match db.pool() {
        PoolRef::Sqlite(p) => hand_written!(p, sql),
        PoolRef::Postgres(p) => hand_written!(p, sql),
        PoolRef::MySql(p) => hand_written!(p, sql),
        _ => unreachable!(),
    }
}

async fn bench(label: &str, db: &Db, queries: usize, rounds: usize) {
    seed(db).await;
    // Asking an in-memory database's `Db` for its pool makes it stop keeping its one
    // connection: the hand-written side gets an in-memory database of its own, seeded alike.
    let other;
    let hand_db = if label == "sqlite-memory" {
        other = Db::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        seed(&other).await;
        &other
    } else {
        db
    };
    assert_eq!(
        builder(db, 20).await,
        hand(hand_db, 20).await,
        "the same rows"
    );
    // Warm-up, uncounted.
    for _ in 0..queries / 4 {
        builder(db, 20).await;
        hand(hand_db, 20).await;
    }
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let time = |start: Instant| start.elapsed().as_secs_f64() * 1e6 / queries as f64;
        let (a, b);
        if round % 2 == 0 {
            let start = Instant::now();
            for _ in 0..queries {
                builder(db, 20).await;
            }
            a = time(start);
            let start = Instant::now();
            for _ in 0..queries {
                hand(hand_db, 20).await;
            }
            b = time(start);
        } else {
            let start = Instant::now();
            for _ in 0..queries {
                hand(hand_db, 20).await;
            }
            b = time(start);
            let start = Instant::now();
            for _ in 0..queries {
                builder(db, 20).await;
            }
            a = time(start);
        }
        ours.push(a);
        theirs.push(b);
        ratios.push(a / b);
    }
    let allocations = |region: Region<'_, System>| region.change().allocations as f64;
    let per = |limit: u64| async move {
        let region = Region::new(GLOBAL);
        for _ in 0..50 {
            builder(db, limit).await;
        }
        let ours = allocations(region) / 50.0;
        let region = Region::new(GLOBAL);
        for _ in 0..50 {
            hand(hand_db, limit).await;
        }
        (ours, allocations(region) / 50.0)
    };
    let (ours20, theirs20) = per(20).await;
    let (ours200, theirs200) = per(200).await;
    println!(
        "| {label:<13} | {:>8.1} | {:>8.1} | {:>5.2} | {ours20:>6.1} / {theirs20:>6.1} | {ours200:>7.1} / {theirs200:>7.1} | {:>+6.3} |",
        median(&ours),
        median(&theirs),
        median(&ratios),
        ((ours200 - ours20) - (theirs200 - theirs20)) / 180.0,
    );
}

#[tokio::main]
async fn main() {
    let queries: usize = arg("--queries").and_then(|s| s.parse().ok()).unwrap_or(400);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(9);
    println!(
        "filtered, ordered, limited query (20 rows of {ROWS}): µs per query, median of {rounds} rounds of {queries}"
    );
    println!();
    println!(
        "| backend       | builder  | sqlx     | ratio | allocs, 20 rows | allocs, 200 rows | builder's extra allocs per row |"
    );
    println!(
        "|---------------|---------:|---------:|------:|----------------:|-----------------:|------:|"
    );
    each_backend("bench_query", async |label, db| {
        bench(label, db, queries, rounds).await
    })
    .await;
}
