//! Transactions as the user sees them, whichever way the backend runs them (on SQLite, a
//! transaction runs on the connection's own handle, taken from sqlx's worker thread): SQL of
//! your own between saves, transactions dropped while their connection is lent out, and
//! transactions that wait for one another on one thread.

use std::time::Duration;

use signals_core::sqlx::{self, Executor as _};
use signals_core::{Backend, ConnRef, Db, Model, Tx};
use signals_tests::{count, create_tables, db_test};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tag")]
struct Tag {
    id: Option<i64>,
    name: String,
}

const SCHEMA: &str = "CREATE TABLE tag (id {pk}, name {varchar} NOT NULL UNIQUE)";

/// Runs SQL of the caller's own on the transaction's connection.
async fn raw_insert(tx: &mut Tx, name: &str) {
    let sql = format!("INSERT INTO tag (name) VALUES ('{name}')");
    let sql = sqlx::AssertSqlSafe(sql);
    match tx.conn().await.unwrap() {
        ConnRef::Sqlite(c) => c.execute(sql).await.map(drop),
        ConnRef::Postgres(c) => c.execute(sql).await.map(drop),
        ConnRef::MySql(c) => c.execute(sql).await.map(drop),
        _ => unreachable!(),
    }
    .unwrap();
}

async fn names(db: &Db) -> Vec<String> {
    let mut names: Vec<String> = Tag::all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

fn tag(name: &str) -> Tag {
    Tag {
        id: None,
        name: name.into(),
    }
}

db_test!(async fn sql_of_your_own_between_saves_is_part_of_the_transaction(db) {
    create_tables(&db, SCHEMA).await;

    let mut tx = db.begin().await.unwrap();
    tag("a").save(&mut tx).await.unwrap();
    raw_insert(&mut tx, "b").await;
    tag("c").save(&mut tx).await.unwrap();
    // Reads see the transaction's own rows, whichever way they were written.
    assert_eq!(Tag::all(&mut tx).await.unwrap().len(), 3);
    tx.rollback().await.unwrap();
    assert_eq!(count(&db, "tag").await, 0, "everything rolled back");

    let mut tx = db.begin().await.unwrap();
    tag("a").save(&mut tx).await.unwrap();
    raw_insert(&mut tx, "b").await;
    tag("c").save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&db).await, ["a", "b", "c"]);
});

db_test!(async fn a_savepoint_undoes_sql_of_your_own_too(db) {
    create_tables(&db, SCHEMA).await;
    let mut tx = db.begin().await.unwrap();
    tag("kept").save(&mut tx).await.unwrap();
    let res: signals_core::Result<()> = tx
        .savepoint(async |tx: &mut Tx| {
            raw_insert(&mut *tx, "undone").await;
            tag("undone too").save(&mut *tx).await?;
            tag("kept").save(&mut *tx).await?; // duplicate: fails the savepoint
            Ok(())
        })
        .await;
    assert_eq!(res.unwrap_err().kind(), signals_core::ErrorKind::UniqueViolation);
    raw_insert(&mut tx, "after").await;
    tx.commit().await.unwrap();
    assert_eq!(names(&db).await, ["after", "kept"]);
});

db_test!(async fn dropping_a_transaction_whose_connection_was_lent_out_rolls_it_back(db) {
    create_tables(&db, SCHEMA).await;
    for _ in 0..3 {
        let mut tx = db.begin().await.unwrap();
        tag("gone").save(&mut tx).await.unwrap();
        raw_insert(&mut tx, "gone too").await;
        drop(tx);
        // The connection comes back clean: nothing of the dropped transaction is visible, and
        // the next transaction on it (perhaps the same connection) works.
        assert_eq!(count(&db, "tag").await, 0);
        let mut tx = db.begin().await.unwrap();
        tag("kept").save(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
    }
    tag("kept").save(&db).await.unwrap();
    assert_eq!(names(&db).await, ["kept"]);
});

db_test!(async fn an_unfinished_transaction_dropped_mid_save_leaves_nothing(db) {
    create_tables(&db, SCHEMA).await;
    let mut tx = db.begin().await.unwrap();
    tag("a").save(&mut tx).await.unwrap();
    // Never committed: dropped at the end of the block, as on an early return or a panic.
    drop(tx);
    assert_eq!(count(&db, "tag").await, 0);
    tag("a").save(&db).await.unwrap();
    assert_eq!(names(&db).await, ["a"]);
});

/// Two transactions on one thread (a current-thread runtime), the second begun while the
/// first holds the write lock: on SQLite the second waits for the lock, and that wait must not
/// block the thread the first needs in order to commit. (Were it to block the thread, the
/// first could commit only once the second gave up, after the 10 s busy timeout.)
async fn a_waiting_transaction_does_not_block_the_one_it_waits_for(db: Db) {
    create_tables(&db, SCHEMA).await;
    let started = std::time::Instant::now();
    let mut first = db.begin().await.unwrap();
    tag("first").save(&mut first).await.unwrap();

    let second = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await?;
            tag("second").save(&mut tx).await?;
            tx.commit().await
        }
    });
    // Let the second begin and start waiting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.commit().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the waiting transaction held up the thread for {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the second transaction finished once the first committed")
        .unwrap()
        .unwrap();
    assert_eq!(names(&db).await, ["first", "second"]);
}

