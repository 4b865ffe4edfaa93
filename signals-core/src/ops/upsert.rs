//! A bulk upsert: rows matched on unique fields with the rows already in the table, updated
//! when there, inserted when not, each with its signals and the right `created` flag, also
//! when other transactions insert the same values meanwhile.
//!
//! Uses `error`, `meta`, `sql`, `tx`, `model`, `signal` and `bulk`.

use std::collections::HashMap;

use super::bulk::bulk_save;
use super::{AssignedKeys, atomically};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::FieldSet;
use crate::model::{BulkSaved, Model};
use crate::signal::hooks::Hooks;
use crate::sql::Sql;
use crate::tx::{Target, Tx};

/// How many times the rows are matched again after another transaction inserted one of them
/// between the match and the insert.
const ATTEMPTS: usize = 5;

/// Rows matched per statement of the locking read.
const CHUNK: usize = 500;

/// The values of `row`'s `unique` fields, as one comparable text.
fn identity<M: Model>(row: &M, unique: &[usize]) -> Option<String> {
    let values: Vec<serde_json::Value> = unique
        .iter()
        .map(|i| match row.__json(*i) {
            // `-0.0` is `0.0` to Rust's `==` and to every database.
            serde_json::Value::Number(n) if n.as_f64() == Some(0.0) => serde_json::Value::from(0.0),
            value => value,
        })
        .collect();
    // NULLs never match (SQL's `=`, and unique constraints let them repeat).
    if values.iter().any(serde_json::Value::is_null) {
        return None;
    }
    serde_json::to_string(&values).ok()
}

/// [`Model::bulk_upsert`](crate::Model::bulk_upsert).
pub(crate) async fn bulk_upsert<M: Hooks>(
    rows: &mut [M],
    target: Target<'_>,
    unique: FieldSet<M>,
) -> Result<BulkSaved> {
    let refuse = |why: String| Err(Error::InvalidQuery(why));
    let name = M::META.name;
    let fields: Vec<usize> = unique.indices().collect();
    if fields.is_empty() {
        return refuse(format!(
            "`bulk_upsert` of `{name}` needs the unique fields that match its rows"
        ));
    }
    if fields.contains(&M::META.primary_key) {
        return refuse(format!(
            "`bulk_upsert` of `{name}` matches rows on fields other than the key: rows with a \
             key are saved by it (`bulk_save`)"
        ));
    }
    // Two rows with the same values would be one row: say which.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if row.__key().is_some() {
            continue;
        }
        if let Some(id) = identity(row, &fields)
            && let Some(first) = seen.insert(id, i)
        {
            return refuse(format!(
                "rows {first} and {i} of the `{name}` bulk_upsert have the same {}: one row \
                 cannot be both",
                unique.names().join(", ")
            ));
        }
    }
    if rows.is_empty() {
        return Ok(BulkSaved::default());
    }
    let had: Vec<bool> = rows.iter().map(|r| r.__key().is_some()).collect();
    let mut keys = AssignedKeys::many(rows);
    // MySQL's locking reads of values not yet stored lock the gaps where they would go, so
    // two upserts of one new value can deadlock: the server rolls one back. In a transaction
    // of its own the upsert then runs again (it finds the other's row); in a caller's, the
    // caller's transaction is gone and the conflict is theirs to retry.
    let own = match &target {
        Target::Db(db) => Some(*db),
        Target::Tx(_) => None,
    };
    let mut target = Some(target);
    let mut round = 0;
    let res = loop {
        round += 1;
        let target = match target.take() {
            Some(target) => target,
            None => Target::Db(own.expect("only a transaction of its own runs again")),
        };
        let res = upsert_once(&mut keys, &had, &fields, target).await;
        match res {
            Err(err) if err.kind() == ErrorKind::Conflict && own.is_some() && round < ROUNDS => {
                // Apart, so that the two do not meet again at once.
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_micros())
                        % 5_000,
                );
                tokio::time::sleep(std::time::Duration::from_micros(
                    jitter + 1_000 * round as u64,
                ))
                .await;
            }
            res => break res,
        }
    };
    keys.settle(&res);
    let (mut saved, post_commit_errors) = res?;
    saved.post_commit_errors = post_commit_errors;
    Ok(saved)
}

/// How many times an upsert in a transaction of its own runs when the server rolled it back
/// to break a deadlock.
const ROUNDS: usize = 8;

