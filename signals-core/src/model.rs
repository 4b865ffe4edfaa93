//! The public [`Model`] trait, and what its operations take and return ([`SaveOptions`],
//! [`Saved`], [`Deleted`]).
//!
//! Uses `error`, `backend`, `value`, `meta`, `sql` and `tx` (the executors). The operations
//! themselves live in `ops`, above this module: `Model`'s methods reach them through its
//! hidden `__Ops` type, which the derive sets to `__private::Ops` ([`Operations`] says what it
//! provides), and the receivers through `signal::Hooks`.

use std::fmt;
use std::future::Future;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::meta::{Column, ColumnDef, FieldSet, ModelMeta};
use crate::query::Query;
use crate::sql::Statements;
use crate::tx::{Executor, Target, Tx};
use crate::value::{Args, FieldType, Row};

/// What [`Model::save`] did; see the example of [`Model::save`].
#[derive(Debug)]
pub struct Saved {
    pub(crate) created: bool,
    pub(crate) receiver_errors: Vec<Error>,
    pub(crate) post_commit_errors: Vec<Error>,
}

impl Saved {
    /// `true` when the save INSERTed a row, `false` when it UPDATEd one.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The errors of receivers marked `robust` (`#[post_save(notify, robust)]`), which were
    /// logged and undone alone instead of failing the save. Empty when all went well.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{BoxError, Db, Model, PostSave, Result};
    ///
    /// #[derive(Model)]
    /// #[post_save(notify, robust)]
    /// struct Order { id: Option<i64> }
    ///
    /// async fn notify(_: &Order, _: &mut PostSave<'_>) -> Result<()> {
    ///     Err(BoxError::from("mail server down").into())
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE \"order\" (id INTEGER PRIMARY KEY)").await?;
    /// let saved = Order { id: None }.save(&db).await?; // the order is saved all the same
    /// assert_eq!(saved.receiver_errors().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn receiver_errors(&self) -> &[Error] {
        &self.receiver_errors
    }

    /// The errors of `#[on_commit]` receivers, which ran after this save committed: the save
    /// stands. Only a save that ran its own transaction (given `&Db`) sees them; inside a
    /// caller's transaction they run at its commit: see [`Tx::commit_reporting`].
    ///
    /// [`Tx::commit_reporting`]: crate::Tx::commit_reporting
    pub fn post_commit_errors(&self) -> &[Error] {
        &self.post_commit_errors
    }
}

/// What [`Model::delete`] deleted: the instance's row and the rows its cascade reached.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model};
///
/// #[derive(Model)]
/// struct Author { id: Option<i64> }
///
/// #[derive(Model)]
/// struct Book {
///     id: Option<i64>,
///     #[model(foreign_key = Author, on_delete = cascade)]
///     author_id: i64,
/// }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared(
///     "CREATE TABLE author (id INTEGER PRIMARY KEY);
///      CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES author(id));",
/// ).await?;
/// let mut author = Author { id: None };
/// author.save(&db).await?;
/// for _ in 0..2 {
///     Book { id: None, author_id: author.id.unwrap() }.save(&db).await?;
/// }
/// let deleted = author.delete(&db).await?;
/// assert_eq!(deleted.total(), 3);
/// assert_eq!(deleted.per_model(), [("Book", 2), ("Author", 1)]);
/// assert_eq!(author.id, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Deleted {
    pub(crate) per_model: Vec<(&'static str, u64)>,
    pub(crate) receiver_errors: Vec<Error>,
    pub(crate) post_commit_errors: Vec<Error>,
}

impl Deleted {
    /// The errors of delete receivers marked `robust`, logged and undone alone instead of
    /// failing the delete; see [`Saved::receiver_errors`].
    pub fn receiver_errors(&self) -> &[Error] {
        &self.receiver_errors
    }

    /// The errors of `#[on_commit]` receivers that ran after the delete committed; see
    /// [`Saved::post_commit_errors`].
    pub fn post_commit_errors(&self) -> &[Error] {
        &self.post_commit_errors
    }

    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.per_model.iter().map(|(_, n)| n).sum()
    }

    /// Rows deleted per model, in the order the models were deleted (children first).
    pub fn per_model(&self) -> &[(&'static str, u64)] {
        &self.per_model
    }

    pub(crate) fn add(&mut self, model: &'static str, rows: u64) {
        match self.per_model.iter_mut().find(|(m, _)| *m == model) {
            Some((_, n)) => *n += rows,
            None => self.per_model.push((model, rows)),
        }
    }
}