macro_rules! current_thread_test {
    ($name:ident, $backend:expr) => {
        #[tokio::test(flavor = "current_thread")]
        async fn $name() {
            signals_tests::run($backend, stringify!($name), |db| {
                a_waiting_transaction_does_not_block_the_one_it_waits_for(db)
            })
            .await;
        }
    };
}

mod a_waiting_transaction_does_not_block_the_one_it_waits_for {
    use super::*;
    current_thread_test!(sqlite, Backend::Sqlite);
    current_thread_test!(postgres, Backend::Postgres);
    current_thread_test!(mysql, Backend::MySql);
}

/// `sqlite::memory:` has one connection, so a transaction dropped while its connection is lent
/// out must be rolled back before that connection serves anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_transactions_clean_up_their_one_connection() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .await
        .unwrap();
    for _ in 0..3 {
        let mut tx = db.begin().await.unwrap();
        tag("gone").save(&mut tx).await.unwrap();
        raw_insert(&mut tx, "gone too").await;
        drop(tx);
        let mut tx = db.begin().await.unwrap();
        tag("gone").save(&mut tx).await.unwrap();
        drop(tx);
    }
    tag("kept").save(&db).await.unwrap();
    assert_eq!(names(&db).await, ["kept"]);
}

/// With a rollback journal (a pool configured without WAL), COMMIT waits for readers on other
/// connections to finish. Here the reader is finished by a task on the committing thread: the
/// wait must happen off that thread, or the commit could only fail after the busy timeout.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_commit_waiting_for_a_reader_does_not_block_the_thread() {
    use signals_core::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    signals_tests::with_scratch(Backend::Sqlite, "commit_waits", async |url: String| {
        let opts: SqliteConnectOptions = url.parse().unwrap();
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .unwrap();
        let db = Db::from(pool.clone());
        create_tables(&db, SCHEMA).await;
        tag("before").save(&db).await.unwrap();

        // A reader inside a read transaction holds SQLite's shared lock.
        let mut reader = pool.acquire().await.unwrap();
        reader.execute("BEGIN").await.unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tag")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        assert_eq!(seen, 1);

        let started = std::time::Instant::now();
        let mut tx = db.begin().await.unwrap();
        tag("new").save(&mut tx).await.unwrap();
        let finish_reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            reader.execute("COMMIT").await.unwrap();
        });
        tx.commit().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the commit held up the thread for {:?}",
            started.elapsed()
        );
        finish_reader.await.unwrap();
        assert_eq!(names(&db).await, ["before", "new"]);
        db.close().await;
    })
    .await;
}

db_test!(async fn lending_the_connection_out_and_back_many_times_never_hangs(db) {
    // On SQLite each `conn()` gives the handle back to sqlx's worker thread and the next save
    // takes it again; back to back, sqlx's hand-over can deadlock unless the crate lets the
    // worker catch up first (see `settle` in signals-core's `sqlite_raw.rs`).
    create_tables(&db, SCHEMA).await;
    let work = async {
        let mut tx = db.begin().await.unwrap();
        for i in 0..2000 {
            let _ = tx.conn().await.unwrap();
            let mut t = tag(&format!("t{i}"));
            t.save(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("2,000 lend-and-take-back cycles finish");
    assert_eq!(count(&db, "tag").await, 2000);
});
