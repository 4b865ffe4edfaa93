//! The statements of many-to-many changes, on keys whose type is erased: compiled once, not
//! once per pair of models.
//!
//! Uses `error`, `backend`, `value`, `meta`, `query`, `sql` and `tx`.

use crate::backend::{Backend, MAX_CHUNK_ROWS};
use crate::error::Result;
use crate::meta::ModelMeta;
use crate::query::Lock;
use crate::sql::Sql;
use crate::tx::{Target, Tx};
use crate::value::{DynField, Row};

/// [`lock_rows`](super::lock_rows)'s statements, for keys sorted and distinct, each key found
/// handed to `each`: compiled once. SQLite's write transaction holds the database already:
/// there it only reads.
pub(super) async fn lock_rows_in(
    tx: &mut Tx,
    meta: &'static ModelMeta,
    keys: &[&dyn DynField],
    lock: Lock,
    each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
) -> Result<()> {
    let backend = tx.backend();
    let pk = meta.columns[meta.primary_key];
    // PostgreSQL's text cannot hold NUL: such a key matches no row, as in a query's `in_`.
    let keys: Vec<&dyn DynField> = keys
        .iter()
        .copied()
        .filter(|k| !(backend == Backend::Postgres && k.is_text_with_nul()))
        .collect();
    for chunk in keys.chunks(MAX_CHUNK_ROWS) {
        let mut sql = Sql::with_capacity(backend, chunk.len());
        sql.push("SELECT ")
            .ident(pk)
            .push(" FROM ")
            .ident(meta.table)
            .push(" WHERE ")
            .ident(pk)
            .push(" IN (");
        for (i, key) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind_dyn(*key, pk)?;
        }
        sql.push(") ORDER BY ").ident(pk);
        if backend != Backend::Sqlite {
            sql.push(match (lock, backend) {
                (Lock::None, _) => "",
                (Lock::Update, _) => " FOR UPDATE",
                (Lock::KeyShare, Backend::Postgres) => " FOR KEY SHARE",
                (Lock::KeyShare, _) => " LOCK IN SHARE MODE",
            });
        }
        let (sql, args) = sql.into_parts();
        Target::Tx(tx).each_row(sql, args, &mut *each).await?;
    }
    Ok(())
}

/// A through table and its two key columns, as the statements compiled once take them.
#[derive(Clone, Copy)]
pub(super) struct LinksTable {
    pub(super) table: &'static str,
    pub(super) from: &'static str,
    pub(super) to: &'static str,
}

/// [`linked`](super::linked)'s statements, each key read handed to `each`: compiled once.
pub(super) async fn linked_rows(
    target: &mut Target<'_>,
    links: LinksTable,
    key: &dyn DynField,
    among: Option<&[&dyn DynField]>,
    each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
) -> Result<()> {
    // PostgreSQL's text cannot hold NUL: such a key is linked to nothing, as in a query's `in_`.
    let postgres = target.backend() == Backend::Postgres;
    let nul = |k: &&dyn DynField| postgres && k.is_text_with_nul();
    if nul(&key) {
        return Ok(());
    }
    let among: Option<Vec<&dyn DynField>> =
        among.map(|keys| keys.iter().copied().filter(|k| !nul(k)).collect());
    let chunks: Vec<Option<&[&dyn DynField]>> = match &among {
        None => vec![None],
        Some(keys) if keys.is_empty() => return Ok(()),
        Some(keys) => keys.chunks(MAX_CHUNK_ROWS).map(Some).collect(),
    };
    for chunk in chunks {
        let mut sql = Sql::with_capacity(target.backend(), 1 + chunk.map_or(0, <[_]>::len));
        sql.push("SELECT ").ident(links.to);
        where_links(&mut sql, links, key, chunk)?;
        sql.push(" ORDER BY ").ident(links.to);
        let (sql, args) = sql.into_parts();
        target.each_row(sql, args, &mut *each).await?;
    }
    Ok(())
}

/// [`where_links_of`](super::where_links_of), compiled once.
pub(super) fn where_links(
    sql: &mut Sql,
    links: LinksTable,
    key: &dyn DynField,
    to: Option<&[&dyn DynField]>,
) -> Result<()> {
    sql.push(" FROM ")
        .ident(links.table)
        .push(" WHERE ")
        .ident(links.from)
        .push(" = ");
    sql.bind_dyn(key, links.from)?;
    if let Some(keys) = to {
        sql.push(" AND ").ident(links.to).push(" IN (");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind_dyn(*k, links.to)?;
        }
        sql.push(")");
    }
    Ok(())
}
