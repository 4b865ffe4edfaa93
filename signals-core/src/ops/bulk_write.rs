//! The statements of one chunk of a bulk write: multi-row INSERTs with the generated keys read
//! back, multi-row UPDATEs (`CASE key WHEN .. THEN ..`), and, when one fails, the search for
//! the row that made it fail.
//!
//! Uses `backend`, `error`, `sql`, `value`, `tx`, `signal` (`at_row`) and, of `ops`, `save`
//! and the `IN`-list reads of `cascade`.

use std::collections::BTreeSet;

use super::cascade::{keys_of, select_in};
use super::save::{self, name_the_column};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::meta::FieldSet;
use crate::signal::hooks::{Hooks, at_row};
use crate::sql::{multi_row_insert, multi_row_update};
use crate::tx::{Target, Tx};
use crate::value::{Args, Row};

/// A multi-row statement over some rows of a chunk.
#[derive(Clone, Copy)]
enum Statement<'f> {
    /// INSERT, the database assigning the keys.
    Insert,
    /// UPDATE of the fields at these indices.
    Update(&'f [usize]),
}

/// What a [`Statement`] did: the keys it generated, or the rows it matched.
enum Written {
    Keys(Vec<i64>),
    Rows(u64),
}

/// The writes of a chunk of a bulk save: rows with a key by one multi-row UPDATE of every
/// field (INSERTed with their key when no row has it), rows without one by one multi-row
/// INSERT, their keys read back. With `fields`, an UPDATE of those fields only, every row
/// having to exist. Returns `created` per row.
pub(crate) async fn write_chunk<M: Hooks>(
    rows: &mut [M],
    tx: &mut Tx,
    fields: Option<FieldSet<M>>,
) -> Result<Vec<bool>> {
    let mut created = vec![false; rows.len()];
    let (keyed, new): (Vec<usize>, Vec<usize>) =
        (0..rows.len()).partition(|&i| rows[i].__key().is_some());
    let update: Vec<usize> = match fields {
        Some(fields) => fields.indices().collect(),
        None => (0..M::META.columns.len()).collect(),
    };
    let update: Vec<usize> = update
        .into_iter()
        .filter(|&i| i != M::META.primary_key)
        .collect();
    let update = update.as_slice();
    let distinct = keyed
        .iter()
        .filter_map(|&i| rows[i].__key())
        .collect::<BTreeSet<_>>()
        .len();
    if update.is_empty() || distinct < keyed.len() {
        // Only a key to write, or one row twice in a bulk (the last instance must win, as
        // in a loop of saves): row by row.
        for &i in &keyed {
            let row = &mut rows[i];
            let res = match fields {
                Some(fields) => save::update_fields(&*row, &mut Target::Tx(tx), fields)
                    .await
                    .map(|()| false),
                None => save::write_one(row, Target::Tx(tx)).await,
            };
            created[i] = res.map_err(|err| {
                at_row(i, name_the_column(err, &rows[i], fields.map(|f| f.bits())))
            })?;
        }
    } else if !keyed.is_empty() {
        let matched = match run_named(rows, &keyed, tx, Statement::Update(update)).await? {
            Written::Rows(n) => n,
            Written::Keys(_) => unreachable!("an UPDATE generates no key"),
        };
        if matched < keyed.len() as u64 {
            let found: Vec<M> = select_in(
                tx,
                M::META.primary_key,
                &keys_of(keyed.iter().map(|&i| &rows[i])),
            )
            .await?;
            let found: BTreeSet<&M::Key> = found.iter().filter_map(|r| r.__key()).collect();
            for &i in &keyed {
                let Some(key) = rows[i].__key() else { continue };
                if found.contains(key) {
                    continue;
                }
                if fields.is_some() {
                    let model = M::META.name;
                    let key = format!("{key:?}");
                    return Err(at_row(i, Error::NotFound { model, key }));
                }
                // No row has the key: INSERT it with the key, as `save` does.
                insert_with_key(&rows[i], tx)
                    .await
                    .map_err(|err| at_row(i, name_the_column(err, &rows[i], None)))?;
                created[i] = true;
            }
        }
    }
    if new.is_empty() {
        return Ok(created);
    }
    if M::META.columns.len() == 1 {
        // Only a key, which the database assigns: no multi-row form on every backend
        // (`DEFAULT VALUES` takes one row), so one INSERT per row.
        for &i in &new {
            save::write_one(&mut rows[i], Target::Tx(tx))
                .await
                .map_err(|err| at_row(i, err))?;
            created[i] = true;
        }
        return Ok(created);
    }
    let keys = match run_named(rows, &new, tx, Statement::Insert).await? {
        Written::Keys(keys) => keys,
        Written::Rows(_) => unreachable!("an INSERT reads its keys"),
    };
    for (&i, key) in new.iter().zip(keys) {
        rows[i].__set_generated_key(key)?;
        created[i] = true;
    }
    Ok(created)
}