/// One transaction (or savepoint) of the upsert.
async fn upsert_once<M: Hooks>(
    keys: &mut AssignedKeys<'_, M>,
    had: &[bool],
    fields: &[usize],
    target: Target<'_>,
) -> Result<(BulkSaved, Vec<Error>)> {
    for (row, had) in keys.rows.iter_mut().zip(had) {
        if !had {
            row.__clear_key();
        }
    }
    let commit = &keys.commit;
    let rows = &mut *keys.rows;
    Box::pin(atomically(
        target,
        M::META.name,
        "upsert",
        Some(commit),
        async |tx: &mut Tx| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                // The keys of an earlier attempt's match go: the rows are matched afresh.
                for (row, had) in rows.iter_mut().zip(had) {
                    if !had {
                        row.__clear_key();
                    }
                }
                match_existing(&mut *rows, had, fields, tx).await?;
                match bulk_save(&mut *rows, Target::Tx(&mut *tx), None).await {
                    Err(err) if err.kind() == ErrorKind::UniqueViolation && attempt < ATTEMPTS => {}
                    res => return res,
                }
            }
        },
    ))
    .await
}

/// Gives the rows without a key the key of the row in the table with their unique values,
/// read locked (`FOR UPDATE`: a row committed since the transaction began is seen, and
/// stays until it ends).
async fn match_existing<M: Model>(
    rows: &mut [M],
    had: &[bool],
    unique: &[usize],
    tx: &mut Tx,
) -> Result<()> {
    let wanted: Vec<usize> = (0..rows.len())
        .filter(|i| !had[*i] && identity(&rows[*i], unique).is_some())
        .collect();
    let mut found: HashMap<String, i64> = HashMap::new();
    for chunk in wanted.chunks(CHUNK) {
        let sql = locking_read(rows, chunk, unique, tx.backend())?;
        let (sql, args) = sql.into_parts();
        let existing = Target::Tx(&mut *tx)
            .fetch_all(sqlx::AssertSqlSafe(sql), args, M::__from_row)
            .await?;
        for row in existing {
            let key = row.__json(M::META.primary_key).as_i64();
            if let (Some(id), Some(key)) = (identity(&row, unique), key) {
                found.insert(id, key);
            }
        }
    }
    // The rows saved by their keys: a row matched to one of them would be two rows in one.
    let keyed: HashMap<i64, usize> = (0..rows.len())
        .filter(|i| had[*i])
        .filter_map(|i| Some((rows[i].__json(M::META.primary_key).as_i64()?, i)))
        .collect();
    for i in wanted {
        let id = identity(&rows[i], unique);
        if let Some(key) = id.and_then(|id| found.get(&id).copied()) {
            if let Some(j) = keyed.get(&key) {
                return Err(Error::InvalidQuery(format!(
                    "row {i} of the `{}` bulk_upsert matches the row with key {key}, which row \
                     {j} saves by its key: one row cannot be both",
                    M::META.name
                )));
            }
            rows[i].__set_generated_key(key)?;
        }
    }
    Ok(())
}

/// `SELECT .. FROM t WHERE u IN (..)` (one unique field) or `(u1 = ? AND u2 = ?) OR ..`,
/// `FOR UPDATE` on the servers.
fn locking_read<M: Model>(
    rows: &[M],
    chunk: &[usize],
    unique: &[usize],
    backend: Backend,
) -> Result<Sql> {
    let columns = M::META.columns;
    let mut sql = Sql::with_capacity(backend, chunk.len() * unique.len());
    sql.scope_of(M::META.table, false);
    sql.push("SELECT ");
    sql.each(columns, |sql, column| {
        sql.column(column);
    });
    sql.push(" FROM ").ident(M::META.table).push(" WHERE ");
    if let [field] = unique {
        sql.column(columns[*field]).push(" IN (");
        sql.list(chunk, |sql, i| {
            sql.bind_with(|args| rows[*i].__bind_field(*field, args))
                .map(drop)
        })?;
        sql.push(")");
    } else {
        for (n, i) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { " OR (" });
            for (k, field) in unique.iter().enumerate() {
                if k > 0 {
                    sql.push(" AND ");
                }
                sql.column(columns[*field]).push(" = ");
                sql.bind_with(|args| rows[*i].__bind_field(*field, args))?;
            }
            sql.push(")");
        }
    }
    if backend != Backend::Sqlite {
        sql.push(" FOR UPDATE");
    }
    Ok(sql)
}
