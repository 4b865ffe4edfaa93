//! Items the derive's generated code uses, and nothing else. Not public API: no stability
//! promise.
//!
//! The top of the crate: uses every layer.

use std::future::Future;
use std::sync::OnceLock;

pub use inventory;
pub use serde_json;

use crate::backend::Backend;
use crate::error::Result;
use crate::kind::SignalKind;
use crate::meta::{Column, ColumnDef, FieldSet, ModelMeta};
use crate::model::{BulkSaved, Deleted, Model, Operations, SaveOptions, Saved};
pub use crate::ops::bulk::chunk_rows;
pub use crate::ops::cascade::{OnDelete, Relation, RelationKind};
use crate::ops::load::{children_of, parent_of};
pub use crate::ops::m2m::{Links, M2mLink};
pub use crate::signal::Hooks;
pub use crate::signal::hooks::at_row;
pub use crate::signal::m2m::Through;
pub use crate::signal::receiver::{
    HasTx, PostLoadReceiver, ReceiverFuture, post_load, receive, robust_enter, robust_leave,
    schedule_on_commit, schedule_on_commit_changed,
};
pub use crate::sql::Statements;
pub use crate::tx::{Savepoint, Target};
pub use crate::value::sqlite::{SqlRef, SqlValue};
pub use crate::value::{Args, Nullable, PrimaryKey, RefersTo, Row};
use crate::value::{BuiltinType, FieldType};

/// Notes, for `record_signals`, that a batch receiver runs now (for every row of its batch).
#[inline]
pub fn batch_receiver_runs() {
    crate::signal::muting::batch_starts();
}

/// Whether two values of a field differ as the database stores them (`changed(..)`, once
/// `!=` says they differ): times to the microsecond, decimals of a column with declared
/// places at that scale.
#[inline(never)]
pub fn stored_differs<T: FieldType>(new: &T, old: &T, places: Option<u32>) -> bool {
    match places {
        Some(places) => new.__json_scaled(places) != old.__json_scaled(places),
        None => new.__json() != old.__json(),
    }
}

/// The operations behind `Model`'s methods: a derived model's `__Ops`.
pub struct Ops;

impl<M: Hooks> Operations<M> for Ops {
    fn save(
        m: &mut M,
        target: Target<'_>,
        options: SaveOptions<M>,
    ) -> impl Future<Output = Result<Saved>> + Send {
        crate::ops::save::save(m, target, options)
    }

    fn delete(m: &mut M, target: Target<'_>) -> impl Future<Output = Result<Deleted>> + Send {
        crate::ops::delete::delete(m, target)
    }

    fn get(target: Target<'_>, key: M::Key) -> impl Future<Output = Result<Option<M>>> + Send {
        crate::ops::load::get(target, key)
    }

    fn get_for_update(
        target: Target<'_>,
        key: M::Key,
    ) -> impl Future<Output = Result<Option<M>>> + Send {
        crate::ops::load::get_for_update(target, key)
    }

    fn refresh(m: &mut M, target: Target<'_>) -> impl Future<Output = Result<()>> + Send {
        crate::ops::load::refresh(m, target)
    }

    fn bulk_save(
        rows: &mut [M],
        target: Target<'_>,
        fields: Option<FieldSet<M>>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        crate::ops::bulk::bulk_save(rows, target, fields)
    }

    fn bulk_delete(
        rows: &mut [M],
        target: Target<'_>,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        crate::ops::bulk_delete::bulk_delete(rows, target)
    }

    fn bulk_upsert(
        rows: &mut [M],
        target: Target<'_>,
        unique: FieldSet<M>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        crate::ops::upsert::bulk_upsert(rows, target, unique)
    }

    fn all(target: Target<'_>) -> impl Future<Output = Result<Vec<M>>> + Send {
        crate::ops::load::all(target)
    }

    fn filter<T: FieldType, R>(
        target: Target<'_>,
        column: Column<M, T, R>,
        value: T,
    ) -> impl Future<Output = Result<Vec<M>>> + Send {
        crate::ops::load::filter(target, column, value)
    }
}

