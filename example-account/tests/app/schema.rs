//! The embedded migrations match the models exactly, on every backend.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use example_account::{AdminSession, Profile, User, WelcomeNote, migrate, schema_sql, sqlmigrate};
use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
use signals_core::{Backend, ErrorKind, Model};
use signals_tests::catalog::catalog;
use signals_tests::{db_test, with_scratch};

// The migrations and the schema the crate writes from the models agree: each passes the
// models' check, and a table that drifts from the models is reported at start-up.
db_test!(async fn migrations_and_the_schema_from_the_models_agree(db) {
    db.create_tables::<(User, Profile, WelcomeNote)>().await.unwrap();
    signals_outbox::install(&db).await.unwrap(); // `User` has a durable receiver
    db.check_schema::<(User, Profile, WelcomeNote)>().await.unwrap();
    let user = User::create_user(&db, "alice", "a@example.com", "pw").await.unwrap();
    assert!(Profile::for_user(&db, &user).await.unwrap().is_some());
    // A drifted table: `migrate` (which checks) refuses to start on it, naming the column.
    db.execute_unprepared("DROP TABLE account_profile").await.unwrap();
    let ddl = if db.backend() == Backend::MySql {
        "CREATE TABLE account_profile (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, photo TEXT)"
    } else {
        "CREATE TABLE account_profile (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL, photo TEXT)"
    };
    db.execute_unprepared(ddl).await.unwrap();
    let err = db.check_schema::<(User, Profile)>().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch);
    let text = err.to_string();
    assert!(text.contains("column `account_profile.date_of_birth` (field `date_of_birth` of `Profile`) is missing"), "{text}");
    assert!(text.contains("column `account_profile.photo` may hold NULL"), "{text}");
});

#[test]
fn the_schema_command_prints_the_models_tables() {
    let sql = schema_sql(Backend::Postgres);
    assert!(sql.contains("\"username\" VARCHAR(150) NOT NULL,"), "{sql}");
    assert!(
        sql.contains("CONSTRAINT \"account_user_username_key\" UNIQUE (\"username\")"),
        "{sql}"
    );
    assert!(
        sql.contains("CONSTRAINT \"account_profile_user_id_fkey\" FOREIGN KEY (\"user_id\") REFERENCES \"account_user\" (\"id\")"),
        "{sql}"
    );
}

/// The catalog of the app's tables (the outbox's are its own crate's).
async fn app_catalog(db: &signals_core::Db) -> Vec<String> {
    let mut lines = catalog(db, "account_").await;
    lines.extend(catalog(db, "admin_session").await);
    lines
}

// Issue 28: the migrations, the hand-written first five and the generated sixth, make exactly
// the tables `create_tables` makes from the models (types, NULLs, defaults, keys, unique sets,
// indexes, references, MySQL's collation), as each server's catalog says.
db_test!(async fn the_migrations_make_exactly_the_tables_of_the_models(db) {
    migrate(&db).await.unwrap();
    let migrated = app_catalog(&db).await;
    let fresh = Arc::new(Mutex::new(Vec::new()));
    let slot = fresh.clone();
    with_scratch(db.backend(), "app_fresh", async move |url: String| {
        let db = signals_core::Db::connect(&url).await.unwrap();
        db.create_tables::<(User, Profile, WelcomeNote, AdminSession)>().await.unwrap();
        *slot.lock().unwrap() = app_catalog(&db).await;
        db.close().await;
    })
    .await;
    let fresh = fresh.lock().unwrap().clone();
    for fact in ["reference account_profile.user_id -> account_user.id", "unique account_user (username)", "index admin_session (user_id)"] {
        assert!(migrated.contains(&fact.to_owned()), "{}: `{fact}` missing from {migrated:#?}", db.backend());
    }
    assert_eq!(migrated, fresh, "{}", db.backend());
});

