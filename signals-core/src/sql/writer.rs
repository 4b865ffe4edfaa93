//! The one writer of SQL text: identifiers quoted and placeholders spelled as the backend
//! wants them, each placeholder numbered from the values bound before it, so that text and
//! arguments cannot drift apart (sqlx's `QueryBuilder::push_bind` works the same way).

use crate::backend::Backend;
use crate::error::Result;
use crate::value::{Args, DynField, FieldType};

/// A statement for one backend and the values bound to it, written left to right: text of
/// your own with [`push`](Self::push), identifiers with [`ident`](Self::ident) (quoted as the
/// backend quotes them), values with [`bind`](Self::bind) (a placeholder written and its value
/// bound: `$1`, `$2` on PostgreSQL, `?` elsewhere). Run it with `execute`, `fetch_all` or
/// `fetch_optional` on `&Db` or `&mut Tx`, reading rows into tuples of field types.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Sql};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
/// for name in ["rust", "sql"] {
///     let mut insert = Sql::new(db.backend());
///     insert.push("INSERT INTO ").ident("tag").push(" (name) VALUES (").bind(&name.to_owned())?.push(")");
///     assert_eq!(insert.execute(&db).await?, 1);
/// }
/// let mut select = Sql::new(db.backend());
/// select.push("SELECT id, name FROM tag WHERE name <> ").bind(&"sql".to_owned())?;
/// let rows: Vec<(i64, String)> = select.fetch_all(&db).await?;
/// assert_eq!(rows, [(1, "rust".to_owned())]);
/// # Ok(()) }
/// ```
pub struct Sql {
    text: String,
    backend: Backend,
    /// Placeholders written so far.
    params: usize,
    args: Args,
    /// Whose columns [`column`](Self::column) writes, and how it qualifies them.
    scope: Scope,
    /// Aliases handed out so far (subqueries and joins).
    aliases: u16,
}

