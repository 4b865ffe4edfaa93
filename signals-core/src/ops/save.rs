//! Saving: INSERT or UPDATE (or only some fields), with `pre_save` and `post_save` around the
//! write, in one transaction or savepoint.
//!
//! Uses `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model` and `signal`.

use std::any::TypeId;

use super::cascade::relations_of_child;
use super::load;
use super::{AssignedKeys, atomically};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::{FieldSet, ModelMeta};
use crate::model::{SaveOptions, Saved};
use crate::signal::context::{Committed, Old, PostSave, PreSave, SaveFlags};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks, any_receivers};
use crate::signal::muting;
use crate::sql::partial_update;
use crate::tx::{CommitSent, Target, Tx};
use crate::value::Args;
use crate::value::sqlite::SqlValue;

/// Saves `m` with its signals: [`Model::save_with`](crate::Model::save_with).
pub(crate) async fn save<M: Hooks>(
    m: &mut M,
    target: Target<'_>,
    options: SaveOptions<M>,
) -> Result<Saved> {
    if let Some(fields) = options.update_fields {
        if fields.is_empty() {
            // Django's rule: an empty `update_fields` saves nothing and sends no signal.
            return Ok(Saved {
                created: false,
                receiver_errors: Vec::new(),
                post_commit_errors: Vec::new(),
            });
        }
        if fields.indices().any(|i| i == M::META.primary_key) {
            return Err(Error::KeyInUpdateFields {
                model: M::META.name,
                field: M::META.fields[M::META.primary_key],
            });
        }
        if m.__key().is_none() {
            return Err(Error::NotSaved {
                model: M::META.name,
            });
        }
    }
    // A key the save assigns stays only if its row may exist: see `AssignedKeys`.
    let mut keys = AssignedKeys::one(m);
    let res = save_inner_boxed(&mut keys.rows[0], target, options, &keys.commit).await;
    let res = res.map_err(|err| name_the_column(err, &keys.rows[0]));
    keys.settle(&res);
    res
}

/// [`save_inner`]'s future, boxed (see [`save_signalled_boxed`]): a receiver's nested save
/// keeps a pointer in its frame.
fn save_inner_boxed<'a, M: Hooks>(
    m: &'a mut M,
    target: Target<'a>,
    options: SaveOptions<M>,
    commit: &'a CommitSent,
) -> BoxFuture<'a, Result<Saved>> {
    Box::pin(save_inner(m, target, options, commit))
}

async fn save_inner<M: Hooks>(
    m: &mut M,
    target: Target<'_>,
    options: SaveOptions<M>,
    commit: &CommitSent,
) -> Result<Saved> {
    let fields = options.update_fields;
    let signalled = any_receivers::<M>(&[
        SignalKind::PreSave,
        SignalKind::PostSave,
        SignalKind::OnCommit,
    ]);
    let ((created, receiver_errors), post_commit_errors) = if signalled && !options.quiet {
        let names = fields.map(|f| f.names());
        let flags = SaveFlags {
            update_fields: names.as_deref(),
            raw: options.raw,
        };
        atomically(
            target,
            M::META.name,
            "save",
            Some(commit),
            async |tx: &mut Tx| {
                let created = save_signalled_boxed(m, tx, flags, fields).await?;
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
            (write_boxed(m, target, fields).await?, Vec::new()),
            Vec::new(),
        )
    };
    Ok(Saved {
        created,
        receiver_errors,
        post_commit_errors,
    })
}

/// [`save_signalled`]'s future, boxed, and made here rather than in the frame that awaits it:
/// the operations around it then keep a pointer, and their frames, which stay on the stack
/// while receivers' nested saves run, stay small in debug builds (a receiver saving its own
/// model reaches the depth limit, 16 saves deep, well within a 2 MiB thread).
pub(crate) fn save_signalled_boxed<'a, M: Hooks>(
    m: &'a mut M,
    tx: &'a mut Tx,
    flags: SaveFlags<'a>,
    fields: Option<FieldSet<M>>,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(save_signalled(m, tx, flags, fields))
}

