//! Nothing is lost under faults, load and bad input, on every backend. Each test checks the
//! database afterwards by counting rows with plain SQL, not through the crate.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    FAIL_POST_DELETE, FAIL_POST_SAVE, FAIL_PRE_DELETE, FAIL_PRE_SAVE, KILL_POST_SAVE,
    PANIC_POST_SAVE, Profile, SLEEP_POST_SAVE, User, setup,
};
use signals_core::sqlx::{self, Connection as _};
use signals_core::{Backend, Db, Error, ErrorKind, Model, SignalKind, Tx};
use signals_tests::{count, db_test, exec, url_test};

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
            // whole and reported, never half-applied.
            Err(e) => assert_eq!(db.backend(), Backend::MySql, "{e}"),
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
