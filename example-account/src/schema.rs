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
    (
        4,
        "outbox meta",
        include_str!("../migrations/sqlite/0004_outbox_meta.sql"),
        include_str!("../migrations/postgres/0004_outbox_meta.sql"),
        include_str!("../migrations/mysql/0004_outbox_meta.sql"),
    ),
    (
        5,
        "admin session",
        include_str!("../migrations/sqlite/0005_admin_session.sql"),
        include_str!("../migrations/postgres/0005_admin_session.sql"),
        include_str!("../migrations/mysql/0005_admin_session.sql"),
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
    let migrator = match db.backend() {
        Backend::Sqlite => migrator(|m| m.2),
        Backend::Postgres => migrator(|m| m.3),
        Backend::MySql => migrator(|m| m.4),
        other => return Err(Error::Unsupported(other.to_string())),
    };
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
    let mut sql = Schema::of::<(User, Profile, WelcomeNote, AdminSession)>().create_sql(backend);
    for statement in signals_outbox::schema::statements(backend) {
        sql.push_str(&statement);
        sql.push_str(";\n");
    }
    sql
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// The statements of a migration file, as written (each ends in `;` and a newline).
    fn statements_of(sql: &str) -> Vec<String> {
        sql.split(";\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Migration 0003 made the welcome notes' table from its model and the first version of
    /// `signals-outbox`'s tables; 0004 holds every statement of that crate's schema 0003 lacks
    /// (the runners' shared settings), so that together they are its schema as it is now.
    /// `UPDATE_MIGRATIONS=1` writes 0004 anew after a change there (a migration applied
    /// somewhere never changes: a later version of the outbox's tables needs a new one).
    #[test]
    fn the_outbox_migrations_make_its_schema() {
        for (backend, dir, applied, newest) in [
            (Backend::Sqlite, "sqlite", MIGRATIONS[2].2, MIGRATIONS[3].2),
            (
                Backend::Postgres,
                "postgres",
                MIGRATIONS[2].3,
                MIGRATIONS[3].3,
            ),
            (Backend::MySql, "mysql", MIGRATIONS[2].4, MIGRATIONS[3].4),
        ] {
            for statement in Schema::of::<WelcomeNote>().create_statements(backend) {
                assert!(applied.contains(&statement), "{backend}: {statement}");
            }
            let before = statements_of(applied);
            let missing: String = signals_outbox::schema::statements(backend)
                .into_iter()
                .filter(|s| !before.contains(s))
                .map(|s| format!("{s};\n"))
                .collect();
            if std::env::var_os("UPDATE_MIGRATIONS").is_some() {
                let path = format!(
                    "{}/migrations/{dir}/0004_outbox_meta.sql",
                    env!("CARGO_MANIFEST_DIR")
                );
                std::fs::write(path, &missing).expect("write the migration");
                continue;
            }
            assert_eq!(
                newest, missing,
                "migrations/{dir}/0004_outbox_meta.sql is stale: run with UPDATE_MIGRATIONS=1"
            );
        }
    }

    /// Migration 0005 makes the admin's session table from its model, as the crate writes it.
    /// `UPDATE_MIGRATIONS=1` writes it anew (before it is applied anywhere).
    #[test]
    fn the_session_migration_makes_its_table() {
        for (backend, dir, sql) in [
            (Backend::Sqlite, "sqlite", MIGRATIONS[4].2),
            (Backend::Postgres, "postgres", MIGRATIONS[4].3),
            (Backend::MySql, "mysql", MIGRATIONS[4].4),
        ] {
            let made: String = Schema::of::<AdminSession>()
                .create_statements(backend)
                .into_iter()
                .map(|s| format!("{s};\n"))
                .collect();
            if std::env::var_os("UPDATE_MIGRATIONS").is_some() {
                let path = format!(
                    "{}/migrations/{dir}/0005_admin_session.sql",
                    env!("CARGO_MANIFEST_DIR")
                );
                std::fs::write(path, &made).expect("write the migration");
                continue;
            }
            assert_eq!(
                sql, made,
                "migrations/{dir}/0005_admin_session.sql is stale: run with UPDATE_MIGRATIONS=1"
            );
        }
    }
}