/// The `__Ops` of the impl the derive emits next to its errors, which never runs: futures
/// that never resolve, so that the mistake is the only error.
pub struct Fallback;

impl<M: Model> Operations<M> for Fallback {
    fn save(
        _: &mut M,
        _: Target<'_>,
        _: SaveOptions<M>,
    ) -> impl Future<Output = Result<Saved>> + Send {
        std::future::pending()
    }

    fn delete(_: &mut M, _: Target<'_>) -> impl Future<Output = Result<Deleted>> + Send {
        std::future::pending()
    }

    fn get(_: Target<'_>, _: M::Key) -> impl Future<Output = Result<Option<M>>> + Send {
        std::future::pending()
    }

    fn get_for_update(_: Target<'_>, _: M::Key) -> impl Future<Output = Result<Option<M>>> + Send {
        std::future::pending()
    }

    fn refresh(_: &mut M, _: Target<'_>) -> impl Future<Output = Result<()>> + Send {
        std::future::pending()
    }

    fn bulk_save(
        _: &mut [M],
        _: Target<'_>,
        _: Option<FieldSet<M>>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        std::future::pending()
    }

    fn bulk_delete(_: &mut [M], _: Target<'_>) -> impl Future<Output = Result<Deleted>> + Send {
        std::future::pending()
    }

    fn bulk_upsert(
        _: &mut [M],
        _: Target<'_>,
        _: FieldSet<M>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        std::future::pending()
    }

    fn all(_: Target<'_>) -> impl Future<Output = Result<Vec<M>>> + Send {
        std::future::pending()
    }

    fn filter<T: FieldType, R>(
        _: Target<'_>,
        _: Column<M, T, R>,
        _: T,
    ) -> impl Future<Output = Result<Vec<M>>> + Send {
        std::future::pending()
    }
}

/// `sqlx::FromRow` for a model, on any backend's row: the model's columns are found by name,
/// in whatever order the query returned them, and decoded as the crate's own loads decode them.
pub fn from_sqlx_row<M: Model, R>(raw: &R, row: Row<'_>) -> std::result::Result<M, sqlx::Error>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let mut ordinals = Vec::with_capacity(M::META.columns.len());
    for column in M::META.columns {
        ordinals.push(sqlx::Column::ordinal(raw.try_column(*column)?));
    }
    M::__load(&Row::Mapped(&row, &ordinals)).map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

/// A row of one of the backends, which a model's `sqlx::FromRow` (one generic impl per model,
/// not one per backend) reads with [`from_sqlx_row`].
pub trait ModelRow: sqlx::Row {
    /// Reads a model from the row.
    fn __model<M: Model>(&self) -> std::result::Result<M, sqlx::Error>;
}

impl ModelRow for sqlx::sqlite::SqliteRow {
    fn __model<M: Model>(&self) -> std::result::Result<M, sqlx::Error> {
        from_sqlite_row(self)
    }
}

impl ModelRow for sqlx::postgres::PgRow {
    fn __model<M: Model>(&self) -> std::result::Result<M, sqlx::Error> {
        from_postgres_row(self)
    }
}

impl ModelRow for sqlx::mysql::MySqlRow {
    fn __model<M: Model>(&self) -> std::result::Result<M, sqlx::Error> {
        from_mysql_row(self)
    }
}

/// [`from_sqlx_row`] for SQLite rows.
pub fn from_sqlite_row<M: Model>(
    row: &sqlx::sqlite::SqliteRow,
) -> std::result::Result<M, sqlx::Error> {
    from_sqlx_row(row, Row::Sqlite(row))
}

/// [`from_sqlx_row`] for PostgreSQL rows.
pub fn from_postgres_row<M: Model>(
    row: &sqlx::postgres::PgRow,
) -> std::result::Result<M, sqlx::Error> {
    from_sqlx_row(row, Row::Postgres(row))
}

/// [`from_sqlx_row`] for MySQL rows.
pub fn from_mysql_row<M: Model>(
    row: &sqlx::mysql::MySqlRow,
) -> std::result::Result<M, sqlx::Error> {
    from_sqlx_row(row, Row::MySql(row))
}

/// A model's statements, built once per backend on first use.
pub struct StatementCache([OnceLock<Statements>; 3]);

impl StatementCache {
    /// An empty cache, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        StatementCache([const { OnceLock::new() }; 3])
    }

    /// The statements of `meta` for `backend`.
    pub fn get(&self, meta: &ModelMeta, backend: Backend) -> &Statements {
        self.0[backend.index()].get_or_init(|| Statements::build(meta, backend))
    }
}