/// How [`Model::save_with`] saves.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, SaveOptions};
///
/// #[derive(Model)]
/// struct User { id: Option<i64>, username: String, email: String }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT, email TEXT)").await?;
/// let mut user = User { id: None, username: "john".into(), email: "a@x.org".into() };
/// user.save(&db).await?;
///
/// user.username = "changed, not saved".into();
/// user.email = "b@x.org".into();
/// user.save_with(&db, SaveOptions::new().update_fields(User::EMAIL)).await?;
/// let row = User::get(&db, user.id.unwrap()).await?.unwrap();
/// assert_eq!((row.username.as_str(), row.email.as_str()), ("john", "b@x.org"));
/// # Ok(()) }
/// ```
pub struct SaveOptions<M> {
    pub(crate) update_fields: Option<FieldSet<M>>,
    pub(crate) raw: bool,
    pub(crate) quiet: bool,
}

impl<M> SaveOptions<M> {
    /// A plain save, as [`Model::save`] does.
    pub fn new() -> Self {
        SaveOptions {
            update_fields: None,
            raw: false,
            quiet: false,
        }
    }

    /// Saves only these fields (Django's `update_fields`), with an UPDATE of just those
    /// columns; the receivers see their names in `signal.update_fields()`. The instance must
    /// have a key and a row: no INSERT happens, and a missing row is [`Error::NotFound`]. An
    /// empty set saves nothing and sends no signal. Changes a `pre_save` receiver makes to
    /// fields outside the set stay on the instance and are not written.
    ///
    /// [`Error::NotFound`]: crate::Error::NotFound
    pub fn update_fields(mut self, fields: impl Into<FieldSet<M>>) -> Self {
        self.update_fields = Some(fields.into());
        self
    }

    /// Marks the save as raw (Django's `raw=True`, as when loading fixtures): the row is
    /// written as it is and receivers see `signal.raw() == true`, so they can skip touching
    /// other rows.
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Sends no signal at all: just the write, one statement, no transaction.
    pub fn quietly(mut self) -> Self {
        self.quiet = true;
        self
    }
}

impl<M> Default for SaveOptions<M> {
    fn default() -> Self {
        SaveOptions::new()
    }
}

impl<M> fmt::Debug for SaveOptions<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveOptions")
            .field("update_fields", &self.update_fields)
            .field("raw", &self.raw)
            .field("quiet", &self.quiet)
            .finish()
    }
}

