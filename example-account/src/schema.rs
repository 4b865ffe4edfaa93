//! The schema, as sqlx migrations embedded in the binary: one set per backend.

use std::borrow::Cow;

use signals_core::Backend;
use signals_core::schema::Schema;
use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{AdminSession, Profile, User, WelcomeNote};
use signals_core::Db;
use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::Error;
use signals_core::migrate::{Migrating, POST_MIGRATE};
use signals_core::{Model, Result as SignalResult};

// The migrations of each backend, listed by `build.rs` from `migrations/<backend>/`.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Where the app's migrations are, for `makemigrations` (a tool for its source tree).
pub const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

/// The app's models, whose tables the migrations make.
pub fn models() -> Schema {
    Schema::of::<(User, Profile, WelcomeNote, AdminSession)>()
}

/// The embedded migrations of `backend`: (version, description, SQL), oldest first.
fn embedded(backend: Backend) -> Option<&'static [(i64, &'static str, &'static str)]> {
    match backend {
        Backend::Sqlite => Some(SQLITE),
        Backend::Postgres => Some(POSTGRES),
        Backend::MySql => Some(MYSQL),
        _ => None,
    }
}

fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|m| {
                Migration::new(
                    m.0,
                    Cow::Borrowed(m.1),
                    MigrationType::Simple,
                    AssertSqlSafe(m.2).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The SQL of migration `version` for `backend`, as it is applied (Django's `sqlmigrate`).
pub fn sqlmigrate(backend: Backend, version: i64) -> Option<&'static str> {
    embedded(backend)?
        .iter()
        .find(|m| m.0 == version)
        .map(|m| m.2)
}

/// Brings the database's schema up to date (Django's `migrate`), a no-op when it is, then
/// checks the tables against the models (Django's system checks): a migration that does not
/// match the models is reported here, every mismatch at once, not on the first read.
///
/// Safe to run from several processes at once, as concurrent first runs of the command line
/// do: `signals_core::migrate::run` takes a lock that holds on every backend (MariaDB's
/// included, where sqlx's own takes none) and applies each migration once.
///
/// Its `post_migrate` receiver, [`create_missing_profiles`], gives every user without a profile
/// one, as a Django app does when `Profile` arrives in a database whose users predate it.
pub async fn migrate(db: &Db) -> Result<(), Error> {
    static CONNECTED: std::sync::Once = std::sync::Once::new();
    CONNECTED.call_once(|| {
        POST_MIGRATE.connect("account.create_missing_profiles", create_missing_profiles);
    });
    let Some(migrations) = embedded(db.backend()) else {
        return Err(Error::Unsupported(db.backend().to_string()));
    };
    let migrator = migrator(migrations);
    signals_core::migrate::run(db, &migrator).await?;
    db.check_schema::<(User, Profile, WelcomeNote, AdminSession)>()
        .await?;
    Ok(())
}

/// `post_migrate`: creates the profile of every user that has none (users that predate the
/// profile table, or were loaded raw, as fixtures are, which skips `create_profile`), in one
/// bulk save with `Profile`'s receivers. Idempotent: it runs after every migrate.
pub async fn create_missing_profiles(m: &Migrating) -> SignalResult<()> {
    let with_profile = Profile::query().select(Profile::USER_ID);
    let users = User::query()
        .filter(!User::ID.in_query(with_profile))
        .all(&m.db)
        .await?;
    if users.is_empty() {
        return Ok(());
    }
    let mut profiles: Vec<Profile> = users
        .iter()
        .filter_map(|u| u.id)
        .map(Profile::blank)
        .collect();
    Profile::bulk_save(&m.db, &mut profiles).await?;
    tracing::info!(profiles = profiles.len(), "created the missing profiles");
    Ok(())
}

/// The SQL that creates the app's tables from its models on `backend` (what the migrations
/// hold, written by the crate): `example-account schema` prints it.
pub fn schema_sql(backend: Backend) -> String {
    let mut sql = models().create_sql(backend);
    for statement in signals_outbox::schema::statements(backend)
        .into_iter()
        .chain(signals_outbox::schema::added_columns(backend))
    {
        sql.push_str(&statement);
        sql.push_str(";\n");
    }
    sql
}

#[cfg(test)]
mod migration_tests {
    use super::*;
    use signals_core::makemigrations::MakeMigrations;

    /// The statements of a migration file, as written (each ends in `;` and a newline).
    fn statements_of(sql: &str) -> Vec<String> {
        sql.split(";\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Migration 0003 made the first version of `signals-outbox`'s tables; 0004 holds every
    /// statement of that crate's schema 0003 lacks (the runners' shared settings), so that
    /// together they are its schema as it is now. `UPDATE_MIGRATIONS=1` writes 0004 anew
    /// after a change there (a migration applied somewhere never changes: a later version of
    /// the outbox's tables needs a new one).
    #[test]
    fn the_outbox_migrations_make_its_schema() {
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
            let sql = |v| sqlmigrate(backend, v).expect("embedded");
            let before = statements_of(sql(3));
            let missing: String = signals_outbox::schema::statements(backend)
                .into_iter()
                .filter(|s| !before.contains(s))
                .map(|s| format!("{s};\n"))
                .collect();
            let dir = signals_core::makemigrations::backend_dir(backend);
            if std::env::var_os("UPDATE_MIGRATIONS").is_some() {
                let path = format!("{MIGRATIONS_DIR}/{dir}/0004_outbox_meta.sql");
                std::fs::write(path, &missing).expect("write the migration");
                continue;
            }
            assert_eq!(
                sql(4),
                missing,
                "migrations/{dir}/0004_outbox_meta.sql is stale: run with UPDATE_MIGRATIONS=1"
            );
        }
    }

    /// Migration 0008 adds the columns `signals-outbox` added to its tables since their first
    /// version (`schema::added_columns`); a later addition needs a migration of its own.
    #[test]
    fn the_outbox_columns_migration_adds_its_columns() {
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
            let added: String = signals_outbox::schema::added_columns(backend)
                .into_iter()
                .map(|s| format!("{s};\n"))
                .collect();
            assert_eq!(
                sqlmigrate(backend, 8).expect("embedded"),
                added,
                "{backend}"
            );
        }
    }

    /// Django's `makemigrations --check`, as CI runs it: the migrations make what the models
    /// ask for (`example-account makemigrations` writes what a model change needs).
    #[test]
    fn the_migrations_are_up_to_date_with_the_models() {
        if let Err(err) = MakeMigrations::new(MIGRATIONS_DIR, &models()).check() {
            panic!("{err}");
        }
    }

    /// Every migration on disk is embedded, for every backend.
    #[test]
    fn every_migration_file_is_embedded() {
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
            let dir = signals_core::makemigrations::backend_dir(backend);
            let files = std::fs::read_dir(format!("{MIGRATIONS_DIR}/{dir}"))
                .expect("the migrations directory")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
                })
                .count();
            let embedded = embedded(backend).map_or(0, <[_]>::len);
            assert_eq!(embedded, files, "{backend}");
        }
    }
}
