//! Model receivers connected at run time (plugins, tests), after the derive's static ones:
//! the registry, the public `connect_*` functions and running the connected receivers, all
//! generated from the table of signal kinds.
//!
//! Uses `error`, `kind`, `model`, and of `signal` the contexts, muting, the receiver runner
//! and the registry.

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use super::context::{PostDelete, PostSave, PreDelete, PreSave};
use super::custom::BoxFuture;
use super::muting::is_muted;
use super::receiver::receive_boxed;
use super::registry::Registry;
use crate::error::Result;
use crate::kind::{SignalKind, model_signals};
use crate::model::Model;

/// A receiver connected at run time, written as the derive's receivers are: an `async fn` or
/// an async closure (Rust 1.85's `async |..| {..}`) taking the instance (`&mut M` for
/// `pre_save`, `&M` otherwise) and the signal's context, returning [`Result<()>`]. An async
/// closure may capture state (an `Arc<Mutex<..>>`, a channel, a cache handle) and use the
/// save's transaction (`signal.tx()`) in its body:
///
/// ```
/// # use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// # use signals_core::{Model, PostSave, connect_post_save};
/// # #[derive(Model)] struct Tag { id: Option<i64> }
/// let saves = Arc::new(AtomicUsize::new(0));
/// let seen = saves.clone();
/// connect_post_save::<Tag, _>("count", async move |_tag: &Tag, signal: &mut PostSave<'_>| {
///     seen.fetch_add(1, Ordering::SeqCst);
///     let _ = signal.tx(); // the save's transaction
///     Ok(())
/// });
/// ```
///
/// How it is called: the receiver is cloned for each call (so an async closure's captures are
/// `Clone`: share state through an `Arc`) and its future must be `Send` (saves are spawned on
/// multi-threaded runtimes). Name the argument types (`|tag: &Tag, signal: &mut
/// PostSave<'_>|`): the compiler does not infer them for an async closure passed to a generic
/// function. A closure returning a boxed future works too, when the future does not borrow
/// the arguments; one that does is written as an async closure.
///
/// Implemented for every such function; see [`connect_pre_save`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runtime receiver for this signal",
    label = "expected an `async fn(instance, &mut Context<'_>) -> signals_core::Result<()>` or such an async closure",
    note = "for example: `async move |user: &User, signal: &mut PostSave<'_>| {{ .. Ok(()) }}`, or `async fn audit(user: &User, signal: &mut PostSave<'_>) -> signals_core::Result<()>`"
)]
pub trait Receiver<'a, I: 'a, C: 'a>:
    FnOnce(I, &'a mut C) -> <Self as Receiver<'a, I, C>>::Future + Clone + Send + Sync + 'static
{
    /// The future the receiver returns.
    type Future: Future<Output = Result<()>> + Send + 'a;
}

impl<'a, I: 'a, C: 'a, F, Fut> Receiver<'a, I, C> for F
where
    F: FnOnce(I, &'a mut C) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'a,
{
    type Future = Fut;
}

/// The receivers as stored: their futures boxed, one type per signal kind.
mod erased {
    use super::*;

    macro_rules! erased {
        ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
            pub(super) type $kind = dyn for<'a> Fn(&'a $($inst)* AnyModel, &'a mut crate::signal::context::$ctx<'a>) -> BoxFuture<'a, Result<()>>
                + Send
                + Sync;
        )*};
    }
    model_signals!(erased);
}

/// An instance as the stored receivers take it: its model is the key they are stored under,
/// and each receiver downcasts it back (so running them is compiled once, not per model).
type AnyModel = dyn Any + Send + Sync;

/// Runtime receivers, keyed by model and signal; each an `Arc<erased::Kind>` for its key.
type Entries = Registry<(TypeId, SignalKind), Arc<dyn Any + Send + Sync>>;

static RECEIVERS: Entries = Registry::new();

fn connect<M: Model>(signal: SignalKind, uid: &str, receiver: Arc<dyn Any + Send + Sync>) -> bool {
    RECEIVERS.connect((TypeId::of::<M>(), signal), uid, receiver)
}

