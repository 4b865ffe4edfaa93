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
use super::receiver::receive;
use super::registry::Registry;
use crate::error::Result;
use crate::kind::{SignalKind, model_signals};
use crate::model::Model;

/// A receiver connected at run time: an `async fn` taking the instance (`&mut M` for
/// `pre_save`, `&M` otherwise) and the signal's context, returning [`Result<()>`], as the
/// derive's receivers are written; or a closure returning a boxed future (a future that does
/// not borrow the closure's arguments: one that does is an `async fn`).
///
/// Implemented for every such function; see [`connect_pre_save`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runtime receiver for this signal",
    label = "expected an `async fn(instance, &mut Context<'_>) -> signals_core::Result<()>`",
    note = "for example: `async fn audit(user: &User, signal: &mut PostSave<'_>) -> signals_core::Result<()>`; a closure must return a boxed future: `|user: &User, signal: &mut PostSave<'_>| Box::pin(async {{ Ok(()) }})`"
)]
pub trait Receiver<'a, I: 'a, C: 'a>:
    Fn(I, &'a mut C) -> <Self as Receiver<'a, I, C>>::Future + Send + Sync + 'static
{
    /// The future the receiver returns.
    type Future: Future<Output = Result<()>> + Send + 'a;
}

impl<'a, I: 'a, C: 'a, F, Fut> Receiver<'a, I, C> for F
where
    F: Fn(I, &'a mut C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'a,
{
    type Future = Fut;
}

/// The receivers as stored: their futures boxed, one type per signal kind.
mod erased {
    use super::*;

    macro_rules! erased {
        ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
            pub(super) type $kind<M> = dyn for<'a> Fn(&'a $($inst)* M, &'a mut crate::signal::context::$ctx<'a>) -> BoxFuture<'a, Result<()>>
                + Send
                + Sync;
        )*};
    }
    model_signals!(erased);
}

/// Runtime receivers, keyed by model and signal; each an `Arc<erased::Kind<M>>` for its key.
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
    RECEIVERS.snapshot(&(TypeId::of::<M>(), signal))
}

/// Whether `M` has runtime receivers for any of `signals`.
pub(crate) fn connected<M: Model>(signals: &[SignalKind]) -> bool {
    !RECEIVERS.is_empty()
        && signals
            .iter()
            .any(|signal| RECEIVERS.has(&(TypeId::of::<M>(), *signal)))
}

macro_rules! runtime {
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
        #[doc = concat!("Connects a `", stringify!($name), "` receiver of `M` at run time under \
            `dispatch_uid`: it runs after the derive's receivers and those connected before it, \
            in the same transaction. Returns `false`, changing nothing, when that id is \
            connected to this model and signal already.")]
        ///
        /// The receiver is written as the derive's are (see [`Receiver`]); the
        /// [crate documentation](crate#receivers-connected-at-run-time) shows closures too.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
        #[doc = concat!("use signals_core::{Model, ", stringify!($ctx), ", Result, SignalKind};")]
        ///
        /// #[derive(Model)]
        /// struct Tag { id: Option<i64> }
        ///
        #[doc = concat!("async fn audit(tag: &", stringify!($($inst)*), " Tag, signal: &mut ",
            stringify!($ctx), "<'_>) -> Result<()> {")]
        ///     let _ = (tag.id, signal.tx());
        ///     Ok(())
        /// }
        ///
        #[doc = concat!("assert!(signals_core::", stringify!($connect), "::<Tag, _>(\"audit\", audit));")]
        #[doc = concat!("assert_eq!(signals_core::receivers::<Tag>(SignalKind::", stringify!($kind), "), [\"audit\"]);")]
        /// # Ok(()) }
        /// ```
        pub fn $connect<M, F>(dispatch_uid: &str, receiver: F) -> bool
        where
            M: Model,
            F: for<'a> Receiver<'a, &'a $($inst)* M, $ctx<'a>>,
        {
            let f: Arc<erased::$kind<M>> = Arc::new(move |m, signal| Box::pin(receiver(m, signal)));
            connect::<M>(SignalKind::$kind, dispatch_uid, Arc::new(f))
        }

        /// Runs the receivers of `M` connected at run time to this signal, in connection order.
        /// A muted receiver is not called at all.
        pub(crate) async fn $name<M: Model>(m: &$($inst)* M, ctx: &mut $ctx<'_>) -> Result<()> {
            for (uid, receiver) in snapshot::<M>(SignalKind::$kind) {
                if is_muted(TypeId::of::<M>(), uid) {
                    tracing::debug!(model = M::META.name, signal = %SignalKind::$kind, receiver = uid, "receiver muted");
                    continue;
                }
                if let Some(f) = receiver.downcast_ref::<Arc<erased::$kind<M>>>() {
                    let mut ctx = ctx.reborrow();
                    receive(
                        M::META.name,
                        SignalKind::$kind,
                        uid,
                        f(&$($inst)* *m, &mut ctx),
                        TypeId::of::<M>(),
                    )
                    .await?;
                }
            }
            Ok(())
        }
    )*};
}
model_signals!(runtime);
