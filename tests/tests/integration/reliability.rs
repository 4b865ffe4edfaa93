//! Nothing is lost under faults, load and bad input, on every backend. Each test checks the
//! database afterwards by counting rows with plain SQL, not through the crate.

use std::time::Duration;

use crate::common::{
    FAIL_POST_DELETE, FAIL_POST_SAVE, FAIL_PRE_DELETE, FAIL_PRE_SAVE, KILL_POST_SAVE,
    PANIC_POST_SAVE, Profile, SLEEP_POST_SAVE, User, setup,
};
use signals_core::sqlx::{self, Connection as _};
use signals_core::{Backend, Db, Error, ErrorKind, Model, SignalKind, Tx};
use signals_tests::{cancel_at, count, create_tables, db_test, exec, scalar, url_test};

fn user_with_email(name: &str, email: &str) -> User {
    User {
        id: None,
        username: name.into(),
        email: email.into(),
    }
}

async fn assert_rows(db: &Db, users: i64, profiles: i64) {
    assert_eq!(count(db, "account_user").await, users, "users");
    assert_eq!(count(db, "account_profile").await, profiles, "profiles");
}

// 1. Receiver failure ---------------------------------------------------------------------

db_test!(async fn receiver_failure_writes_nothing(db) {
    setup(&db).await;
    for (email, receiver) in [(FAIL_PRE_SAVE, "normalize_username"), (FAIL_POST_SAVE, "save_profile")] {
        let err = user_with_email("doomed", email).save(&db).await.unwrap_err();
        assert_eq!(err.receiver_chain()[0].2, receiver, "{err}");
        assert_rows(&db, 0, 0).await;
    }
    for email in [FAIL_PRE_DELETE, FAIL_POST_DELETE] {
        let mut user = user_with_email(&email.replace('@', "_"), email);
        user.save(&db).await.unwrap();
        let err = user.delete(&db).await.unwrap_err();
        assert!(matches!(err, Error::Receiver { model: "User", .. }), "{err}");
    }
    assert_rows(&db, 2, 2).await;
});

// 2. Panic in a receiver -------------------------------------------------------------------

db_test!(async fn panicking_receiver_leaves_no_rows_and_a_usable_pool(db) {
    setup(&db).await;
    let task_db = db.clone();
    let joined = tokio::spawn(async move {
        user_with_email("panicky", PANIC_POST_SAVE).save(&task_db).await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    assert_rows(&db, 0, 0).await;
    // Every connection of the pool still works.
    for i in 0..12 {
        User::new(&format!("after{i}")).save(&db).await.unwrap();
    }
    assert_rows(&db, 12, 12).await;
});

// 3. Cancellation --------------------------------------------------------------------------

/// A pool of exactly one connection, so the next save gets the connection the cancelled one
/// used.
async fn single_connection(url: &str) -> Db {
    match url.split(':').next() {
        Some("sqlite") => Db::from(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                        .unwrap()
                        .create_if_missing(true),
                )
                .await
                .unwrap(),
        ),
        Some("postgres") => Db::from(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap(),
        ),
        _ => Db::from(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap(),
        ),
    }
}

url_test!(async fn cancelled_save_leaves_no_rows_and_a_clean_connection(url) {
    let db = single_connection(&url).await;
    setup(&db).await;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        user_with_email("sleepy", SLEEP_POST_SAVE).save(&db),
    )
    .await;
    assert!(cancelled.is_err(), "the save was still running");

    // The same (only) connection: its transaction was rolled back, none leaks into this save.
    User::new("next").save(&db).await.unwrap();
    assert_eq!(User::all(&db).await.unwrap().len(), 1);
    // Seen from a fresh pool too, so "next" was committed, not left in an open transaction.
    let fresh = Db::connect(&url).await.unwrap();
    assert_rows(&fresh, 1, 1).await;
    fresh.close().await;
    db.close().await;
});

db_test!(async fn cancelled_save_inside_a_transaction_is_undone_alone(db) {
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    User::new("before").save(&mut tx).await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        user_with_email("sleepy", SLEEP_POST_SAVE).save(&mut tx),
    )
    .await;
    assert!(cancelled.is_err());
    // The abandoned savepoint is rolled back on the transaction's next use.
    User::new("after").save(&mut tx).await.unwrap();
    assert_eq!(tx.depth(), 0);
    tx.commit().await.unwrap();
    let names: Vec<String> = User::all(&db).await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["before", "after"]);
    assert_rows(&db, 2, 2).await;
});