/// Disconnects the runtime receiver `dispatch_uid` of `M`'s `signal`; returns whether there
/// was one. Receivers wired by the derive cannot be disconnected: they are part of the type.
pub fn disconnect<M: Model>(signal: SignalKind, dispatch_uid: &str) -> bool {
    RECEIVERS.disconnect(&(TypeId::of::<M>(), signal), dispatch_uid)
}

/// The receivers of `M`'s `signal`, in the order they run: the derive's (by path), then the
/// runtime ones (by dispatch id).
pub fn receivers<M: Model>(signal: SignalKind) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = M::META.receivers.of(signal).to_vec();
    out.extend(snapshot::<M>(signal).into_iter().map(|(uid, _)| uid));
    out
}

fn snapshot<M: Model>(signal: SignalKind) -> Vec<(&'static str, Arc<dyn Any + Send + Sync>)> {
    snapshot_of(TypeId::of::<M>(), signal)
}

fn snapshot_of(
    model: TypeId,
    signal: SignalKind,
) -> Vec<(&'static str, Arc<dyn Any + Send + Sync>)> {
    RECEIVERS.snapshot(&(model, signal))
}

/// Drops the receivers of `isolate_receivers` scopes that ended.
pub(crate) fn purge_ended() {
    RECEIVERS.purge_ended();
}

/// Whether the model of type `model` has runtime receivers for any of `signals`.
pub(crate) fn connected_of(model: TypeId, signals: &[SignalKind]) -> bool {
    !RECEIVERS.is_empty()
        && signals
            .iter()
            .any(|signal| RECEIVERS.has(&(model, *signal)))
}

/// Running the receivers connected at run time, once for all models.
pub(crate) mod dispatch {
    use super::*;

    macro_rules! dispatch {
        ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
            pub(crate) async fn $name(
                model: TypeId,
                name: &'static str,
                m: &$($inst)* AnyModel,
                ctx: &mut $ctx<'_>,
            ) -> Result<()> {
                for (uid, receiver) in snapshot_of(model, SignalKind::$kind) {
                    if is_muted(model, uid) {
                        tracing::debug!(model = name, signal = %SignalKind::$kind, receiver = uid, "receiver muted");
                        continue;
                    }
                    if let Some(f) = receiver.downcast_ref::<Arc<erased::$kind>>() {
                        let mut ctx = ctx.reborrow();
                        receive_boxed(name, SignalKind::$kind, uid, f(&$($inst)* *m, &mut ctx), model).await?;
                    }
                }
                Ok(())
            }
        )*};
    }
    model_signals!(dispatch);
}

/// The functions connecting receivers, written out (not generated) so that a receiver of the
/// wrong shape is reported against a signature the user can read.
mod stored {
    use super::*;
    model_signals!(runtime_erase);
}

macro_rules! runtime_erase {
    (@downcast $m:ident mut) => { $m.downcast_mut::<M>() };
    (@downcast $m:ident) => { $m.downcast_ref::<M>() };
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
        /// The receiver, stored: its future boxed.
        pub(super) fn $connect<M, F>(receiver: F) -> Arc<dyn Any + Send + Sync>
        where
            M: Model,
            F: for<'a> Receiver<'a, &'a $($inst)* M, $ctx<'a>>,
        {
            // Stored under `M`'s type id, so the instance is always an `M`.
            let f: Arc<erased::$kind> = Arc::new(move |m, signal| {
                match runtime_erase!(@downcast m $($inst)*) {
                    Some(m) => Box::pin(receiver.clone()(m, signal)),
                    None => Box::pin(std::future::ready(Ok(()))),
                }
            });
            Arc::new(f)
        }
    )*};
}
use runtime_erase;

