//! What `Model`'s operations take and return: [`SaveOptions`], [`Saved`], [`BulkSaved`],
//! [`Deleted`].
//!
//! Uses `error` and `meta`.

use std::fmt;

use crate::error::Error;
use crate::meta::FieldSet;

/// What [`Model::save`](crate::Model::save) did; see the example of
/// [`Model::save`](crate::Model::save).
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

/// What [`Model::delete`](crate::Model::delete) deleted: the instance's row and the rows its
/// cascade reached.
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

/// How [`Model::save_with`](crate::Model::save_with) saves.
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
    /// A plain save, as [`Model::save`](crate::Model::save) does.
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

/// What [`Model::bulk_save`](crate::Model::bulk_save) and
/// [`Model::bulk_update`](crate::Model::bulk_update) did.
#[derive(Debug, Default)]
pub struct BulkSaved {
    pub(crate) created: Vec<bool>,
    pub(crate) receiver_errors: Vec<Error>,
    pub(crate) post_commit_errors: Vec<Error>,
}

impl BulkSaved {
    /// Per row, in the order given: `true` when it was INSERTed, `false` when UPDATEd.
    pub fn created(&self) -> &[bool] {
        &self.created
    }

    /// How many rows were INSERTed.
    pub fn inserted(&self) -> usize {
        self.created.iter().filter(|c| **c).count()
    }

    /// How many rows were UPDATEd.
    pub fn updated(&self) -> usize {
        self.created.len() - self.inserted()
    }

    /// Errors of `robust` receivers: their work was rolled back, the rows were saved.
    pub fn receiver_errors(&self) -> &[Error] {
        &self.receiver_errors
    }

    /// Errors of after-commit work, when the bulk save ran its own transaction.
    pub fn post_commit_errors(&self) -> &[Error] {
        &self.post_commit_errors
    }
}