/// The table whose columns a part of a statement names: the statement's own table (named
/// bare, or qualified by its name when the statement joins others), a subquery's table under
/// an alias of its own, or a joined table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    table: &'static str,
    alias: Alias,
    qualify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alias {
    /// The table's own name.
    Table,
    /// `_r<n>`: the table of a subquery.
    Sub(u16),
    /// `_j<n>`: a joined table.
    Join(u16),
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("backend", &self.backend)
            .field("text", &self.text)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Sql {
    /// An empty statement for `backend`.
    pub fn new(backend: Backend) -> Sql {
        Sql::with_capacity(backend, 0)
    }

    /// An empty statement for `backend`, with room for `values` bound values.
    pub(crate) fn with_capacity(backend: Backend, values: usize) -> Sql {
        Sql {
            text: String::with_capacity(64),
            backend,
            params: 0,
            args: Args::new(backend, values),
            scope: Scope {
                table: "",
                alias: Alias::Table,
                qualify: false,
            },
            aliases: 0,
        }
    }

    /// Makes `table` the statement's own table: [`column`](Self::column) names its columns
    /// bare, or qualified by the table's name with `qualify` (a statement that joins others).
    pub(crate) fn scope_of(&mut self, table: &'static str, qualify: bool) -> &mut Self {
        self.scope = Scope {
            table,
            alias: Alias::Table,
            qualify,
        };
        self
    }

    /// Appends `table AS _r<n>` and makes it the scope of what follows (a subquery's
    /// conditions), returning the scope to restore with [`leave`](Self::leave).
    pub(crate) fn enter(&mut self, table: &'static str) -> Scope {
        self.aliases += 1;
        let scope = Scope {
            table,
            alias: Alias::Sub(self.aliases),
            qualify: true,
        };
        self.ident(table).push(" AS ");
        self.qualifier(scope);
        std::mem::replace(&mut self.scope, scope)
    }

    /// A joined table's scope: its columns qualified by `_j<n>`, the alias of the `n`th join.
    pub(crate) fn join_scope(table: &'static str, n: u16) -> Scope {
        Scope {
            table,
            alias: Alias::Join(n),
            qualify: true,
        }
    }

    /// The current scope, to restore with [`leave`](Self::leave) after [`set_scope`](Self::set_scope).
    pub(crate) fn set_scope(&mut self, scope: Scope) -> Scope {
        std::mem::replace(&mut self.scope, scope)
    }

    /// Restores the scope [`enter`](Self::enter) or [`set_scope`](Self::set_scope) returned.
    pub(crate) fn leave(&mut self, scope: Scope) {
        self.scope = scope;
    }

    /// The current scope.
    pub(crate) fn scope(&self) -> Scope {
        self.scope
    }

    /// Appends how `scope`'s columns are qualified: its table's name or its alias.
    pub(crate) fn qualifier(&mut self, scope: Scope) -> &mut Self {
        match scope.alias {
            Alias::Table => self.ident(scope.table),
            Alias::Sub(n) => self.ident(&format!("_r{n}")),
            Alias::Join(n) => self.ident(&format!("_j{n}")),
        }
    }

    /// Appends the column `name` of `scope`, always qualified (a correlated subquery naming
    /// its outer row's column).
    pub(crate) fn column_of(&mut self, scope: Scope, name: &str) -> &mut Self {
        self.qualifier(scope).push(".").ident(name)
    }

    /// Appends the column `name` of the current scope: bare, or qualified when the statement
    /// names several tables.
    pub(crate) fn column(&mut self, name: &str) -> &mut Self {
        if self.scope.qualify {
            self.qualifier(self.scope).push(".");
        }
        self.ident(name)
    }

    /// The backend the statement is written for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Appends text as it is: SQL of your own, never a value (bind values with
    /// [`bind`](Self::bind)).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends `name` as a quoted identifier (`"name"`, or `` `name` `` on MySQL).
    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.backend.quote(&mut self.text, name);
        self
    }

    /// Appends a placeholder and binds `value` to it. A value the backend cannot store as it
    /// is (text with NUL on PostgreSQL, say) is [`Error::InvalidValue`](crate::Error).
    pub fn bind<T: FieldType>(&mut self, value: &T) -> Result<&mut Self> {
        self.bind_as(value, "argument")
    }

    /// [`bind`](Self::bind), naming `column` in the error of a value that cannot be stored.
    pub(crate) fn bind_as<T: FieldType>(
        &mut self,
        value: &T,
        column: &'static str,
    ) -> Result<&mut Self> {
        self.param();
        self.args.bind(value, column)?;
        Ok(self)
    }

    /// [`bind_as`](Self::bind_as) for a value whose type is erased.
    pub(crate) fn bind_dyn(&mut self, value: &dyn DynField, column: &'static str) -> Result<()> {
        self.param();
        value.bind_to(&mut self.args, column)
    }

    /// Appends a placeholder and binds what `bind` binds (one value: a model's field, say).
    pub(crate) fn bind_with(
        &mut self,
        bind: impl FnOnce(&mut Args) -> Result<()>,
    ) -> Result<&mut Self> {
        self.param();
        bind(&mut self.args)?;
        Ok(self)
    }

    /// Appends a placeholder for a value bound when the statement runs (a statement written
    /// once and run many times).
    pub(crate) fn param(&mut self) -> &mut Self {
        self.params += 1;
        self.backend.placeholder(&mut self.text, self.params);
        self
    }

    /// Appends `items`, each written by `write`, separated by `", "`: a list of values or
    /// of rows.
    ///
    /// ```
    /// use signals_core::{Backend, Sql};
    ///
    /// let mut sql = Sql::new(Backend::Postgres);
    /// sql.push("SELECT name FROM tag WHERE id IN (");
    /// sql.list([3_i64, 5, 8], |sql, id| sql.bind(&id).map(drop))?;
    /// sql.push(")");
    /// assert_eq!(sql.text(), "SELECT name FROM tag WHERE id IN ($1, $2, $3)");
    /// # Ok::<(), signals_core::Error>(())
    /// ```
    pub fn list<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut write: impl FnMut(&mut Sql, I) -> Result<()>,
    ) -> Result<&mut Self> {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            write(self, item)?;
        }
        Ok(self)
    }

    /// [`list`](Self::list) for writes that cannot fail: identifiers and placeholders.
    pub(crate) fn each<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut write: impl FnMut(&mut Sql, I),
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            write(self, item);
        }
        self
    }

    /// The text written so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many placeholders the text has.
    pub fn params(&self) -> usize {
        self.params
    }

    /// The text, for a statement whose values are bound when it runs.
    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// The text and the values bound to it.
    pub(crate) fn into_parts(self) -> (String, Args) {
        (self.text, self.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_the_values_bound() {
        let mut sql = Sql::new(Backend::Postgres);
        sql.push("SELECT * FROM ")
            .ident("a\"b")
            .push(" WHERE x = ")
            .bind(&1i64)
            .and_then(|s| {
                s.push(" AND y IN (")
                    .list([2i64, 3], |s, v| s.bind(&v).map(drop))
            })
            .map(|s| s.push(")"))
            .expect("binds");
        assert_eq!(
            sql.text(),
            r#"SELECT * FROM "a""b" WHERE x = $1 AND y IN ($2, $3)"#
        );
        assert_eq!(sql.params(), 3);
        let mut sql = Sql::new(Backend::MySql);
        sql.ident("t").push(" ").param().push(" ").param();
        assert_eq!(sql.text(), "`t` ? ?");
    }
}
