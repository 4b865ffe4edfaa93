//! The public [`Model`] trait; what its operations take and return ([`SaveOptions`],
//! [`Saved`], [`Deleted`], [`BulkSaved`]) is in `outcome`.
//!
//! Uses `error`, `backend`, `value`, `meta`, `sql` and `tx` (the executors). The operations
//! themselves live in `ops`, above this module: `Model`'s methods reach them through its
//! hidden `__Ops` type, which the derive sets to `__private::Ops` ([`Operations`] says what it
//! provides), and the receivers through `signal::Hooks`.

use std::future::Future;

use crate::backend::Backend;
use crate::error::Result;
use crate::meta::{Column, ColumnDef, FieldSet, ModelMeta};
use crate::query::{Query, Raw};
use crate::sql::Statements;
use crate::tx::{Executor, Target, Tx};
use crate::value::{Args, FieldType, Row};

mod outcome;

pub use outcome::{BulkSaved, Deleted, SaveOptions, Saved};

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
    /// The instance a row holds, as the database holds it (no `post_load` receiver runs: the
    /// row a save replaces is read so, for `changed(..)` to compare with the database).
    #[doc(hidden)]
    fn __from_row(row: &Row<'_>) -> Result<Self>;

    /// Runs the `#[post_load]` receivers on an instance just read (none by default).
    #[doc(hidden)]
    #[inline]
    fn __post_load(&mut self) -> Result<()> {
        Ok(())
    }

    /// An instance loaded from a row: [`__from_row`](Self::__from_row), then its
    /// `#[post_load]` receivers. Every load goes through it.
    #[doc(hidden)]
    #[inline]
    fn __load(row: &Row<'_>) -> Result<Self> {
        let mut this = Self::__from_row(row)?;
        this.__post_load()?;
        Ok(this)
    }

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
    ///
    /// A delete that fails keeps the key: the row is still there. Cancelled (its future
    /// dropped), it clears the key exactly when the row goes: once its COMMIT was sent, or
    /// inside a caller's transaction once its savepoint's RELEASE was (the transaction's next
    /// use completes that release, unless a savepoint around it was dropped too); earlier,
    /// everything it did is undone and the key stays. A model without receivers or relations
    /// deletes with one statement, on a pool its own commit: cancelled while it runs, it may
    /// have run, and the key stays (a retry then says `NotFound`).
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

    /// Saves every instance of `rows` in a few multi-row statements, with their signals:
    /// Django's `bulk_create` and `bulk_update` in one call, and the signals Django skips.
    /// Instances without a key are INSERTed, their new keys read back into them; the others
    /// are UPDATEd (INSERTed when no row has their key), as [`save`](Self::save) decides for
    /// one. [`BulkSaved::created`] tells which, row by row.
    ///
    /// The rows go in chunks ([`MAX_CHUNK_ROWS`](crate::MAX_CHUNK_ROWS) at most, fewer where
    /// the backend's limit of bound parameters demands). Per chunk, `pre_save` is sent, the
    /// rows are written, then `post_save`: a batched receiver (`#[post_save(f, batch)]`) once
    /// with the chunk's rows, a per-row receiver once per row, in declaration order, then
    /// those connected at run time, row by row. Where receivers compare old values
    /// (`changed(..)`, `#[model(old_values)]`), new rows still go in chunks (they replace no
    /// row), but a bulk holding rows with keys is saved row by row, each row read and locked
    /// before its save, in the same one transaction.
    ///
    /// All or nothing: everything runs in one transaction (a savepoint of `ex`'s when it is a
    /// [`Tx`](crate::Tx)); a failing receiver or statement rolls all of it back, clears the
    /// keys it had assigned, and returns [`Error::Bulk`](crate::Error::Bulk) naming the row
    /// (or the batch) that failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model, PostSaveBatch, Result};
    ///
    /// #[derive(Model)]
    /// #[post_save(create_profiles, batch)]
    /// struct User { id: Option<i64>, username: String }
    ///
    /// #[derive(Model)]
    /// struct Profile { id: Option<i64>, user_id: i64 }
    ///
    /// async fn create_profiles(users: &[User], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    ///     let mut profiles: Vec<Profile> = users
    ///         .iter()
    ///         .zip(signal.created())
    ///         .filter(|(_, created)| **created)
    ///         .filter_map(|(user, _)| Some(Profile { id: None, user_id: user.id? }))
    ///         .collect();
    ///     Profile::bulk_save(signal.tx(), &mut profiles).await?;
    ///     Ok(())
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared(
    ///     "CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT NOT NULL);
    ///      CREATE TABLE profile (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL);",
    /// ).await?;
    /// let mut users: Vec<User> = (0..3)
    ///     .map(|i| User { id: None, username: format!("user{i}") })
    ///     .collect();
    /// let saved = User::bulk_save(&db, &mut users).await?;
    /// assert_eq!(saved.created(), [true, true, true]);
    /// assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    /// assert_eq!(Profile::query().count(&db).await?, 3);
    ///
    /// // A single save sends the batched receiver a batch of one.
    /// User { id: None, username: "ada".into() }.save(&db).await?;
    /// assert_eq!(Profile::query().count(&db).await?, 4);
    /// # Ok(()) }
    /// ```
    fn bulk_save<'e>(
        ex: impl Executor<'e>,
        rows: &mut [Self],
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        Self::__Ops::bulk_save(rows, ex.__target(), None)
    }

    /// Saves `rows`, each matched on its `unique` fields with the row already in the table:
    /// that row is UPDATEd (the instance gets its key), and a row with no match is INSERTed.
    /// Django's `bulk_create(update_conflicts=True, unique_fields=..)`, but with the save
    /// signals of [`bulk_save`](Self::bulk_save), `created()` telling which each was
    /// ([`BulkSaved::created`]). Only instances without a key are matched; an instance
    /// with a key is saved by it.
    ///
    /// All of it is one transaction (a savepoint inside yours). The matching rows are read
    /// locked (`FOR UPDATE`), so no other transaction changes them before the update; when
    /// another inserts one of the new values after the read (the unique constraint refuses
    /// the insert), the whole upsert is undone to its savepoint and matched again, so
    /// concurrent upserts of one value make one row, one of them with `created() == true`. A
    /// unique constraint must cover `unique` (`#[model(unique)]`, `unique_together`), as for
    /// Django's. Two instances with the same values are refused
    /// ([`ErrorKind::Usage`](crate::ErrorKind::Usage)); values compare exactly, as Rust
    /// compares them (a MySQL column with a case-insensitive collation would refuse `Rust`
    /// beside `rust` as a duplicate: the upsert then fails with the unique violation).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// #[model(unique_together(shop, sku))]
    /// struct Stock { id: Option<i64>, shop: String, sku: String, units: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Stock>().await?;
    /// let stock = |sku: &str, units| Stock { id: None, shop: "north".into(), sku: sku.into(), units };
    /// Stock::bulk_save(&db, &mut [stock("a-1", 5)]).await?;
    ///
    /// let mut rows = [stock("a-1", 7), stock("b-2", 3)];
    /// let saved = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await?;
    /// assert_eq!(saved.created(), [false, true]);
    /// assert_eq!(rows[0].id, Some(1));
    /// assert_eq!(Stock::get(&db, 1).await?.map(|s| s.units), Some(7));
    /// assert_eq!(Stock::query().count(&db).await?, 2);
    /// # Ok(()) }
    /// ```
    fn bulk_upsert<'e>(
        ex: impl Executor<'e>,
        rows: &mut [Self],
        unique: impl Into<FieldSet<Self>>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        Self::__Ops::bulk_upsert(rows, ex.__target(), unique.into())
    }

    /// UPDATEs only `fields` of every instance of `rows` (Django's `bulk_update`), with the
    /// save signals as [`bulk_save`](Self::bulk_save) sends them (`update_fields` set). Every
    /// instance must have a key ([`Error::NotSaved`](crate::Error::NotSaved) otherwise) and a
    /// row ([`Error::NotFound`](crate::Error::NotFound)); the key cannot be among `fields`.
    /// The fields are columns of the model (`User::EMAIL`, `User::EMAIL | User::NAME`), so a
    /// field of another model does not compile.
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
    /// let mut tags = vec![
    ///     Tag { id: None, name: "rust".into(), uses: 0 },
    ///     Tag { id: None, name: "sql".into(), uses: 0 },
    /// ];
    /// Tag::bulk_save(&db, &mut tags).await?;
    /// for tag in &mut tags {
    ///     tag.uses += 1;
    ///     tag.name = "not saved".into();
    /// }
    /// Tag::bulk_update(&db, &mut tags, Tag::USES).await?;
    /// let rust = Tag::get(&db, 1).await?.unwrap();
    /// assert_eq!((rust.name.as_str(), rust.uses), ("rust", 1));
    /// # Ok(()) }
    /// ```
    fn bulk_update<'e>(
        ex: impl Executor<'e>,
        rows: &mut [Self],
        fields: impl Into<FieldSet<Self>>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send {
        Self::__Ops::bulk_save(rows, ex.__target(), Some(fields.into()))
    }

    /// Deletes the rows of every instance of `rows`, with their cascade and their delete
    /// signals, level by level: one `SELECT .. IN` per relation and level gathers what the
    /// cascade reaches, one `DELETE .. IN` per group deletes it (in statements of at most
    /// [`MAX_CHUNK_ROWS`](crate::MAX_CHUNK_ROWS) keys). Rows of a model without delete
    /// receivers and with nothing below them are deleted without being read (Django's fast
    /// deletes). Receivers are sent as [`bulk_save`](Self::bulk_save) sends them: batched
    /// ones once per batch, per-row ones once per row (row by row, with the many-to-many
    /// `pre_remove`/`post_remove`, for models with many-to-many links).
    ///
    /// All or nothing, in one transaction (a savepoint of `ex`'s); an error names the row
    /// ([`Error::Bulk`](crate::Error::Bulk)): an instance without a key
    /// ([`NotSaved`](crate::Error::NotSaved)) or without a row
    /// ([`NotFound`](crate::Error::NotFound)) fails the whole delete. On success the
    /// instances' keys are cleared.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Post { id: Option<i64> }
    ///
    /// #[derive(Model)]
    /// struct Comment {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Post, on_delete = cascade)]
    ///     post_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared(
    ///     "CREATE TABLE post (id INTEGER PRIMARY KEY);
    ///      CREATE TABLE comment (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL);",
    /// ).await?;
    /// let mut posts = vec![Post { id: None }, Post { id: None }, Post { id: None }];
    /// Post::bulk_save(&db, &mut posts).await?;
    /// let mut comments: Vec<Comment> =
    ///     posts.iter().map(|p| Comment { id: None, post_id: p.id.unwrap() }).collect();
    /// Comment::bulk_save(&db, &mut comments).await?;
    ///
    /// let deleted = Post::bulk_delete(&db, &mut posts[..2]).await?;
    /// assert_eq!(deleted.per_model(), [("Comment", 2), ("Post", 2)]);
    /// assert_eq!(posts[0].id, None);
    /// assert_eq!(Comment::query().count(&db).await?, 1);
    /// # Ok(()) }
    /// ```
    fn bulk_delete<'e>(
        ex: impl Executor<'e>,
        rows: &mut [Self],
    ) -> impl Future<Output = Result<Deleted>> + Send {
        Self::__Ops::bulk_delete(rows, ex.__target())
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

    /// A plain SQL query whose rows are read as this model (Django's `Model.objects.raw`),
    /// one line on any backend: bind values to `?` placeholders (numbered `$1`, `$2`, … for
    /// PostgreSQL; `??` is a literal `?`), then [`all`](Raw::all) or [`first`](Raw::first).
    /// The query must select every column of the model, by name (`SELECT *` or a list); its
    /// rows go through `post_load` receivers as any loaded row.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// struct Post { id: Option<i64>, title: String, views: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Post>().await?;
    /// for (title, views) in [("a", 5), ("b", 50)] {
    ///     Post { id: None, title: title.into(), views }.save(&db).await?;
    /// }
    /// let popular = Post::raw("SELECT * FROM post WHERE views > ? ORDER BY id").bind(10_i64).all(&db).await?;
    /// assert_eq!(popular.len(), 1);
    /// assert_eq!(popular[0].title, "b");
    /// # Ok(()) }
    /// ```
    fn raw(sql: impl Into<String>) -> Raw<Self> {
        Raw::new(sql.into())
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
    fn filter<'e, T: FieldType, R>(
        ex: impl Executor<'e>,
        column: Column<Self, T, R>,
        value: impl Into<T>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send {
        Self::__Ops::filter(ex.__target(), column, value.into())
    }
}

impl<M: Model> FieldSet<M> {
    /// The names of the fields in the set, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        crate::meta::names_in(M::META.fields, self.indices())
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
    /// [`Model::bulk_delete`].
    fn bulk_delete(
        rows: &mut [M],
        target: Target<'_>,
    ) -> impl Future<Output = Result<Deleted>> + Send;
    /// [`Model::bulk_save`], and with fields [`Model::bulk_update`].
    fn bulk_save(
        rows: &mut [M],
        target: Target<'_>,
        fields: Option<FieldSet<M>>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send;
    /// [`Model::bulk_upsert`].
    fn bulk_upsert(
        rows: &mut [M],
        target: Target<'_>,
        unique: FieldSet<M>,
    ) -> impl Future<Output = Result<BulkSaved>> + Send;
    /// [`Model::all`].
    fn all(target: Target<'_>) -> impl Future<Output = Result<Vec<M>>> + Send;
    /// [`Model::filter`].
    fn filter<T: FieldType, R>(
        target: Target<'_>,
        column: Column<M, T, R>,
        value: T,
    ) -> impl Future<Output = Result<Vec<M>>> + Send;
}
