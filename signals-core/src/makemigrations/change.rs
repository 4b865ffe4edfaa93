//! What the parts of makemigrations share: the renames, a backend's changes, and the
//! comparisons of constraints and columns.

use crate::backend::Backend;
use crate::schema::ddl;
use crate::schema::state::{ColumnState, Constraint, Reference, State, TableState};

/// Renames, given or confirmed: never guessed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Renames {
    /// (old table, new table)
    pub(crate) tables: Vec<(String, String)>,
    /// (table as the models name it, old column, new column)
    pub(crate) columns: Vec<(String, String, String)>,
}

/// What one backend's migration does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Diff {
    /// Each change, in words, with a short name for the file.
    pub(crate) changes: Vec<(String, String)>,
    /// What the changes destroy.
    pub(crate) destroys: Vec<String>,
    /// The statements, in order.
    pub(crate) sql: Vec<String>,
    /// The state after the migration: the models', with the names the database has.
    pub(crate) state: State,
}

impl Diff {
    pub(crate) fn change(&mut self, slug: String, what: String) {
        self.changes.push((slug, what));
    }
}

pub(crate) fn same_reference(a: &Reference, b: &Reference) -> bool {
    a.column == b.column && a.table == b.table && a.to_column == b.to_column
}

/// A column as its type, nullability and default describe it, for messages.
pub(crate) fn describe(t: &TableState, c: &ColumnState, backend: Backend) -> String {
    let mut s = ddl::column_type(c, backend, t.indexed(&c.name));
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(" DEFAULT ");
        s.push_str(&ddl::literal(d, backend));
    }
    s
}

/// The constraints of `a` that `b` has none with the same columns of.
pub(crate) fn removed<'a>(a: &'a [Constraint], b: &[Constraint]) -> Vec<&'a Constraint> {
    a.iter()
        .filter(|x| !b.iter().any(|y| y.columns == x.columns))
        .collect()
}
