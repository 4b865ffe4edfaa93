//! The embedded migrations match the models exactly, on every backend.

use example_account::{Profile, User, WelcomeNote, migrate, schema_sql};
use signals_core::{Backend, ErrorKind, Model};
use signals_tests::db_test;

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
    assert!(
        sql.contains("\"username\" VARCHAR(150) NOT NULL UNIQUE"),
        "{sql}"
    );
    assert!(sql.contains("\"user_id\" BIGINT NOT NULL UNIQUE"), "{sql}");
    assert!(
        sql.contains("FOREIGN KEY (\"user_id\") REFERENCES \"account_user\" (\"id\")"),
        "{sql}"
    );
}

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
