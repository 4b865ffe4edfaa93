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
//! - **Durable.** `#[on_commit(f, durable)]` writes an outbox event in the save's transaction
//!   instead; the `signals-outbox` crate runs `f` from it, in-process or through NATS
//!   JetStream on other machines, at least once and with its database work exactly once (see
//!   [`durable`]).
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
//! `#[on_commit(..)]` receivers run after the commit; see [`Committed`]. `#[post_load(f)]` runs
//! the plain function `fn f(&mut Model) -> Result<()>` on every instance built from a row
//! (loads, queries, loaders, `refresh`, the rows a cascade reads); its error fails the load. It
//! is not async: it runs as each row is decoded, so it costs a list no future per row, and a
//! model without one runs the code it always did. Field attributes, in `#[model(..)]`:
//! `primary_key` (default: the field named `id`), `column = "..."`, and
//! `one_to_one = Model` or `foreign_key = Model` with `on_delete = cascade | restrict |
//! set_null`.
//!
//! Receivers are `async fn`s taking the instance (`&mut` for `pre_save`, `&` otherwise) and the
//! signal's context ([`PreSave`], [`PostSave`], [`PreDelete`], [`PostDelete`]), returning
//! `Result<(), E>` for any `E` that converts into [`Error`] (this crate's errors, sqlx's, and
//! boxed errors of your own).
//!
//! A receiver runs its statements on `signal.tx()`, the save's own transaction, never on a
//! [`Db`]: a second connection from the same pool would not see the save's writes and could wait
//! forever for its locks. A receiver that uses the `Db` of its own save or delete fails at once
//! with [`Error::ReceiverUsedPool`]. Work for after the commit (mail, files, other services)
//! goes in `signal.on_commit(..)` or an `#[on_commit]` receiver; see
//! [`Db::with_on_commit_timeout`] to bound it. The check follows the receiver's own task only:
//! a receiver that awaits work it spawned onto another task (`tokio::spawn`) using the `Db`
//! cannot be told apart from other users of the pool, and that work waits for the connection
//! the save holds. It ends at the pool's acquire timeout with [`Error::PoolTimedOut`], which
//! says so; give the spawned work no `Db`, or run it after the commit.
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
//! # Receivers connected at run time
//!
//! Plugins and tests connect receivers without touching the model, under a dispatch id
//! (Django's `Signal.connect(f, dispatch_uid=..)`): [`connect_pre_save`],
//! [`connect_post_save`], [`connect_pre_delete`], [`connect_post_delete`]. They run after the
//! derive's receivers, in connection order, in the same transaction, and are muted and
//! recorded like them. A receiver is the same `async fn` the derive takes:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
//! use signals_core::{Db, Model, PostSave, Result, SignalKind, connect_post_save, receivers};
//!
//! #[derive(Model)]
//! struct Tag { id: Option<i64>, name: String }
//!
//! #[derive(Model)]
//! struct Audit { id: Option<i64>, tag_id: i64 }
//!
//! async fn audit(tag: &Tag, signal: &mut PostSave<'_>) -> Result<()> {
//!     if signal.created() {
//!         let tag_id = tag.id.expect("a saved tag has an id");
//!         Audit { id: None, tag_id }.save(signal.tx()).await?; // same transaction
//!     }
//!     Ok(())
//! }
//!
//! assert!(connect_post_save::<Tag, _>("audit", audit));
//! assert!(!connect_post_save::<Tag, _>("audit", audit)); // an id is connected once
//! assert_eq!(receivers::<Tag>(SignalKind::PostSave), ["audit"]);
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.execute_unprepared(
//!     "CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
//!      CREATE TABLE audit (id INTEGER PRIMARY KEY, tag_id INTEGER NOT NULL);",
//! ).await?;
//! Tag { id: None, name: "rust".into() }.save(&db).await?;
//! assert_eq!(Audit::all(&db).await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! An async closure works too, and may hold state (an `Arc<Mutex<..>>`, a channel, a cache
//! handle) and write in the save's transaction — the receivers a plugin or a test connects.
//! Name its argument types; its captures are cloned for each call, so share state through an
//! `Arc` (see [`Receiver`]):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
//! use std::sync::{Arc, Mutex};
//! use signals_core::{Db, Model, PostSave, PreSave, connect_post_save, connect_pre_save, disconnect};
//! use signals_core::SignalKind;
//!
//! #[derive(Model)]
//! struct Tag { id: Option<i64>, name: String }
//!
//! #[derive(Model)]
//! struct Audit { id: Option<i64>, tag_id: i64 }
//!
//! let seen = Arc::new(Mutex::new(Vec::<String>::new()));
//! let log = seen.clone();
//! assert!(connect_post_save::<Tag, _>("audit", async move |tag: &Tag, signal: &mut PostSave<'_>| {
//!     log.lock().unwrap().push(tag.name.clone());
//!     let tag_id = tag.id.expect("a saved tag has an id");
//!     Audit { id: None, tag_id }.save(signal.tx()).await?; // same transaction
//!     Ok(())
//! }));
//! assert!(connect_pre_save::<Tag, _>("lowercase", async |tag: &mut Tag, _: &mut PreSave<'_>| {
//!     tag.name = tag.name.to_lowercase();
//!     Ok(())
//! }));
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.create_tables::<(Tag, Audit)>().await?;
//! let mut tag = Tag { id: None, name: "Rust".into() };
//! tag.save(&db).await?;
//! assert_eq!(tag.name, "rust");
//! assert_eq!(*seen.lock().unwrap(), ["rust"]);
//! assert_eq!(Audit::all(&db).await?.len(), 1);
//! assert!(disconnect::<Tag>(SignalKind::PostSave, "audit"));
//! assert!(disconnect::<Tag>(SignalKind::PreSave, "lowercase"));
//! # Ok(()) }
//! ```
//!
//! A closure returning a boxed future (`|tag: &mut Tag, _: &mut PreSave<'_>| { ..;
//! Box::pin(async { Ok(()) }) }`) still works when the future does not borrow the arguments;
//! one that does is an async closure now.
//!
//! # Tracing
//!
//! Every save signal sent is a `tracing` span at debug level (`pre_save` with `model`,
//! `adding`, `raw`; `post_save` with `model`, `created`, `raw`), delete signals are events,
//! and every receiver call is a span named `receiver` (with `model`, `signal`, `receiver`)
//! inside its signal's span, closed by a `receiver ran` or `receiver failed` event. With `tracing-subscriber`'s `EnvFilter`,
//! `RUST_LOG=signals_core=debug` shows what fired.

// The modules are layers; from the bottom: kind, error, backend, value, meta, sql, query, conn,
// tx, model, signal, ops, schema, __private. Each uses only layers below its own (each module's first
// lines say which), as `tests/layers.rs` checks.
#[doc(hidden)]
pub mod __private;
mod backend;
mod conn;
mod error;
mod kind;
#[cfg(feature = "migrate")]
pub mod makemigrations;
mod meta;
pub mod migrate;
mod model;
mod ops;
mod query;
pub mod schema;
mod signal;
mod sql;
mod tx;
mod value;

pub use backend::Backend;
pub use backend::MAX_CHUNK_ROWS;
pub use conn::{ConnRef, DEFAULT_MAX_DEPTH, Db, PoolRef};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use kind::SignalKind;
pub use meta::{Column, ColumnDef, DbDefault, FieldSet, ModelMeta, Receivers};
pub use model::{BulkSaved, Deleted, Model, SaveOptions, Saved};
pub use ops::cascade::{OnDelete, Relation, RelationKind, relations_to};
pub use ops::m2m::{ManyToMany, SetLinks};
#[doc(hidden)]
pub use ops::query::HoldsKeys;
pub use ops::query::Subquery;
#[doc(hidden)]
pub use ops::relation::IsReference;
pub use ops::relation::{Prefetch, PrefetchLinked, SelectRelated};
pub use ops::values::{Annotated, Values};
pub use query::{
    Aggregate, Filter, JsonField, JsonKey, JsonScalar, Numeric, Order, Ordered, Query, Raw,
    Selected, Selection, Set, Summable, Text,
};
pub use signal::durable;
pub use signal::{
    BoxFuture, Change, Committed, Fired, Instance, M2mAction, M2mChange, M2mChanged, MuteGuard,
    PostDelete, PostDeleteBatch, PostSave, PostSaveBatch, PreDelete, PreDeleteBatch, PreSave,
    PreSaveBatch, Receiver, Signal, SignalReceiver, any_receivers, connect_any_post_delete,
    connect_any_post_save, connect_any_pre_delete, connect_any_pre_save, connect_post_delete,
    connect_post_save, connect_pre_delete, connect_pre_save, disconnect, disconnect_any,
    isolate_receivers, mute, mute_receiver, receivers, record_signals,
};
pub use sql::Sql;
pub use tx::{Executor, OnCommitWork, Tx};
pub use value::{BuiltinType, FieldType, PrimaryKey, Record, SqlType};

/// `#[derive(Model)]`: see the [crate documentation](crate#the-derive).
pub use signals_derive::Model;

/// `#[derive(FieldType)]`: a newtype stored as what it wraps, or an enum of unit variants
/// stored as text (or as an integer with `#[field(integer)]`); see [`FieldType`].
///
/// On an enum, `#[field(rename_all = "..")]` (`lowercase`, `UPPERCASE`, `snake_case`,
/// `SCREAMING_SNAKE_CASE`, `kebab-case`, `camelCase`, `PascalCase`) chooses how variant names
/// are stored, and `#[field(rename = "..")]` on a variant overrides it. A stored value that
/// names no variant is a decode error that lists the known ones.
pub use signals_derive::FieldType;

/// A JSON field holding any serde type: JSONB on PostgreSQL, JSON on MySQL, TEXT on SQLite
/// (sqlx's own `Json`, so `sqlx::query_as` reads it too). For untyped JSON, a field can be
/// a `serde_json::Value`.
///
/// ```
/// use signals_core::{Json, Model};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Meta { tags: Vec<String> }
///
/// #[derive(Model)]
/// struct Post { id: Option<i64>, meta: Json<Meta>, extra: Option<serde_json::Value> }
/// ```
#[cfg(feature = "json")]
pub use sqlx::types::Json;

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The sqlx version this crate runs on, for SQL of your own through [`Db::pool`] and
/// [`Tx::conn`].
pub use sqlx;
