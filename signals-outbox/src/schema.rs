//! The outbox's tables on each backend: the outbox itself (written by saves, read by relays
//! and the embedded runner), its partitions (who publishes which), the inbox (events handled),
//! the dead letters, and the runners' shared settings (`signals_outbox_meta`).
//!
//! Every statement is idempotent (`IF NOT EXISTS`, insert-or-ignore): a newer version of this
//! crate adds tables, and running [`statements`] again (as [`install`] does, or a migration
//! holding them) brings an older database up to date.

use signals_core::durable::{OUTBOX_TABLE, PARTITIONS};
use signals_core::{Backend, Db};

use crate::error::Result;

/// Partitions of the outbox and who holds them.
pub const PARTITION_TABLE: &str = "signals_outbox_part";
/// Events handled, by id: a delivery of an event found here is not run again.
pub const INBOX_TABLE: &str = "signals_inbox";
/// Events that failed every attempt, with their last error.
pub const DEAD_LETTER_TABLE: &str = "signals_dead_letter";
/// Settings the runners share through the database: the inbox's horizon (see
/// [`purge`](crate::purge)).
pub const META_TABLE: &str = "signals_outbox_meta";

/// The statements that create the tables (when missing) on `backend`.
///
/// ```
/// use signals_core::Backend;
/// let ddl = signals_outbox::schema::statements(Backend::Postgres);
/// assert!(ddl[0].starts_with("CREATE TABLE IF NOT EXISTS signals_outbox ("));
/// ```
pub fn statements(backend: Backend) -> Vec<String> {
    let (id, text, long, index_inline) = match backend {
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT", false),
        Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "VARCHAR(255)", "TEXT", false),
        _ => (
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "VARCHAR(255)",
            "LONGTEXT",
            true,
        ),
    };
    // MySQL's default character set may not hold every instance's text.
    let charset = if index_inline {
        " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    } else {
        ""
    };
    let index = if index_inline {
        ",\n    KEY signals_outbox_pending (state, part, id)"
    } else {
        ""
    };
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
    id {id},
    event_id VARCHAR(36) NOT NULL UNIQUE,
    model {text} NOT NULL,
    receiver {text} NOT NULL,
    instance_key {text} NOT NULL,
    part BIGINT NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload {long} NOT NULL,
    created_at BIGINT NOT NULL,
    state BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    last_error {long},
    published_at BIGINT{index}
){charset}"
    )];
    if !index_inline {
        out.push(format!(
            "CREATE INDEX IF NOT EXISTS signals_outbox_pending ON {OUTBOX_TABLE} (state, part, id)"
        ));
    }
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {PARTITION_TABLE} (
    part BIGINT PRIMARY KEY,
    owner {text},
    lease_until BIGINT NOT NULL DEFAULT 0
){charset}"
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {INBOX_TABLE} (
    event_id VARCHAR(36) PRIMARY KEY,
    receiver {text} NOT NULL,
    handled_at BIGINT NOT NULL
){charset}"
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {DEAD_LETTER_TABLE} (
    event_id VARCHAR(36) PRIMARY KEY,
    model {text} NOT NULL,
    receiver {text} NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload {long} NOT NULL,
    error {long} NOT NULL,
    attempts BIGINT NOT NULL,
    failed_at BIGINT NOT NULL
){charset}"
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {META_TABLE} (
    name VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
){charset}"
    ));
    let (insert, ignore) = backend.insert_or_ignore();
    out.push(format!(
        "{insert}{META_TABLE} (name, value) VALUES ('{}', 0){ignore}",
        crate::store::INBOX_HORIZON
    ));
    let parts: Vec<String> = (0..PARTITIONS).map(|p| format!("({p})")).collect();
    out.push(format!(
        "{insert}{PARTITION_TABLE} (part) VALUES {}{ignore}",
        parts.join(", ")
    ));
    out
}

/// The columns added to the outbox's tables since their first version, as `ALTER TABLE`
/// statements on `backend`: run them once, after [`statements`], in a migration (they are not
/// idempotent); [`install`] runs each whose column is missing.
///
/// - `signals_outbox.trace_context`: the save's W3C trace context (the `otel` feature).
///
/// ```
/// use signals_core::Backend;
/// let ddl = signals_outbox::schema::added_columns(Backend::Sqlite);
/// assert_eq!(ddl, ["ALTER TABLE signals_outbox ADD COLUMN trace_context TEXT"]);
/// ```
pub fn added_columns(backend: Backend) -> Vec<String> {
    let _ = backend; // TEXT on every backend
    ADDED
        .iter()
        .map(|(table, column, ty)| format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
        .collect()
}

/// (table, column, type) of each column added since the first version.
const ADDED: [(&str, &str, &str); 1] = [(OUTBOX_TABLE, "trace_context", "TEXT")];

/// Whether `err` is another install's `CREATE .. IF NOT EXISTS` winning a race on
/// PostgreSQL: a unique violation in its catalog, or a relation that already exists.
fn raced(err: &signals_core::Error) -> bool {
    matches!(err.kind(), signals_core::ErrorKind::UniqueViolation)
        || err.to_string().contains("already exists")
}

/// Creates the outbox's tables where missing, and adds the columns a newer version of this
/// crate needs ([`added_columns`]): run it once at start-up, as migrations do. Saves of
/// models with durable receivers fail (and roll back) until the tables exist; relays and
/// runners fail until the columns do.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_outbox::Result<()> {
/// let db = signals_core::Db::connect("sqlite::memory:").await?;
/// signals_outbox::install(&db).await?;
/// signals_outbox::install(&db).await?; // again: nothing to do
/// assert_eq!(signals_outbox::stats(&db).await?.pending, 0);
/// # Ok(()) }
/// ```
pub async fn install(db: &Db) -> Result<()> {
    for sql in statements(db.backend()) {
        // Counted per statement: an install may lose the race on each of them in turn.
        let mut tries = 0;
        loop {
            tries += 1;
            match db.execute_unprepared(&sql).await {
                Ok(_) => break,
                // PostgreSQL's `CREATE .. IF NOT EXISTS` is not safe against another install
                // running it at the same moment: the loser fails on the catalog's unique keys
                // (or finds the relation made after it looked). Run again, it finds the table.
                Err(err) if tries < 10 && raced(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
    for ((table, column, _), sql) in ADDED.iter().zip(added_columns(db.backend())) {
        let probe = format!("SELECT {column} FROM {table} WHERE 1 = 0");
        if db.execute_unprepared(&probe).await.is_err() {
            // Two installs at once: the second one's ALTER fails on the column the first
            // added, which is what it wanted.
            if let Err(err) = db.execute_unprepared(&sql).await
                && db.execute_unprepared(&probe).await.is_err()
            {
                return Err(err.into());
            }
        }
    }
    Ok(())
}