/// A struct stored as a table row, with signals on save and delete.
///
/// Implement it with `#[derive(Model)]` (the derive has the same name and lives here too):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, PostSave, Result};
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "account_user")]
/// #[post_save(create_profile)]
/// pub struct User {
///     pub id: Option<i64>,
///     pub username: String,
/// }
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "account_profile")]
/// pub struct Profile {
///     pub id: Option<i64>,
///     #[model(one_to_one = User, on_delete = cascade)]
///     pub user_id: i64,
///     pub date_of_birth: Option<chrono::NaiveDate>,
/// }
///
/// async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
///     if signal.created() {
///         let user_id = user.id.expect("a saved user has an id");
///         Profile { id: None, user_id, date_of_birth: None }.save(signal.tx()).await?;
///     }
///     Ok(())
/// }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared(
///     "CREATE TABLE account_user (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE);
///      CREATE TABLE account_profile (id INTEGER PRIMARY KEY,
///          user_id INTEGER NOT NULL UNIQUE REFERENCES account_user(id),
///          date_of_birth DATE);",
/// ).await?;
///
/// let mut user = User { id: None, username: "johndoe".into() };
/// assert!(user.save(&db).await?.created());
/// let profile = Profile::for_user(&db, &user).await?.expect("created by the receiver");
/// assert_eq!(profile.user_id, user.id.unwrap());
///
/// user.delete(&db).await?; // cascades to the profile
/// assert!(Profile::all(&db).await?.is_empty());
/// # Ok(()) }
/// ```
///
/// # SQL of your own
///
/// Every model is also an `sqlx::FromRow` for each backend's row, so a query of your own reads
/// straight into it: the model's columns are found by name, in any order, and decoded exactly
/// as [`get`](Self::get) decodes them (a missing column or a wrong type is an error naming it).
/// Placeholders are the backend's own: `$1` on PostgreSQL, `?` elsewhere.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, PoolRef, sqlx};
///
/// #[derive(Debug, Model)]
/// struct Post { id: Option<i64>, title: String, views: i64 }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT NOT NULL, views INTEGER NOT NULL)").await?;
/// for (title, views) in [("a", 3), ("b", 10), ("c", 7)] {
///     Post { id: None, title: title.into(), views }.save(&db).await?;
/// }
/// if let PoolRef::Sqlite(pool) = db.pool() {
///     let popular: Vec<Post> =
///         sqlx::query_as("SELECT views, title, id FROM post WHERE views > ? ORDER BY views DESC")
///             .bind(5)
///             .fetch_all(pool)
///             .await?;
///     assert_eq!(popular.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["b", "c"]);
/// }
/// # Ok(()) }
/// ```
///
/// Inside a transaction, run your SQL on [`Tx::conn`](crate::Tx::conn): it is the transaction's
/// own connection, so your statements and the saves commit or roll back together. A
/// `sqlx::Transaction` of your own cannot be handed to the crate's operations (on SQLite the
/// crate's transactions run on the connection's handle, outside sqlx's bookkeeping): begin with
/// [`Db::begin`](crate::Db::begin) and use `tx.conn()` for the sqlx side, and wrap a pool you
/// configured yourself with `Db::from(pool)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model",
    label = "not a model",
    note = "derive it: `#[derive(signals_core::Model)]`"
)]
pub trait Model: Sized + Send + Sync + 'static {
    /// The primary key's value type (`i64` for an `Option<i64>` key).
    type Key: FieldType + Clone + Ord;

    /// The model's table, columns and receivers.
    const META: ModelMeta;

    /// Each column as the [schema](crate::schema) sees it, in field order.
    #[doc(hidden)]
    const __COLUMNS: &'static [ColumnDef] = &[];

    /// The columns of each `unique_together` set, for the schema.
    #[doc(hidden)]
    const __UNIQUE_TOGETHER: &'static [&'static [&'static str]] = &[];

    /// Field `index`, for old values.
    #[doc(hidden)]
    fn __field(&self, index: usize) -> &dyn std::any::Any;

    /// Field `index` as JSON, for type-erased instances.
    #[doc(hidden)]
    fn __json(&self, index: usize) -> serde_json::Value;

    /// The operations behind the methods below (`__private::Ops`).
    #[doc(hidden)]
    type __Ops: Operations<Self>;

    #[doc(hidden)]
    fn __statements(backend: Backend) -> &'static Statements;
    #[doc(hidden)]
    fn __key(&self) -> Option<&Self::Key>;
    #[doc(hidden)]
    fn __set_generated_key(&mut self, id: i64) -> Result<()>;
    #[doc(hidden)]
    fn __clear_key(&mut self);
    /// Binds every non-key field, in declaration order.
    #[doc(hidden)]
    fn __bind_values(&self, args: &mut Args) -> Result<()>;
    /// Binds the field at `index`.
    #[doc(hidden)]
    fn __bind_field(&self, index: usize, args: &mut Args) -> Result<()>;
    #[doc(hidden)]
    fn __from_row(row: &Row<'_>) -> Result<Self>;

    /// Saves the instance: INSERT when it has no primary key (reading the new key back into
    /// it), otherwise UPDATE, falling back to INSERT when no row has the key — Django's rules.
    ///
    /// `pre_save` receivers, the write and `post_save` receivers run in one transaction (a
    /// savepoint when `ex` is a [`Tx`](crate::Tx)); an error from any of them rolls all of it
    /// back and is returned. A model without save receivers runs its write as a single
    /// statement, with no transaction.
    ///
    /// A save that races a delete of the same row brings the row back when its UPDATE runs
    /// after the delete committed (it matches nothing, so the save INSERTs), as in Django. Where
    /// that must not happen, save with [`SaveOptions::update_fields`], which never inserts, or
    /// load the row with [`get_for_update`](Self::get_for_update) in the transaction.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
    /// let mut tag = Tag { id: None, name: "rust".into() };
    /// assert!(tag.save(&db).await?.created());
    /// assert_eq!(tag.id, Some(1));
    /// tag.name = "Rust".into();
    /// assert!(!tag.save(&db).await?.created());
    /// # Ok(()) }
    /// ```
    fn save<'e>(&mut self, ex: impl Executor<'e>) -> impl Future<Output = Result<Saved>> + Send {
        Self::__Ops::save(self, ex.__target(), SaveOptions::new())
    }

    /// [`save`](Self::save) with options: only some fields, raw, or without signals. See
    /// [`SaveOptions`].
    fn save_with<'e>(
        &mut self,
        ex: impl Executor<'e>,
        options: SaveOptions<Self>,
    ) -> impl Future<Output = Result<Saved>> + Send {
        Self::__Ops::save(self, ex.__target(), options)
    }

    /// Deletes the instance's row, with its cascade: rows that refer to it with
    /// `on_delete = cascade` are deleted too (with their own delete receivers), `set_null`
    /// references are cleared, and `restrict` references refuse the delete with
    /// [`Error::Restricted`](crate::Error::Restricted).
    ///
    /// Receivers run in Django's order, all in one transaction: `pre_delete` of the cascaded
    /// rows, then of the instance; then model by model, children before their parents, each
    /// group's rows are deleted and get their `post_delete` — so a child's `post_delete` still
    /// reads its parent — and the instance's row and `post_delete` come last. Afterwards a database-assigned key is cleared (`id` becomes `None`), so
    /// saving the instance again inserts a new row.
    ///
    /// Fails with [`Error::NotSaved`](crate::Error::NotSaved) when the instance has no key,
    /// and [`Error::NotFound`](crate::Error::NotFound) when no row has it.
    fn delete<'e>(
        &mut self,
        ex: impl Executor<'e>,
    ) -> impl Future<Output = Result<Deleted>> + Send {
        Self::__Ops::delete(self, ex.__target())
    }

    /// Loads the row with primary key `key`, if there is one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// # use signals_core::{Db, Model};
    /// # #[derive(Model)] struct Tag { id: Option<i64>, name: String }
    /// # let db = Db::connect("sqlite::memory:").await?;
    /// # db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
    /// Tag { id: None, name: "rust".into() }.save(&db).await?;
    /// assert_eq!(Tag::get(&db, 1).await?.map(|t| t.name), Some("rust".into()));
    /// assert!(Tag::get(&db, 2).await?.is_none());
    /// # Ok(()) }
    /// ```
    fn get<'e>(
        ex: impl Executor<'e>,
        key: Self::Key,
    ) -> impl Future<Output = Result<Option<Self>>> + Send {
        Self::__Ops::get(ex.__target(), key)
    }

    /// Loads the row with primary key `key` in transaction `tx` and locks it until `tx` ends
    /// (`SELECT .. FOR UPDATE`; on SQLite a transaction holds the write lock from its start).
    /// Another transaction's save or delete of that row waits meanwhile: the way to
    /// read-modify-write a row without losing a concurrent update, and to keep a save from
    /// bringing back a row that a concurrent delete removed (a plain save whose UPDATE matches
    /// nothing INSERTs, as Django's does; a save with `update_fields` never inserts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Error, Model, SaveOptions, Tx};
    ///
    /// #[derive(Model)]
    /// struct Account { id: Option<i64>, balance: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)").await?;
    /// Account { id: None, balance: 10 }.save(&db).await?;
    ///
    /// db.transaction(async |tx: &mut Tx| {
    ///     let mut account = Account::get_for_update(tx, 1).await?.expect("account 1 exists");
    ///     account.balance += 5; // nobody else changes it meanwhile
    ///     account.save_with(tx, SaveOptions::new().update_fields(Account::BALANCE)).await?;
    ///     Ok::<_, Error>(())
    /// })
    /// .await?;
    /// assert_eq!(Account::get(&db, 1).await?.map(|a| a.balance), Some(15));
    /// # Ok(()) }
    /// ```
    fn get_for_update(
        tx: &mut Tx,
        key: Self::Key,
    ) -> impl Future<Output = Result<Option<Self>>> + Send {
        Self::__Ops::get_for_update(Target::Tx(tx), key)
    }

    /// Reloads every field from the instance's row (Django's `refresh_from_db`): what a
    /// receiver, another task or another process changed since it was loaded. Fails with
    /// [`Error::NotSaved`](crate::Error::NotSaved) when the instance has no key and
    /// [`Error::NotFound`](crate::Error::NotFound) when its row is gone (the instance is left
    /// as it was then).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, post_count: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE author (id INTEGER PRIMARY KEY, post_count INTEGER NOT NULL)").await?;
    /// let mut stale = Author { id: None, post_count: 0 };
    /// stale.save(&db).await?;
    /// db.execute_unprepared("UPDATE author SET post_count = 2").await?; // a receiver's count
    /// stale.refresh(&db).await?; // before writing it back
    /// assert_eq!(stale.post_count, 2);
    /// # Ok(()) }
    /// ```
    fn refresh<'e>(&mut self, ex: impl Executor<'e>) -> impl Future<Output = Result<()>> + Send {
        Self::__Ops::refresh(self, ex.__target())
    }

    /// A typed query of this model's rows: conditions on its column constants, orderings,
    /// limit and offset; see [`Query`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String, uses: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL, uses INTEGER NOT NULL)").await?;
    /// for (name, uses) in [("rust", 9), ("sql", 4), ("go", 2)] {
    ///     Tag { id: None, name: name.into(), uses }.save(&db).await?;
    /// }
    /// let names: Vec<String> = Tag::query()
    ///     .filter(Tag::USES.ge(3))
    ///     .order_by(Tag::NAME.asc())
    ///     .all(&db)
    ///     .await?
    ///     .into_iter()
    ///     .map(|t| t.name)
    ///     .collect();
    /// assert_eq!(names, ["rust", "sql"]);
    /// # Ok(()) }
    /// ```
    fn query() -> Query<Self> {
        Query::default()
    }

    /// Loads every row, ordered by primary key.
    fn all<'e>(ex: impl Executor<'e>) -> impl Future<Output = Result<Vec<Self>>> + Send {
        Self::__Ops::all(ex.__target())
    }

    /// Loads the rows whose `column` equals `value` (`IS NULL` for `None`), ordered by primary
    /// key. Columns are the constants the derive generates, so a misspelled column or a value
    /// of the wrong type is a compile error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// # use signals_core::{Db, Model};
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String, note: Option<String> }
    /// # let db = Db::connect("sqlite::memory:").await?;
    /// # db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT)").await?;
    /// Tag { id: None, name: "rust".into(), note: None }.save(&db).await?;
    /// assert_eq!(Tag::filter(&db, Tag::NAME, "rust").await?.len(), 1);
    /// assert_eq!(Tag::filter(&db, Tag::NOTE, None).await?.len(), 1);
    /// # Ok(()) }
    /// ```
    fn filter<'e, T: FieldType>(
        ex: impl Executor<'e>,
        column: Column<Self, T>,
        value: impl Into<T>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        Self::__Ops::filter(ex.__target(), column, value.into())
    }
}

