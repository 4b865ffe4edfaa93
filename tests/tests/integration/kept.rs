//! The connection a SQLite `Db` keeps between its operations (`Db::with_kept_connection`):
//! it is used when free and given back whenever sqlx needs it, a transaction ended on it
//! leaves it clean, and nothing waits on it that would not have waited for the pool.
//! PostgreSQL and MySQL keep nothing (the setting is ignored there).

use std::time::Duration;

use crate::common::{User, setup};
use signals_core::sqlx::{self, sqlite::SqlitePoolOptions};
use signals_core::{Backend, ConnRef, Db, ErrorKind, Model, PoolRef};
use signals_tests::{count, db_test, exec, scalar};

/// A model without receivers: its saves and loads on `&db` are single statements outside
/// any transaction, which run on the kept connection when it is free.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "kept_note")]
struct Note {
    id: Option<i64>,
    body: String,
}

db_test!(async fn only_sqlite_keeps_a_connection(db) {
    assert_eq!(db.keeps_connection(), db.backend() == Backend::Sqlite);
    let other = db.clone().with_kept_connection(true);
    assert_eq!(other.keeps_connection(), db.backend() == Backend::Sqlite, "ignored elsewhere");
    assert!(!db.clone().with_kept_connection(false).keeps_connection());
    // Work through both, and through one that keeps nothing: the same rows.
    setup(&db).await;
    User::new("kept").save(&db).await.unwrap();
    User::new("other").save(&other).await.unwrap();
    User::new("plain").save(&db.clone().with_kept_connection(false)).await.unwrap();
    assert_eq!(count(&db, "account_user").await, 3);
    assert_eq!(count(&db, "account_profile").await, 3);
});

/// On an in-memory database the kept connection is the pool's only one: `Db::pool()` gives
/// it back for good, so SQL of your own runs at once, and the crate's work goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_an_in_memory_db_for_its_pool_gives_the_connection_back() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    setup(&db).await;
    User::new("before").save(&db).await.unwrap();
    assert!(db.keeps_connection());
    let PoolRef::Sqlite(pool) = db.pool() else {
        unreachable!()
    };
    assert!(!db.keeps_connection(), "stopped for good");
    let users: i64 = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::query_scalar("SELECT COUNT(*) FROM account_user").fetch_one(pool),
    )
    .await
    .expect("the pool has its connection back")
    .unwrap();
    assert_eq!(users, 1);
    User::new("after").save(&db).await.unwrap();
    assert_eq!(count(&db, "account_user").await, 2);
    tokio::time::timeout(Duration::from_secs(5), db.close())
        .await
        .expect("close");
}

/// The crate's own uses of the pool (migrations, DDL) borrow the connection and give it back
/// to the keeper: the keeping goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_and_migrations_on_an_in_memory_db_keep_the_keeping() {
    use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
    use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
    use std::borrow::Cow;

    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.execute_unprepared("CREATE TABLE kept_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .await
        .unwrap();
    Note {
        id: None,
        body: "one".into(),
    }
    .save(&db)
    .await
    .unwrap();
    let migrator = Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("tags"),
        MigrationType::Simple,
        AssertSqlSafe("CREATE TABLE tag (id INTEGER PRIMARY KEY)").into_sql_str(),
        false,
    )]);
    tokio::time::timeout(
        Duration::from_secs(10),
        signals_core::migrate::run(&db, &migrator),
    )
    .await
    .expect("the migration finds the connection")
    .unwrap();
    db.check_schema::<Note>().await.unwrap();
    assert!(db.keeps_connection());
    Note {
        id: None,
        body: "two".into(),
    }
    .save(&db)
    .await
    .unwrap();
    assert_eq!(Note::query().count(&db).await.unwrap(), 2);
    db.close().await;
}

