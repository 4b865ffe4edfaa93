//! Save, delete and load: the runtime behind the `Model` methods.

use crate::db::{Backend, Target, Tx};
use crate::error::{Error, Result, SignalKind};
use crate::model::{Column, Committed, Deleted, FieldSet, Model, SaveOptions, Saved};
use crate::relation::{delete_row, delete_tree, has_relations};
use crate::signal::{PostSave, PreSave, SaveFlags};
use crate::sql::partial_update;
use crate::value::{Args, FieldType, RefersTo};
use crate::{muting, runtime};

pub(crate) async fn save<M: Model>(
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
        if m.__key().is_none() {
            return Err(Error::NotSaved {
                model: M::META.name,
            });
        }
    }
    let had_key = m.__key().is_some();
    let res = save_inner(m, target, options).await;
    if res.is_err() && !had_key {
        // The INSERT that assigned a key was rolled back: the instance must not claim a row.
        m.__clear_key();
    }
    res
}

async fn save_inner<M: Model>(
    m: &mut M,
    target: Target<'_>,
    options: SaveOptions<M>,
) -> Result<Saved> {
    let fields = options.update_fields;
    let signalled = M::__HAS_SAVE_RECEIVERS
        || M::__HAS_ON_COMMIT
        || runtime::connected::<M>([SignalKind::PreSave, SignalKind::PostSave]);
    let ((created, receiver_errors), post_commit_errors) = if signalled && !options.quiet {
        let names = fields.map(|f| f.names());
        let flags = SaveFlags {
            update_fields: names.as_deref(),
            raw: options.raw,
        };
        atomically(target, M::META.name, async |tx: &mut Tx| {
            let start = tx.robust_errors.len();
            let created = save_signalled(m, tx, flags, fields).await?;
            Ok((created, tx.robust_errors.split_off(start)))
        })
        .await?
    } else {
        let mut target = target;
        (
            (write(m, &mut target, fields).await?, Vec::new()),
            Vec::new(),
        )
    };
    Ok(Saved {
        created,
        receiver_errors,
        post_commit_errors,
    })
}

/// Runs `f` atomically: in a transaction of its own on a pool, in a savepoint inside a caller's
/// transaction. Everything `f` did is rolled back if it fails. Also returns the errors of the
/// after-commit work when the transaction was its own (inside a caller's, that work runs at
/// the caller's commit).
async fn atomically<T>(
    target: Target<'_>,
    model: &'static str,
    f: impl AsyncFnOnce(&mut Tx) -> Result<T>,
) -> Result<(T, Vec<Error>)> {
    match target {
        Target::Db(db) => db.transaction_reporting(f).await,
        Target::Tx(tx) => Ok((tx.atomically(model, f).await?, Vec::new())),
    }
}

async fn save_signalled<M: Model>(
    m: &mut M,
    tx: &mut Tx,
    flags: SaveFlags<'_>,
    fields: Option<FieldSet<M>>,
) -> Result<bool> {
    use tracing::Instrument as _;
    let model = M::META.name;
    let adding = m.__key().is_none();
    muting::note(|| flags.fired(model, SignalKind::PreSave, None));
    let span = tracing::debug_span!("pre_save", model, adding, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PreSave::new(tx, adding, flags);
    async {
        M::__pre_save(m, &mut signal).await?;
        runtime::pre_save(m, &mut signal).await
    }
    .instrument(span)
    .await?;
    let created = write(m, &mut Target::Tx(tx), fields).await?;
    muting::note(|| flags.fired(model, SignalKind::PostSave, Some(created)));
    let span = tracing::debug_span!("post_save", model, created, raw = flags.raw);
    tracing::debug!(parent: &span, "sent");
    let mut signal = PostSave::new(tx, created, flags);
    async {
        M::__post_save(m, &mut signal).await?;
        runtime::post_save(m, &mut signal).await
    }
    .instrument(span)
    .await?;
    M::__on_commit(m, tx, Committed::Saved { created });
    Ok(created)
}

/// The row write of a save; returns whether it INSERTed.
async fn write<M: Model>(
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
            let id = if backend == Backend::Postgres {
                target.fetch_i64(&st.insert, args).await?
            } else {
                target.execute(&st.insert, args).await?.last_id
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
            if target.execute(&st.update, args).await?.rows > 0 {
                return Ok(false);
            }
            let mut args = Args::new(backend, columns);
            args.bind(key, key_column)?;
            m.__bind_values(&mut args)?;
            target.execute(&st.insert_with_key, args).await?;
            Ok(true)
        }
    }
}

