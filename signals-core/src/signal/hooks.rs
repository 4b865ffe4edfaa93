//! The receivers `#[derive(Model)]` wires ([`Hooks`]), and sending a signal: the derive's
//! receivers in declaration order, then those connected at run time.
//!
//! Uses `error`, `kind`, `model`, `tx`, and of `signal` the contexts and the runtime
//! registries (`runtime`, `any`).

use std::future::Future;

use super::context::{Committed, PostDelete, PostSave, PreDelete, PreSave};
use super::{any, runtime};
use crate::error::Result;
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

            /// Schedules the `#[on_commit]` receivers on `tx`. `old` is the row a save replaced
            /// (`Some(None)` for a creation), `None` for deletes and when not read; `written`
            /// the fields the save wrote, as bits.
            fn __on_commit(
                _this: &Self,
                _tx: &mut Tx,
                _what: Committed,
                _old: Option<Option<&Self>>,
                _written: u128,
            ) {
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