/// [`cancel_at`] for an operation that must not fail: whether it finished before the cancel.
async fn finishes<T, F>(waits: usize, work: F) -> bool
where
    F: std::future::Future<Output = signals_core::Result<T>>,
{
    cancel_at(waits, work).await.map(|r| r.unwrap()).is_some()
}

/// Runs `op(n)` cancelled at its n-th await point for n = 0, 1, 2, ... until it finishes
/// uncancelled; after each, every user still has exactly one profile. Returns how many await
/// points it had.
async fn cancel_everywhere<F, Fut>(db: &Db, what: &str, mut op: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // A hang guard, not a timing: a connection left waiting for an answer that never comes
    // (which is what a mid-statement cancellation did to MySQL connections) hangs forever.
    let guard = Duration::from_secs(60);
    for waits in 0..500 {
        let finished = tokio::time::timeout(guard, op(waits))
            .await
            .unwrap_or_else(|_| panic!("{what} cancelled at await point {waits}: hung after"));
        // One statement, one snapshot: a COMMIT sent just before the cancellation may land on
        // the server at any moment, never between two counts of the same statement.
        let orphans = scalar(
            db,
            "SELECT (SELECT COUNT(*) FROM account_user) - (SELECT COUNT(*) FROM account_profile)",
        );
        let orphans = tokio::time::timeout(guard, orphans)
            .await
            .unwrap_or_else(|_| panic!("{what} cancelled at await point {waits}: pool hung"));
        assert_eq!(
            orphans, 0,
            "{what} cancelled at await point {waits}: half applied"
        );
        if finished {
            return waits;
        }
    }
    panic!("{what} still waiting after 500 await points");
}

/// Every operation of the seed, cancelled at each of its await points in turn.
async fn cancel_every_operation(db: &Db, tag: &str) {
    // Signups, each cancelled one await point later than the one before.
    // The caller's instance too: a key stays only on a user whose row exists (a signup
    // cancelled after its COMMIT was sent may have committed), never on one rolled back.
    // A signup can finish at its first poll, when every answer is already there (a quick
    // server on the other core): then it is tried again, for a run that waits.
    let mut points = 0;
    for attempt in 0..5 {
        points = cancel_everywhere(db, "signup", |waits| {
            let db = db.clone();
            async move {
                let name = format!("{tag}signup{attempt}_{waits}");
                let mut user = User::new(&name);
                let finished = finishes(waits, user.save(&db)).await;
                let stored = User::filter(&db, User::USERNAME, name.clone())
                    .await
                    .unwrap();
                match (user.id, stored.first()) {
                    (Some(id), Some(row)) => assert_eq!(Some(id), row.id, "signup at {waits}"),
                    (Some(id), None) => {
                        // Cancelled once its COMMIT was on its way: whether it committed is the
                        // database's to tell (it may still land, or never have been sent whole).
                        // Given a moment to land, saving the instance again settles it: one row,
                        // under the kept key.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        user.save(&db).await.unwrap();
                        let stored = User::filter(&db, User::USERNAME, name).await.unwrap();
                        assert_eq!(stored.len(), 1, "signup cancelled at {waits}, saved again");
                        assert_eq!(stored[0].id, Some(id), "signup cancelled at {waits}");
                    }
                    (None, _) => assert!(!finished, "a finished signup has its key"),
                }
                finished
            }
        })
        .await;
        if points > 0 {
            break;
        }
    }
    assert!(
        points > 0,
        "a signup never waited in five runs: nothing was cancelled"
    );

    // Updates (the receiver re-saves the profile) and deletes (the cascade deletes it).
    let mut kept = User::new(&format!("{tag}kept"));
    kept.save(db).await.unwrap();
    cancel_everywhere(db, "update", |waits| {
        let (db, mut user) = (db.clone(), kept.clone());
        async move {
            user.email = format!("{waits}@example.com");
            finishes(waits, user.save(&db)).await
        }
    })
    .await;
    cancel_everywhere(db, "delete", |waits| {
        let db = db.clone();
        async move {
            let mut user = User::new(&format!("{tag}doomed{waits}"));
            user.save(&db).await.unwrap();
            finishes(waits, user.delete(&db)).await
        }
    })
    .await;

    // Statements outside a transaction (loads on `&db`).
    cancel_everywhere(db, "load", |waits| {
        let db = db.clone();
        async move { finishes(waits, User::all(&db)).await }
    })
    .await;

    // Inside a transaction of the caller: the cancelled save is undone alone, the transaction
    // carries on and commits.
    cancel_everywhere(db, "save in a transaction", |waits| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            User::new(&format!("{tag}before{waits}"))
                .save(&mut tx)
                .await
                .unwrap();
            let mut user = User::new(&format!("{tag}inner{waits}"));
            let finished = cancel_at(waits, user.save(&mut tx)).await.is_some();
            let names = [format!("{tag}before{waits}"), format!("{tag}after{waits}")];
            let kept = match User::new(&names[1]).save(&mut tx).await {
                Ok(_) => {
                    tx.commit().await.unwrap();
                    1
                }
                // Cancelled in the middle of a MySQL statement: the transaction is given up
                // whole, loudly, and nothing of it is committed.
                Err(e) => {
                    assert_eq!(db.backend(), Backend::MySql, "{e}");
                    assert_eq!(e.kind(), ErrorKind::Transaction, "{e}");
                    tx.rollback().await.unwrap();
                    0
                }
            };
            for name in names {
                let found = User::filter(&db, User::USERNAME, name.clone())
                    .await
                    .unwrap();
                assert_eq!(found.len(), kept, "{name}: the transaction's own work");
            }
            finished
        }
    })
    .await;

    // Every connection of the pool is clean and usable afterwards.
    let before = count(db, "account_user").await;
    for i in 0..12 {
        User::new(&format!("{tag}later{i}")).save(db).await.unwrap();
    }
    assert_rows(db, before + 12, before + 12).await;
}

