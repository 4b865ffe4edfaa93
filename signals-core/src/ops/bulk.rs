//! Bulk saves: many rows in multi-row statements, chunked under each backend's parameter
//! limit, with their signals sent per chunk (batched receivers once, per-row receivers once a
//! row), all in one transaction or savepoint.
//!
//! Uses `backend`, `error`, `kind`, `meta`, `value`, `tx`, `model`, `signal`, and `save` of
//! `ops`.

use super::bulk_write::write_chunk;
use super::save::{self, name_the_column};
use super::{AssignedKeys, atomically, boxed};
use crate::backend::Backend;
use crate::backend::MAX_CHUNK_ROWS;
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::FieldSet;
use crate::model::BulkSaved;
use crate::signal::batch::{PostSaveBatch, PreSaveBatch};
use crate::signal::context::{Committed, SaveFlags};
use crate::signal::hooks::{self, Hooks, any_receivers, at_row, wants_old_values};
use crate::signal::muting;
use crate::tx::{Target, Tx};

/// How many rows of `M` go in one multi-row statement (and one batch) on `backend`: under the
/// backend's limit of bound parameters per statement (SQLite 32,766; PostgreSQL and MySQL
/// 65,535), and at most [`MAX_CHUNK_ROWS`].
pub fn chunk_rows<M: Hooks>(backend: Backend) -> usize {
    (backend.max_params() / M::META.columns.len().max(1)).clamp(1, MAX_CHUNK_ROWS)
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
    // Keys the bulk assigns stay only if their rows may exist, on every path, cancellation
    // included: see `AssignedKeys`.
    let mut keys = AssignedKeys::many(rows);
    // Boxed: a bulk save often runs inside a receiver of another save, whose future would
    // otherwise hold this one inline (and grow past the compiler's layout depth).
    let res = Box::pin(atomically(
        target,
        M::META.name,
        operation,
        Some(&keys.commit),
        async |tx: &mut Tx| {
            // Boxed, and made in `boxed`'s frame (see there).
            let created = boxed(|| save_all(&mut *keys.rows, tx, fields)).await?;
            Ok((
                created,
                std::mem::take(&mut tx.scopes.current().robust_errors),
            ))
        },
    ))
    .await;
    keys.settle(&res);
    match res {
        Ok(((created, receiver_errors), post_commit_errors)) => Ok(BulkSaved {
            created,
            receiver_errors,
            post_commit_errors,
        }),
        Err(err) => Err(name_the_row(err, keys.rows, operation)),
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
            let one = save::save_signalled_boxed(row, tx, flags, fields).await;
            created.push(
                one.map_err(|err| {
                    at_row(i, name_the_column(err, &*row, fields.map(|f| f.bits())))
                })?,
            );
        }
        return Ok(created);
    }
    let size = chunk_rows::<M>(tx.backend());
    for (c, chunk) in rows.chunks_mut(size).enumerate() {
        let (offset, len) = (c * size, chunk.len());
        let span = tracing::debug_span!("bulk_save", model = M::META.name, offset, rows = len);
        let one = boxed(|| {
            tracing::Instrument::instrument(
                save_chunk(chunk, tx, flags, fields, signalled, wants_old),
                span,
            )
        })
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
        let pre = muting::note_rows(
            rows.iter()
                .map(|r| flags.fired(model, SignalKind::PreSave, None, muting::key_json(r))),
        );
        let mut batch = PreSaveBatch::new(tx, &adding, flags);
        if all_new {
            batch = batch.all_created();
        }
        pre.within(hooks::pre_save_batch(rows, &mut batch)).await?;
    }
    let created = boxed(|| write_chunk(rows, tx, fields)).await?;
    if signalled {
        let post =
            muting::note_rows(rows.iter().zip(&created).map(|(r, c)| {
                flags.fired(model, SignalKind::PostSave, Some(*c), muting::key_json(r))
            }));
        let mut batch = PostSaveBatch::new(tx, &created, flags);
        if all_new {
            batch = batch.all_created();
        }
        post.within(hooks::post_save_batch(rows, &mut batch))
            .await?;
        let written = fields.map_or(u128::MAX, |f| f.bits());
        // A new row's old values are "none": `#[on_commit(.., changed(..))]` fires for it.
        let old = all_new.then_some(None);
        for (row, created) in rows.iter().zip(&created) {
            let what = Committed::Saved { created: *created };
            M::__on_commit(row, tx, what, old, written)?;
        }
    }
    Ok(created)
}