// Issue 28: tables made by the first five migrations, with users in them, are brought to the
// models by the sixth: rows kept, and on MariaDB `alice` and `Alice` are two usernames, as on
// the other backends (the hand-written tables took the server's case-insensitive collation).
db_test!(async fn the_generated_migration_brings_existing_tables_to_the_models(db) {
    let backend = db.backend();
    let first_five: Vec<Migration> = (1..=5)
        .map(|v| {
            Migration::new(
                v,
                Cow::Borrowed("before"),
                MigrationType::Simple,
                AssertSqlSafe(sqlmigrate(backend, v).unwrap()).into_sql_str(),
                false,
            )
        })
        .collect();
    signals_core::migrate::run(&db, &Migrator::with_migrations(first_five)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO account_user (username, email, password, date_joined, is_active) \
         VALUES ('alice', 'a@example.com', '!', '2020-01-02 03:04:05', TRUE)",
    )
    .await
    .unwrap();
    db.execute_unprepared("INSERT INTO account_profile (user_id, photo) SELECT id, 'p.png' FROM account_user")
        .await
        .unwrap();
    if backend == Backend::MySql {
        let dup = db.execute_unprepared(
            "INSERT INTO account_user (username, password, date_joined) VALUES ('Alice', '!', '2020-01-02')",
        );
        assert!(dup.await.is_err(), "the hand-written table compares without case");
    }
    migrate(&db).await.unwrap();
    let alice = User::query().filter(User::USERNAME.eq("alice")).first(&db).await.unwrap().unwrap();
    assert_eq!((alice.email.as_str(), alice.is_staff), ("a@example.com", false));
    assert_eq!(Profile::for_user(&db, &alice).await.unwrap().unwrap().photo, "p.png");
    assert!(User::query().filter(User::USERNAME.eq("ALICE")).first(&db).await.unwrap().is_none());
    User::create_user(&db, "Alice", "", "pw").await.unwrap();
    assert_eq!(User::query().count(&db).await.unwrap(), 2);
});

db_test!(async fn migrated_schema_has_every_model_column(db) {
    migrate(&db).await.unwrap();
    migrate(&db).await.unwrap(); // idempotent
    db.check_schema::<(User, Profile)>().await.unwrap();
    for meta in [User::META, Profile::META] {
        // Naming every column fails if one is missing from the table.
        let sql = format!("SELECT {} FROM {} WHERE 1 = 0", meta.columns.join(", "), meta.table);
        db.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{}: {e}", meta.name));
    }
    // And every column round-trips through the models, NULLs included.
    let user = User::create_user(&db, "alice", "a@example.com", "pw").await.unwrap();
    let loaded = User::get(&db, user.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded.username, user.username);
    assert_eq!(loaded.password, user.password);
    assert_eq!(loaded.date_joined.timestamp_micros(), user.date_joined.timestamp_micros());
    let profile = Profile::for_user(&db, &user).await.unwrap().unwrap();
    assert_eq!(profile.date_of_birth, None);
});

// `post_migrate` (issue 27): users without a profile — loaded raw, as fixtures are, or older
// than the profile table — get one at the next migrate, once.
db_test!(async fn post_migrate_gives_every_user_without_a_profile_one(db) {
    use signals_core::SaveOptions;
    migrate(&db).await.unwrap();
    let template = User::create_user(&db, "alice", "", "pw").await.unwrap();
    for name in ["bob", "cy", "dee"] {
        let mut user = template.clone();
        user.id = None;
        user.username = name.into();
        user.save_with(&db, SaveOptions::new().raw()).await.unwrap();
        assert!(Profile::for_user(&db, &user).await.unwrap().is_none());
    }
    migrate(&db).await.unwrap();
    for user in User::all(&db).await.unwrap() {
        assert!(Profile::for_user(&db, &user).await.unwrap().is_some(), "{}", user.username);
    }
    assert_eq!(Profile::query().count(&db).await.unwrap(), 4);
    migrate(&db).await.unwrap();
    assert_eq!(Profile::query().count(&db).await.unwrap(), 4, "once");
});

db_test!(async fn raw_saves_touch_no_other_row(db) {
    use signals_core::SaveOptions;
    migrate(&db).await.unwrap();
    let mut user = User::create_user(&db, "alice", "", "pw").await.unwrap();
    user.id = None;
    user.username = "fixture".into();
    user.save_with(&db, SaveOptions::new().raw()).await.unwrap();
    assert!(Profile::for_user(&db, &user).await.unwrap().is_none(), "no profile from a raw save");
    user.save(&db).await.unwrap();
    assert!(Profile::for_user(&db, &user).await.unwrap().is_some(), "save_profile repairs it later");
});

/// First runs at once on a new SQLite file (eight `createuser`s started together, say): each
/// migrates or waits for the one that does; none fails with "table already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_a_fresh_sqlite_file_all_succeed() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
        let mut pools = Vec::new();
        for _ in 0..16 {
            pools.push(signals_core::Db::connect(&url).await.unwrap());
        }
        let tasks: Vec<_> = pools
            .into_iter()
            .map(|db| tokio::spawn(async move { example_account::migrate(&db).await }))
            .collect();
        for task in tasks {
            if let Err(e) = task.await.unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}
