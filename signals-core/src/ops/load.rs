//! Loading: by key, all rows, one-column equality, and across references.
//!
//! Uses `error`, `meta`, `value`, `tx` and `model`.

use crate::error::{Error, Result};
use crate::meta::Column;
use crate::model::Model;
use crate::sql::Statements;
use crate::tx::Target;
use crate::value::{Args, FieldType, RefersTo, Row};

/// [`Model::get`](crate::Model::get).
pub(crate) async fn get<M: Model>(target: Target<'_>, key: M::Key) -> Result<Option<M>> {
    by_key(target, key, |st| &st.select_by_key, M::__load).await
}

/// [`Model::get_for_update`](crate::Model::get_for_update).
pub(crate) async fn get_for_update<M: Model>(target: Target<'_>, key: M::Key) -> Result<Option<M>> {
    by_key(target, key, |st| &st.select_by_key_for_update, M::__load).await
}

/// The row a save replaces, locked, as the database holds it: no `post_load` receiver runs
/// (the save builds no instance for the program; `changed(..)` compares with the database,
/// and a row a `post_load` receiver refuses can still be saved over).
pub(crate) async fn replaced_row<M: Model>(target: Target<'_>, key: M::Key) -> Result<Option<M>> {
    by_key(
        target,
        key,
        |st| &st.select_by_key_for_update,
        M::__from_row,
    )
    .await
}

/// The row with primary key `key`, read by one of the model's by-key statements.
async fn by_key<M: Model>(
    mut target: Target<'_>,
    key: M::Key,
    statement: fn(&'static Statements) -> &'static String,
    read: fn(&Row<'_>) -> Result<M>,
) -> Result<Option<M>> {
    let backend = target.backend();
    let mut args = Args::new(backend, 1);
    args.bind(&key, M::META.columns[M::META.primary_key])?;
    target
        .fetch_optional(statement(M::__statements(backend)).as_str(), args, read)
        .await
}

/// [`Model::refresh`](crate::Model::refresh).
pub(crate) async fn refresh<M: Model>(m: &mut M, target: Target<'_>) -> Result<()> {
    let Some(key) = m.__key().cloned() else {
        return Err(Error::NotSaved {
            model: M::META.name,
        });
    };
    match get::<M>(target, key.clone()).await? {
        Some(row) => {
            *m = row;
            Ok(())
        }
        None => Err(Error::NotFound {
            model: M::META.name,
            key: format!("{key:?}"),
        }),
    }
}

/// [`Model::all`](crate::Model::all).
pub(crate) async fn all<M: Model>(mut target: Target<'_>) -> Result<Vec<M>> {
    let backend = target.backend();
    let st = M::__statements(backend);
    target
        .fetch_all(st.select_all.as_str(), Args::new(backend, 0), M::__load)
        .await
}

/// [`Model::filter`](crate::Model::filter).
pub(crate) async fn filter<M: Model, T: FieldType, R>(
    mut target: Target<'_>,
    column: Column<M, T, R>,
    value: T,
) -> Result<Vec<M>> {
    let backend = target.backend();
    let st = M::__statements(backend);
    let i = column.index();
    if value.is_null() {
        return target
            .fetch_all(
                st.select_where_null[i].as_str(),
                Args::new(backend, 0),
                M::__load,
            )
            .await;
    }
    let mut args = Args::new(backend, 1);
    args.bind(&value, column.name())?;
    target
        .fetch_all(st.select_where[i].as_str(), args, M::__load)
        .await
}

/// The parent a reference field points at (`None` for a NULL reference or a missing row).
pub(crate) async fn parent_of<P: Model, F: RefersTo<P::Key>>(
    target: Target<'_>,
    field: &F,
) -> Result<Option<P>> {
    match field.referenced_key() {
        Some(key) => get::<P>(target, key.clone()).await,
        None => Ok(None),
    }
}

/// The children of `parent` through the reference field at `field_index` of `C`.
pub(crate) async fn children_of<C: Model, P: Model>(
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
        .fetch_all(st.select_where[field_index].as_str(), args, C::__load)
        .await
}
