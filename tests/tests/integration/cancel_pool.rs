//! Statements on the pool (autocommit reads and writes, no transaction) cancelled at random
//! points leave no connection that hangs its next user: on MySQL, sqlx counts on an answer as
//! soon as it starts a statement, and a connection given back to the pool mid-statement made
//! the next query on it wait forever.

use std::future::Future as _;
use std::time::Duration;

use signals_core::sqlx::{
    mysql::MySqlPoolOptions, postgres::PgPoolOptions, sqlite::SqlitePoolOptions,
};
use signals_core::{Backend, Db, Model};
use signals_tests::{create_tables, url_test};

#[derive(Debug, Clone, Model)]
#[model(table = "cancelled_read")]
struct CancelledRead {
    id: Option<i64>,
    note: String,
}

url_test!(async fn pool_statements_cancelled_midway_leave_no_connection_that_hangs(url) {
    let full = Db::connect(&url).await.unwrap();
    create_tables(&full, "CREATE TABLE cancelled_read (id {pk}, note {text} NOT NULL)").await;
    let mut rows: Vec<CancelledRead> = (0..2_000)
        .map(|i| CancelledRead { id: None, note: format!("row {i} {}", "x".repeat(200)) })
        .collect();
    CancelledRead::bulk_save(&full, &mut rows).await.unwrap();
    // Two connections, so that a poisoned one is met again soon.
    let timeout = Duration::from_secs(5);
    let db = match full.backend() {
        Backend::Sqlite => Db::from(
            SqlitePoolOptions::new().max_connections(2).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
        Backend::Postgres => Db::from(
            PgPoolOptions::new().max_connections(2).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
        _ => Db::from(
            MySqlPoolOptions::new().max_connections(2).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
    };
    // Half the statements are cut after a random time, half after a random number of polls:
    // a timer cuts anywhere (its 1 ms ticks let a fast machine finish most statements first),
    // a count of polls cuts for sure, the first poll right after the request went out.
    let mut dice = 0x2545_f491_4f6c_dd1d_u64;
    let mut cut_short = 0;
    for round in 0..200 {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        let op = async {
            if round % 3 == 0 {
                let mut row = CancelledRead { id: None, note: format!("new {round}") };
                row.save(&db).await.map(drop)
            } else {
                CancelledRead::all(&db).await.map(drop)
            }
        };
        let mut op = std::pin::pin!(op);
        let finished = if round % 2 == 0 {
            let cut = Duration::from_micros(dice % 3_000);
            tokio::time::timeout(cut, op).await.is_ok()
        } else {
            let mut finished = false;
            for _ in 0..1 + (dice >> 32) % 8 {
                let polled = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(op.as_mut().poll(cx))
                })
                .await;
                if polled.is_ready() {
                    finished = true;
                    break;
                }
                tokio::task::yield_now().await;
            }
            finished
        };
        if !finished {
            cut_short += 1;
        }
        // Whatever was cut short, the pool answers at once.
        let n = tokio::time::timeout(Duration::from_secs(10), CancelledRead::query().count(&db))
            .await
            .unwrap_or_else(|_| panic!("round {round}: a query hung after a cancelled one"))
            .unwrap();
        assert!(n >= 2_000, "{n}");
    }
    assert!(cut_short >= 5, "only {cut_short} statements were cut short");
    db.close().await;
    full.close().await;
});
