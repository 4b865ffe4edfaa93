//! Errors a caller can act on: credentials never printed, the kinds that tell what to do
//! (retry, check whether a commit happened), misuse refused before anything is sent.

use std::time::Duration;

use crate::common::{User, setup};
use signals_core::sqlx;
use signals_core::{Backend, Db, ErrorKind, Model, PostSave, SaveOptions, Tx, record_signals};
use signals_tests::proxy::{Proxy, host_port};
use signals_tests::{count, create_tables, db_test, exec, url_test};

/// A model without receivers: its save is one statement, in autocommit on a pool.
#[derive(Debug, Clone, Model)]
#[model(table = "tag")]
struct Tag {
    id: Option<i64>,
    name: String,
}

/// Every credential form the drivers accept, in URLs of servers that refuse the connection.
#[tokio::test]
async fn connection_errors_never_print_a_password() {
    let urls = [
        "postgres://bob:hunter2@127.0.0.1:1/app",
        "postgres://bob@127.0.0.1:1/app?password=hunter2",
        "postgresql:///app?host=127.0.0.1&port=1&user=bob&password=hunter2",
        "postgresql://127.0.0.1:1/app?user=bob&password=hunter2&sslmode=disable",
        "mysql://bob:hunter2@127.0.0.1:1/app",
        "mariadb://bob:hunter2@127.0.0.1:1/app",
        "mysql://bob:hun@ter2@127.0.0.1:1/app",
        "postgres://bob:hunter2@127.0.0.1:notaport/app",
        "oracle://bob:hunter2@127.0.0.1/app?password=hunter2",
    ];
    for url in urls {
        let err = Db::connect(url).await.unwrap_err();
        let shown = format!("{err} / {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{url} shows its password: {shown}"
        );
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Config),
            "{url}: {err}"
        );
    }
}

// Django's `UpdateOnlyFieldsTests.test_update_pk_field`: the key cannot be in update_fields.
db_test!(async fn the_primary_key_in_update_fields_is_refused_before_anything_is_sent(db) {
    setup(&db).await;
    let mut user = User::new("keyed");
    user.save(&db).await.unwrap();
    let (res, fired) = record_signals(
        user.save_with(&db, SaveOptions::new().update_fields(User::ID | User::EMAIL)),
    )
    .await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(
        err.to_string(),
        "`id` is the primary key of `User` and cannot be in `update_fields`: a save never \
         changes a row's key"
    );
    assert!(fired.is_empty(), "no signal was sent");
    assert_eq!(count(&db, "account_user").await, 1);
    // Alone too, and the instance keeps its key.
    let err = user.save_with(&db, SaveOptions::new().update_fields(User::ID)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(user.id.is_some());
});

// Commit outcome unknown --------------------------------------------------------------------

// The server connection dies between the last statement and the COMMIT's answer: the caller
// cannot know whether the transaction committed, and must not be told it is a plain failure.
db_test!(async fn a_connection_lost_during_commit_is_commit_outcome_unknown(db) {
    use signals_core::ConnRef;
    if db.backend() == Backend::Sqlite {
        return; // embedded: a COMMIT gets a definite answer
    }
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    User::new("maybe").save(&mut tx).await.unwrap();
    let pid: i64 = match db.backend() {
        // Found from outside: lending the connection (`tx.conn()`) would make the commit ask
        // the server first whether a statement of the caller's aborted the transaction, and
        // that question would find the connection gone before COMMIT was sent.
        Backend::Postgres => {
            let mut find = signals_core::Sql::new(db.backend());
            find.push(
                "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity \
                 WHERE datname = current_database() AND state = 'idle in transaction'",
            );
            let mut rows: Vec<(i64,)> = find.fetch_all(&db).await.unwrap();
            assert_eq!(rows.len(), 1, "one connection in a transaction");
            rows.remove(0).0
        }
        _ => match tx.conn().await.unwrap() {
            ConnRef::MySql(c) => sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
                .fetch_one(c)
                .await
                .unwrap(),
            _ => unreachable!(),
        },
    };
    let kill = if db.backend() == Backend::Postgres {
        format!("SELECT pg_terminate_backend({pid})")
    } else {
        format!("KILL {pid}")
    };
    exec(&db, &kill).await;
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommitOutcomeUnknown, "{err}");
    assert!(err.to_string().contains("whether the transaction committed is unknown"), "{err}");
    // The pool carries on.
    User::new("after").save(&db).await.unwrap();
});

