//! The receivers `#[derive(Model)]` wires ([`Hooks`]), and sending a signal: the derive's
//! receivers in declaration order, then those connected at run time.
//!
//! Uses `error`, `kind`, `model`, `tx`, and of `signal` the contexts and the runtime
//! registries (`runtime`, `any`).

use std::any::{Any, TypeId};
use std::future::Future;

use super::batch::{PostDeleteBatch, PostSaveBatch, PreDeleteBatch, PreSaveBatch};
use super::context::{Committed, PostDelete, PostSave, PreDelete, PreSave};
use super::custom::BoxFuture;
use super::{any, runtime};
use crate::error::{Error, Result};
use crate::kind::{SignalKind, model_signals};
use crate::meta::ModelMeta;
use crate::model::Model;
use crate::tx::Tx;

macro_rules! hooks {
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {
        /// The receivers a model's attributes wire, one method per signal kind, implemented by
        /// `#[derive(Model)]`; a kind without receivers keeps the empty default.
        #[doc(hidden)]
        pub trait Hooks: Model {
            /// The kinds with receivers wired, as a set of `SignalKind` bits (see
            /// `__private::wired`).
            const __WIRED: u32 = 0;

            /// Whether a receiver asks for old values (`changed(..)`, `#[model(old_values)]`):
            /// saves then read the row they replace.
            const __OLD_VALUES: bool = false;

            $(
                #[doc = concat!("Runs the `#[", stringify!($name), "]` receivers in order.")]
                fn $hook(
                    _this: &$($inst)* Self,
                    _signal: &mut $ctx<'_>,
                ) -> impl Future<Output = Result<()>> + Send {
                    async { Ok(()) }
                }
            )*

            /// Runs the `#[pre_save]` receivers for a chunk of a bulk save, in declaration order:
            /// a batched receiver once with every row, a per-row one once per row.
            fn __pre_save_batch(
                _rows: &mut [Self],
                _signal: &mut PreSaveBatch<'_>,
            ) -> impl Future<Output = Result<()>> + Send {
                async { Ok(()) }
            }

            /// Runs the `#[post_save]` receivers for a chunk of a bulk save, as
            /// `__pre_save_batch` does.
            fn __post_save_batch(
                _rows: &[Self],
                _signal: &mut PostSaveBatch<'_>,
            ) -> impl Future<Output = Result<()>> + Send {
                async { Ok(()) }
            }

            /// Runs the `#[pre_delete]` receivers for a group of a bulk delete.
            fn __pre_delete_batch(
                _rows: &[Self],
                _signal: &mut PreDeleteBatch<'_>,
            ) -> impl Future<Output = Result<()>> + Send {
                async { Ok(()) }
            }

            /// Runs the `#[post_delete]` receivers for a group of a bulk delete.
            fn __post_delete_batch(
                _rows: &[Self],
                _signal: &mut PostDeleteBatch<'_>,
            ) -> impl Future<Output = Result<()>> + Send {
                async { Ok(()) }
            }

            /// Schedules the `#[on_commit]` receivers on `tx`. `old` is the row a save replaced
            /// (`Some(None)` for a creation), `None` for deletes and when not read; `written`
            /// the fields the save wrote, as bits.
            fn __on_commit(
                _this: &Self,
                _tx: &mut Tx,
                _what: Committed,
                _old: Option<Option<&Self>>,
                _written: u128,
            ) -> Result<()> {
                Ok(())
            }
        }

        $(
            #[doc = concat!("Sends `", stringify!($name), "` for `m`: the derive's receivers, then \
                those connected at run time, then those connected to every model. Generic only \
                to erase the instance: the sending is compiled once, in this crate.")]
            ///
            /// Boxed, and made here: the future is not built in the frame of the operation
            /// that awaits it, which stays on the stack while receivers' nested saves run.
            pub(crate) fn $name<'a, M: Hooks>(
                m: &'a $($inst)* M,
                signal: &'a mut $ctx<'_>,
            ) -> BoxFuture<'a, Result<()>> {
                fn derive<'x, 's, M: Hooks>(
                    m: &'x $($inst)* AnyModel,
                    signal: &'x mut $ctx<'s>,
                ) -> BoxFuture<'x, Result<()>> {
                    Box::pin(M::$hook(downcast!(m, M $(, $inst)*), signal))
                }
                let wired = M::__WIRED & SignalKind::$kind.bit() != 0;
                let derive = wired.then_some(derive::<M> as derive_fn::$kind);
                Box::pin(send::$name(Sent::of::<M>(), m, derive, signal))
            }
        )*

        /// The derive's receivers of each kind, behind a function pointer.
        mod derive_fn {
            use super::*;
            $(
                pub(super) type $kind =
                    for<'x, 's> fn(&'x $($inst)* AnyModel, &'x mut crate::signal::context::$ctx<'s>) -> BoxFuture<'x, Result<()>>;
            )*
        }

        /// Sending each kind, compiled once.
        mod send {
            use super::*;
            $(
                pub(super) async fn $name(
                    sent: Sent,
                    m: &$($inst)* AnyModel,
                    derive: Option<derive_fn::$kind>,
                    ctx: &mut $ctx<'_>,
                ) -> Result<()> {
                    if let Some(derive) = derive {
                        derive(&$($inst)* *m, &mut *ctx).await?;
                    }
                    runtime::dispatch::$name(sent.model, sent.meta.name, &$($inst)* *m, ctx).await?;
                    any::dispatch::$name(sent.model, sent.meta, &*m, sent.erase, ctx).await
                }
            )*
        }
    };
}
model_signals!(hooks);

