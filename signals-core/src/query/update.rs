//! The assignments of an atomic update ([`Set`]) and its SQL.
//!
//! Uses `backend`, `error`, `value` and `meta`; writes the conditions of its [`Query`].

use std::fmt;
use std::marker::PhantomData;

use super::Query;
use crate::backend::Backend;
use crate::error::Result;
use crate::meta::{Column, ModelMeta};
use crate::sql::Sql;
use crate::value::{DynField, FieldType};

/// The assignments of an atomic update ([`Query::update`]): `Author::POST_COUNT.add(1)`,
/// `Post::STATUS.set("archived")`, several joined with `&`.
pub struct Set<M> {
    items: Vec<(&'static str, Assign)>,
    _model: PhantomData<fn() -> M>,
}

enum Assign {
    /// `column = value`.
    Value(Box<dyn DynField>),
    /// `column = column + value`, computed by the database: no update is lost to a race.
    Add(Box<dyn DynField>),
}

impl<M> Set<M> {
    fn one(column: &'static str, assign: Assign) -> Self {
        Set {
            items: vec![(column, assign)],
            _model: PhantomData,
        }
    }
}

impl<M> std::ops::BitAnd for Set<M> {
    type Output = Set<M>;
    fn bitand(mut self, other: Set<M>) -> Set<M> {
        self.items.extend(other.items);
        self
    }
}

impl<M> fmt::Debug for Set<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<&str> = self.items.iter().map(|(c, _)| *c).collect();
        f.debug_tuple("Set").field(&columns).finish()
    }
}

/// A numeric field type, for [`Column::add`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number",
    label = "`add` needs a numeric column (an integer, f32, f64, Decimal, or an Option of one)"
)]
pub trait Numeric: FieldType {}
macro_rules! numeric {
    ($($ty:ty),*) => {$(
        impl Numeric for $ty {}
        impl Numeric for Option<$ty> {}
    )*};
}
numeric!(i8, i16, i32, i64, u8, u16, u32, f32, f64);
#[cfg(feature = "decimal")]
numeric!(rust_decimal::Decimal);

impl<M, T: FieldType, R> Column<M, T, R> {
    /// Sets the column to `value`, in [`Query::update`].
    pub fn set(self, value: impl Into<T>) -> Set<M> {
        Set::one(self.name(), Assign::Value(Box::new(value.into())))
    }
}

impl<M, T: Numeric, R> Column<M, T, R> {
    /// Adds `n` to the column (subtracts, when negative) in the database, in [`Query::update`]:
    /// Django's `F("count") + n`, safe against concurrent updates. A NULL stays NULL.
    #[allow(clippy::should_implement_trait)] // an assignment `col = col + n`, not a sum
    pub fn add(self, n: impl Into<T>) -> Set<M> {
        Set::one(self.name(), Assign::Add(Box::new(n.into())))
    }
}

impl<M> Query<M> {
    /// `UPDATE .. SET .. WHERE ..` of the query's rows on `backend`; a query with an ordering,
    /// a limit or an offset is refused (not every backend can update such a window).
    pub(crate) fn update_sql(
        &self,
        meta: &ModelMeta,
        backend: Backend,
        set: &Set<M>,
    ) -> Result<Sql> {
        if !self.order.is_empty() || self.limit.is_some() || self.offset.is_some() {
            return Err(crate::error::Error::InvalidQuery(format!(
                "`update` of `{}` rows takes conditions only: drop `order_by`, `limit` and \
                 `offset` (select the keys you mean with `in_` instead)",
                meta.name
            )));
        }
        let mut sql = Sql::with_capacity(backend, set.items.len() + 4);
        sql.scope_of(meta.table, false);
        sql.push("UPDATE ").ident(meta.table).push(" SET ");
        sql.list(&set.items, |sql, (column, assign)| {
            sql.ident(column).push(" = ");
            let value = match assign {
                Assign::Value(value) => value,
                Assign::Add(value) => {
                    sql.ident(column).push(" + ");
                    value
                }
            };
            sql.bind_dyn(value.as_ref(), column)
        })?;
        if let Some(filter) = &self.filter {
            sql.push(" WHERE ");
            filter.write(&mut sql)?;
        }
        Ok(sql)
    }
}
