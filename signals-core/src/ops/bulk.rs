//! Bulk saves: many rows in multi-row statements, chunked under each backend's parameter
//! limit, with their signals sent per chunk (batched receivers once, per-row receivers once a
//! row), all in one transaction or savepoint.
//!
//! Uses `backend`, `error`, `kind`, `meta`, `value`, `tx`, `model`, `signal`, and `save` of
//! `ops`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::atomically;
use super::save::{self, name_the_column, update_fields};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::FieldSet;
use crate::model::BulkSaved;
use crate::signal::batch::{PostSaveBatch, PreSaveBatch};
use crate::signal::context::{Committed, SaveFlags};
use crate::signal::hooks::{self, Hooks, any_receivers, at_row, wants_old_values};
use crate::signal::muting;
use crate::sql::{MAX_CHUNK_ROWS, multi_row_insert};
use crate::tx::{Target, Tx};
use crate::value::{Args, Row};

/// How many rows of `M` go in one multi-row statement (and one batch) on `backend`: under the
/// backend's limit of bound parameters per statement (SQLite 32,766; PostgreSQL and MySQL
/// 65,535), and at most [`MAX_CHUNK_ROWS`].
pub fn chunk_rows<M: Hooks>(backend: Backend) -> usize {
    let limit = match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres | Backend::MySql => 65_535,
    };
    (limit / M::META.columns.len().max(1)).clamp(1, MAX_CHUNK_ROWS)
}

/// Tests only: on MySQL, read generated keys as on MySQL 8 (which has no `INSERT ..
/// RETURNING`) even on a MariaDB that has it.
static MYSQL_KEYS_FROM_LAST_INSERT_ID: AtomicBool = AtomicBool::new(false);

/// Reads keys on MySQL-family servers from `LAST_INSERT_ID()` (MySQL 8's way) rather than
/// `RETURNING`; for tests of that path on MariaDB.
pub fn force_mysql_keys_from_last_insert_id(on: bool) {
    MYSQL_KEYS_FROM_LAST_INSERT_ID.store(on, Ordering::SeqCst);
}

/// Saves `rows` with their signals: [`Model::bulk_save`](crate::Model::bulk_save), and, with
/// `fields`, [`Model::bulk_update`](crate::Model::bulk_update).
pub(crate) async fn bulk_save<M: Hooks>(
    rows: &mut [M],
    target: Target<'_>,
    fields: Option<FieldSet<M>>,
) -> Result<BulkSaved> {
    let operation = if fields.is_some() { "update" } else { "save" };
    if let Some(fields) = fields {
        if fields.is_empty() {
            // Django's rule: an empty `update_fields` saves nothing and sends no signal.
            return Ok(BulkSaved::default());
        }
        if fields.indices().any(|i| i == M::META.primary_key) {
            return Err(Error::KeyInUpdateFields {
                model: M::META.name,
                field: M::META.fields[M::META.primary_key],
            });
        }
        if let Some(i) = rows.iter().position(|r| r.__key().is_none()) {
            let err = at_row(
                i,
                Error::NotSaved {
                    model: M::META.name,
                },
            );
            return Err(name_the_row(err, rows, operation));
        }
    }
    if rows.is_empty() {
        return Ok(BulkSaved::default());
    }
    let had_key: Vec<bool> = rows.iter().map(|r| r.__key().is_some()).collect();
    // Boxed: a bulk save often runs inside a receiver of another save, whose future would
    // otherwise hold this one inline (and grow past the compiler's layout depth).
    let res = Box::pin(atomically(
        target,
        M::META.name,
        operation,
        async |tx: &mut Tx| {
            let created = save_all(&mut *rows, tx, fields).await?;
            Ok((
                created,
                std::mem::take(&mut tx.scopes.current().robust_errors),
            ))
        },
    ))
    .await;
    match res {
        Ok(((created, receiver_errors), post_commit_errors)) => Ok(BulkSaved {
            created,
            receiver_errors,
            post_commit_errors,
        }),
        Err(err) => {
            // The INSERTs were rolled back: no instance may claim a row.
            for (row, had) in rows.iter_mut().zip(had_key) {
                if !had {
                    row.__clear_key();
                }
            }
            Err(name_the_row(err, rows, operation))
        }
    }
}

/// Fills in an [`Error::Bulk`]'s model, operation and the failing row's key; any other error
/// is a failure of the whole bulk (rows `0..len`).
pub(crate) fn name_the_row<M: Hooks>(err: Error, rows: &[M], operation: &'static str) -> Error {
    match err {
        Error::Bulk {
            row,
            rows: range,
            source,
            ..
        } => Error::Bulk {
            model: M::META.name,
            operation,
            row,
            key: row
                .and_then(|i| rows.get(i))
                .and_then(|r| r.__key())
                .map(|k| format!("{k:?}")),
            rows: range,
            source,
        },
        err @ (Error::KeyInUpdateFields { .. } | Error::RecursionLimit { .. }) => err,
        err => Error::Bulk {
            model: M::META.name,
            operation,
            row: None,
            rows: 0..rows.len(),
            key: None,
            source: Box::new(err),
        },
    }
}