/// Connects a `pre_save` receiver of `M` at run time under `dispatch_uid`: it runs after the
/// derive's receivers and those connected before it, in the same transaction, and may change
/// the instance before it is written. Returns `false`, changing nothing, when that id is
/// connected to this model and signal already.
///
/// The receiver is an `async fn` or an async closure (see [`Receiver`]); the
/// [crate documentation](crate#receivers-connected-at-run-time) shows both.
///
/// ```
/// use signals_core::{Model, PreSave, Result, SignalKind};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// async fn lowercase(tag: &mut Tag, _: &mut PreSave<'_>) -> Result<()> {
///     tag.name = tag.name.to_lowercase();
///     Ok(())
/// }
///
/// assert!(signals_core::connect_pre_save::<Tag, _>("lowercase", lowercase));
/// assert_eq!(signals_core::receivers::<Tag>(SignalKind::PreSave), ["lowercase"]);
/// ```
pub fn connect_pre_save<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a> Receiver<'a, &'a mut M, PreSave<'a>>,
{
    connect::<M>(
        SignalKind::PreSave,
        dispatch_uid,
        stored::connect_pre_save::<M, F>(receiver),
    )
}

/// Connects a `post_save` receiver of `M` at run time under `dispatch_uid`: it runs after the
/// derive's receivers and those connected before it, in the same transaction. Returns
/// `false`, changing nothing, when that id is connected to this model and signal already.
///
/// The receiver is an `async fn` or an async closure (see [`Receiver`]); the
/// [crate documentation](crate#receivers-connected-at-run-time) shows both.
///
/// ```
/// use signals_core::{Model, PostSave, Result, SignalKind};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64> }
///
/// async fn audit(tag: &Tag, signal: &mut PostSave<'_>) -> Result<()> {
///     let _ = (tag.id, signal.created(), signal.tx());
///     Ok(())
/// }
///
/// assert!(signals_core::connect_post_save::<Tag, _>("audit", audit));
/// assert_eq!(signals_core::receivers::<Tag>(SignalKind::PostSave), ["audit"]);
/// ```
pub fn connect_post_save<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a> Receiver<'a, &'a M, PostSave<'a>>,
{
    connect::<M>(
        SignalKind::PostSave,
        dispatch_uid,
        stored::connect_post_save::<M, F>(receiver),
    )
}

/// Connects a `pre_delete` receiver of `M` at run time under `dispatch_uid`: it runs after the
/// derive's receivers and those connected before it, in the delete's transaction, before the
/// row goes. Returns `false`, changing nothing, when that id is connected to this model and
/// signal already.
///
/// ```
/// use signals_core::{Model, PreDelete, Result, SignalKind};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64> }
///
/// async fn archive(tag: &Tag, signal: &mut PreDelete<'_>) -> Result<()> {
///     let _ = (tag.id, signal.origin(), signal.tx());
///     Ok(())
/// }
///
/// assert!(signals_core::connect_pre_delete::<Tag, _>("archive", archive));
/// assert_eq!(signals_core::receivers::<Tag>(SignalKind::PreDelete), ["archive"]);
/// ```
pub fn connect_pre_delete<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a> Receiver<'a, &'a M, PreDelete<'a>>,
{
    connect::<M>(
        SignalKind::PreDelete,
        dispatch_uid,
        stored::connect_pre_delete::<M, F>(receiver),
    )
}

/// Connects a `post_delete` receiver of `M` at run time under `dispatch_uid`: it runs after
/// the derive's receivers and those connected before it, in the delete's transaction, once the
/// row is gone. Returns `false`, changing nothing, when that id is connected to this model
/// and signal already.
///
/// ```
/// use signals_core::{Model, PostDelete, Result, SignalKind};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64> }
///
/// async fn forget(tag: &Tag, signal: &mut PostDelete<'_>) -> Result<()> {
///     let _ = (tag.id, signal.tx());
///     Ok(())
/// }
///
/// assert!(signals_core::connect_post_delete::<Tag, _>("forget", forget));
/// assert_eq!(signals_core::receivers::<Tag>(SignalKind::PostDelete), ["forget"]);
/// ```
pub fn connect_post_delete<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a> Receiver<'a, &'a M, PostDelete<'a>>,
{
    connect::<M>(
        SignalKind::PostDelete,
        dispatch_uid,
        stored::connect_post_delete::<M, F>(receiver),
    )
}