// Item 5 of the third reliability round: a connection cut after the server received the
// COMMIT (through a proxy that forwards it, then drops the answer) leaves the outcome unknown;
// the instance keeps the key its save assigned, so the caller can look the row up, and the
// obvious retry after that finds it instead of inserting a second one.
url_test!(async fn a_save_whose_commit_answer_is_lost_keeps_its_key(url) {
    if url.starts_with("sqlite") {
        return; // embedded: a COMMIT gets a definite answer
    }
    let db = Db::connect(&url).await.unwrap();
    setup(&db).await;
    create_tables(&db, "CREATE TABLE tag (id {pk}, name {varchar} NOT NULL)").await;
    let proxy = Proxy::start(&host_port(&url)).await;
    let cut = Db::connect(&proxy.url(&url)).await.unwrap();
    // The COMMIT statement's packet (not "READ COMMITTED" of a new connection's settings):
    // PostgreSQL's simple query ends in NUL, MySQL's COM_QUERY starts with byte 3.
    let commit = if url.starts_with("postgres") { "COMMIT\0" } else { "\x03COMMIT" };

    // A save with receivers: its own transaction.
    let mut user = User::new("maybe");
    proxy.cut_after(commit, 0);
    let err = user.save(&cut).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommitOutcomeUnknown, "{err}");
    assert_eq!(proxy.cuts(), 1);
    let key = user.id.expect("the key stays: its row may exist");
    // How a caller settles it: look the key up.
    let stored = User::get(&db, key).await.unwrap().expect("the COMMIT reached the server");
    assert_eq!(stored.username, "maybe");
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
    // Saving the instance again updates that row: no second user.
    user.save(&db).await.unwrap();
    assert_eq!(count(&db, "account_user").await, 1);

    // A bulk save keeps every key.
    let mut users: Vec<User> = (0..5).map(|i| User::new(&format!("bulk{i}"))).collect();
    proxy.cut_after(commit, 0);
    let err = User::bulk_save(&cut, &mut users).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommitOutcomeUnknown, "{err}");
    assert!(users.iter().all(|u| u.id.is_some()), "every key stays");
    assert_eq!(count(&db, "account_user").await, 6);
    User::bulk_save(&db, &mut users).await.unwrap();
    assert_eq!(count(&db, "account_user").await, 6, "the retry updates, never duplicates");

    // A model without receivers saves with one statement in autocommit: that statement is its
    // commit. Cut after it reached the server (its text is prepared first, then executed).
    let mut tag = Tag { id: None, name: "solo".into() };
    proxy.cut_after("INSERT INTO", 1);
    let err = tag.save(&cut).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommitOutcomeUnknown, "{err}");
    assert_eq!(tag.id, None, "the key never came back: look the row up by what it holds");
    let found = Tag::filter(&db, Tag::NAME, "solo").await.unwrap();
    assert_eq!(found.len(), 1, "the statement committed");
    // The pools carry on.
    User::new("after").save(&cut).await.unwrap();
    cut.close().await;
    db.close().await;
});

/// A slug, saved with one statement (no receivers); the article's receiver makes one and
/// carries on when it is taken, a "create, and if it exists, fine" that PostgreSQL punishes.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "slug")]
struct Slug {
    id: Option<i64>,
    #[model(unique, max_length = 100)]
    slug: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "article")]
#[post_save(make_slug)]
struct Article {
    id: Option<i64>,
    #[model(max_length = 100)]
    title: String,
}

async fn make_slug(a: &Article, signal: &mut PostSave<'_>) -> signals_core::Result<()> {
    let mut slug = Slug {
        id: None,
        slug: a.title.to_lowercase(),
    };
    match slug.save(signal.tx()).await {
        Err(e) if e.kind() == ErrorKind::UniqueViolation => Ok(()), // taken already: fine
        res => res.map(drop),
    }
}