/// The same database without a statement cache: every statement is prepared anew, so the
/// operations also wait (and are cancelled) in the middle of preparing one.
async fn without_statement_cache(url: &str) -> Db {
    use std::str::FromStr as _;
    match url.split(':').next() {
        Some("postgres") => Db::from(
            sqlx::postgres::PgPoolOptions::new()
                .connect_with(
                    sqlx::postgres::PgConnectOptions::from_str(url)
                        .unwrap()
                        .statement_cache_capacity(0),
                )
                .await
                .unwrap(),
        ),
        Some("mysql") => Db::from(
            sqlx::mysql::MySqlPoolOptions::new()
                .connect_with(
                    sqlx::mysql::MySqlConnectOptions::from_str(url)
                        .unwrap()
                        .statement_cache_capacity(0),
                )
                .await
                .unwrap(),
        ),
        // Transactions run their statements on the SQLite handle, prepared per transaction.
        _ => Db::connect(url).await.unwrap(),
    }
}

url_test!(async fn an_operation_cancelled_at_any_await_point_is_all_or_nothing(url) {
    let db = Db::connect(&url).await.unwrap();
    setup(&db).await;
    cancel_every_operation(&db, "cached").await;
    let uncached = without_statement_cache(&url).await;
    cancel_every_operation(&uncached, "uncached").await;
    uncached.close().await;
    db.close().await;
});

url_test!(async fn a_transaction_cancelled_while_it_begins_leaves_no_transaction_open(url) {
    let other = Db::connect(&url).await.unwrap(); // first: it puts a SQLite file in WAL mode
    let db = single_connection(&url).await;
    setup(&db).await;
    // Whether BEGIN's answer is there before it is polled for is up to the scheduler: try
    // often enough that some attempts are cancelled while they wait for it.
    let mut cancelled = 0;
    for attempt in 0..200 {
        let began = cancel_at(0, db.begin()).await;
        cancelled += usize::from(began.is_none());
        drop(began);
        // Plain SQL on the pool's only connection, outside any transaction, must be committed
        // at once: seen from another connection. (Handed back inside a transaction that BEGIN
        // opened after all, the connection would keep it to itself, then lose it.)
        let name = format!("plain{attempt}");
        exec(&db, &format!("INSERT INTO account_user (username, email) VALUES ('{name}', '')")).await;
        let sql = format!("SELECT COUNT(*) FROM account_user WHERE username = '{name}'");
        assert_eq!(scalar(&other, &sql).await, 1, "attempt {attempt}: left in a transaction");
    }
    eprintln!("{cancelled} of 200 attempts cancelled while beginning");
    assert!(cancelled > 0, "no attempt was cancelled while beginning");
    db.close().await;
    other.close().await;
});

