//! Orderings of a model's rows ([`Order`]): by a column, by a column of a row a reference leads
//! to (a join, [`Via`]), or by an aggregate ([`Expression`]). Their SQL is written by the query
//! that holds them.
//!
//! Uses `error` and `sql`.

use std::fmt;
use std::marker::PhantomData;

use crate::error::Result;
use crate::sql::Sql;

/// SQL of a value computed per row or per group (an aggregate), to order by.
pub(crate) trait Expression: fmt::Debug + Send + Sync {
    /// Appends the expression's SQL, binding its values.
    fn write(&self, sql: &mut Sql) -> Result<()>;

    /// Whether it aggregates rows (so only a grouped query has it), rather than being a value
    /// per row (a count of related rows).
    fn groups(&self) -> bool;
}

/// An ordering of the rows of model `M`: `Post::VIEWS.desc()`, or by a column of a row a
/// reference leads to (`Profile::USER_ID.by(User::USERNAME.asc())`).
pub struct Order<M> {
    pub(super) term: Term,
    _model: PhantomData<fn() -> M>,
}

/// An ordering with its model erased.
#[derive(Debug)]
pub(super) struct Term {
    pub(super) column: &'static str,
    pub(super) descending: bool,
    pub(super) numeric_text: bool,
    /// Text in code point order (`Some`), its ASCII letters' case ignored (`Some(true)`).
    pub(super) binary: Option<bool>,
    /// The references that lead from the query's rows to the column's table (joined), the
    /// query's own first; none for a column of the query's own table.
    pub(super) via: Vec<Via>,
    /// An aggregate instead of a column.
    pub(super) expr: Option<Box<dyn Expression>>,
}

/// A reference followed by a join: the referring `column` of the table before it, and the
/// referenced table with its key and columns.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    pub(crate) column: &'static str,
    pub(crate) table: &'static str,
    pub(crate) key: &'static str,
    pub(crate) columns: &'static [&'static str],
    /// Whether the reference can be NULL: a LEFT JOIN keeps its rows; a reference that
    /// cannot be NULL names a row, and an inner join lets the database start from either
    /// table (from an index of the referenced one, for an ordering by it).
    pub(crate) nullable: bool,
}

impl<M> Order<M> {
    pub(super) fn new(term: Term) -> Self {
        Order {
            term,
            _model: PhantomData,
        }
    }

    pub(super) fn text(column: &'static str, descending: bool, fold: bool) -> Self {
        Order::new(Term {
            column,
            descending,
            numeric_text: false,
            binary: Some(fold),
            via: Vec::new(),
            expr: None,
        })
    }

    /// The same ordering reached from another model's rows through the reference `via`.
    pub(crate) fn through<C>(mut self, via: Via) -> Order<C> {
        self.term.via.insert(0, via);
        Order::new(self.term)
    }
}

impl<M> fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.term.descending { "DESC" } else { "ASC" };
        let mut path = String::new();
        for via in &self.term.via {
            path.push_str(via.column);
            path.push_str("->");
        }
        write!(f, "Order({path}{} {direction})", self.term.column)
    }
}