// A failed statement aborts a PostgreSQL transaction, whose COMMIT then rolls back quietly:
// a save or a commit that would report success for work that was rolled back is refused,
// saying why; SQLite and MySQL carry on after a failed statement, and commit.
db_test!(async fn a_transaction_postgres_aborted_is_never_reported_committed(db) {
    db.create_tables::<(Article, Slug)>().await.unwrap();
    Article { id: None, title: "Hello".into() }.save(&db).await.unwrap();
    let mut second = Article { id: None, title: "hello".into() };
    let res = second.save(&db).await;
    if db.backend() == Backend::Postgres {
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transaction, "{err}");
        assert!(err.to_string().contains("tx.savepoint"), "{err}");
        assert_eq!(second.id, None, "no key for a row rolled back");
        assert_eq!(count(&db, "article").await, 1);
    } else {
        assert!(res.unwrap().created());
        assert_eq!(count(&db, "article").await, 2);
    }
    // A caller's transaction in which a receiver-less save failed and was handled.
    let mut tx = db.begin().await.unwrap();
    let mut kept = Slug { id: None, slug: "kept".into() };
    kept.save(&mut tx).await.unwrap();
    let dup = Slug { id: None, slug: "kept".into() }.save(&mut tx).await;
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::UniqueViolation);
    let committed = tx.commit().await;
    let kept_rows = Slug::filter(&db, Slug::SLUG, "kept").await.unwrap().len();
    if db.backend() == Backend::Postgres {
        assert_eq!(committed.unwrap_err().kind(), ErrorKind::Transaction);
        assert_eq!(kept_rows, 0);
    } else {
        committed.unwrap();
        assert_eq!(kept_rows, 1);
    }
    // The same failure inside `tx.savepoint(..)` is undone alone, and the rest commits.
    let mut tx = db.begin().await.unwrap();
    Slug { id: None, slug: "fine".into() }.save(&mut tx).await.unwrap();
    let dup = tx
        .savepoint(async |tx: &mut Tx| Slug { id: None, slug: "fine".into() }.save(tx).await)
        .await;
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::UniqueViolation);
    tx.commit().await.unwrap();
    assert_eq!(Slug::filter(&db, Slug::SLUG, "fine").await.unwrap().len(), 1);
    // SQL of the caller's own that fails aborts it too: the commit asks the server.
    if db.backend() == Backend::Postgres {
        let mut tx = db.begin().await.unwrap();
        Slug { id: None, slug: "raw".into() }.save(&mut tx).await.unwrap();
        if let signals_core::ConnRef::Postgres(conn) = tx.conn().await.unwrap() {
            let failed = sqlx::query("SELECT * FROM no_such_table").execute(conn).await;
            assert!(failed.is_err());
        }
        assert_eq!(tx.commit().await.unwrap_err().kind(), ErrorKind::Transaction);
        assert!(Slug::filter(&db, Slug::SLUG, "raw").await.unwrap().is_empty());
        // The connection lost before COMMIT was sent (found by that question): a plain
        // connection failure, not an unknown outcome, since nothing can have committed.
        let mut tx = db.begin().await.unwrap();
        Slug { id: None, slug: "lost".into() }.save(&mut tx).await.unwrap();
        let pid: i32 = match tx.conn().await.unwrap() {
            signals_core::ConnRef::Postgres(c) => {
                sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(c).await.unwrap()
            }
            _ => unreachable!(),
        };
        db.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})")).await.unwrap();
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(Slug::filter(&db, Slug::SLUG, "lost").await.unwrap().is_empty());
    }
});

// Conflicts are retryable -------------------------------------------------------------------