async fn save_all<M: Hooks>(
    rows: &mut [M],
    tx: &mut Tx,
    fields: Option<FieldSet<M>>,
) -> Result<Vec<bool>> {
    let signalled = any_receivers::<M>(&[
        SignalKind::PreSave,
        SignalKind::PostSave,
        SignalKind::OnCommit,
    ]);
    let names = fields.map(|f| f.names());
    let flags = SaveFlags {
        update_fields: names.as_deref(),
        raw: false,
    };
    let mut created = Vec::with_capacity(rows.len());
    let wants_old = signalled && wants_old_values::<M>();
    if wants_old && rows.iter().any(|r| r.__key().is_some()) {
        // Receivers compare each row with the one it replaces: row by row, each read and
        // locked before its own save, in this one transaction (no savepoint per row). New
        // rows replace none, so a bulk of new rows goes in chunks still.
        for (i, row) in rows.iter_mut().enumerate() {
            let one = save::save_signalled(row, tx, flags, fields).await;
            created.push(one.map_err(|err| at_row(i, name_the_column(err, &*row)))?);
        }
        return Ok(created);
    }
    let size = chunk_rows::<M>(tx.backend());
    for (c, chunk) in rows.chunks_mut(size).enumerate() {
        let (offset, len) = (c * size, chunk.len());
        let span = tracing::debug_span!("bulk_save", model = M::META.name, offset, rows = len);
        let one = tracing::Instrument::instrument(
            save_chunk(chunk, tx, flags, fields, signalled, wants_old),
            span,
        )
        .await;
        created.extend(one.map_err(|err| err.in_chunk(offset, len))?);
    }
    Ok(created)
}

/// One chunk: `pre_save` for its rows, their writes, `post_save`, and their `#[on_commit]`
/// receivers scheduled.
async fn save_chunk<M: Hooks>(
    rows: &mut [M],
    tx: &mut Tx,
    flags: SaveFlags<'_>,
    fields: Option<FieldSet<M>>,
    signalled: bool,
    all_new: bool,
) -> Result<Vec<bool>> {
    let model = M::META.name;
    if signalled {
        let adding: Vec<bool> = rows.iter().map(|r| r.__key().is_none()).collect();
        for _ in 0..rows.len() {
            muting::note(|| flags.fired(model, SignalKind::PreSave, None));
        }
        let mut batch = PreSaveBatch::new(tx, &adding, flags);
        if all_new {
            batch = batch.all_created();
        }
        hooks::pre_save_batch(rows, &mut batch).await?;
    }
    let created = match fields {
        Some(fields) => {
            for (i, row) in rows.iter().enumerate() {
                update_fields(row, &mut Target::Tx(tx), fields)
                    .await
                    .map_err(|err| at_row(i, name_the_column(err, row)))?;
            }
            vec![false; rows.len()]
        }
        None => write_chunk(rows, tx).await?,
    };
    if signalled {
        for c in &created {
            muting::note(|| flags.fired(model, SignalKind::PostSave, Some(*c)));
        }
        let mut batch = PostSaveBatch::new(tx, &created, flags);
        if all_new {
            batch = batch.all_created();
        }
        hooks::post_save_batch(rows, &mut batch).await?;
        let written = fields.map_or(u128::MAX, |f| f.bits());
        // A new row's old values are "none": `#[on_commit(.., changed(..))]` fires for it.
        let old = all_new.then_some(None);
        for (row, created) in rows.iter().zip(&created) {
            let what = Committed::Saved { created: *created };
            M::__on_commit(row, tx, what, old, written);
        }
    }
    Ok(created)
}

/// The writes of one chunk: rows with a key by UPDATE (INSERT when no row has the key), rows
/// without one in one multi-row INSERT, their keys read back. Returns `created` per row.
async fn write_chunk<M: Hooks>(rows: &mut [M], tx: &mut Tx) -> Result<Vec<bool>> {
    let mut created = vec![true; rows.len()];
    let mut new = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        if row.__key().is_none() {
            new.push(i);
            continue;
        }
        created[i] = save::write(row, &mut Target::Tx(tx), None)
            .await
            .map_err(|err| at_row(i, name_the_column(err, &*row)))?;
    }
    if M::META.columns.len() == 1 {
        // Only a key, which the database assigns: no multi-row form on every backend
        // (`DEFAULT VALUES` takes one row), so one INSERT per row.
        for &i in &new {
            save::write(&mut rows[i], &mut Target::Tx(tx), None)
                .await
                .map_err(|err| at_row(i, err))?;
        }
        return Ok(created);
    }
    if new.is_empty() {
        return Ok(created);
    }
    let backend = tx.backend();
    let keys = if backend == Backend::Postgres {
        // A failed statement aborts a PostgreSQL transaction: run it in a savepoint, so that
        // the failing row can be found after it.
        let sp = tx.enter(M::META.name).await?;
        let res = insert_rows(rows, &new, tx).await;
        tx.leave(sp, res.is_ok()).await?;
        res
    } else {
        insert_rows(rows, &new, tx).await
    };
    let keys = match keys {
        Ok(keys) => keys,
        Err(err) => return Err(find_failing_row(rows, &new, tx, err).await),
    };
    for (&i, key) in new.iter().zip(keys) {
        rows[i].__set_generated_key(key)?;
    }
    Ok(created)
}

