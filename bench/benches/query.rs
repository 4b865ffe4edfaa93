//! A filtered, ordered, limited query through the typed builder and the same statement written
//! by hand with sqlx, on the same pool, alternated over several rounds: time per query and the
//! median of the per-round ratios, and heap allocations per query at 20 and 200 rows (their
//! difference per row tells what the builder adds per row beyond decoding).
//!
//! `cargo bench -p signals-bench --bench query` (options after `--`: `--queries N`,
//! `--rounds R`, `--only sqlite-memory|sqlite-file|postgres|mysql`, `--shape
//! search|raw|aggregate`: the case-insensitive search, the plain query through `Model::raw`,
//! or grouped values with a count and a sum).
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

/// Which query: the plain filtered one, the case-insensitive search an admin runs, or the
/// plain one through `Model::raw`.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Plain,
    Search,
    Raw,
    /// Grouped values: per status, the count and the sum of views.
    Aggregate,
}

static SHAPE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn shape() -> Shape {
    match SHAPE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Shape::Plain,
        1 => Shape::Search,
        2 => Shape::Raw,
        _ => Shape::Aggregate,
    }
}

async fn builder(db: &Db, limit: u64) -> usize {
    if shape() == Shape::Aggregate {
        let groups: Vec<(String, i64, Option<i64>)> = Post::query()
            .filter(Post::VIEWS.gt(100))
            .order_by(Post::STATUS.asc())
            .values((Post::STATUS, Post::ID.count(), Post::VIEWS.sum()))
            .all(db)
            .await
            .unwrap();
        return groups.len();
    }
    let rows = match shape() {
        Shape::Plain => {
            Post::query()
                .filter(Post::STATUS.eq("published"))
                .filter(Post::VIEWS.gt(100))
                .order_by(Post::VIEWS.desc())
                .limit(limit)
                .all(db)
                .await
        }
        Shape::Search => {
            Post::query()
                .filter(Post::TITLE.icontains("NUMBER 1"))
                .order_by(Post::TITLE.asc_ignoring_case())
                .limit(limit)
                .all(db)
                .await
        }
        Shape::Aggregate => unreachable!("above"),
        Shape::Raw => {
            Post::raw(
                sql(db.backend(), limit)
                    .replace("$1", "?")
                    .replace("$2", "?"),
            )
            .bind("published".to_owned())
            .bind(100_i64)
            .all(db)
            .await
        }
    };
    rows.unwrap().len()
}

/// ASCII-only lowering, as the builder writes it for `backend`.
fn folded(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            r#"translate("{column}", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"#
        ),
        Backend::MySql => {
            let mut out = "REPLACE(".repeat(26);
            out.push_str(&format!("`{column}`"));
            for c in 'A'..='Z' {
                out.push_str(&format!(", '{c}', '{}')", c.to_ascii_lowercase()));
            }
            out
        }
        _ => format!(r#"lower("{column}")"#),
    }
}

/// The statement the builder writes, by hand.
fn sql(backend: Backend, limit: u64) -> String {
    if shape() == Shape::Aggregate {
        return match backend {
            Backend::Postgres => r#"SELECT "status", COUNT("id"), CAST(SUM("views") AS BIGINT) FROM "bench_post" WHERE "views" > $1 GROUP BY "status" ORDER BY "status" ASC"#.into(),
            Backend::MySql => "SELECT `status`, COUNT(`id`), CAST(SUM(`views`) AS SIGNED) FROM `bench_post` WHERE `views` > ? GROUP BY `status` ORDER BY `status` ASC".into(),
            _ => r#"SELECT "status", COUNT("id"), SUM("views") FROM "bench_post" WHERE "views" > ? GROUP BY "status" ORDER BY "status" ASC"#.into(),
        };
    }
    if shape() == Shape::Search {
        let title = folded(backend, "title");
        return match backend {
            Backend::Postgres => format!(
                r#"SELECT "id", "title", "status", "views", "published" FROM "bench_post" WHERE {title} LIKE $1 ESCAPE '!' ORDER BY {title} COLLATE "C" ASC NULLS FIRST, "title" COLLATE "C" ASC NULLS FIRST LIMIT {limit}"#
            ),
            Backend::MySql => format!(
                "SELECT `id`, `title`, `status`, `views`, `published` FROM `bench_post` WHERE {title} LIKE BINARY ? ESCAPE '!' ORDER BY CAST({title} AS BINARY) ASC, CAST(`title` AS BINARY) ASC LIMIT {limit}"
            ),
            _ => format!(
                r#"SELECT "id", "title", "status", "views", "published" FROM "bench_post" WHERE instr({title}, ?) > 0 ORDER BY {title} COLLATE BINARY ASC, "title" COLLATE BINARY ASC LIMIT {limit}"#
            ),
        };
    }
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
    ($pool:expr, $sql:expr, $backend:expr) => {{
        let query = sqlx::query(sqlx::AssertSqlSafe($sql));
        if shape() == Shape::Aggregate {
            let rows = query.bind(100i64).fetch_all($pool).await.unwrap();
            return rows
                .iter()
                .map(|r| {
                    (
                        r.get::<String, _>(0),
                        r.get::<i64, _>(1),
                        r.get::<Option<i64>, _>(2),
                    )
                })
                .count();
        }
        let query = if shape() == Shape::Search {
            query.bind(if $backend == Backend::Sqlite {
                "number 1"
            } else {
                "%number 1%"
            })
        } else {
            query.bind("published").bind(100i64)
        };
        let rows = query.fetch_all($pool).await.unwrap();
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
    let backend = db.backend();
    match db.pool() {
        PoolRef::Sqlite(p) => hand_written!(p, sql, backend),
        PoolRef::Postgres(p) => hand_written!(p, sql, backend),
        PoolRef::MySql(p) => hand_written!(p, sql, backend),
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
    let (code, what) = match arg("--shape").as_deref() {
        Some("search") => (
            1,
            "case-insensitive search (`icontains`, `asc_ignoring_case`)",
        ),
        Some("raw") => (2, "the filtered query through `Model::raw`"),
        Some("aggregate") => (
            3,
            "grouped values (`values((status, id.count(), views.sum()))`, 2 groups)",
        ),
        _ => (0, "filtered, ordered, limited query"),
    };
    SHAPE.store(code, std::sync::atomic::Ordering::Relaxed);
    println!("{what} (20 rows of {ROWS}): µs per query, median of {rounds} rounds of {queries}");
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