/// Transactions ended every way (commit, rollback, dropped before and after statements, a
/// receiver's error, SQL of the caller's own on `tx.conn()`) leave the kept connection outside
/// any transaction: what was committed is seen from another connection, and the rest is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_transaction_ends_leaves_the_kept_connection_clean() {
    signals_tests::run(Backend::Sqlite, "kept_clean", |db| async move {
        setup(&db).await;
        assert!(db.keeps_connection());
        let other = db.clone().with_kept_connection(false);
        // Committed.
        let mut tx = db.begin().await.unwrap();
        User::new("committed").save(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        // Rolled back.
        let mut tx = db.begin().await.unwrap();
        User::new("rolledback").save(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        // Dropped after a statement, and before any.
        let mut tx = db.begin().await.unwrap();
        User::new("dropped").save(&mut tx).await.unwrap();
        drop(tx);
        drop(db.begin().await.unwrap());
        // A save whose receiver fails.
        let mut failing = User::new("failing");
        failing.email = crate::common::FAIL_POST_SAVE.into();
        assert!(failing.save(&db).await.is_err());
        // SQL of the caller's own on the transaction's connection, then a commit.
        let mut tx = db.begin().await.unwrap();
        if let ConnRef::Sqlite(c) = tx.conn().await.unwrap() {
            sqlx::query("INSERT INTO account_user (username, email) VALUES ('raw', '')")
                .execute(c)
                .await
                .unwrap();
        }
        User::new("afterraw").save(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        // Cancelled in the middle of a save, at each await point in turn.
        for waits in 0..40 {
            let mut user = User::new(&format!("cancel{waits}"));
            let save = user.save(&db);
            let _ = tokio::time::timeout(Duration::from_micros(waits * 50), save).await;
        }
        // Seen from a connection that is not the kept one: nothing left in a transaction.
        let names: Vec<(String,)> = {
            let mut sql = signals_core::Sql::new(Backend::Sqlite);
            sql.push("SELECT username FROM account_user WHERE username NOT LIKE 'cancel%' ORDER BY username");
            sql.fetch_all(&other).await.unwrap()
        };
        let names: Vec<&str> = names.iter().map(|(n,)| n.as_str()).collect();
        assert_eq!(names, ["afterraw", "committed", "raw"]);
        let orphans = scalar(
            &other,
            "SELECT (SELECT COUNT(*) FROM account_user WHERE username <> 'raw') \
             - (SELECT COUNT(*) FROM account_profile)",
        )
        .await;
        assert_eq!(orphans, 0, "every user saved whole or not at all");
        // And the kept connection works on.
        User::new("last").save(&db).await.unwrap();
        assert_eq!(scalar(&other, "SELECT COUNT(*) FROM account_user WHERE username = 'last'").await, 1);
    })
    .await;
}

/// Many tasks at once on one file: one runs on the kept connection, the others take pool
/// connections and wait for SQLite's write lock as before; none is lost, none waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_work_shares_the_kept_connection_and_the_pool() {
    signals_tests::run(Backend::Sqlite, "kept_concurrent", |db| async move {
        setup(&db).await;
        exec(
            &db,
            "CREATE TABLE kept_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        )
        .await;
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        User::new(&format!("t{t}u{i}")).save(&db).await.unwrap();
                        let mut note = Note {
                            id: None,
                            body: format!("t{t}n{i}"),
                        };
                        note.save(&db).await.unwrap();
                        assert!(Note::get(&db, note.id.unwrap()).await.unwrap().is_some());
                        let mut tx = db.begin().await.unwrap();
                        Note {
                            id: None,
                            body: format!("t{t}x{i}"),
                        }
                        .save(&mut tx)
                        .await
                        .unwrap();
                        tx.commit().await.unwrap();
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .expect("no task waits forever");
        assert_eq!(count(&db, "account_user").await, 160);
        assert_eq!(count(&db, "account_profile").await, 160);
        assert_eq!(count(&db, "kept_note").await, 320);
    })
    .await;
}

/// A statement on the kept connection that finds another connection holding the write lock
/// does not block the thread it runs on: it waits on sqlx's worker thread, and the runtime's
/// other tasks run meanwhile (here, on a runtime of one thread).
#[tokio::test(flavor = "current_thread")]
async fn a_kept_connection_waiting_for_a_lock_never_blocks_the_thread() {
    signals_tests::run(Backend::Sqlite, "kept_busy", |db| async move {
        exec(
            &db,
            "CREATE TABLE kept_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        )
        .await;
        // The kept connection is taken (and its handle held) by a first statement.
        Note {
            id: None,
            body: "first".into(),
        }
        .save(&db)
        .await
        .unwrap();
        // Another `Db` on the same file holds the write lock for a while.
        let holder = db.clone().with_kept_connection(false);
        let mut blocking = holder.begin().await.unwrap();
        Note {
            id: None,
            body: "held".into(),
        }
        .save(&mut blocking)
        .await
        .unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            blocking.commit().await.unwrap();
        });
        let started = std::time::Instant::now();
        Note {
            id: None,
            body: "waited".into(),
        }
        .save(&db)
        .await
        .unwrap();
        // Blocking the thread would stop the task that releases the lock until SQLite's own
        // busy timeout (10 s) ran out.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?}",
            started.elapsed()
        );
        let seen = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            seen >= 10,
            "the thread ran other tasks while the save waited ({seen} ticks)"
        );
        release.await.unwrap();
        ticker.abort();
        assert_eq!(Note::query().count(&db).await.unwrap(), 3);
    })
    .await;
}

