//! Running one receiver: in a `tracing` span, muted or not, its error named; robust receivers
//! in a savepoint of their own; `#[on_commit]` receivers scheduled after the commit.
//!
//! Uses `error`, `kind`, `model`, `tx`, and of `signal` the contexts and muting.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::context::{Committed, PostDelete, PostSave, PreDelete, PreSave};
use super::custom::BoxFuture;
use super::muting::is_muted;
use crate::error::{Error, Result};
use crate::kind::{SignalKind, model_signals};
use crate::model::Model;
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
/// Only boxing the receiver's future is compiled per receiver: the span, muting and the error's
/// naming are `receive_boxed`, compiled once. The box also keeps the receiver's future (which
/// holds the saves it makes) out of the operation's own.
#[inline]
pub fn receive<'a, F: ReceiverFuture + 'a>(
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
    fut: F,
    model_type: std::any::TypeId,
) -> impl Future<Output = Result<()>> + Send + 'a {
    use futures_util::TryFutureExt as _;
    // A combinator, not an `async` block: its poll moves nothing onto the stack.
    let fut: BoxFuture<'a, Result<()>> = Box::pin(fut.map_err(Into::into));
    receive_boxed(model, signal, receiver, fut, model_type)
}

/// [`receive`] for a boxed future.
///
/// Not an `async fn`: the span and the muting check are made here, at once, and the outcome
/// is logged by a function of its own, so that the frame of [`ReceiverCall::poll`], which
/// stays on the stack while a receiver's nested saves run, is small.
pub(crate) fn receive_boxed<'a>(
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
    fut: BoxFuture<'a, Result<()>>,
    model_type: std::any::TypeId,
) -> ReceiverCall<'a> {
    use tracing::Instrument as _;
    let call = |inner| ReceiverCall {
        inner,
        model,
        signal,
        receiver,
    };
    if is_muted(model_type, receiver) {
        tracing::debug!(model, %signal, receiver, "receiver muted");
        return call(None);
    }
    if signal != SignalKind::OnCommit {
        super::muting::reached(signal, receiver);
    }
    let span = tracing::debug_span!("receiver", model, %signal, receiver);
    call(Some(fut.instrument(span)))
}

/// One receiver's call in its span (`None` when muted): see [`receive`].
pub(crate) struct ReceiverCall<'a> {
    inner: Option<tracing::instrument::Instrumented<BoxFuture<'a, Result<()>>>>,
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
}

impl Future for ReceiverCall<'_> {
    type Output = Result<()>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        let this = self.get_mut();
        let Some(inner) = &mut this.inner else {
            return std::task::Poll::Ready(Ok(()));
        };
        let res = std::task::ready!(std::pin::Pin::new(&mut *inner).poll(cx));
        std::task::Poll::Ready(received(
            inner.span(),
            res,
            this.model,
            this.signal,
            this.receiver,
        ))
    }
}

/// Logs a receiver's outcome in its span and names it in its error.
#[inline(never)]
fn received(
    span: &tracing::Span,
    res: Result<()>,
    model: &'static str,
    signal: SignalKind,
    receiver: &'static str,
) -> Result<()> {
    match res {
        Ok(()) => {
            tracing::debug!(parent: span, "receiver ran");
            Ok(())
        }
        Err(err) => {
            tracing::debug!(parent: span, error = %err, "receiver failed");
            Err(Error::Receiver {
                model,
                signal,
                receiver,
                source: Box::new(err),
            })
        }
    }
}

/// A `#[post_load(..)]` receiver: a plain function given `&mut` each instance built from a
/// row, returning `Result<(), E>` with `E: Into<Error>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `post_load` receiver of `{M}`",
    label = "expected a plain (not async) `fn(&mut {M}) -> Result<(), E>` where `E: Into<signals_core::Error>`",
    note = "`post_load` receivers run while rows are decoded, so they are not async: for example `fn verify(doc: &mut Doc) -> signals_core::Result<()>`"
)]
pub trait PostLoadReceiver<M> {
    /// Runs the receiver.
    fn call(self, m: &mut M) -> Result<()>;
}

impl<M, F, E> PostLoadReceiver<M> for F
where
    F: FnOnce(&mut M) -> std::result::Result<(), E>,
    E: Into<Error>,
{
    #[inline]
    fn call(self, m: &mut M) -> Result<()> {
        self(m).map_err(Into::into)
    }
}