/// An instance behind a type-erased reference, as the erased senders pass it.
type AnyModel = dyn Any + Send + Sync;

/// `m` as an `M`, which it is: the erased senders are handed an instance of the model whose
/// functions they are given.
macro_rules! downcast {
    ($m:expr, $M:ty) => {
        match $m.downcast_ref::<$M>() {
            Some(m) => m,
            None => unreachable!("an instance of the model it is sent for"),
        }
    };
    ($m:expr, $M:ty, mut) => {
        match $m.downcast_mut::<$M>() {
            Some(m) => m,
            None => unreachable!("an instance of the model it is sent for"),
        }
    };
}
use downcast;

/// What the erased senders need of a model: its type, its description, and how receivers of
/// every model view an instance.
#[derive(Clone, Copy)]
struct Sent {
    model: TypeId,
    meta: &'static ModelMeta,
    erase: for<'x> fn(&'x AnyModel) -> &'x dyn any::Erased,
}

impl Sent {
    fn of<M: Model>() -> Sent {
        fn erase<M: Model>(m: &AnyModel) -> &dyn any::Erased {
            downcast!(m, M)
        }
        Sent {
            model: TypeId::of::<M>(),
            meta: &M::META,
            erase: erase::<M>,
        }
    }
}

/// Sends a batch: the derive's receivers (in declaration order, batched or per row), then, row
/// by row, those connected at run time and those connected to every model. An error of a
/// per-row receiver names its row ([`Error::Bulk`] with `row`, filled in by the operation).
/// Generic only to erase the rows: the sending is compiled once, in this crate.
macro_rules! batch_senders {
    ($(($name:ident, $hook:ident, $batch_hook:ident, $batch:ident, $kind:ident, [$($inst:tt)*],
        |$signal:ident, $i:ident, $row:ident| $one:expr))*) => {
        $(
            pub(crate) fn $name<'a, M: Hooks>(
                rows: &'a $($inst)* [M],
                signal: &'a mut $batch<'_>,
            ) -> BoxFuture<'a, Result<()>> {
                let wired = M::__WIRED & SignalKind::$kind.bit() != 0;
                Box::pin(send_batch::$name(Sent::of::<M>(), Box::new(rows), wired, signal))
            }
        )*

        /// A batch's rows, erased: each as an instance, and the derive's receivers for them.
        mod batch_rows {
            use super::*;
            $(
                pub(super) trait $batch: Send + Sync {
                    fn len(&self) -> usize;
                    fn row(&$($inst)* self, i: usize) -> &$($inst)* AnyModel;
                    fn derive<'x, 's>(&'x $($inst)* self, signal: &'x mut super::$batch<'s>)
                        -> BoxFuture<'x, Result<()>>;
                }

                impl<M: Hooks> $batch for &$($inst)* [M] {
                    fn len(&self) -> usize {
                        <[M]>::len(self)
                    }
                    fn row(&$($inst)* self, i: usize) -> &$($inst)* AnyModel {
                        &$($inst)* self[i]
                    }
                    fn derive<'x, 's>(&'x $($inst)* self, signal: &'x mut super::$batch<'s>)
                        -> BoxFuture<'x, Result<()>> {
                        Box::pin(M::$batch_hook(&$($inst)* **self, signal))
                    }
                }
            )*
        }

        /// Sending each kind of batch, compiled once.
        mod send_batch {
            use super::*;
            $(
                pub(super) async fn $name(
                    sent: Sent,
                    #[allow(unused_mut)] mut rows: Box<dyn batch_rows::$batch + '_>,
                    wired: bool,
                    $signal: &mut $batch<'_>,
                ) -> Result<()> {
                    if wired {
                        rows.derive(&mut *$signal).await?;
                    }
                    let kinds = [SignalKind::$kind];
                    if !runtime::connected_of(sent.model, &kinds) && !any::connected(&kinds) {
                        return Ok(());
                    }
                    for $i in 0..rows.len() {
                        let res = async {
                            let $row = rows.row($i);
                            let mut one = $one;
                            runtime::dispatch::$hook(sent.model, sent.meta.name, &$($inst)* *$row, &mut one).await?;
                            any::dispatch::$hook(sent.model, sent.meta, &*$row, sent.erase, &mut one).await
                        }
                        .await;
                        res.map_err(|err| at_row($i, err))?;
                    }
                    Ok(())
                }
            )*
        }
    };
}
batch_senders! {
    (pre_save_batch, pre_save, __pre_save_batch, PreSaveBatch, PreSave, [mut],
        |signal, i, row| signal.__row(i))
    (post_save_batch, post_save, __post_save_batch, PostSaveBatch, PostSave, [],
        |signal, i, row| signal.__row(i, row))
    (pre_delete_batch, pre_delete, __pre_delete_batch, PreDeleteBatch, PreDelete, [],
        |signal, i, row| signal.__row(i))
    (post_delete_batch, post_delete, __post_delete_batch, PostDeleteBatch, PostDelete, [],
        |signal, i, row| signal.__row(i))
}