/// On SQLite a save that must wait for another writer's lock waits on sqlx's worker thread,
/// then takes the handle back: cancelled at any point of that dance, it leaves nothing and
/// never wedges the connection. A writer of the same `Db` is waited for in the `Db`'s queue
/// of writers instead: cancelled there, likewise. (PostgreSQL and MySQL take row locks, not
/// a database lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_save_waiting_for_a_writer_cancelled_anywhere_leaves_nothing() {
    signals_tests::run(Backend::Sqlite, "cancel_waiting_save", |db| async move {
        setup(&db).await;
        // Another `Db` on the file (not queued with `db`'s writers), then `db` itself.
        for (round, what, writer) in [
            (0, "another Db", db.clone().with_kept_connection(false)),
            (1, "the same Db", db.clone()),
        ] {
            cancel_while_a_writer_holds_the_lock(&db, &writer, round, what).await;
        }
        let before = count(&db, "account_user").await;
        for i in 0..12 {
            User::new(&format!("later{i}")).save(&db).await.unwrap();
        }
        assert_rows(&db, before + 12, before + 12).await;
    })
    .await;
}

/// Cancels a save of `db` at each of its await points while `writer` holds the write lock.
async fn cancel_while_a_writer_holds_the_lock(db: &Db, writer: &Db, round: u8, what: &str) {
    let name = format!("save waiting for a writer of {what}");
    let points = cancel_everywhere(db, &name, |waits| {
        let (db, writer) = (db.clone(), writer.clone());
        async move {
            // The writer holds the write lock until a task commits it a moment later.
            let mut blocker = writer.begin().await.unwrap();
            User::new(&format!("blocker{round}_{waits}"))
                .save(&mut blocker)
                .await
                .unwrap();
            let release = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                blocker.commit().await.unwrap();
            });
            let mut user = User::new(&format!("waiter{round}_{waits}"));
            let finished = finishes(waits, user.save(&db)).await;
            release.await.unwrap();
            finished
        }
    })
    .await;
    // Waiting on sqlx's worker thread, then taking the handle back: two points at least;
    // waiting in the queue: one.
    let least = if round == 0 { 2 } else { 1 };
    assert!(
        points >= least,
        "{name}: the save never waited for the writer ({points} await points)"
    );
}

/// A model without receivers: its save is one statement, with no savepoint of its own.
#[derive(Debug, Clone, PartialEq, signals_core::Model)]
#[model(table = "plain")]
struct Plain {
    id: Option<i64>,
    name: String,
}

/// What to cancel inside a caller's transaction.
#[derive(Clone, Copy, Debug)]
enum Op {
    SaveUser,
    SavePlain,
    BulkUsers,
    BulkPlains,
    DeleteUser,
    DeletePlain,
    BulkDeleteUsers,
    BulkDeletePlains,
}

impl Op {
    fn deletes(self) -> bool {
        matches!(
            self,
            Op::DeleteUser | Op::DeletePlain | Op::BulkDeleteUsers | Op::BulkDeletePlains
        )
    }
}