/// An UPDATE of just `fields`; no INSERT fallback (Django raises when no row matched too).
async fn update_fields<M: Model>(
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
    if target
        .execute_sql(sqlx::AssertSqlSafe(sql), args)
        .await?
        .rows
        == 0
    {
        return Err(Error::NotFound {
            model: M::META.name,
            key: format!("{key:?}"),
        });
    }
    Ok(())
}

pub(crate) async fn delete<M: Model>(m: &mut M, target: Target<'_>) -> Result<Deleted> {
    let Some(key) = m.__key() else {
        return Err(Error::NotSaved {
            model: M::META.name,
        });
    };
    let signalled = M::__HAS_DELETE_RECEIVERS
        || M::__HAS_ON_COMMIT
        || runtime::connected::<M>([SignalKind::PreDelete, SignalKind::PostDelete]);
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
        let root: &M = m;
        let (mut deleted, post_commit_errors) =
            atomically(target, M::META.name, async |tx: &mut Tx| {
                let start = tx.robust_errors.len();
                let mut deleted = delete_tree(root, key, tx).await?;
                deleted.receiver_errors = tx.robust_errors.split_off(start);
                Ok(deleted)
            })
            .await?;
        deleted.post_commit_errors = post_commit_errors;
        deleted
    };
    m.__clear_key();
    Ok(deleted)
}

pub(crate) async fn get<M: Model>(mut target: Target<'_>, key: M::Key) -> Result<Option<M>> {
    let backend = target.backend();
    let mut args = Args::new(backend, 1);
    args.bind(&key, M::META.columns[M::META.primary_key])?;
    let st = M::__statements(backend);
    target
        .fetch_optional(&st.select_by_key, args, M::__from_row)
        .await
}

pub(crate) async fn all<M: Model>(mut target: Target<'_>) -> Result<Vec<M>> {
    let backend = target.backend();
    let st = M::__statements(backend);
    target
        .fetch_all(&st.select_all, Args::new(backend, 0), M::__from_row)
        .await
}

pub(crate) async fn filter<M: Model, T: FieldType>(
    mut target: Target<'_>,
    column: Column<M, T>,
    value: T,
) -> Result<Vec<M>> {
    let backend = target.backend();
    let st = M::__statements(backend);
    let i = column.index();
    if value.is_null() {
        return target
            .fetch_all(
                &st.select_where_null[i],
                Args::new(backend, 0),
                M::__from_row,
            )
            .await;
    }
    let mut args = Args::new(backend, 1);
    args.bind(&value, column.name())?;
    target
        .fetch_all(&st.select_where[i], args, M::__from_row)
        .await
}

/// The parent a reference field points at (`None` for a NULL reference or a missing row).
#[doc(hidden)]
pub async fn parent_of<P: Model, F: RefersTo<P::Key>>(
    target: Target<'_>,
    field: &F,
) -> Result<Option<P>> {
    match field.referenced_key() {
        Some(key) => get::<P>(target, key.clone()).await,
        None => Ok(None),
    }
}

/// The children of `parent` through the reference field at `field_index` of `C`.
#[doc(hidden)]
pub async fn children_of<C: Model, P: Model>(
    mut target: Target<'_>,
    parent: &P,
    field_index: usize,
) -> Result<Vec<C>> {
    let Some(key) = parent.__key() else {
        // An unsaved parent has no children.
        return Ok(Vec::new());
    };
    let backend = target.backend();
    let mut args = Args::new(backend, 1);
    args.bind(key, C::META.columns[field_index])?;
    let st = C::__statements(backend);
    target
        .fetch_all(&st.select_where[field_index], args, C::__from_row)
        .await
}
