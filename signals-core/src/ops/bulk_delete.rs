//! Bulk deletes: many rows of one model and everything their cascade reaches, level by level
//! with `IN` lists, their delete signals sent per batch, in one transaction or savepoint.
//!
//! Uses `error`, `kind`, `sql`, `tx`, `model`, `signal`, and of `ops` the cascade and the
//! error placement of `bulk`.

use super::bulk::name_the_row;
use super::cascade::{Collector, RowsOf, keys_of, run_in, select_in, send_delete};
use super::m2m;
use super::{DeletingKeys, atomically};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::model::Deleted;
use crate::signal::hooks::{Hooks, at_row};
use crate::sql::InList;
use crate::tx::{Target, Tx};

/// Deletes `rows` and their cascade with their signals:
/// [`Model::bulk_delete`](crate::Model::bulk_delete).
pub(crate) async fn bulk_delete<M: Hooks>(rows: &mut [M], target: Target<'_>) -> Result<Deleted> {
    if let Some(i) = rows.iter().position(|r| r.__key().is_none()) {
        let err = at_row(
            i,
            Error::NotSaved {
                model: M::META.name,
            },
        );
        return Err(name_the_row(err, rows, "delete"));
    }
    if rows.is_empty() {
        return Ok(Deleted::default());
    }
    let mut keys = DeletingKeys::new(rows);
    let all: &[M] = keys.rows;
    // Boxed, as bulk saves are: it often runs inside another operation's receiver.
    let res = Box::pin(atomically(
        target,
        M::META.name,
        "delete",
        Some(&keys.commit),
        async |tx: &mut Tx| {
            let mut deleted = delete_all(all, tx).await?;
            deleted.receiver_errors = std::mem::take(&mut tx.scopes.current().robust_errors);
            Ok(deleted)
        },
    ))
    .await;
    keys.settle(&res);
    match res {
        Ok((mut deleted, post_commit_errors)) => {
            deleted.post_commit_errors = post_commit_errors;
            Ok(deleted)
        }
        Err(err) => Err(name_the_row(err, keys.rows, "delete")),
    }
}

/// Deletes `rows` (read already, with keys) inside `tx`: `pre_delete` for the cascade and the
/// rows, then the cascade, the rows, and `post_delete`, in Django's order.
pub(crate) async fn delete_all<M: Hooks>(rows: &[M], tx: &mut Tx) -> Result<Deleted> {
    let origin = M::META.name;
    let keys = keys_of(rows);
    let c = Collector::gather::<M>(tx, &keys).await?;
    let mut links = Vec::with_capacity(rows.len());
    if m2m::has_links::<M>() {
        for row in rows {
            if let Some(key) = row.__key() {
                links.push(m2m::links_of::<M>(tx, key).await?);
            }
        }
    } else {
        links.resize_with(rows.len(), Vec::new);
    }
    tracing::debug!(
        model = origin,
        rows = rows.len(),
        cascaded = c.batches(),
        "bulk delete"
    );
    c.pre_delete(tx, origin).await?;
    send_delete(tx, origin, &RowsOf(rows), &links, SignalKind::PreDelete).await?;

    let mut deleted = Deleted::default();
    c.delete(tx, origin, &mut deleted).await?;
    // In a savepoint: when a row is missing, its DELETE is undone to tell which one it was.
    let sp = tx.enter(origin).await?;
    let res = run_in(tx, &M::META, InList::Delete, M::META.primary_key, &keys).await;
    let distinct = c.roots();
    let ok = matches!(res, Ok(n) if n == distinct as u64);
    tx.leave(sp, ok).await?;
    let n = res?;
    if !ok {
        let present: Vec<M> = select_in(tx, M::META.primary_key, &keys).await?;
        let present: std::collections::HashSet<String> = present
            .iter()
            .filter_map(|r| r.__key())
            .map(|k| format!("{k:?}"))
            .collect();
        let missing = rows.iter().enumerate().find_map(|(i, r)| {
            let key = format!("{:?}", r.__key()?);
            (!present.contains(&key)).then_some((i, key))
        });
        let (i, key) = missing.unwrap_or((0, String::new()));
        let model = M::META.name;
        return Err(at_row(i, Error::NotFound { model, key }));
    }
    deleted.add(origin, n);
    send_delete(tx, origin, &RowsOf(rows), &links, SignalKind::PostDelete).await?;
    Ok(deleted)
}