/// Cancels `op` inside a caller's transaction at its await point `waits`, commits the
/// transaction (or, where the cancel gave it up, rolls it back), and compares the instances'
/// keys with the rows committed. Returns whether the operation finished.
async fn cancelled_in_a_transaction(db: &Db, op: Op, waits: usize) -> bool {
    let prefix = format!("{op:?}-{waits}-").to_lowercase();
    let mut users: Vec<User> = (0..3).map(|i| User::new(&format!("{prefix}{i}"))).collect();
    let mut plains: Vec<Plain> = (0..3)
        .map(|i| Plain {
            id: None,
            name: format!("{prefix}{i}"),
        })
        .collect();
    if op.deletes() {
        // Rows committed before the transaction, for it to delete.
        User::bulk_save(db, &mut users).await.unwrap();
        Plain::bulk_save(db, &mut plains).await.unwrap();
    }
    let mut tx = db.begin().await.unwrap();
    let finished = match op {
        Op::SaveUser => cancel_at(waits, users[0].save(&mut tx))
            .await
            .map(|r| r.map(drop)),
        Op::SavePlain => cancel_at(waits, plains[0].save(&mut tx))
            .await
            .map(|r| r.map(drop)),
        Op::BulkUsers => cancel_at(waits, User::bulk_save(&mut tx, &mut users))
            .await
            .map(|r| r.map(drop)),
        Op::BulkPlains => cancel_at(waits, Plain::bulk_save(&mut tx, &mut plains))
            .await
            .map(|r| r.map(drop)),
        Op::DeleteUser => cancel_at(waits, users[0].delete(&mut tx))
            .await
            .map(|r| r.map(drop)),
        Op::DeletePlain => cancel_at(waits, plains[0].delete(&mut tx))
            .await
            .map(|r| r.map(drop)),
        Op::BulkDeleteUsers => cancel_at(waits, User::bulk_delete(&mut tx, &mut users))
            .await
            .map(|r| r.map(drop)),
        Op::BulkDeletePlains => cancel_at(waits, Plain::bulk_delete(&mut tx, &mut plains))
            .await
            .map(|r| r.map(drop)),
    };
    let finished = match finished {
        Some(res) => {
            res.unwrap();
            true
        }
        None => false,
    };
    match User::new(&format!("{prefix}after")).save(&mut tx).await {
        Ok(_) => tx.commit().await.unwrap(),
        // A statement cancelled midway that nothing can settle gives the transaction up whole:
        // on MySQL any; on PostgreSQL a write outside any savepoint (a receiver-less save's).
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Transaction, "{e}");
            assert!(
                db.backend() == Backend::MySql || matches!(op, Op::SavePlain | Op::DeletePlain),
                "{op:?} at {waits}: {e}"
            );
            tx.rollback().await.unwrap();
        }
    }
    let (table, column, keys): (&str, &str, Vec<Option<i64>>) = match op {
        Op::SaveUser | Op::DeleteUser => ("account_user", "username", vec![users[0].id]),
        Op::BulkUsers | Op::BulkDeleteUsers => (
            "account_user",
            "username",
            users.iter().map(|u| u.id).collect(),
        ),
        Op::SavePlain | Op::DeletePlain => ("plain", "name", vec![plains[0].id]),
        Op::BulkPlains | Op::BulkDeletePlains => {
            ("plain", "name", plains.iter().map(|p| p.id).collect())
        }
    };
    for (i, key) in keys.iter().enumerate() {
        let name = format!("{prefix}{i}");
        let sql = format!("SELECT COALESCE(MAX(id), -1) FROM {table} WHERE {column} = '{name}'");
        let row = scalar(db, &sql).await;
        match key {
            Some(k) => assert_eq!(*k, row, "{op:?} cancelled at {waits}: {name} keeps key {k}"),
            None => assert_eq!(
                row, -1,
                "{op:?} cancelled at {waits}: {name} committed without its key (a delete: its key cleared, its row kept)"
            ),
        }
    }
    finished
}

// A save, bulk save, delete or bulk delete cancelled at any await point inside a caller's
// transaction, which then commits: every instance keeps a key exactly when its row was
// committed (a RELEASE cancelled midway is completed: a save's keys stay, a delete's are
// cleared; a write nothing can undo gives the transaction up), so a retry never duplicates
// and a deleted row is never left with a key.
db_test!(async fn an_operation_cancelled_in_a_callers_transaction_keeps_keys_and_rows_together(db) {
    setup(&db).await;
    create_tables(&db, "CREATE TABLE plain (id {pk}, name {varchar} NOT NULL)").await;
    for op in [
        Op::SaveUser,
        Op::SavePlain,
        Op::BulkUsers,
        Op::BulkPlains,
        Op::DeleteUser,
        Op::DeletePlain,
        Op::BulkDeleteUsers,
        Op::BulkDeletePlains,
    ] {
        let mut finished = false;
        for waits in 0..400 {
            let guard = Duration::from_secs(60);
            let round = cancelled_in_a_transaction(&db, op, waits);
            if tokio::time::timeout(guard, round).await.expect("hung") {
                finished = true;
                break;
            }
        }
        assert!(finished, "{op:?} never finished");
    }
});