/// After a multi-row INSERT failed: inserts its rows one by one in a savepoint (rolled back
/// whatever happens) to name the first that fails. Without one (a failure no single row
/// causes), the statement's own error, for the whole chunk.
async fn find_failing_row<M: Hooks>(rows: &[M], new: &[usize], tx: &mut Tx, err: Error) -> Error {
    let Ok(sp) = tx.enter(M::META.name).await else {
        return err;
    };
    let mut found = None;
    for &i in new {
        let res = insert_rows(rows, &[i], tx).await;
        if let Err(one) = res {
            found = Some(at_row(i, name_the_column(one, &rows[i])));
            break;
        }
    }
    let _ = tx.leave(sp, false).await;
    found.unwrap_or_else(|| name_the_column(err, &rows[new[0]]))
}

/// One multi-row INSERT of `rows[new]`, the database assigning the keys; returns them in the
/// order of `new`.
async fn insert_rows<M: Hooks>(rows: &[M], new: &[usize], tx: &mut Tx) -> Result<Vec<i64>> {
    let backend = tx.backend();
    let columns = M::META.columns.len() - 1;
    let returning = match backend {
        Backend::Postgres | Backend::Sqlite => true,
        Backend::MySql => mysql_has_returning(tx).await?,
    };
    let sql = multi_row_insert(&M::META, backend, new.len(), returning);
    let mut args = Args::new(backend, columns * new.len());
    for &i in new {
        rows[i].__bind_values(&mut args)?;
    }
    let mut target = Target::Tx(tx);
    if returning {
        let mut keys = target
            .fetch_all(sqlx::AssertSqlSafe(sql), args, first_integer)
            .await?;
        // RETURNING's order is not promised (SQLite says so); the keys a statement generates
        // grow in the order of its VALUES, so sorted they are the rows' keys in order.
        keys.sort_unstable();
        if keys.len() != new.len() {
            return Err(Error::Database(sqlx::Error::Protocol(format!(
                "a multi-row INSERT of {} rows returned {} keys",
                new.len(),
                keys.len()
            ))));
        }
        return Ok(keys);
    }
    // MySQL 8: LAST_INSERT_ID() is the key of the statement's first row, and a multi-row
    // INSERT with every key left to the server is a "simple insert", whose keys InnoDB
    // allocates at once, consecutively (in every `innodb_autoinc_lock_mode`), spaced by
    // `auto_increment_increment`.
    let outcome = target.execute(sqlx::AssertSqlSafe(sql), args).await?;
    if outcome.rows != new.len() as u64 {
        return Err(Error::Database(sqlx::Error::Protocol(format!(
            "a multi-row INSERT of {} rows inserted {}",
            new.len(),
            outcome.rows
        ))));
    }
    let step = match tx.mysql_increment {
        Some(step) => step,
        None => {
            let sql = "SELECT CAST(@@auto_increment_increment AS SIGNED)";
            let step = Target::Tx(tx).fetch_i64(sql, Args::new(backend, 0)).await?;
            tx.mysql_increment = Some(step);
            step
        }
    };
    Ok((0..new.len() as i64)
        .map(|i| outcome.last_id + i * step)
        .collect())
}

fn first_integer(row: &Row<'_>) -> Result<i64> {
    row.get::<i64>(0, "", "")
}

/// Whether the MySQL-family server has `INSERT .. RETURNING` (MariaDB 10.5 and later).
async fn mysql_has_returning(tx: &mut Tx) -> Result<bool> {
    if MYSQL_KEYS_FROM_LAST_INSERT_ID.load(Ordering::SeqCst) {
        return Ok(false);
    }
    if let Some(known) = tx.mysql_returning {
        return Ok(known);
    }
    let version = Target::Tx(tx)
        .fetch_all("SELECT VERSION()", Args::new(Backend::MySql, 0), |row| {
            row.get::<String>(0, "", "")
        })
        .await?;
    let version = version.first().map(String::as_str).unwrap_or("");
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let has = version.contains("MariaDB") && (major, minor) >= (10, 5);
    tx.mysql_returning = Some(has);
    Ok(has)
}