/// On a one-connection pool kept by the `Db`, a transaction begun while another is open in
/// the same task waits as long as the pool would, then fails as the pool would: it never
/// hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_transaction_on_a_one_connection_pool_times_out_as_the_pool_would() {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let db = Db::from(pool).with_kept_connection(true);
    assert!(db.keeps_connection());
    let first = db.begin().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), db.begin())
        .await
        .expect("it gives up, as the pool does");
    assert_eq!(second.unwrap_err().kind(), ErrorKind::Connection);
    first.commit().await.unwrap();
    db.begin().await.unwrap().commit().await.unwrap();
}

/// A `Db`'s own writers on a file take SQLite's write lock in the order they asked for it.
/// SQLite's busy handler alone is not fair: a writer that just committed begins again before
/// the others, asleep between polls, see the lock free, so under a steady stream of writers
/// one waits past its busy timeout and fails with "database is locked" (seen once in 32 tasks
/// × 100 signups). Here every transaction holds the lock for 5 ms, eight tasks write at once,
/// and the busy timeout is 1 s: without the queue the waiters fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dbs_own_writers_take_the_write_lock_in_turn() {
    use signals_core::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use std::str::FromStr;
    let scratch = signals_tests::Scratch::create(Backend::Sqlite, "kept_turns")
        .await
        .unwrap();
    let opts = SqliteConnectOptions::from_str(&scratch.url)
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(1));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .unwrap();
    let db = Db::from(pool).with_kept_connection(true);
    db.execute_unprepared("CREATE TABLE kept_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .await
        .unwrap();
    const TASKS: usize = 8;
    const EACH: usize = 20;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for i in 0..EACH {
                    let res = async {
                        let mut tx = db.begin().await?;
                        Note {
                            id: None,
                            body: format!("t{t}n{i}"),
                        }
                        .save(&mut tx)
                        .await?;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        tx.commit().await
                    };
                    if let Err(e) = res.await {
                        errors.push(e.to_string());
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} failed, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(
        Note::query().count(&db).await.unwrap(),
        (TASKS * EACH) as i64
    );
    db.close().await;
    scratch.drop_now().await;
}

/// A `Db` holding its kept connection may be dropped outside any runtime (after the runtime
/// that made it ended): the connection is closed cleanly, nothing panics.
#[test]
fn a_db_dropped_outside_a_runtime_lets_its_connection_go() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(async {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared(
            "CREATE TABLE kept_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        )
        .await
        .unwrap();
        Note {
            id: None,
            body: "x".into(),
        }
        .save(&db)
        .await
        .unwrap();
        db
    });
    drop(rt);
    drop(db);
}