// 4. Concurrency ---------------------------------------------------------------------------

db_test!(async fn concurrent_signups_all_commit(db) {
    setup(&db).await;
    const TASKS: usize = 32;
    const EACH: usize = 100;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..EACH {
                if let Err(e) = User::new(&format!("user_{t}_{i}")).save(&db).await {
                    errors.push(e.to_string());
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.unwrap());
    }
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    assert_rows(&db, (TASKS * EACH) as i64, (TASKS * EACH) as i64).await;
});

db_test!(async fn concurrent_saves_of_one_user_make_exactly_one_profile(db) {
    setup(&db).await;
    // A user that predates the receivers: every concurrent save races to create its profile.
    exec(&db, "INSERT INTO account_user (username, email) VALUES ('legacy', 'l@example.com')").await;
    let user = User::filter(&db, User::USERNAME, "legacy").await.unwrap().remove(0);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (db, mut user) = (db.clone(), user.clone());
        tasks.push(tokio::spawn(async move { user.save(&db).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(saved) => {
                assert!(!saved.created());
                ok += 1;
            }
            // MySQL may pick a racing transaction as a deadlock victim; it is rolled back
            // whole and reported as retryable, never half-applied.
            Err(e) => {
                assert_eq!(db.backend(), Backend::MySql, "{e}");
                assert!(e.is_retryable(), "a deadlock is retryable: {e}");
            }
        }
    }
    assert!(ok > 0);
    assert_rows(&db, 1, 1).await;
    let profile = Profile::for_user(&db, &user).await.unwrap();
    assert!(profile.is_some(), "no lost profile");
});

// 5. Killed connection ---------------------------------------------------------------------

db_test!(async fn killed_connection_fails_the_save_cleanly(db) {
    if db.backend() == Backend::Sqlite {
        return; // embedded: there is no server connection to kill
    }
    setup(&db).await;
    let err = user_with_email("victim", KILL_POST_SAVE).save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_rows(&db, 0, 0).await;
    // The pool drops the dead connection and the next saves succeed.
    for i in 0..12 {
        User::new(&format!("survivor{i}")).save(&db).await.unwrap();
    }
    assert_rows(&db, 12, 12).await;
});

// 6. Constraint violations -----------------------------------------------------------------

db_test!(async fn constraint_violations_keep_the_transaction_usable(db) {
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    User::new("taken").save(&mut tx).await.unwrap();
    let err = User::new("taken").save(&mut tx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    assert!(err.to_string().contains("username"), "names the column or constraint: {err}");
    let orphan = Profile::blank(987_654);
    let err = tx
        .savepoint(async |tx: &mut Tx| orphan.clone().save(tx).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    // The same transaction handle goes on.
    User::new("free").save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_rows(&db, 2, 2).await;
});

// 7. Recursion: see `signals.rs` (receiver_resaving_itself_stops_at_the_depth_limit).

// 8. Hostile values ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "hostile")]
struct Hostile {
    id: Option<i64>,
    text: String,
    note: Option<String>,
    data: Vec<u8>,
    big: i64,
    day: chrono::NaiveDate,
}

const HOSTILE: &str = "CREATE TABLE hostile (
    id {pk}, text {text} NOT NULL, note {text}, data {blob} NOT NULL, big {bigint} NOT NULL,
    day {date} NOT NULL)";

fn hostile(text: &str) -> Hostile {
    Hostile {
        id: None,
        text: text.into(),
        note: None,
        data: Vec::new(),
        big: 0,
        day: chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
    }
}

db_test!(async fn hostile_values_round_trip_verbatim(db) {
    create_tables_hostile(&db).await;
    let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let values = [
        Hostile { text: "'); DROP TABLE account_user;--".into(), ..hostile("") },
        Hostile { text: r#"quotes ' " ` and \backslashes\ \0 \n"#.into(), note: Some(String::new()), ..hostile("") },
        Hostile { text: "emoji 🦀👩‍👩‍👧 and ünïcödé, 中文, العربية".into(), big: i64::MAX, ..hostile("") },
        Hostile { text: "x".repeat(1 << 20), data: vec![0xAB; 1 << 20], big: i64::MIN, ..hostile("") },
        Hostile { text: String::new(), data: (0..=255).collect(), day: date(1, 1, 1), ..hostile("") },
        Hostile { note: Some("set".into()), day: date(9999, 12, 31), ..hostile("edge") },
    ];
    for mut value in values {
        value.save(&db).await.unwrap();
        let loaded = Hostile::get(&db, value.id.unwrap()).await.unwrap().unwrap();
        assert!(loaded == value, "round trip of {:.60?}", value.text);
    }
    assert_eq!(count(&db, "hostile").await, 6);
    assert_eq!(Hostile::filter(&db, Hostile::NOTE, None).await.unwrap().len(), 4, "'' is not NULL");
    // The injection attempt was data, not SQL.
    assert_eq!(count(&db, "hostile").await, 6);
});

async fn create_tables_hostile(db: &Db) {
    signals_tests::create_tables(db, HOSTILE).await;
}

db_test!(async fn unstorable_values_are_refused_and_write_nothing(db) {
    create_tables_hostile(&db).await;
    // PostgreSQL text cannot hold NUL; MySQL's DATE stops at year 9999. Elsewhere both fit.
    let nul = hostile("nul \0 inside");
    let far = Hostile { day: chrono::NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(), ..hostile("far") };
    for (mut value, refused_on) in [(nul, Backend::Postgres), (far, Backend::MySql)] {
        match value.save(&db).await {
            Ok(_) => {
                assert_ne!(db.backend(), refused_on);
                let loaded = Hostile::get(&db, value.id.unwrap()).await.unwrap().unwrap();
                assert_eq!(loaded, value);
                value.delete(&db).await.unwrap();
            }
            Err(err) => {
                assert_eq!(db.backend(), refused_on, "{err}");
                assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
                assert_eq!(value.id, None);
                let column = if value.text == "far" { "`day`" } else { "`text`" };
                assert!(err.to_string().contains(column), "names the column: {err}");
            }
        }
    }
    assert_eq!(count(&db, "hostile").await, 0);
});

// 9. Bad configuration ---------------------------------------------------------------------

#[derive(Debug, Model)]
#[model(table = "no_such_table")]
struct Missing {
    id: Option<i64>,
}

#[derive(Debug, Model)]
#[model(table = "hostile")]
struct ExtraColumn {
    id: Option<i64>,
    no_such_column: String,
}

db_test!(async fn missing_table_or_column_is_named(db) {
    create_tables_hostile(&db).await;
    let err = Missing::all(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.to_string().contains("no_such_table"), "{err}");
    let err = ExtraColumn { id: None, no_such_column: "x".into() }.save(&db).await.unwrap_err();
    assert!(err.to_string().contains("no_such_column"), "{err}");
    assert_eq!(count(&db, "hostile").await, 0);
});

#[tokio::test]
async fn bad_urls_are_named() {
    let cases = [
        ("oracle://scott@tiger/db", ErrorKind::Config, "`oracle`"),
        (
            "postgres://postgres@127.0.0.1:1/db",
            ErrorKind::Connection,
            "127.0.0.1:1",
        ),
        (
            "mysql://root@127.0.0.1:1/db",
            ErrorKind::Connection,
            "127.0.0.1:1",
        ),
        (
            "sqlite:///no/such/dir/x.db",
            ErrorKind::Connection,
            "/no/such/dir/x.db",
        ),
    ];
    for (url, kind, named) in cases {
        let err = Db::connect(url).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{url}: {err}");
        assert!(err.to_string().contains(named), "{url}: {err}");
    }
    // A wrong password names the user, with the password masked.
    if let Ok(c) = sqlx::PgConnection::connect(&signals_tests::server_url(Backend::Postgres)).await
    {
        let _ = c.close().await;
        let err = Db::connect("mysql://nobody:secret@127.0.0.1:3306/test")
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    assert_eq!(SignalKind::PostSave.to_string(), "post_save");
}
