//! Saving: INSERT or UPDATE (or only some fields), with `pre_save` and `post_save` around the
//! write, in one transaction or savepoint.
//!
//! Uses `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model` and `signal`.

use std::any::TypeId;

use super::cascade::relations_of_child;
use super::erased::{AnyModel, Erased};
use super::{AssignedKeys, atomically};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::{ColumnDef, FieldSet, Indices, ModelMeta, names_in};
use crate::model::{SaveOptions, Saved};
use crate::signal::context::{Committed, Old, PostSave, PreSave, SaveFlags};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks};
use crate::signal::muting;
use crate::sql::partial_update;
use crate::tx::{CommitSent, Target, Tx};
use crate::value::Args;
use crate::value::sqlite::SqlValue;

/// Saves `m` with its signals: [`Model::save_with`](crate::Model::save_with).
///
/// Generic only to erase the instance: the save itself is compiled once ([`Erased`]).
pub(crate) async fn save<M: Hooks>(
    m: &mut M,
    target: Target<'_>,
    options: SaveOptions<M>,
) -> Result<Saved> {
    let vt = Erased::of::<M>();
    let fields = options.update_fields.map(|f| f.bits());
    if let Some(early) = check_options(&vt, &*m, fields) {
        return early;
    }
    // A key the save assigns stays only if its row may exist: see `AssignedKeys`.
    let mut keys = AssignedKeys::one(m);
    let options = Options {
        fields,
        raw: options.raw,
        quiet: options.quiet,
    };
    let res = save_inner(&mut keys.rows[0], vt, target, options, &keys.commit).await;
    let res = res.map_err(|err| name_the_column(err, &keys.rows[0], fields));
    keys.settle(&res);
    res
}

/// [`SaveOptions`] without their model.
#[derive(Clone, Copy)]
struct Options {
    /// `update_fields`, as the bits of a [`FieldSet`].
    fields: Option<u128>,
    raw: bool,
    quiet: bool,
}

/// What a save with these `update_fields` returns before it starts, if anything: nothing for
/// an empty set (Django's rule: it saves nothing and sends no signal), an error for a set
/// with the key or an instance without one.
fn check_options(vt: &Erased, m: &AnyModel, fields: Option<u128>) -> Option<Result<Saved>> {
    let fields = fields?;
    if fields == 0 {
        return Some(Ok(Saved {
            created: false,
            receiver_errors: Vec::new(),
            post_commit_errors: Vec::new(),
        }));
    }
    let meta = vt.meta;
    if Indices::of(fields).any(|i| i == meta.primary_key) {
        return Some(Err(Error::KeyInUpdateFields {
            model: meta.name,
            field: meta.fields[meta.primary_key],
        }));
    }
    if !(vt.has_key)(m) {
        return Some(Err(Error::NotSaved { model: meta.name }));
    }
    None
}

/// The save, boxed, and made here rather than in the frame that awaits it (see
/// [`save_signalled_boxed`]): a receiver's nested save keeps a pointer in its frame.
fn save_inner<'a>(
    m: &'a mut AnyModel,
    vt: Erased,
    target: Target<'a>,
    options: Options,
    commit: &'a CommitSent,
) -> BoxFuture<'a, Result<Saved>> {
    Box::pin(save_inner_now(m, vt, target, options, commit))
}

async fn save_inner_now(
    m: &mut AnyModel,
    vt: Erased,
    target: Target<'_>,
    options: Options,
    commit: &CommitSent,
) -> Result<Saved> {
    let fields = options.fields;
    let signalled = hooks::any_receivers_of(
        vt.wired,
        vt.model,
        &[
            SignalKind::PreSave,
            SignalKind::PostSave,
            SignalKind::OnCommit,
        ],
    );
    let ((created, receiver_errors), post_commit_errors) = if signalled && !options.quiet {
        let names = fields.map(|f| names_in(vt.meta.fields, Indices::of(f)));
        let flags = SaveFlags {
            update_fields: names.as_deref(),
            raw: options.raw,
        };
        atomically(
            target,
            vt.meta.name,
            "save",
            Some(commit),
            async |tx: &mut Tx| {
                let created = save_signalled(m, vt, tx, flags, fields).await?;
                // Robust receivers' errors, from this save's own scope: those of saves nested in
                // its receivers went with those saves.
                Ok((
                    created,
                    std::mem::take(&mut tx.scopes.current().robust_errors),
                ))
            },
        )
        .await?
    } else {
        (
            (write(m, vt, target, fields).await?, Vec::new()),
            Vec::new(),
        )
    };
    Ok(Saved {
        created,
        receiver_errors,
        post_commit_errors,
    })
}

/// A save in `tx` with its signals, for a bulk save's row: [`save_signalled`] of an `M`.
pub(crate) fn save_signalled_boxed<'a, M: Hooks>(
    m: &'a mut M,
    tx: &'a mut Tx,
    flags: SaveFlags<'a>,
    fields: Option<FieldSet<M>>,
) -> BoxFuture<'a, Result<bool>> {
    save_signalled(m, Erased::of::<M>(), tx, flags, fields.map(|f| f.bits()))
}

