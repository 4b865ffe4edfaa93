//! `pre_migrate` / `post_migrate`: sent by `migrate::run` with the migrations it applies,
//! while it holds the migration lock, on every backend.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signals_core::migrate::{self, Migrating, POST_MIGRATE, PRE_MIGRATE};
use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
use signals_core::{Backend, BoxError, Model, isolate_receivers};
use signals_tests::{count, db_test};

#[derive(Debug, Clone, Model)]
#[model(table = "ms_user")]
struct MsUser {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "ms_profile")]
struct MsProfile {
    id: Option<i64>,
    #[model(one_to_one = MsUser, on_delete = cascade)]
    user_id: i64,
}

fn migration(version: i64, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed("m"),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// Version 1 has users only; version 2 brings their profiles' table.
fn migrator(backend: Backend, version: i64) -> Migrator {
    let profiles = match backend {
        Backend::Sqlite => {
            "CREATE TABLE ms_profile (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL UNIQUE REFERENCES ms_user (id))"
        }
        Backend::Postgres => {
            "CREATE TABLE ms_profile (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL UNIQUE REFERENCES ms_user (id))"
        }
        _ => {
            "CREATE TABLE ms_profile (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL UNIQUE REFERENCES ms_user (id))"
        }
    };
    let all = vec![
        migration(
            1,
            "CREATE TABLE ms_user (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        ),
        migration(2, profiles),
    ];
    Migrator::with_migrations(all.into_iter().filter(|m| m.version <= version).collect())
}

/// The post_migrate receiver of an app whose `Profile` arrives in an existing database: every
/// user without a profile gets one (idempotent: it runs on every migrate).
async fn create_missing_profiles(m: &Migrating) -> signals_core::Result<()> {
    let has_profiles = m.db.check_schema::<MsProfile>().await.is_ok();
    if !has_profiles {
        return Ok(());
    }
    let with_profile = MsProfile::query().select(MsProfile::USER_ID);
    let users = MsUser::query()
        .filter(!MsUser::ID.in_query(with_profile))
        .all(&m.db)
        .await?;
    let mut profiles: Vec<MsProfile> = users
        .iter()
        .filter_map(|u| u.id)
        .map(|user_id| MsProfile { id: None, user_id })
        .collect();
    MsProfile::bulk_save(&m.db, &mut profiles).await?;
    Ok(())
}

db_test!(async fn post_migrate_creates_what_a_new_table_needs_for_existing_rows(db) {
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    // Users that predate the profile table.
    migrate::run(&db, &migrator(db.backend(), 1)).await.unwrap();
    for (id, name) in [(1, "ann"), (2, "bob"), (3, "cy")] {
        db.execute_unprepared(&format!("INSERT INTO ms_user (id, name) VALUES ({id}, '{name}')")).await.unwrap();
    }
    isolate_receivers(async {
        let log = sent.clone();
        PRE_MIGRATE.connect("log", async move |m: &Migrating| {
            let versions: Vec<i64> = m.migrations.iter().map(|m| m.version).collect();
            log.lock().unwrap().push(format!("pre {versions:?}"));
            Ok(())
        });
        let log = sent.clone();
        POST_MIGRATE.connect("log", async move |m: &Migrating| {
            let versions: Vec<i64> = m.migrations.iter().map(|m| m.version).collect();
            log.lock().unwrap().push(format!("post {versions:?}"));
            Ok(())
        });
        POST_MIGRATE.connect("profiles", create_missing_profiles);

        migrate::run(&db, &migrator(db.backend(), 2)).await.unwrap();
        assert_eq!(count(&db, "ms_profile").await, 3);
        // Sent on every run, with nothing applied; the receiver finds nothing to do.
        migrate::run(&db, &migrator(db.backend(), 2)).await.unwrap();
        assert_eq!(count(&db, "ms_profile").await, 3);
    })
    .await;
    assert_eq!(*sent.lock().unwrap(), ["pre [2]", "post [2]", "pre []", "post []"]);
    // Outside the test's scope, no receiver runs.
    migrate::run(&db, &migrator(db.backend(), 2)).await.unwrap();
    assert_eq!(sent.lock().unwrap().len(), 4);
});

db_test!(async fn a_failing_pre_migrate_applies_nothing_and_the_signals_hold_the_lock(db) {
    isolate_receivers(async {
        PRE_MIGRATE.connect("refuse", async |_: &Migrating| Err(BoxError::from("not today").into()));
        let err = migrate::run(&db, &migrator(db.backend(), 1)).await.unwrap_err();
        assert!(err.to_string().contains("not today"), "{err}");
        assert!(PRE_MIGRATE.disconnect("refuse"));
    })
    .await;
    assert!(db.check_schema::<MsUser>().await.is_err(), "nothing was applied");

    // While a post_migrate receiver runs, another run (another pool, as another process)
    // waits for the lock.
    let other = signals_tests::another_pool(&db).await;
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(Mutex::new(Some(entered_tx)));
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
    let backend = db.backend();
    let db1 = db.clone();
    let first = isolate_receivers(async move {
        POST_MIGRATE.connect("hold", async move |_: &Migrating| {
            if let Some(tx) = entered_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            if let Some(rx) = go_rx.lock().await.take() {
                let _ = rx.await;
            }
            Ok(())
        });
        migrate::run(&db1, &migrator(backend, 1)).await
    });
    let first = tokio::spawn(first);
    entered_rx.await.unwrap();
    let second = tokio::spawn(async move {
        let res = migrate::run(&other, &migrator(backend, 2)).await;
        other.close().await;
        res
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second run waits for the first's lock");
    go_tx.send(()).unwrap();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(signals_tests::scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, 2);
});
