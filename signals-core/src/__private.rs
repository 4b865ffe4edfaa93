//! Items the derive's generated code uses. Not public API: no stability promise.

use std::future::Future;

pub use inventory;

pub use crate::db::Target;
pub use crate::error::SignalKind;
pub use crate::model::Receivers;
pub use crate::ops::{children_of, parent_of};
pub use crate::relation::{OnDelete, Relation, RelationKind};
pub use crate::sql::Statements;
pub use crate::value::{Args, Nullable, PrimaryKey, RefersTo, Row};
use crate::error::{Error, Result};

/// One cached `Statements` per backend, for a model's generated `__statements`.
pub type StatementCache = [std::sync::OnceLock<Statements>; 3];

/// An empty [`StatementCache`].
#[allow(clippy::declare_interior_mutable_const)]
pub const STATEMENT_CACHE: StatementCache = [const { std::sync::OnceLock::new() }; 3];

/// What a receiver's call must produce: a future of `Result<(), E>` with `E: Into<Error>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the future of a signal receiver",
    label = "receivers are `async fn`s returning `Result<(), E>` where `E: Into<signals_core::Error>`",
    note = "for example: `async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> signals_core::Result<()>`"
)]
pub trait ReceiverFuture: Future<Output = std::result::Result<(), Self::Error>> + Send {
    /// The receiver's error type.
    type Error: Into<Error>;
}

impl<F, E> ReceiverFuture for F
where
    F: Future<Output = std::result::Result<(), E>> + Send,
    E: Into<Error>,
{
    type Error = E;
}

/// Awaits one receiver, naming it in the error.
#[inline]
pub async fn receive<F: ReceiverFuture>(
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
    fut: F,
) -> Result<()> {
    fut.await.map_err(|err| Error::Receiver {
        model,
        signal,
        receiver,
        source: Box::new(err.into()),
    })
}

/// Checks at compile time that `P` is a model and the field can hold its key.
pub const fn assert_refers_to<P: crate::Model, F: RefersTo<P::Key>>() {}

/// Checks at compile time that a `set_null` field is nullable.
pub const fn assert_nullable<F: Nullable>() {}

/// Checks at compile time that a field's type is supported.
pub const fn assert_field<T: crate::FieldType>() {}

/// Checks at compile time that the primary key's type is supported.
pub const fn assert_primary_key<T: PrimaryKey>() {}
