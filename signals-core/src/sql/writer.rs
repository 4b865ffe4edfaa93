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
        }
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
