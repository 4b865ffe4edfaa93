//! The harness itself: a test's database is gone afterwards however the test ended, so that
//! CI, which reuses the servers, never piles them up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use signals_core::sqlx::{self, Connection as _};
use signals_core::{Backend, Db};
use signals_tests::{server_url, with_scratch};

/// Whether the database of `url` (a scratch database's) still exists.
async fn exists(backend: Backend, url: &str) -> bool {
    let name = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    match backend {
        Backend::Sqlite => std::path::Path::new(url.trim_start_matches("sqlite://")).exists(),
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&server_url(backend))
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_one(&mut c)
                .await
                .unwrap();
            n > 0
        }
        _ => {
            let mut c = sqlx::MySqlConnection::connect(&server_url(backend))
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
            )
            .bind(&name)
            .fetch_one(&mut c)
            .await
            .unwrap();
            n > 0
        }
    }
}

const BACKENDS: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MySql];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_test_leaves_no_database() {
    for backend in BACKENDS {
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
        let test = with_scratch(backend, "harness_cancelled", async move |url: String| {
            // Hold a connection open, as a test cut off mid-way does.
            let db = Db::connect(&url).await.unwrap();
            db.execute_unprepared("CREATE TABLE t (id INTEGER)")
                .await
                .unwrap();
            *slot.lock().unwrap() = Some(url);
            std::future::pending::<()>().await;
            drop(db);
        });
        // Cancelled: the future is dropped at its await point.
        assert!(
            tokio::time::timeout(Duration::from_secs(3), test)
                .await
                .is_err()
        );
        let Some(url) = seen.lock().unwrap().take() else {
            continue; // no server here (and not in CI): skipped with a message
        };
        assert!(!exists(backend, &url).await, "{backend}: {url} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_database() {
    for backend in BACKENDS {
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
        let test = tokio::spawn(with_scratch(
            backend,
            "harness_panicking",
            async move |url: String| {
                *slot.lock().unwrap() = Some(url);
                panic!("a failing test");
            },
        ));
        let outcome = test.await;
        let Some(url) = seen.lock().unwrap().take() else {
            continue;
        };
        assert!(outcome.is_err_and(|e| e.is_panic()), "the panic is resumed");
        assert!(!exists(backend, &url).await, "{backend}: {url} left behind");
    }
}
