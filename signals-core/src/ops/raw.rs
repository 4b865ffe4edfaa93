//! Running a [`Raw`] query: its rows, as models.
//!
//! Uses `error`, `query`, `tx`, `value` and `model`.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::Raw;
use crate::tx::{Executor, Target};
use crate::value::{Args, Row};

/// A row of a query of the user's own, read as a model with each field from the column of its
/// name, wherever the query put it.
fn load_by_name<M: Model>(row: &Row<'_>) -> Result<M> {
    thread_local! {
        /// The ordinals of one row, reused from row to row: no allocation per row.
        static ORDINALS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut ordinals = ORDINALS.with(|o| std::mem::take(&mut *o.borrow_mut()));
    ordinals.clear();
    for column in M::META.columns {
        let Some(ordinal) = row.ordinal_of(column) else {
            return Err(Error::Decode {
                model: M::META.name,
                column,
                source: sqlx::Error::ColumnNotFound((*column).to_owned()),
            });
        };
        ordinals.push(ordinal);
    }
    let loaded = M::__load(&Row::Mapped(row, &ordinals));
    ORDINALS.with(|o| *o.borrow_mut() = ordinals);
    loaded
}

impl<M: Model> Raw<M> {
    /// Every row the query returns, as models, in its order.
    pub fn all<'e>(
        self,
        ex: impl Executor<'e> + 'e,
    ) -> impl Future<Output = Result<Vec<M>>> + Send + 'e
    where
        M: 'e,
    {
        let target = ex.__target();
        async move {
            let mut target = target;
            let (sql, args) = self.parts(&target)?;
            target
                .fetch_all(sqlx::AssertSqlSafe(sql), args, load_by_name::<M>)
                .await
        }
    }

    /// The first row the query returns, if any, as a model (the rest are not read: give the
    /// query its own `LIMIT`).
    pub fn first<'e>(
        self,
        ex: impl Executor<'e> + 'e,
    ) -> impl Future<Output = Result<Option<M>>> + Send + 'e
    where
        M: 'e,
    {
        let target = ex.__target();
        async move {
            let mut target = target;
            let (sql, args) = self.parts(&target)?;
            target
                .fetch_optional(sqlx::AssertSqlSafe(sql), args, load_by_name::<M>)
                .await
        }
    }

    /// The text for the target's backend and the bound values, as many as its placeholders.
    fn parts(&self, target: &Target<'_>) -> Result<(String, Args)> {
        let backend = target.backend();
        let (sql, placeholders) = self.text(backend);
        if placeholders != self.values.len() {
            return Err(Error::InvalidQuery(format!(
                "the raw query of `{}` has {placeholders} placeholder(s) and {} bound value(s)",
                M::META.name,
                self.values.len()
            )));
        }
        let mut args = Args::new(backend, self.values.len());
        for value in &self.values {
            value.bind_to(&mut args, "a raw query's parameter")?;
        }
        Ok((sql, args))
    }
}