/// The column constant of the field at `index`.
pub const fn column<M, T, R>(index: usize, name: &'static str) -> Column<M, T, R> {
    Column::new(index, name)
}

/// A column of the schema, for `Model::__COLUMNS`: `S` is the field type's stored type.
#[allow(clippy::too_many_arguments)]
pub const fn column_def<S: BuiltinType>(
    name: &'static str,
    field: &'static str,
    rust_type: &'static str,
    primary_key: bool,
    auto_increment: bool,
    unique: bool,
    max_length: Option<u32>,
    decimal: Option<(u32, u32)>,
    index: bool,
    default: Option<crate::meta::DbDefault>,
) -> ColumnDef {
    let mut def = ColumnDef::new::<S>(name, field, rust_type);
    def.primary_key = primary_key;
    def.auto_increment = auto_increment;
    def.unique = unique;
    def.max_length = max_length;
    def.decimal = decimal;
    def.index = index;
    def.default = default;
    def
}

/// `#[model(max_length = N)]` is for text columns.
#[diagnostic::on_unimplemented(
    message = "`max_length` is for text columns, but this field is `{Self}`",
    label = "not stored as text"
)]
pub trait MaxLength {}
impl<T: crate::query::Text> MaxLength for T {}

/// `#[model(max_digits = .., decimal_places = ..)]` is for decimal columns.
#[diagnostic::on_unimplemented(
    message = "`max_digits` and `decimal_places` are for `rust_decimal::Decimal` columns, but this field is `{Self}`",
    label = "not stored as a decimal"
)]
pub trait DecimalDigits {}
#[cfg(feature = "decimal")]
impl<T: FieldType> DecimalDigits for T where T::Stored: IsDecimal {}
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`max_digits` and `decimal_places` are for `rust_decimal::Decimal` fields, but this one is stored as `{Self}`",
    label = "not a decimal"
)]
pub trait IsDecimal {}
#[cfg(feature = "decimal")]
impl IsDecimal for rust_decimal::Decimal {}
#[cfg(feature = "decimal")]
impl IsDecimal for Option<rust_decimal::Decimal> {}

macro_rules! default_literals {
    ($($check:ident / $store:ident: $doc:literal, $msg:literal, $store_msg:literal for [$($ty:ty),*];)*) => {$(
        #[doc = $doc]
        #[diagnostic::on_unimplemented(message = $msg, label = "not a column for this literal")]
        pub trait $check {}
        impl<T: FieldType> $check for T where T::Stored: $store {}
        #[doc(hidden)]
        #[diagnostic::on_unimplemented(message = $store_msg, label = "not a column for this literal")]
        pub trait $store {}
        $(impl $store for $ty {} impl $store for Option<$ty> {})*
    )*};
}
default_literals! {
    DefaultText / StoresText:
        "`#[model(default = \"..\")]`: text, decimal and date fields.",
        "`default` is a string, which this field cannot hold: it is `{Self}`",
        "`default` is a string, which a column of `{Self}` cannot hold"
        for [String, chrono::NaiveDate];
    DefaultInt / StoresInt:
        "`#[model(default = 0)]`: number fields.",
        "`default` is an integer, which this field cannot hold: it is `{Self}`",
        "`default` is an integer, which a column of `{Self}` cannot hold"
        for [i16, i32, i64, f32, f64];
    DefaultFloat / StoresFloat:
        "`#[model(default = 0.5)]`: float and decimal fields.",
        "`default` is a float, which this field cannot hold: it is `{Self}`",
        "`default` is a float, which a column of `{Self}` cannot hold"
        for [f32, f64];
    DefaultBool / StoresBool:
        "`#[model(default = false)]`: `bool` fields.",
        "`default` is a boolean, which this field cannot hold: it is `{Self}`",
        "`default` is a boolean, which a column of `{Self}` cannot hold"
        for [bool];
}
#[cfg(feature = "decimal")]
impl StoresText for rust_decimal::Decimal {}
#[cfg(feature = "decimal")]
impl StoresText for Option<rust_decimal::Decimal> {}
#[cfg(feature = "decimal")]
impl StoresInt for rust_decimal::Decimal {}
#[cfg(feature = "decimal")]
impl StoresInt for Option<rust_decimal::Decimal> {}
#[cfg(feature = "decimal")]
impl StoresFloat for rust_decimal::Decimal {}
#[cfg(feature = "decimal")]
impl StoresFloat for Option<rust_decimal::Decimal> {}