/// An error of row `i` of a batch: [`Error::Bulk`] with the row's index in its batch; the
/// operation fills in the model, the index in the whole slice and the key.
pub fn at_row(i: usize, err: Error) -> Error {
    match err {
        err @ Error::Bulk { .. } => err,
        err => Error::Bulk {
            model: "",
            operation: "",
            row: Some(i),
            rows: i..i + 1,
            key: None,
            source: Box::new(err),
        },
    }
}

/// Whether saves of `M` read the row they replace: a receiver of `M`, or one connected for
/// every model, asks for old values.
pub(crate) fn wants_old_values<M: Hooks>() -> bool {
    wants_old_values_of(M::__OLD_VALUES)
}

/// [`wants_old_values`] of a model whose receivers ask for them when `own`.
pub(crate) fn wants_old_values_of(own: bool) -> bool {
    own || any::wants_old_values()
}

/// Whether `M` has receivers of any of `kinds`, wired by its derive or connected at run time:
/// an operation without any runs no transaction for them.
pub(crate) fn any_receivers<M: Hooks>(kinds: &[SignalKind]) -> bool {
    any_receivers_of(M::__WIRED, TypeId::of::<M>(), kinds)
}

/// [`any_receivers`] of the model of type `model`, whose derive wired `wired`.
pub(crate) fn any_receivers_of(wired: u32, model: TypeId, kinds: &[SignalKind]) -> bool {
    kinds.iter().any(|k| wired & k.bit() != 0)
        || runtime::connected_of(model, kinds)
        || any::connected(kinds)
}
