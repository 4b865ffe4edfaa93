//! The schema, as sqlx migrations embedded in the binary: one set per backend.

use std::borrow::Cow;

use signals_core::Backend;
use signals_core::schema::Schema;
use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Profile, User, WelcomeNote};
use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
use signals_core::{Db, PoolRef};

use crate::Error;

/// `(version, description, SQLite, PostgreSQL, MySQL)` of each migration, oldest first.
type Entry = (i64, &'static str, &'static str, &'static str, &'static str);

const MIGRATIONS: &[Entry] = &[
    (
        1,
        "account",
        include_str!("../migrations/sqlite/0001_account.sql"),
        include_str!("../migrations/postgres/0001_account.sql"),
        include_str!("../migrations/mysql/0001_account.sql"),
    ),
    (
        2,
        "staff",
        include_str!("../migrations/sqlite/0002_staff.sql"),
        include_str!("../migrations/postgres/0002_staff.sql"),
        include_str!("../migrations/mysql/0002_staff.sql"),
    ),
    (
        3,
        "outbox",
        include_str!("../migrations/sqlite/0003_outbox.sql"),
        include_str!("../migrations/postgres/0003_outbox.sql"),
        include_str!("../migrations/mysql/0003_outbox.sql"),
    ),
];

fn migrator(pick: fn(&Entry) -> &'static str) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(
                    m.0,
                    Cow::Borrowed(m.1),
                    MigrationType::Simple,
                    AssertSqlSafe(pick(m)).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Brings the database's schema up to date (Django's `migrate`), a no-op when it is, then
/// checks the tables against the models (Django's system checks): a migration that does not
/// match the models is reported here, every mismatch at once, not on the first read.
///
/// Safe to run from several processes at once, as concurrent first runs of the command line do:
/// sqlx's migrator takes a lock of the server's on PostgreSQL and MySQL, and on an SQLite file
/// this holds an exclusive lock on `<database>.migrate-lock` beside it while migrating.
pub async fn migrate(db: &Db) -> Result<(), Error> {
    let res = match db.pool() {
        PoolRef::Sqlite(pool) => {
            let file = pool.connect_options().get_filename().to_path_buf();
            let _lock = if file.is_file() {
                Some(lock(&file).await?)
            } else {
                None
            };
            migrator(|m| m.2).run(pool).await
        }
        PoolRef::Postgres(pool) => migrator(|m| m.3).run(pool).await,
        PoolRef::MySql(pool) => migrator(|m| m.4).run(pool).await,
        _ => return Err(Error::Unsupported(db.backend().to_string())),
    };
    res.map_err(|e| Error::Migrate(e.to_string()))?;
    db.check_schema::<(User, Profile, WelcomeNote)>().await?;
    Ok(())
}

/// The SQL that creates the app's tables from its models on `backend` (what the migrations
/// hold, written by the crate): `example-account schema` prints it.
pub fn schema_sql(backend: Backend) -> String {
    let mut sql = Schema::of::<(User, Profile, WelcomeNote)>().create_sql(backend);
    for statement in signals_outbox::schema::statements(backend) {
        sql.push_str(&statement);
        sql.push_str(";\n");
    }
    sql
}

/// Takes the exclusive migration lock of the SQLite file `db`, waiting for another process
/// that holds it; released when the returned file is dropped.
async fn lock(db: &std::path::Path) -> Result<std::fs::File, Error> {
    let mut name = db.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| Error::Migrate(e.to_string()))?
        .map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// What migration 0003 holds on `backend`: the welcome notes' table, from the model, and the
    /// outbox's tables, from `signals-outbox`.
    fn outbox_migration(backend: Backend) -> String {
        let mut statements = Schema::of::<WelcomeNote>().create_statements(backend);
        statements.extend(signals_outbox::schema::statements(backend));
        statements.iter().map(|s| format!("{s};\n")).collect()
    }

    /// Migration 0003 is what the model and `signals-outbox` create; `UPDATE_MIGRATIONS=1`
    /// rewrites it after a change to either.
    #[test]
    fn outbox_migration_matches_its_sources() {
        for (backend, dir, entry) in [
            (Backend::Sqlite, "sqlite", MIGRATIONS[2].2),
            (Backend::Postgres, "postgres", MIGRATIONS[2].3),
            (Backend::MySql, "mysql", MIGRATIONS[2].4),
        ] {
            let expected = outbox_migration(backend);
            if std::env::var_os("UPDATE_MIGRATIONS").is_some() {
                let path = format!(
                    "{}/migrations/{dir}/0003_outbox.sql",
                    env!("CARGO_MANIFEST_DIR")
                );
                std::fs::write(path, &expected).expect("write the migration");
                continue;
            }
            assert_eq!(
                entry, expected,
                "migrations/{dir}/0003_outbox.sql is stale: run with UPDATE_MIGRATIONS=1"
            );
        }
    }
}
