//! SQL text, written once for every backend: [`Sql`] (`writer`), which quotes identifiers and
//! numbers each placeholder from the values bound before it, and the statements of a model
//! (`statements`), built once per model and backend. Text only: nothing here executes (the
//! executor of `tx` runs what is written here).
//!
//! Uses `backend` (the dialect), `error`, `value` (binding) and `meta`.

mod statements;
mod writer;

pub use statements::Statements;
pub(crate) use statements::{InList, multi_row_insert, multi_row_update, partial_update, where_in};
pub use writer::Sql;