/// [`save_signalled_now`]'s future, boxed, and made here rather than in the frame that awaits
/// it: the operations around it then keep a pointer, and their frames, which stay on the
/// stack while receivers' nested saves run, stay small in debug builds (a receiver saving its
/// own model reaches the depth limit, 16 saves deep, well within a 2 MiB thread).
fn save_signalled<'a>(
    m: &'a mut AnyModel,
    vt: Erased,
    tx: &'a mut Tx,
    flags: SaveFlags<'a>,
    fields: Option<u128>,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(save_signalled_now(m, vt, tx, flags, fields))
}

async fn save_signalled_now(
    m: &mut AnyModel,
    vt: Erased,
    tx: &mut Tx,
    flags: SaveFlags<'_>,
    fields: Option<u128>,
) -> Result<bool> {
    use tracing::Instrument as _;
    let model = vt.meta.name;
    let adding = !(vt.has_key)(m);
    // The row this save replaces, read (and locked) in the save's own transaction, only for
    // models with receivers that ask for it: the rest pay no statement for it.
    let wants_old = hooks::wants_old_values_of(vt.old_values);
    let old_row = if wants_old && !adding {
        (vt.replaced_row)(Target::Tx(tx), &*m).await?
    } else {
        None
    };
    let old = match (&old_row, wants_old) {
        (_, false) => Old::NotRead,
        (Some(row), true) => Old::Row(&**row),
        (None, true) => Old::Created,
    };
    let pre = muting::note(|| flags.fired(model, SignalKind::PreSave, None, (vt.key_json)(m)));
    let span = tracing::debug_span!("pre_save", model, adding, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PreSave::new(tx, adding, flags, old);
    pre.within((vt.pre_save)(m, &mut signal))
        .instrument(span)
        .await?;
    let created = write(m, vt, Target::Tx(tx), fields).await?;
    let post =
        muting::note(|| flags.fired(model, SignalKind::PostSave, Some(created), (vt.key_json)(m)));
    let span = tracing::debug_span!("post_save", model, created, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PostSave::new(tx, created, flags, old, &*m);
    post.within((vt.post_save)(m, &mut signal))
        .instrument(span)
        .await?;
    let old = wants_old.then_some(old_row.as_deref());
    let written = fields.unwrap_or(u128::MAX);
    (vt.on_commit)(m, tx, Committed::Saved { created }, old, written)?;
    Ok(created)
}

/// The row write of a save of an `M`, for a bulk save's row: [`write`].
pub(crate) fn write_one<'a, M: Hooks>(
    m: &'a mut M,
    target: Target<'a>,
) -> BoxFuture<'a, Result<bool>> {
    write(m, Erased::of::<M>(), target, None)
}

/// The row write of a save, boxed (see [`save_signalled`]); returns whether it INSERTed.
fn write<'a>(
    m: &'a mut AnyModel,
    vt: Erased,
    target: Target<'a>,
    fields: Option<u128>,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(write_now(m, vt, target, fields))
}

async fn write_now(
    m: &mut AnyModel,
    vt: Erased,
    mut target: Target<'_>,
    fields: Option<u128>,
) -> Result<bool> {
    if let Some(fields) = fields {
        return update_fields_now(m, vt, &mut target, fields)
            .await
            .map(|()| false);
    }
    let backend = target.backend();
    let st = (vt.statements)(backend);
    let columns = vt.meta.columns.len();
    if !(vt.has_key)(m) {
        let mut args = Args::new(backend, columns);
        (vt.bind_values)(m, &mut args)?;
        let id = if backend.returns_generated_key() {
            target
                .insert_returning_key(st.insert.as_str(), args)
                .await?
        } else {
            target.execute(st.insert.as_str(), args).await?.last_id
        };
        (vt.set_generated_key)(m, id)?;
        return Ok(true);
    }
    let mut args = Args::new(backend, columns);
    (vt.bind_values)(m, &mut args)?;
    (vt.bind_key)(m, &mut args)?;
    // MySQL counts matched rows here, not changed ones: sqlx connects with
    // CLIENT_FOUND_ROWS, so an unchanged row is still an update.
    if target.execute(st.update.as_str(), args).await?.rows > 0 {
        return Ok(false);
    }
    let mut args = Args::new(backend, columns);
    (vt.bind_key)(m, &mut args)?;
    (vt.bind_values)(m, &mut args)?;
    target.execute(st.insert_with_key.as_str(), args).await?;
    Ok(true)
}

/// An UPDATE of just `fields`; no INSERT fallback (Django raises when no row matched too).
pub(crate) async fn update_fields<M: Hooks>(
    m: &M,
    target: &mut Target<'_>,
    fields: FieldSet<M>,
) -> Result<()> {
    update_fields_now(m, Erased::of::<M>(), target, fields.bits()).await
}

