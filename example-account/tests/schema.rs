//! The embedded migrations match the models exactly, on every backend.
#![allow(clippy::unwrap_used)]

use example_account::{Profile, User, migrate};
use signals_core::Model;
use signals_tests::db_test;

db_test!(async fn migrated_schema_has_every_model_column(db) {
    migrate(&db).await.unwrap();
    migrate(&db).await.unwrap(); // idempotent
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
