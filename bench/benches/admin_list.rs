//! The admin's list of profiles over a large table (issue 29, item 8): one page through
//! `example_account::admin::list::list_page` (a count and the page, searched, ordered and
//! paged in SQL, each profile read with its user in the same statement), over 1,000,000
//! profiles by default, in a release build. For each kind of page: the median time per page
//! over the rounds, the heap bytes a page allocates (it holds one page, whatever the table),
//! and, for the default page, the same two statements written by hand with sqlx, alternated
//! with it (median of per-round ratios).
//!
//! `cargo bench -p signals-bench --bench admin_list` (options after `--`: `--rows N`,
//! `--rounds R`, `--only sqlite-file|postgres|mysql`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::System;
use std::time::Instant;

use example_account::admin::list::{PER_PAGE, list_page};
use signals_bench::{arg, each_backend, median};
use signals_core::sqlx::{self, Row as _};
use signals_core::{Backend, Db, PoolRef};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// `rows` users `user0000001`.. and a profile each (every tenth without a date of birth),
/// written by the database itself.
async fn seed(db: &Db, rows: u64) {
    example_account::migrate(db).await.unwrap();
    let started = Instant::now();
    let statements: Vec<String> = match db.backend() {
        Backend::Sqlite => vec![
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                 INSERT INTO account_user (username, email, password, date_joined, is_active, is_staff) \
                 SELECT printf('user%07d', i), '', 'unusable', '2026-01-01T00:00:00+00:00', 1, 0 FROM n"
            ),
            "INSERT INTO account_profile (user_id, date_of_birth, photo) \
             SELECT id, CASE WHEN id % 10 = 0 THEN NULL ELSE date('1950-01-01', '+' || (id * 7919 % 20000) || ' days') END, '' \
             FROM account_user"
                .into(),
            "ANALYZE".into(),
        ],
        Backend::Postgres => vec![
            format!(
                "INSERT INTO account_user (username, email, password, date_joined, is_active, is_staff) \
                 SELECT 'user' || lpad(i::text, 7, '0'), '', 'unusable', now(), true, false \
                 FROM generate_series(1, {rows}) AS i"
            ),
            "INSERT INTO account_profile (user_id, date_of_birth, photo) \
             SELECT id, CASE WHEN id % 10 = 0 THEN NULL ELSE DATE '1950-01-01' + (id * 7919 % 20000)::int END, '' \
             FROM account_user"
                .into(),
            "ANALYZE".into(),
        ],
        _ => vec![
            format!(
                "INSERT INTO account_user (username, email, password, date_joined, is_active, is_staff) \
                 SELECT CONCAT('user', LPAD(seq, 7, '0')), '', 'unusable', NOW(), 1, 0 FROM seq_1_to_{rows}"
            ),
            "INSERT INTO account_profile (user_id, date_of_birth, photo) \
             SELECT id, CASE WHEN id % 10 = 0 THEN NULL ELSE DATE_ADD('1950-01-01', INTERVAL (id * 7919 % 20000) DAY) END, '' \
             FROM account_user"
                .into(),
            "ANALYZE TABLE account_user, account_profile".into(),
        ],
    };
    for sql in statements {
        db.execute_unprepared(&sql).await.unwrap();
    }
    println!(
        "  seeded {rows} users and profiles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The default page (by username, first page) written by hand: the count, then the join.
async fn by_hand(db: &Db) -> usize {
    let count = "SELECT COUNT(*) FROM account_profile";
    let page = "SELECT p.id, p.user_id, p.date_of_birth, p.photo, u.id, u.username, u.email, \
                u.password, u.date_joined, u.is_active, u.is_staff FROM account_profile p \
                JOIN account_user u ON u.id = p.user_id ORDER BY u.username ASC LIMIT 25";
    match db.pool() {
        PoolRef::Sqlite(pool) => {
            let _: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap();
            let rows = sqlx::query(page).fetch_all(pool).await.unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>(5).len())
                .sum::<usize>()
        }
        PoolRef::Postgres(pool) => {
            let _: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap();
            let rows = sqlx::query(page).fetch_all(pool).await.unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>(5).len())
                .sum::<usize>()
        }
        PoolRef::MySql(pool) => {
            let _: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap();
            let rows = sqlx::query(page).fetch_all(pool).await.unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>(5).len())
                .sum::<usize>()
        }
        _ => unreachable!(),
    }
}

fn main() {
    let rows: u64 = arg("--rows").map_or(1_000_000, |r| r.parse().unwrap());
    let rounds: usize = arg("--rounds").map_or(9, |r| r.parse().unwrap());
    let last = rows.div_ceil(PER_PAGE as u64) as usize;
    let kinds: Vec<(String, &str, String, usize)> = vec![
        ("first page, by username".into(), "", "user".into(), 1),
        ("page 2,000, by username".into(), "", "user".into(), 2_000),
        (format!("last page ({last})"), "", "user".into(), last),
        (
            "first page, by -date_of_birth".into(),
            "",
            "-date_of_birth".into(),
            1,
        ),
        (
            "search `USER00012` (100 found)".into(),
            "USER00012",
            "user".into(),
            1,
        ),
        ("search `user` (every row)".into(), "user", "user".into(), 1),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(each_backend("admin_list", async |label, db| {
        if label == "sqlite-memory" && arg("--only").is_none() {
            return;
        }
        println!("\n{label}, {rows} profiles, {rounds} rounds");
        seed(db, rows).await;
        println!("| page | ms per page (median) | heap bytes per page | rows shown |");
        println!("|---|---:|---:|---:|");
        for (name, search, order, page) in &kinds {
            let mut times = Vec::with_capacity(rounds);
            let mut bytes = 0;
            let mut shown = 0;
            for _ in 0..rounds {
                let region = Region::new(GLOBAL);
                let started = Instant::now();
                let listed = list_page(db, search, order, *page).await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1e3);
                bytes = region.change().bytes_allocated;
                shown = listed.rows.len();
            }
            println!("| {name} | {:.2} | {bytes} | {shown} |", median(&times));
        }
        let mut ratios = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            list_page(db, "", "user", 1).await.unwrap();
            let ours = started.elapsed().as_secs_f64();
            let started = Instant::now();
            std::hint::black_box(by_hand(db).await);
            let theirs = started.elapsed().as_secs_f64();
            ratios.push(ours / theirs);
        }
        println!(
            "first page ÷ the same two statements by hand: {:.2}",
            median(&ratios)
        );
    }));
}