// Two transactions take two rows in opposite orders: the server picks one as the deadlock
// victim, which gets a retryable `Conflict`; SQLite, whose writers take the lock up front,
// reports a lock still held after the busy timeout the same way.
db_test!(async fn deadlocks_and_lock_timeouts_are_retryable_conflicts(db) {
    setup(&db).await;
    let (mut a, mut b) = (User::new("a"), User::new("b"));
    a.save(&db).await.unwrap();
    b.save(&db).await.unwrap();
    if db.backend() == Backend::Sqlite {
        let opts: sqlx::sqlite::SqliteConnectOptions = match db.pool() {
            signals_core::PoolRef::Sqlite(p) => (*p.connect_options()).clone(),
            _ => unreachable!(),
        };
        let impatient = Db::from(
            sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(opts.busy_timeout(Duration::from_millis(100)))
                .await
                .unwrap(),
        );
        let holder = db.begin().await.unwrap(); // BEGIN IMMEDIATE: the write lock
        let err = a.save(&impatient).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.is_retryable());
        holder.rollback().await.unwrap();
        a.save(&impatient).await.unwrap(); // and then it goes through
        return;
    }
    let mut t1 = db.begin().await.unwrap();
    let mut t2 = db.begin().await.unwrap();
    a.email = "t1".into();
    a.save(&mut t1).await.unwrap();
    b.email = "t2".into();
    b.save(&mut t2).await.unwrap();
    // Each side ends its transaction as soon as its save fails: a PostgreSQL deadlock victim
    // keeps its locks until then, and the other side waits for them.
    let first = tokio::spawn(async move {
        let res = b.save(&mut t1).await;
        let ended = t1.rollback().await;
        (res, ended)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = a.save(&mut t2).await;
    t2.rollback().await.unwrap();
    let (first, ended) = first.await.unwrap();
    ended.unwrap();
    let errors: Vec<_> = [&first, &second].into_iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "one victim: {first:?} {second:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Conflict, "{}", errors[0]);
    assert!(errors[0].is_retryable());
});

// Two saves of the same new key (an application-assigned key: UPDATE, then INSERT when no
// row matched) race: each loser gets a unique violation or a retryable conflict, never a
// generic database error, and exactly one row stands.
db_test!(async fn races_on_one_key_give_unique_violations_or_retryable_conflicts(db) {
    create_tables(&db, "CREATE TABLE setting (name {varchar} PRIMARY KEY, value {text} NOT NULL)").await;
    for round in 0..20 {
        let name = format!("k{round}");
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (db, name) = (db.clone(), name.clone());
                tokio::spawn(async move {
                    Setting { name, value: format!("v{i}") }.save(&db).await
                })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await.unwrap() {
                assert!(
                    e.kind() == ErrorKind::UniqueViolation || e.is_retryable(),
                    "round {round}: {e}"
                );
            }
        }
    }
    assert_eq!(count(&db, "setting").await, 20);
});

#[derive(Debug, Clone, Model)]
#[post_save(noop)]
struct Setting {
    #[model(primary_key)]
    name: String,
    value: String,
}

async fn noop(_: &Setting, _: &mut PostSave<'_>) -> signals_core::Result<()> {
    Ok(())
}