async fn update_fields_now(
    m: &AnyModel,
    vt: Erased,
    target: &mut Target<'_>,
    fields: u128,
) -> Result<()> {
    let meta = vt.meta;
    if !(vt.has_key)(m) {
        return Err(Error::NotSaved { model: meta.name });
    }
    let backend = target.backend();
    let sql = partial_update(meta, backend, Indices::of(fields));
    let mut args = Args::new(backend, meta.columns.len());
    for i in Indices::of(fields).filter(|i| *i != meta.primary_key) {
        (vt.bind_field)(m, i, &mut args)?;
    }
    (vt.bind_key)(m, &mut args)?;
    if target.execute(sqlx::AssertSqlSafe(sql), args).await?.rows == 0 {
        return Err(Error::NotFound {
            model: meta.name,
            key: (vt.key_debug)(m),
        });
    }
    Ok(())
}

/// Names what the database left unnamed in an error of this save:
/// - a foreign key SQLite reports as just "FOREIGN KEY constraint failed": the model's
///   reference columns (`account_profile.user_id`);
/// - a text value longer than its column allows: PostgreSQL only says "value too long for
///   type character varying(255)", so the column is the field written (`written`, the bits
///   of `update_fields`; every field when `None`) whose text is longer than that, and which
///   does not fit a `max_length` of its own; when several could be, the one declared with
///   that `max_length`, else none is named (the database's error stays). MySQL names it
///   ("Data too long for column 'photo'"). Either way the error becomes
///   [`Error::InvalidValue`] for that column.
pub(crate) fn name_the_column<M: Hooks>(err: Error, m: &M, written: Option<u128>) -> Error {
    if !matches!(
        err,
        Error::ForeignKeyViolation { .. } | Error::Database(sqlx::Error::Database(_))
    ) {
        return err;
    }
    name_the_column_of(
        err,
        &M::META,
        M::__COLUMNS,
        TypeId::of::<M>(),
        written,
        &|args| m.__bind_values(args).is_ok(),
    )
}

/// [`name_the_column`], compiled once: `bind` writes the instance's values into `args`.
fn name_the_column_of(
    err: Error,
    meta: &'static ModelMeta,
    defs: &'static [ColumnDef],
    model: TypeId,
    written: Option<u128>,
    bind: &dyn Fn(&mut Args) -> bool,
) -> Error {
    let err = match err {
        Error::ForeignKeyViolation {
            constraint,
            message,
            source,
        } if constraint.is_empty() => {
            let columns: Vec<String> = relations_of_child(model)
                .map(|r| format!("{}.{}", meta.table, r.column))
                .collect();
            let constraint = if columns.is_empty() {
                meta.table.to_owned()
            } else {
                columns.join(" or ")
            };
            return Error::ForeignKeyViolation {
                constraint,
                message,
                source,
            };
        }
        err => err,
    };
    let Error::Database(sqlx::Error::Database(db)) = &err else {
        return err;
    };
    let message = db.message();
    let non_key = || {
        meta.columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != meta.primary_key)
            .map(|(_, c)| *c)
    };
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        if e.number() != 1406 {
            return err;
        }
        let named = message
            .split("column '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next());
        return match non_key().find(|c| Some(*c) == named) {
            Some(column) => Error::InvalidValue {
                column,
                reason: format!("the value is longer than the column allows ({message})"),
            },
            None => err,
        };
    }
    if db.code().as_deref() != Some("22001") {
        return err;
    }
    // "value too long for type character varying(255)" or "character(10)"
    let Some(limit) = message
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return err;
    };
    // The values as text, in column order: SQLite's encoding of each field.
    let mut args = Args::new(Backend::Sqlite, meta.columns.len());
    if !bind(&mut args) {
        return err;
    }
    let Args::Sqlite(values) = args else {
        return err;
    };
    let declared = |column: &str| {
        defs.iter()
            .find(|d| d.name == column)
            .and_then(|d| d.max_length)
            .map(|n| n as usize)
    };
    // Fields written whose text is longer than the limit, and not within a length of their
    // own: the failing column is one of them.
    let candidates: Vec<(&'static str, usize)> = meta
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != meta.primary_key)
        .zip(values)
        .filter(|((i, _), _)| written.is_none_or(|bits| bits & (1u128 << i) != 0))
        .filter_map(|((_, column), value)| match value {
            SqlValue::Text(text) => Some((*column, text.chars().count())),
            _ => None,
        })
        .filter(|(column, length)| {
            *length > limit && declared(column).is_none_or(|own| *length > own)
        })
        .collect();
    let too_long = match candidates.as_slice() {
        [one] => Some(*one),
        several => {
            let mut declared_so = several
                .iter()
                .filter(|(column, _)| declared(column) == Some(limit));
            match (declared_so.next(), declared_so.next()) {
                (Some(one), None) => Some(*one),
                _ => None,
            }
        }
    };
    match too_long {
        Some((column, length)) => Error::InvalidValue {
            column,
            reason: format!(
                "{length} characters, more than the {limit} its column allows ({message})"
            ),
        },
        None => err,
    }
}