/// Whether field `name` was saved: `update_fields` names it, or every field was saved.
pub fn saved_field(update_fields: Option<&[&'static str]>, name: &str) -> bool {
    update_fields.is_none_or(|fields| fields.contains(&name))
}

/// The set of signal kinds with receivers wired, for `Hooks::__WIRED`.
pub const fn wired(kinds: &[SignalKind]) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < kinds.len() {
        bits |= kinds[i].bit();
        i += 1;
    }
    bits
}

/// Checks at compile time that a `set_null` field is nullable.
pub const fn assert_nullable<F: Nullable>() {}

use crate::signal::BoxFuture;
type ParentFn<P, F> = for<'e> fn(Target<'e>, &'e F) -> BoxFuture<'e, Result<Option<P>>>;
type ChildrenFn<C, P> = for<'e> fn(Target<'e>, &'e P, usize) -> BoxFuture<'e, Result<Vec<C>>>;

/// One reference field of child `C` to parent `P`, held in field type `F`: its registration
/// and its loaders. Built by [`reference`], the one place its bounds are checked, so a wrong
/// parent or key type is reported once.
pub struct Reference<C, P, F> {
    /// The registration for the parent's delete.
    pub relation: Relation,
    field_index: usize,
    parent: ParentFn<P, F>,
    children: ChildrenFn<C, P>,
}

/// Builds the [`Reference`] of the field at `field_index` of `C`.
pub const fn reference<C, P, F>(
    field_index: usize,
    on_delete: OnDelete,
    kind: RelationKind,
) -> Reference<C, P, F>
where
    C: Hooks,
    P: Model,
    F: RefersTo<P::Key> + Sync,
{
    Reference {
        relation: Relation::new::<C, P>(field_index, on_delete, kind),
        field_index,
        parent: load_parent::<P, F>,
        children: load_children::<C, P>,
    }
}

fn load_parent<'e, P: Model, F: RefersTo<P::Key> + Sync>(
    target: Target<'e>,
    field: &'e F,
) -> BoxFuture<'e, Result<Option<P>>> {
    Box::pin(parent_of::<P, F>(target, field))
}

fn load_children<'e, C: Model, P: Model>(
    target: Target<'e>,
    parent: &'e P,
    field_index: usize,
) -> BoxFuture<'e, Result<Vec<C>>> {
    Box::pin(children_of::<C, P>(target, parent, field_index))
}

impl<C, P, F> Reference<C, P, F> {
    /// Loads the parent `field` refers to.
    pub fn parent<'e>(&self, target: Target<'e>, field: &'e F) -> BoxFuture<'e, Result<Option<P>>> {
        (self.parent)(target, field)
    }

    /// Loads the children of `parent`.
    pub fn children<'e>(&self, target: Target<'e>, parent: &'e P) -> BoxFuture<'e, Result<Vec<C>>> {
        (self.children)(target, parent, self.field_index)
    }
}