// `get_for_update` locks the row until the transaction ends: concurrent read-modify-writes
// of one counter lose nothing.
db_test!(async fn get_for_update_serializes_read_modify_write(db) {
    create_tables(&db, "CREATE TABLE counter (id {pk}, hits {bigint} NOT NULL)").await;
    let mut counter = Counter { id: None, hits: 0 };
    counter.save(&db).await.unwrap();
    let id = counter.id.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    db.transaction(async |tx: &mut Tx| {
                        let mut c = Counter::get_for_update(tx, id).await?.unwrap();
                        c.hits += 1;
                        c.save_with(tx, SaveOptions::new().update_fields(Counter::HITS)).await?;
                        Ok::<_, signals_core::Error>(())
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(Counter::get(&db, id).await.unwrap().unwrap().hits, 40);
});

#[derive(Debug, Clone, Model)]
struct Counter {
    id: Option<i64>,
    hits: i64,
}

// A receiver that uses the pool instead of signal.tx() ---------------------------------------

tokio::task_local! {
    /// The test's database, as a receiver that (wrongly) captured a `Db` would hold it.
    static TEST_DB: Db;
}

#[derive(Debug, Clone, Model)]
#[model(table = "ledger")]
#[post_save(reads_through_the_pool)]
struct Ledger {
    id: Option<i64>,
    note: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "ledger_copy")]
struct LedgerCopy {
    id: Option<i64>,
    note: String,
}

/// Reads, and for "write" writes the row just saved, through the `Db` instead of the
/// transaction: on PostgreSQL that write waited forever for the save's own lock.
async fn reads_through_the_pool(entry: &Ledger, _: &mut PostSave<'_>) -> signals_core::Result<()> {
    let db = TEST_DB.with(Db::clone);
    LedgerCopy::all(&db).await?;
    if entry.note == "write" {
        let mut same = entry.clone();
        same.note = "rewritten".into();
        // A save of its own model inside its receiver: erased behind `dyn`, as the crate
        // documentation shows.
        let save: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
            Box::pin(same.save(&db));
        save.await?;
    }
    Ok(())
}

db_test!(async fn a_receiver_using_the_pool_of_its_save_fails_at_once(db) {
    create_tables(&db, "CREATE TABLE ledger (id {pk}, note {text} NOT NULL);
                        CREATE TABLE ledger_copy (id {pk}, note {text} NOT NULL)").await;
    TEST_DB.scope(db.clone(), async {
        for note in ["read", "write"] {
            let started = std::time::Instant::now();
            let err = Ledger { id: None, note: note.into() }.save(&db).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
            assert!(err.to_string().contains("signal.tx()"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(5), "failed at once, not after a wait");
        }
        // Inside a transaction of the caller's too.
        let mut tx = db.begin().await.unwrap();
        let err = Ledger { id: None, note: "read".into() }.save(&mut tx).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
        drop(tx);
        // Many at once on a small pool: all refused, none stalls the pool.
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(TEST_DB.scope(db.clone(), async move {
                    Ledger { id: None, note: "read".into() }.save(&db).await
                }))
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap_err().kind(), ErrorKind::Usage);
        }
    })
    .await;
    assert_eq!(count(&db, "ledger").await, 0, "every failed save was rolled back");
    // Outside receivers the same Db works as ever.
    LedgerCopy { id: None, note: "fine".into() }.save(&db).await.unwrap();
});

/// Awaits work spawned onto another task that uses the `Db` (which the task-local check of
/// its own statements cannot see): that work waits for the connection the save holds.
#[derive(Debug, Clone, Model)]
#[model(table = "ledger")]
#[post_save(awaits_spawned_work)]
struct SpawningLedger {
    id: Option<i64>,
    note: String,
}

async fn awaits_spawned_work(_: &SpawningLedger, _: &mut PostSave<'_>) -> signals_core::Result<()> {
    let db = TEST_DB.with(Db::clone);
    let copies = tokio::spawn(async move { LedgerCopy::all(&db).await.map(|c| c.len()) });
    copies
        .await
        .map_err(|e| signals_core::BoxError::from(e.to_string()))??;
    Ok(())
}

// Item 10 of the third reliability round: the pool's timeout, met by work a receiver awaits on
// another task, says what probably happened and how to fix it.
url_test!(async fn a_receiver_awaiting_spawned_work_on_its_pool_is_told_why_it_timed_out(url) {
    use signals_core::sqlx::{mysql::MySqlPoolOptions, postgres::PgPoolOptions, sqlite::SqlitePoolOptions};
    let full = Db::connect(&url).await.unwrap();
    create_tables(&full, "CREATE TABLE ledger (id {pk}, note {text} NOT NULL);
                          CREATE TABLE ledger_copy (id {pk}, note {text} NOT NULL)").await;
    let timeout = Duration::from_millis(500);
    // One connection, which the save's transaction holds.
    let db = match full.backend() {
        Backend::Sqlite => Db::from(
            SqlitePoolOptions::new().max_connections(1).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
        Backend::Postgres => Db::from(
            PgPoolOptions::new().max_connections(1).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
        _ => Db::from(
            MySqlPoolOptions::new().max_connections(1).acquire_timeout(timeout).connect(&url).await.unwrap(),
        ),
    };
    let err = TEST_DB
        .scope(db.clone(), SpawningLedger { id: None, note: "spawns".into() }.save(&db))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(matches!(err.root(), signals_core::Error::PoolTimedOut { receivers: 1, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("tokio::spawn") && text.contains("signal.tx()"), "{text}");
    assert_eq!(count(&full, "ledger").await, 0, "the save was rolled back");
    // Without receivers running, a timeout is a plain connection error.
    let held = db.begin().await.unwrap();
    let err = LedgerCopy::all(&db).await.unwrap_err();
    assert!(matches!(err, signals_core::Error::Connection(_)), "{err:?}");
    drop(held);
    db.close().await;
    full.close().await;
});

// Too long for the column ---------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "short_note")]
struct ShortNote {
    id: Option<i64>,
    title: String,
    body: Option<String>,
}

// A value longer than its column: named, without server-internal positions; nothing written.
db_test!(async fn a_value_too_long_for_its_column_names_the_column(db) {
    create_tables(&db, "CREATE TABLE short_note (id {pk}, title VARCHAR(10) NOT NULL, body VARCHAR(5))").await;
    let res = ShortNote { id: None, title: "ok".into(), body: Some("much too long".into()) }
        .save(&db)
        .await;
    if db.backend() == Backend::Sqlite {
        res.unwrap(); // SQLite keeps any length: applications validate (see example-account)
        return;
    }
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    let text = err.to_string();
    assert!(text.contains("column `body`"), "{text}");
    assert!(!text.contains(" at line "), "no server-internal position: {text}");
    let err = ShortNote { id: None, title: "more than ten".into(), body: None }
        .save(&db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("column `title`"), "{err}");
    assert_eq!(count(&db, "short_note").await, 0);
    // Other server errors lose the position too.
    let err = exec_err(&db, "SELECT * FROM no_such_table").await;
    assert!(!err.contains(" at line "), "{err}");
});

async fn exec_err(db: &Db, sql: &str) -> String {
    db.execute_unprepared(sql).await.unwrap_err().to_string()
}

// Foreign keys named on SQLite too ----------------------------------------------------------

// SQLite reports only "FOREIGN KEY constraint failed": the error still names what failed, the
// model's reference column on a save, the referenced table on a delete.
db_test!(async fn foreign_key_errors_name_the_reference(db) {
    setup(&db).await;
    create_tables(&db, "CREATE TABLE fk_note (id {pk}, user_id {bigint} NOT NULL,
        CONSTRAINT fk_note_user_fk FOREIGN KEY (user_id) REFERENCES account_user (id))").await;
    let err = crate::common::Profile { id: None, user_id: 4242, date_of_birth: None, photo: String::new() }
        .save(&db)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation);
    let text = err.to_string();
    assert!(!text.contains("``"), "{text}");
    assert!(text.contains("account_profile"), "{text}");
    if db.backend() == Backend::Sqlite {
        assert!(text.contains("account_profile.user_id"), "{text}");
    }

    let mut user = User::new("referenced");
    user.save(&db).await.unwrap();
    exec(&db, &format!("INSERT INTO fk_note (user_id) VALUES ({})", user.id.unwrap())).await;
    let err = user.delete(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation);
    let text = err.to_string();
    assert!(!text.contains("``"), "{text}");
    let named = if db.backend() == Backend::Sqlite { "account_user" } else { "fk_note_user_fk" };
    assert!(text.contains(named), "{text}");
    assert_eq!(count(&db, "account_user").await, 1, "nothing deleted");
});

// `refresh` reloads what changed behind the instance's back --------------------------------

db_test!(async fn refresh_reloads_the_row(db) {
    setup(&db).await;
    let mut user = User::new("stale");
    user.save(&db).await.unwrap();
    exec(&db, "UPDATE account_user SET email = 'changed@x.org'").await;
    user.refresh(&db).await.unwrap();
    assert_eq!(user.email, "changed@x.org");
    // Inside a transaction, it sees the transaction's own writes.
    let mut tx = db.begin().await.unwrap();
    let mut copy = user.clone();
    copy.email = "in-tx@x.org".into();
    copy.save(&mut tx).await.unwrap();
    user.refresh(&mut tx).await.unwrap();
    assert_eq!(user.email, "in-tx@x.org");
    tx.rollback().await.unwrap();
    user.refresh(&db).await.unwrap();
    assert_eq!(user.email, "changed@x.org");

    let err = User::new("never saved").refresh(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSaved);
    let mut gone = user.clone();
    user.delete(&db).await.unwrap();
    let err = gone.refresh(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(gone.email, "changed@x.org", "left as it was");
});