pub(crate) async fn save_signalled<M: Hooks>(
    m: &mut M,
    tx: &mut Tx,
    flags: SaveFlags<'_>,
    fields: Option<FieldSet<M>>,
) -> Result<bool> {
    use tracing::Instrument as _;
    let model = M::META.name;
    let adding = m.__key().is_none();
    // The row this save replaces, read (and locked) in the save's own transaction, only for
    // models with receivers that ask for it: the rest pay no statement for it.
    let wants_old = hooks::wants_old_values::<M>();
    let old_row: Option<M> = match m.__key() {
        // Boxed: this future sits inside every save's, receivers' nested saves included.
        Some(key) if wants_old => Box::pin(load::replaced_row(Target::Tx(tx), key.clone())).await?,
        _ => None,
    };
    let old = match (&old_row, wants_old) {
        (_, false) => Old::NotRead,
        (Some(row), true) => Old::Row(row),
        (None, true) => Old::Created,
    };
    let pre = muting::note(|| flags.fired(model, SignalKind::PreSave, None, muting::key_json(m)));
    let span = tracing::debug_span!("pre_save", model, adding, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PreSave::new(tx, adding, flags, old);
    pre.within(hooks::pre_save(m, &mut signal))
        .instrument(span)
        .await?;
    let created = write_boxed(m, Target::Tx(tx), fields).await?;
    let post = muting::note(|| {
        flags.fired(
            model,
            SignalKind::PostSave,
            Some(created),
            muting::key_json(m),
        )
    });
    let span = tracing::debug_span!("post_save", model, created, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PostSave::new(tx, created, flags, old, &*m);
    post.within(hooks::post_save(m, &mut signal))
        .instrument(span)
        .await?;
    let old = wants_old.then_some(old_row.as_ref());
    let written = match fields {
        Some(fields) => fields.bits(),
        None => u128::MAX,
    };
    M::__on_commit(m, tx, Committed::Saved { created }, old, written)?;
    Ok(created)
}

/// [`write`], boxed (see [`save_signalled_boxed`]).
fn write_boxed<'a, M: Hooks>(
    m: &'a mut M,
    mut target: Target<'a>,
    fields: Option<FieldSet<M>>,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(async move { write(m, &mut target, fields).await })
}

/// The row write of a save; returns whether it INSERTed.
pub(crate) async fn write<M: Hooks>(
    m: &mut M,
    target: &mut Target<'_>,
    fields: Option<FieldSet<M>>,
) -> Result<bool> {
    let backend = target.backend();
    let st = M::__statements(backend);
    let columns = M::META.columns.len();
    let key_column = M::META.columns[M::META.primary_key];
    if let Some(fields) = fields {
        return update_fields(m, target, fields).await.map(|()| false);
    }
    match m.__key() {
        None => {
            let mut args = Args::new(backend, columns);
            m.__bind_values(&mut args)?;
            let id = if backend.returns_generated_key() {
                target
                    .insert_returning_key(st.insert.as_str(), args)
                    .await?
            } else {
                target.execute(st.insert.as_str(), args).await?.last_id
            };
            m.__set_generated_key(id)?;
            Ok(true)
        }
        Some(key) => {
            let mut args = Args::new(backend, columns);
            m.__bind_values(&mut args)?;
            args.bind(key, key_column)?;
            // MySQL counts matched rows here, not changed ones: sqlx connects with
            // CLIENT_FOUND_ROWS, so an unchanged row is still an update.
            if target.execute(st.update.as_str(), args).await?.rows > 0 {
                return Ok(false);
            }
            let mut args = Args::new(backend, columns);
            args.bind(key, key_column)?;
            m.__bind_values(&mut args)?;
            target.execute(st.insert_with_key.as_str(), args).await?;
            Ok(true)
        }
    }
}

/// An UPDATE of just `fields`; no INSERT fallback (Django raises when no row matched too).
pub(crate) async fn update_fields<M: Hooks>(
    m: &M,
    target: &mut Target<'_>,
    fields: FieldSet<M>,
) -> Result<()> {
    let Some(key) = m.__key() else {
        return Err(Error::NotSaved {
            model: M::META.name,
        });
    };
    let backend = target.backend();
    let sql = partial_update(&M::META, backend, fields.indices());
    let mut args = Args::new(backend, M::META.columns.len());
    for i in fields.indices().filter(|i| *i != M::META.primary_key) {
        m.__bind_field(i, &mut args)?;
    }
    args.bind(key, M::META.columns[M::META.primary_key])?;
    if target.execute(sqlx::AssertSqlSafe(sql), args).await?.rows == 0 {
        return Err(Error::NotFound {
            model: M::META.name,
            key: format!("{key:?}"),
        });
    }
    Ok(())
}

/// Names what the database left unnamed in an error of this save:
/// - a foreign key SQLite reports as just "FOREIGN KEY constraint failed": the model's
///   reference columns (`account_profile.user_id`);
/// - a text value longer than its column allows: PostgreSQL only says "value too long for
///   type character varying(255)", so the column is the field whose text is longer than that;
///   MySQL names it ("Data too long for column 'photo'"). Either way the error becomes
///   [`Error::InvalidValue`] for that column.
pub(crate) fn name_the_column<M: Hooks>(err: Error, m: &M) -> Error {
    if !matches!(
        err,
        Error::ForeignKeyViolation { .. } | Error::Database(sqlx::Error::Database(_))
    ) {
        return err;
    }
    name_the_column_of(err, &M::META, TypeId::of::<M>(), &|args| {
        m.__bind_values(args).is_ok()
    })
}

/// [`name_the_column`], compiled once: `bind` writes the instance's values into `args`.
fn name_the_column_of(
    err: Error,
    meta: &'static ModelMeta,
    model: TypeId,
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
    let too_long = non_key()
        .zip(values)
        .find_map(|(column, value)| match value {
            SqlValue::Text(text) if text.chars().count() > limit => {
                Some((column, text.chars().count()))
            }
            _ => None,
        });
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
