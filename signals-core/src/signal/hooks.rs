//! The receivers `#[derive(Model)]` wires ([`Hooks`]), and sending a signal: the derive's
//! receivers in declaration order, then those connected at run time.
//!
//! Uses `error`, `kind`, `model`, `tx`, and of `signal` the contexts and the runtime
//! registries (`runtime`, `any`).

use std::future::Future;

use super::batch::{PostDeleteBatch, PostSaveBatch, PreDeleteBatch, PreSaveBatch};
use super::context::{Committed, PostDelete, PostSave, PreDelete, PreSave};
use super::{any, runtime};
use crate::error::{Error, Result};
use crate::kind::{SignalKind, model_signals};
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
                those connected at run time, then those connected to every model.")]
            pub(crate) async fn $name<M: Hooks>(m: &$($inst)* M, signal: &mut $ctx<'_>) -> Result<()> {
                M::$hook(&$($inst)* *m, signal).await?;
                runtime::$name(&$($inst)* *m, signal).await?;
                any::$name(&*m, signal).await
            }
        )*
    };
}
model_signals!(hooks);

/// Sends a batch: the derive's receivers (in declaration order, batched or per row), then, row
/// by row, those connected at run time and those connected to every model. An error of a
/// per-row receiver names its row ([`Error::Bulk`] with `row`, filled in by the operation).
macro_rules! batch_senders {
    ($(($name:ident, $hook:ident, $batch_hook:ident, $batch:ident, $kind:ident, [$($inst:tt)*],
        |$signal:ident, $i:ident, $row:ident| $one:expr))*) => {$(
        pub(crate) async fn $name<M: Hooks>(rows: &$($inst)* [M], $signal: &mut $batch<'_>) -> Result<()> {
            M::$batch_hook(rows, $signal).await?;
            if !runtime::connected::<M>(&[SignalKind::$kind]) && !any::connected(&[SignalKind::$kind]) {
                return Ok(());
            }
            for ($i, $row) in rows.into_iter().enumerate() {
                let res = async {
                    let mut one = $one;
                    runtime::$hook(&$($inst)* *$row, &mut one).await?;
                    any::$hook(&*$row, &mut one).await
                }
                .await;
                res.map_err(|err| at_row($i, err))?;
            }
            Ok(())
        }
    )*};
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
    M::__OLD_VALUES || any::wants_old_values()
}

/// Whether `M` has receivers of any of `kinds`, wired by its derive or connected at run time:
/// an operation without any runs no transaction for them.
pub(crate) fn any_receivers<M: Hooks>(kinds: &[SignalKind]) -> bool {
    kinds.iter().any(|k| M::__WIRED & k.bit() != 0)
        || runtime::connected::<M>(kinds)
        || any::connected(kinds)
}