impl<M: Model> FieldSet<M> {
    /// The names of the fields in the set, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.indices()
            .filter_map(|i| M::META.fields.get(i).copied())
            .collect()
    }
}

/// The operations behind [`Model`]'s methods, implemented above this module (in `ops`, by
/// `__private::Ops`), so that the trait needs nothing of them.
#[doc(hidden)]
pub trait Operations<M: Model> {
    /// [`Model::save_with`].
    fn save(
        m: &mut M,
        target: Target<'_>,
        options: SaveOptions<M>,
    ) -> impl Future<Output = Result<Saved>> + Send;
    /// [`Model::delete`].
    fn delete(m: &mut M, target: Target<'_>) -> impl Future<Output = Result<Deleted>> + Send;
    /// [`Model::get`].
    fn get(target: Target<'_>, key: M::Key) -> impl Future<Output = Result<Option<M>>> + Send;
    /// [`Model::get_for_update`].
    fn get_for_update(
        target: Target<'_>,
        key: M::Key,
    ) -> impl Future<Output = Result<Option<M>>> + Send;
    /// [`Model::refresh`].
    fn refresh(m: &mut M, target: Target<'_>) -> impl Future<Output = Result<()>> + Send;
    /// [`Model::all`].
    fn all(target: Target<'_>) -> impl Future<Output = Result<Vec<M>>> + Send;
    /// [`Model::filter`].
    fn filter<T: FieldType>(
        target: Target<'_>,
        column: Column<M, T>,
        value: T,
    ) -> impl Future<Output = Result<Vec<M>>> + Send;
}
