//! Django's model signals, done right in Rust.
//!
//! `#[derive(Model)]` makes a struct saveable and loadable on SQLite, PostgreSQL and MySQL, and
//! wires receivers to its signals with attributes the compiler checks:
//!
//! - **Checked wiring.** Receivers are paths, `#[post_save(create_profile)]`: a misspelled or
//!   mistyped receiver is a compile error on your token, never a receiver that silently does
//!   not fire.
//! - **One transaction.** A save runs its `pre_save` receivers, the write and its `post_save`
//!   receivers in one transaction (a savepoint inside yours); if any fails, nothing is written.
//! - **Fixed order.** Receivers run in declaration order, always.
//! - **Bounded nesting.** Saves nested in receivers stop at [`Db::with_max_depth`] with a clear
//!   error instead of recursing without end.
//! - **After commit.** Work scheduled with `signal.on_commit(..)` runs only once the outermost
//!   transaction commits.
//!
//! # The seed example: a profile for every user
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
//! use signals_core::{Db, Model, PostSave, Result};
//!
//! #[derive(Debug, Clone, Model)]
//! #[model(table = "account_user")]
//! #[post_save(create_profile, save_profile)]
//! pub struct User {
//!     pub id: Option<i64>, // None until saved; the database assigns it
//!     pub username: String,
//!     pub email: String,
//! }
//!
//! #[derive(Debug, Clone, Model)]
//! #[model(table = "account_profile")]
//! pub struct Profile {
//!     pub id: Option<i64>,
//!     #[model(one_to_one = User, on_delete = cascade)]
//!     pub user_id: i64,
//!     pub date_of_birth: Option<chrono::NaiveDate>,
//!     pub photo: String,
//! }
//!
//! async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
//!     if signal.created() {
//!         let user_id = user.id.expect("saved users have an id");
//!         Profile { id: None, user_id, date_of_birth: None, photo: String::new() }
//!             .save(signal.tx()) // same transaction as the user's INSERT
//!             .await?;
//!     }
//!     Ok(())
//! }
//!
//! async fn save_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
//!     if let Some(mut profile) = Profile::for_user(signal.tx(), user).await? {
//!         profile.save(signal.tx()).await?;
//!     }
//!     Ok(())
//! }
//!
//! let db = Db::connect("sqlite::memory:").await?; // or postgres://..., mysql://...
//! db.execute_unprepared(
//!     "CREATE TABLE account_user (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
//!          email TEXT NOT NULL);
//!      CREATE TABLE account_profile (id INTEGER PRIMARY KEY,
//!          user_id INTEGER NOT NULL UNIQUE REFERENCES account_user(id),
//!          date_of_birth DATE, photo TEXT NOT NULL);",
//! ).await?;
//!
//! let mut user = User { id: None, username: "johndoe".into(), email: String::new() };
//! let saved = user.save(&db).await?;
//! assert!(saved.created());
//! let profile = Profile::for_user(&db, &user).await?; // Django's `user.profile`
//! assert_eq!(profile.map(|p| p.user_id), user.id);
//! # Ok(()) }
//! ```
//!
//! # The derive
//!
//! Struct attributes: `#[model(table = "...")]` (default: the struct's name in snake_case),
//! and `#[pre_save(..)]`, `#[post_save(..)]`, `#[pre_delete(..)]`, `#[post_delete(..)]`, each
//! with one or more receiver paths, repeatable. The word `robust` among them
//! (`#[post_save(notify, robust)]`) runs those receivers in savepoints of their own and
//! collects their errors in [`Saved::receiver_errors`] instead of failing the save.
//! `#[on_commit(..)]` receivers run after the commit; see [`Committed`]. Field attributes, in `#[model(..)]`:
//! `primary_key` (default: the field named `id`), `column = "..."`, and
//! `one_to_one = Model` or `foreign_key = Model` with `on_delete = cascade | restrict |
//! set_null`.
//!
//! Receivers are `async fn`s taking the instance (`&mut` for `pre_save`, `&` otherwise) and the
//! signal's context ([`PreSave`], [`PostSave`], [`PreDelete`], [`PostDelete`]), returning
//! `Result<(), E>` for any `E` that converts into [`Error`] (this crate's errors, sqlx's, and
//! boxed errors of your own).
//!
//! For each field the derive adds a column constant (`User::USERNAME`) for [`Model::filter`],
//! and for each reference field `user_id` two loaders: `profile.user(&db)` (the parent) and
//! `Profile::for_user(&db, &user)` (the child of a one-to-one, or the children of a foreign
//! key).
//!
//! A receiver that saves its own model (or a model whose receivers save the first one again)
//! makes the save's future type recursive, which the compiler refuses. Erase the inner save
//! behind `dyn`, and the depth limit stops a runaway at run time with
//! [`Error::RecursionLimit`]:
//!
//! ```
//! use std::{future::Future, pin::Pin};
//! use signals_core::{Model, PostSave, Result, Saved};
//!
//! #[derive(Clone, Model)]
//! #[post_save(touch_parent)]
//! struct Node { id: Option<i64>, parent_id: Option<i64> }
//!
//! async fn touch_parent(node: &Node, signal: &mut PostSave<'_>) -> Result<()> {
//!     let Some(parent_id) = node.parent_id else { return Ok(()) };
//!     if let Some(mut parent) = Node::get(signal.tx(), parent_id).await? {
//!         let save: Pin<Box<dyn Future<Output = Result<Saved>> + Send + '_>> =
//!             Box::pin(parent.save(signal.tx()));
//!         save.await?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Field types: see [`FieldType`]. Primary keys: see [`PrimaryKey`].
//!
//! # Tracing
//!
//! Every save signal sent is a `tracing` span at debug level (`pre_save` with `model`,
//! `adding`, `raw`; `post_save` with `model`, `created`, `raw`), delete signals are events,
//! and every receiver call is a span named `receiver` (with `model`, `signal`, `receiver`)
//! inside its signal's span, closed by a `receiver ran` or `receiver failed` event. With `tracing-subscriber`'s `EnvFilter`,
//! `RUST_LOG=signals_core=debug` shows what fired.

mod custom;
mod db;
mod error;
mod model;
mod muting;
mod ops;
mod relation;
mod runtime;
mod signal;
mod sql;
mod sqlite_raw;
mod sqlite_value;
mod value;

#[doc(hidden)]
pub mod __private;

pub use custom::{BoxFuture, Signal};
pub use db::{Backend, ConnRef, DEFAULT_MAX_DEPTH, Db, Executor, PoolRef, Tx};
pub use error::{BoxError, Error, ErrorKind, Result, SignalKind};
pub use model::{
    Column, Committed, Deleted, FieldSet, Model, ModelMeta, Receivers, SaveOptions, Saved,
};
pub use muting::{Fired, MuteGuard, mute, mute_receiver, record_signals};
pub use relation::{OnDelete, Relation, RelationKind, relations_to};
pub use runtime::{
    connect_post_delete, connect_post_save, connect_pre_delete, connect_pre_save, disconnect,
    receivers,
};
pub use signal::{PostDelete, PostSave, PreDelete, PreSave};
pub use value::{FieldType, PrimaryKey};

/// `#[derive(Model)]`: see the [crate documentation](crate#the-derive).
pub use signals_derive::Model;

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The sqlx version this crate runs on, for SQL of your own through [`Db::pool`] and
/// [`Tx::conn`].
pub use sqlx;