async fn insert_with_key<M: Hooks>(row: &M, tx: &mut Tx) -> Result<()> {
    let backend = tx.backend();
    let Some(key) = row.__key() else {
        return Ok(());
    };
    let mut args = Args::new(backend, M::META.columns.len());
    args.bind(key, M::META.columns[M::META.primary_key])?;
    row.__bind_values(&mut args)?;
    let st = M::__statements(backend);
    Target::Tx(tx)
        .execute(st.insert_with_key.as_str(), args)
        .await?;
    Ok(())
}

/// Runs `statement` over `rows[idx]`, in statements under the parameter limit; on
/// PostgreSQL in a savepoint (a failed statement aborts its transaction there). When it
/// fails, names the row that made it fail.
async fn run_named<M: Hooks>(
    rows: &[M],
    idx: &[usize],
    tx: &mut Tx,
    statement: Statement<'_>,
) -> Result<Written> {
    let res = if tx.backend() == Backend::Postgres {
        let sp = tx.enter(M::META.name).await?;
        let res = run(rows, idx, tx, statement).await;
        tx.leave(sp, res.is_ok()).await?;
        res
    } else {
        run(rows, idx, tx, statement).await
    };
    match res {
        Ok(written) => Ok(written),
        Err(err) => Err(find_failing_row(rows, idx, tx, err, statement).await),
    }
}

/// After a multi-row statement failed: runs it row by row in a savepoint (rolled back
/// whatever happens) to name the first row that fails. Without one (a failure no single row
/// causes), the statement's own error, for the whole chunk.
async fn find_failing_row<M: Hooks>(
    rows: &[M],
    idx: &[usize],
    tx: &mut Tx,
    err: Error,
    statement: Statement<'_>,
) -> Error {
    let Ok(sp) = tx.enter(M::META.name).await else {
        return err;
    };
    // The fields the statement writes, as the bits of a field set (every field for INSERT).
    let written = match statement {
        Statement::Insert => None,
        Statement::Update(fields) => Some(fields.iter().fold(0u128, |bits, i| bits | 1 << i)),
    };
    let mut found = None;
    for &i in idx {
        if let Err(one) = run(rows, &[i], tx, statement).await {
            found = Some(at_row(i, name_the_column(one, &rows[i], written)));
            break;
        }
    }
    let _ = tx.leave(sp, false).await;
    found.unwrap_or_else(|| name_the_column(err, &rows[idx[0]], written))
}

async fn run<M: Hooks>(
    rows: &[M],
    idx: &[usize],
    tx: &mut Tx,
    statement: Statement<'_>,
) -> Result<Written> {
    match statement {
        Statement::Insert => insert_rows(rows, idx, tx).await.map(Written::Keys),
        Statement::Update(fields) => {
            let per_row = 2 * fields.len() + 1;
            let size = (tx.backend().max_params() / per_row).max(1);
            let mut n = 0;
            for part in idx.chunks(size) {
                n += update_rows(rows, part, fields, tx).await?;
            }
            Ok(Written::Rows(n))
        }
    }
}

/// One multi-row UPDATE of the fields at `fields` of `rows[idx]`; returns the rows matched.
async fn update_rows<M: Hooks>(
    rows: &[M],
    idx: &[usize],
    fields: &[usize],
    tx: &mut Tx,
) -> Result<u64> {
    let backend = tx.backend();
    let key_column = M::META.columns[M::META.primary_key];
    let sql = multi_row_update(&M::META, backend, fields, idx.len());
    let mut args = Args::new(backend, idx.len() * (2 * fields.len() + 1));
    for &f in fields {
        for &i in idx {
            let row = &rows[i];
            if let Some(key) = row.__key() {
                args.bind(key, key_column)?;
            }
            row.__bind_field(f, &mut args)?;
        }
    }
    for &i in idx {
        if let Some(key) = rows[i].__key() {
            args.bind(key, key_column)?;
        }
    }
    // MySQL counts matched rows, not changed ones: sqlx connects with CLIENT_FOUND_ROWS.
    Ok(Target::Tx(tx)
        .execute(sqlx::AssertSqlSafe(sql), args)
        .await?
        .rows)
}

/// One multi-row INSERT of `rows[new]`, the database assigning the keys; returns them in the
/// order of `new`.
async fn insert_rows<M: Hooks>(rows: &[M], new: &[usize], tx: &mut Tx) -> Result<Vec<i64>> {
    let backend = tx.backend();
    let columns = M::META.columns.len() - 1;
    // MySQL 8 has no `INSERT .. RETURNING`; MariaDB has, but streaming a thousand keys back
    // costs its server more than the arithmetic below (BENCHMARKS.md), so the MySQL family
    // reads them as MySQL 8 must.
    let returning = backend != Backend::MySql;
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
    // MySQL and MariaDB: LAST_INSERT_ID() is the key of the statement's first row, and a multi-row
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
