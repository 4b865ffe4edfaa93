//! Running one receiver: in a `tracing` span, muted or not, its error named; robust receivers
//! in a savepoint of their own; `#[on_commit]` receivers scheduled after the commit.
//!
//! Uses `error`, `kind`, `tx`, and of `signal` the contexts and muting.

use std::future::Future;

use super::context::{PostDelete, PostSave, PreDelete, PreSave};
use super::muting::is_muted;
use crate::error::{Error, Result};
use crate::kind::{SignalKind, model_signals};
use crate::tx::{Savepoint, Tx};

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

/// One receiver's call, run inside a `tracing` span, its error naming it; a muted receiver's
/// future is dropped unpolled (so it never runs).
///
/// A plain function returning combinators, not an `async fn`: that would keep the receiver's
/// future twice in its state (as its argument and inside the span's wrapper), and receivers'
/// futures hold the saves they make.
#[inline]
pub fn receive<F: ReceiverFuture>(
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
    fut: F,
    model_type: std::any::TypeId,
) -> impl Future<Output = Result<()>> + Send {
    use futures_util::FutureExt as _;
    use futures_util::future::Either;
    use tracing::Instrument as _;
    if is_muted(model_type, receiver) {
        tracing::debug!(model, %signal, receiver, "receiver muted");
        return Either::Left(std::future::ready(Ok(())));
    }
    let span = tracing::debug_span!("receiver", model, %signal, receiver);
    Either::Right(fut.instrument(span.clone()).map(move |res| match res {
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
    }))
}

/// Schedules one `#[on_commit]` receiver's future to run after the outermost commit, naming
/// the receiver in its error.
pub fn schedule_on_commit<F: ReceiverFuture + 'static>(
    tx: &mut Tx,
    model: &'static str,
    receiver: &'static str,
    fut: F,
    model_type: std::any::TypeId,
) {
    // Muting is checked when the work runs, after the commit.
    tx.on_commit_reporting(async move {
        receive(model, SignalKind::OnCommit, receiver, fut, model_type).await
    });
}

/// The signal contexts, for the robust-receiver helpers.
pub trait HasTx {
    /// The context's transaction.
    fn __tx(&mut self) -> &mut Tx;
}

macro_rules! has_tx {
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
        impl HasTx for $ctx<'_> {
            fn __tx(&mut self) -> &mut Tx {
                self.tx()
            }
        }
    )*};
}
model_signals!(has_tx);

/// Opens the savepoint a robust receiver runs in.
pub async fn robust_enter(signal: &mut impl HasTx, model: &'static str) -> Result<Savepoint> {
    signal.__tx().enter(model).await
}

/// Closes a robust receiver's savepoint: releases it when the receiver succeeded; otherwise
/// rolls back what the receiver did, logs the error and keeps it for `receiver_errors()`.
pub async fn robust_leave(
    signal: &mut impl HasTx,
    savepoint: Savepoint,
    res: Result<()>,
) -> Result<()> {
    let tx = signal.__tx();
    match res {
        Ok(()) => tx.leave(savepoint, true).await,
        Err(err) => {
            tx.leave(savepoint, false).await?;
            tracing::warn!(error = %err, "robust receiver failed; its work was rolled back");
            tx.scopes.current().robust_errors.push(err);
            Ok(())
        }
    }
}