/// Runs one `#[post_load]` receiver on an instance just built from a row, naming it in its
/// error. Not muted, not recorded: it is part of building the instance.
#[inline]
pub fn post_load<M: Model>(
    receiver: &'static str,
    f: impl PostLoadReceiver<M>,
    m: &mut M,
) -> Result<()> {
    f.call(m).map_err(|err| Error::Receiver {
        model: M::META.name,
        signal: SignalKind::PostLoad,
        receiver,
        source: Box::new(err),
    })
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

/// What `#[on_commit(.., changed(..))]` compares for one row and receiver in a transaction:
/// the row before its first save there, and the saves scheduled since (by sequence number,
/// with the fields each wrote); a save whose savepoint rolls back leaves the list.
struct RowState<M> {
    baseline: Option<M>,
    next: AtomicU64,
    /// seq -> (fields written, already settled after (or just before) the commit)
    saves: Mutex<BTreeMap<u64, (u128, bool)>>,
}

/// One save's place in its row's list, dropped with the after-commit work (or the durable
/// event) it belongs to.
pub(crate) struct Scheduled<M> {
    state: Arc<RowState<M>>,
    seq: u64,
}

impl<M> Drop for Scheduled<M> {
    fn drop(&mut self) {
        let mut saves = self.state.saves.lock().unwrap_or_else(|e| e.into_inner());
        if saves.get(&self.seq).is_some_and(|(_, ran)| !ran) {
            // Rolled back (or the transaction was): this save never committed.
            saves.remove(&self.seq);
        }
    }
}

/// Puts a save of `this` (writing the fields `written`) on its row's list for `receiver`,
/// keeping `old`, the row before its first save in `tx`, as the baseline.
pub(crate) fn track<M: Model + Clone>(
    tx: &mut Tx,
    receiver: &'static str,
    this: &M,
    old: Option<&M>,
    written: u128,
) -> Scheduled<M> {
    let key = format!("{:?}", this.__key());
    let entry = tx
        .row_states
        .entry((TypeId::of::<M>(), receiver, key))
        .or_insert_with(|| {
            Arc::new(RowState {
                baseline: old.cloned(),
                next: AtomicU64::new(0),
                saves: Mutex::new(BTreeMap::new()),
            })
        })
        .clone();
    let Ok(state) = entry.downcast::<RowState<M>>() else {
        unreachable!("keyed by the model's type")
    };
    let seq = state.next.fetch_add(1, Ordering::Relaxed);
    state
        .saves
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(seq, (written, false));
    Scheduled { state, seq }
}

impl<M> Scheduled<M> {
    /// Settles this save once its transaction commits (or is about to): `Some(created)` when
    /// it is the row's last committed save and a named field differs between the baseline and
    /// `instance` (counting the fields some committed save wrote), or the row was created.
    pub(crate) fn settle(&self, instance: &M, differs: fn(&M, &M, u128) -> bool) -> Option<bool> {
        let (last, written) = {
            let mut saves = self.state.saves.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = saves.get_mut(&self.seq) {
                entry.1 = true;
            }
            let last = saves.keys().next_back() == Some(&self.seq);
            (last, saves.values().fold(0, |all, (w, _)| all | w))
        };
        if !last {
            return None;
        }
        match &self.state.baseline {
            None => Some(true),
            Some(before) => differs(before, instance, written).then_some(false),
        }
    }
}

/// Schedules an `#[on_commit(.., changed(..))]` receiver for a save: after the outermost
/// commit, it runs once per row, for the row's last committed save, when a field it names
/// differs between the row before its first save in the transaction and the instance as last
/// saved (counting the fields some committed save wrote). `old` is `None` for deletes, which
/// change no field: nothing is scheduled.
#[allow(clippy::too_many_arguments)]
pub fn schedule_on_commit_changed<M, C, F>(
    tx: &mut Tx,
    model: &'static str,
    receiver: &'static str,
    this: &M,
    old: Option<Option<&M>>,
    written: u128,
    differs: fn(&M, &M, u128) -> bool,
    call: C,
) where
    M: Model + Clone,
    C: FnOnce(M, Committed) -> F + Send + 'static,
    F: ReceiverFuture + 'static,
{
    let Some(old) = old else { return };
    let scheduled = track(tx, receiver, this, old, written);
    let instance = this.clone();
    tx.on_commit_reporting(async move {
        let Some(created) = scheduled.settle(&instance, differs) else {
            return Ok(());
        };
        let fut = call(instance, Committed::Saved { created });
        receive(
            model,
            SignalKind::OnCommit,
            receiver,
            fut,
            TypeId::of::<M>(),
        )
        .await
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

macro_rules! batch_has_tx {
    ($($ctx:ident)*) => {$(
        impl HasTx for super::batch::$ctx<'_> {
            fn __tx(&mut self) -> &mut Tx {
                self.tx()
            }
        }
    )*};
}
batch_has_tx!(PreSaveBatch PostSaveBatch PreDeleteBatch PostDeleteBatch);

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
