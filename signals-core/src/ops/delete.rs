//! Deleting one instance: its row, the cascade it reaches, and the delete signals in Django's
//! order, in one transaction or savepoint.
//!
//! Uses `error`, `kind`, `tx`, `model`, `signal`, and the cascade of `ops`.

use std::sync::Arc;

use super::cascade::{Collector, delete_row, has_relations};
use super::m2m;
use super::{DeletingKeys, atomically, boxed};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::model::Deleted;
use crate::signal::context::{Committed, PostDelete, PreDelete, fired_delete};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks, any_receivers};
use crate::signal::m2m::M2mAction;
use crate::signal::muting;
use crate::tx::{CommitSent, Target, Tx};
use crate::value::DynField;

/// Deletes `m`'s row and its cascade with their signals: [`Model::delete`](crate::Model::delete).
pub(crate) async fn delete<M: Hooks>(m: &mut M, target: Target<'_>) -> Result<Deleted> {
    let mut keys = DeletingKeys::new(std::slice::from_mut(m));
    let res = delete_inner(&keys.rows[0], target, &keys.commit).await;
    keys.settle(&res);
    res.map_err(|err| match err {
        // SQLite says only "FOREIGN KEY constraint failed": rows of another table, not
        // declared as references of a model, still refer to this one.
        Error::ForeignKeyViolation {
            constraint,
            message,
            source,
        } if constraint.is_empty() => Error::ForeignKeyViolation {
            constraint: format!("a reference to {}", M::META.table),
            message,
            source,
        },
        err => err,
    })
}

async fn delete_inner<M: Hooks>(m: &M, target: Target<'_>, commit: &CommitSent) -> Result<Deleted> {
    let Some(key) = m.__key() else {
        return Err(Error::NotSaved {
            model: M::META.name,
        });
    };
    let signalled = any_receivers::<M>(&[
        SignalKind::PreDelete,
        SignalKind::PostDelete,
        SignalKind::OnCommit,
    ]);
    let deleted = if !signalled && !has_relations::<M>() {
        let mut target = target;
        let n = delete_row::<M>(&mut target, key).await?;
        if n == 0 {
            return Err(Error::NotFound {
                model: M::META.name,
                key: format!("{key:?}"),
            });
        }
        Deleted {
            per_model: vec![(M::META.name, n)],
            ..Deleted::default()
        }
    } else {
        let (mut deleted, post_commit_errors) = atomically(
            target,
            M::META.name,
            "delete",
            Some(commit),
            async |tx: &mut Tx| {
                let mut deleted = delete_tree_boxed(m, key, tx).await?;
                deleted.receiver_errors = std::mem::take(&mut tx.scopes.current().robust_errors);
                Ok(deleted)
            },
        )
        .await?;
        deleted.post_commit_errors = post_commit_errors;
        deleted
    };
    Ok(deleted)
}

/// [`delete_tree`]'s future, boxed and made here: the frames around it, on the stack while
/// receivers' nested operations run, stay small (see `save_signalled_boxed`).
fn delete_tree_boxed<'a, M: Hooks>(
    root: &'a M,
    key: &'a M::Key,
    tx: &'a mut Tx,
) -> BoxFuture<'a, Result<Deleted>> {
    Box::pin(delete_tree(root, key, tx))
}

/// Deletes `root` and everything its relations reach, sending the delete signals in Django's
/// order, inside `tx`.
async fn delete_tree<M: Hooks>(root: &M, key: &M::Key, tx: &mut Tx) -> Result<Deleted> {
    // Each step's future boxed (see `boxed`): this frame stays on the stack while the
    // receivers' nested operations run.
    let origin = M::META.name;
    let keys = [Arc::new(key.clone()) as Arc<dyn DynField>];
    let c = boxed(|| Collector::gather::<M>(tx, &keys)).await?;
    // The many-to-many links the delete removes (through the cascade), read before.
    let links = boxed(|| m2m::links_of::<M>(tx, key)).await?;

    tracing::debug!(model = M::META.name, cascaded = c.batches(), "pre_delete");
    boxed(|| c.pre_delete(tx, origin)).await?;
    let pre =
        muting::note(|| fired_delete(M::META.name, SignalKind::PreDelete, muting::key_json(root)));
    // The hooks' futures are boxed already.
    let mut signal = PreDelete::new(tx, origin);
    pre.within(hooks::pre_delete(root, &mut signal)).await?;
    boxed(|| m2m::send_removed(tx, root, &links, M2mAction::PreRemove)).await?;

    let mut deleted = Deleted::default();
    boxed(|| c.delete(tx, origin, &mut deleted)).await?;
    let on = &mut *tx;
    let n = boxed(|| async move { delete_row::<M>(&mut Target::Tx(on), key).await }).await?;
    if n == 0 {
        return Err(Error::NotFound {
            model: M::META.name,
            key: format!("{key:?}"),
        });
    }
    deleted.add(M::META.name, n);

    tracing::debug!(model = M::META.name, rows = deleted.total(), "post_delete");
    let post =
        muting::note(|| fired_delete(M::META.name, SignalKind::PostDelete, muting::key_json(root)));
    let mut signal = PostDelete::new(tx, origin);
    post.within(hooks::post_delete(root, &mut signal)).await?;
    boxed(|| m2m::send_removed(tx, root, &links, M2mAction::PostRemove)).await?;
    M::__on_commit(root, tx, Committed::Deleted, None, 0)?;
    Ok(deleted)
}
