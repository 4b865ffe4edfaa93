//! Items the derive's generated code uses. Not public API: no stability promise.

use std::future::Future;

pub use inventory;

pub use crate::db::Target;
pub use crate::error::SignalKind;
use crate::error::{Error, Result};
pub use crate::model::Receivers;
pub use crate::ops::{children_of, parent_of};
pub use crate::relation::{OnDelete, Relation, RelationKind};
pub use crate::sql::Statements;
pub use crate::sqlite_value::{SqlRef, SqlValue};
pub use crate::value::{Args, Nullable, PrimaryKey, RefersTo, Row};

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

/// Awaits one receiver inside a `tracing` span, naming it in the error; a muted receiver's
/// future is dropped unpolled (so it never runs).
#[inline]
pub async fn receive<F: ReceiverFuture>(
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
    fut: F,
    model_type: std::any::TypeId,
) -> Result<()> {
    use tracing::Instrument as _;
    if crate::muting::is_muted(model_type, receiver) {
        tracing::debug!(model, %signal, receiver, "receiver muted");
        return Ok(());
    }
    let span = tracing::debug_span!("receiver", model, %signal, receiver);
    let res = fut.instrument(span.clone()).await;
    match res {
        Ok(()) => {
            tracing::debug!(parent: &span, "receiver ran");
            Ok(())
        }
        Err(err) => {
            let err = err.into();
            tracing::debug!(parent: &span, error = %err, "receiver failed");
            Err(Error::Receiver {
                model,
                signal,
                receiver,
                source: Box::new(err),
            })
        }
    }
}

/// Schedules one `#[on_commit]` receiver's future to run after the outermost commit, naming
/// the receiver in its error.
pub fn schedule_on_commit<F: ReceiverFuture + 'static>(
    tx: &mut crate::Tx,
    model: &'static str,
    receiver: &'static str,
    fut: F,
    model_type: std::any::TypeId,
) {
    tx.on_commit_reporting(receive(
        model,
        SignalKind::OnCommit,
        receiver,
        fut,
        model_type,
    ));
}

/// The signal contexts, for the robust-receiver helpers.
pub trait HasTx {
    /// The context's transaction.
    fn __tx(&mut self) -> &mut crate::Tx;
}

macro_rules! has_tx {
    ($($ctx:ident),*) => {$(
        impl HasTx for crate::$ctx<'_> {
            fn __tx(&mut self) -> &mut crate::Tx {
                self.tx()
            }
        }
    )*};
}
has_tx!(PreSave, PostSave, PreDelete, PostDelete);

/// Opens the savepoint a robust receiver runs in.
pub async fn robust_enter(
    signal: &mut impl HasTx,
    model: &'static str,
) -> Result<crate::db::Savepoint> {
    signal.__tx().enter(model).await
}

/// Closes a robust receiver's savepoint: releases it when the receiver succeeded; otherwise
/// rolls back what the receiver did, logs the error and keeps it for `receiver_errors()`.
pub async fn robust_leave(
    signal: &mut impl HasTx,
    savepoint: crate::db::Savepoint,
    res: Result<()>,
) -> Result<()> {
    let tx = signal.__tx();
    match res {
        Ok(()) => tx.leave(savepoint, true).await,
        Err(err) => {
            tx.leave(savepoint, false).await?;
            tracing::warn!(error = %err, "robust receiver failed; its work was rolled back");
            tx.robust_errors.push(err);
            Ok(())
        }
    }
}

/// Checks at compile time that a `set_null` field is nullable.
pub const fn assert_nullable<F: Nullable>() {}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type ParentFn<P, F> = for<'e> fn(Target<'e>, &'e F) -> BoxFuture<'e, Result<Option<P>>>;
type ChildrenFn<C, P> = for<'e> fn(Target<'e>, &'e P, usize) -> BoxFuture<'e, Result<Vec<C>>>;

/// One reference field of child `C` to parent `P`, held in field type `F`: its registration
/// and its loaders. Built by [`reference`], the one place its bounds are checked, so a wrong
/// parent or key type is reported once.
pub struct Reference<C, P, F> {
    /// The registration for the parent's delete.
    pub relation: Relation,
    field_index: usize,
    parent: ParentFn<P, F>,
    children: ChildrenFn<C, P>,
}

/// Builds the [`Reference`] of the field at `field_index` of `C`.
pub const fn reference<C, P, F>(
    field_index: usize,
    on_delete: OnDelete,
    kind: RelationKind,
) -> Reference<C, P, F>
where
    C: crate::Model,
    P: crate::Model,
    F: RefersTo<P::Key> + Sync,
{
    Reference {
        relation: Relation::__new::<C, P>(field_index, on_delete, kind),
        field_index,
        parent: load_parent::<P, F>,
        children: load_children::<C, P>,
    }
}

fn load_parent<'e, P: crate::Model, F: RefersTo<P::Key> + Sync>(
    target: Target<'e>,
    field: &'e F,
) -> BoxFuture<'e, Result<Option<P>>> {
    Box::pin(parent_of::<P, F>(target, field))
}

fn load_children<'e, C: crate::Model, P: crate::Model>(
    target: Target<'e>,
    parent: &'e P,
    field_index: usize,
) -> BoxFuture<'e, Result<Vec<C>>> {
    Box::pin(children_of::<C, P>(target, parent, field_index))
}

impl<C, P, F> Reference<C, P, F> {
    /// Loads the parent `field` refers to.
    pub fn parent<'e>(&self, target: Target<'e>, field: &'e F) -> BoxFuture<'e, Result<Option<P>>> {
        (self.parent)(target, field)
    }

    /// Loads the children of `parent`.
    pub fn children<'e>(&self, target: Target<'e>, parent: &'e P) -> BoxFuture<'e, Result<Vec<C>>> {
        (self.children)(target, parent, self.field_index)
    }
}
