//! `m2m_changed`: what its receivers are told ([`M2mChange`], [`M2mChanged`], [`M2mAction`]),
//! and the trait a through model's derive implements for each direction ([`Through`]).
//!
//! Uses `error`, `model`, `tx`, and of `signal` the boxed future type.

use std::future::Future;

use super::custom::BoxFuture;
use crate::error::Result;
use crate::model::Model;
use crate::tx::Tx;

/// What happened to the links, as `m2m_changed` receivers are told: before (`Pre*`, which may
/// refuse the change with an error: nothing is written) and after (`Post*`) each action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum M2mAction {
    /// Links are about to be added.
    PreAdd,
    /// Links were added.
    PostAdd,
    /// Links are about to be removed (by `remove`, `set`, or a delete of either end).
    PreRemove,
    /// Links were removed.
    PostRemove,
    /// Every link of the instance is about to be removed by `clear`.
    PreClear,
    /// Every link of the instance was removed by `clear`.
    PostClear,
}

/// A change of the links between `A` and `B` (the through model's first and second reference),
/// with the keys that actually change: a key already linked is not reported by an add, a key
/// not linked is not reported by a remove.
///
/// Changed from `A`'s side (`post.tags().add(..)`), [`forward`](Self::forward) gives the `A`
/// and the `B` keys; from `B`'s side (`tag.post_set().add(..)`), [`reverse`](Self::reverse) is
/// `true` and [`backward`](Self::backward) gives the `B` and the `A` keys, as Django's
/// `instance`, `reverse` and `pk_set`.
pub struct M2mChange<'a, A: Model, B: Model> {
    action: M2mAction,
    side: Side<'a, A, B>,
}

enum Side<'a, A: Model, B: Model> {
    Forward(&'a A, &'a [B::Key]),
    Backward(&'a B, &'a [A::Key]),
}

impl<'a, A: Model, B: Model> M2mChange<'a, A, B> {
    #[doc(hidden)]
    pub fn __forward(action: M2mAction, instance: &'a A, keys: &'a [B::Key]) -> Self {
        M2mChange {
            action,
            side: Side::Forward(instance, keys),
        }
    }

    #[doc(hidden)]
    pub fn __backward(action: M2mAction, instance: &'a B, keys: &'a [A::Key]) -> Self {
        M2mChange {
            action,
            side: Side::Backward(instance, keys),
        }
    }

    /// What happened (or is about to).
    pub fn action(&self) -> M2mAction {
        self.action
    }

    /// Whether the change was made from `B`'s side.
    pub fn reverse(&self) -> bool {
        matches!(self.side, Side::Backward(..))
    }

    /// The model on the other side of the instance whose links change (Django's `model`).
    pub fn model(&self) -> &'static str {
        match self.side {
            Side::Forward(..) => B::META.name,
            Side::Backward(..) => A::META.name,
        }
    }

    /// The `A` whose links change and the `B` keys that change, when changed from `A`'s side.
    pub fn forward(&self) -> Option<(&'a A, &'a [B::Key])> {
        match self.side {
            Side::Forward(instance, keys) => Some((instance, keys)),
            Side::Backward(..) => None,
        }
    }

    /// The `B` whose links change and the `A` keys that change, when changed from `B`'s side.
    pub fn backward(&self) -> Option<(&'a B, &'a [A::Key])> {
        match self.side {
            Side::Backward(instance, keys) => Some((instance, keys)),
            Side::Forward(..) => None,
        }
    }

    /// Every link that changes, as `(A key, B key)`, whichever side the change came from.
    pub fn pairs(&self) -> Vec<(A::Key, B::Key)> {
        match self.side {
            Side::Forward(a, keys) => a
                .__key()
                .map(|a| keys.iter().map(|b| (a.clone(), b.clone())).collect())
                .unwrap_or_default(),
            Side::Backward(b, keys) => b
                .__key()
                .map(|b| keys.iter().map(|a| (a.clone(), b.clone())).collect())
                .unwrap_or_default(),
        }
    }
}

impl<A: Model, B: Model> std::fmt::Debug for M2mChange<'_, A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2mChange")
            .field("action", &self.action)
            .field("reverse", &self.reverse())
            .field("pairs", &self.pairs())
            .finish()
    }
}

/// What an `m2m_changed` receiver gets besides the change: the open transaction the change
/// runs in.
#[derive(Debug)]
pub struct M2mChanged<'t> {
    tx: &'t mut Tx,
}

impl<'t> M2mChanged<'t> {
    pub(crate) fn new(tx: &'t mut Tx) -> Self {
        M2mChanged { tx }
    }

    super::context::common!("change of the links");
}

/// A through model seen from `F`'s side towards `T`'s: implemented by `#[derive(Model)]`, both
/// ways, for a model with exactly two references, one to each of two models.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a through model between `{F}` and `{T}`",
    label = "not a through model of this relation",
    note = "a through model is a `#[derive(Model)]` struct with exactly two references \
            (`foreign_key` or `one_to_one`), one to each side"
)]
pub trait Through<F: Model, T: Model>: Model {
    /// The through column holding `F`'s key.
    const FROM: &'static str;
    /// The through column holding `T`'s key.
    const TO: &'static str;
    /// Whether `F` is the through model's second reference (a change from `B`'s side).
    #[doc(hidden)]
    const __REVERSE: bool;

    /// The keys a through row links: `F`'s and `T`'s (`None` for a NULL reference).
    #[doc(hidden)]
    fn __link(&self) -> (Option<&F::Key>, Option<&T::Key>);

    /// Sends `m2m_changed` to the through model's receivers, in order.
    #[doc(hidden)]
    fn __send<'a>(
        action: M2mAction,
        instance: &'a F,
        keys: &'a [T::Key],
        signal: &'a mut M2mChanged<'_>,
    ) -> BoxFuture<'a, Result<()>>;
}
