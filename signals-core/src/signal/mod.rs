//! Signals: what receivers are told (`context`), the receivers the derive wires and sending a
//! signal (`hooks`), running one receiver (`receiver`), receivers connected at run time
//! (`runtime`) and for every model (`any`), signals of your own (`custom`), muting and
//! recording (`muting`).
//!
//! Uses `error`, `kind`, `tx` and `model`; `ops` sends the signals.
//!
//! # Adding a signal kind
//!
//! A model signal is one row of `model_signals!` in `kind.rs`: its [`SignalKind`] variant, its
//! attribute name, its hook method, its context type, how receivers borrow the instance, and
//! the name of its `connect_*` function. From that row come the `SignalKind` variant and its
//! name, the field of [`Receivers`], the method of `Hooks` with its empty default, the
//! function that sends it (the derive's receivers, then the runtime ones), the runtime
//! registry's type and `connect_*` function, muting, and the robust-receiver plumbing. What
//! the row cannot say is written once by hand:
//!
//! 1. the context type in `context.rs`, with `tx()`, `on_commit()` and a `reborrow()`;
//! 2. the row of the derive's own table (`SIGNALS` in signals-derive's `attr.rs`);
//! 3. the operation in `ops` that sends it, through `hooks::<name>`.
//!
//! [`SignalKind`]: crate::SignalKind
//! [`Receivers`]: crate::Receivers

pub(crate) mod any;
pub(crate) mod batch;
pub(crate) mod context;
pub(crate) mod custom;
pub mod durable;
pub(crate) mod hooks;
pub(crate) mod m2m;
pub(crate) mod muting;
pub(crate) mod receiver;
pub(crate) mod registry;
pub(crate) mod runtime;
pub(crate) mod scope;

pub use any::{
    Change, Instance, any_receivers, connect_any_post_delete, connect_any_post_save,
    connect_any_pre_delete, connect_any_pre_save, disconnect_any,
};
pub use batch::{PostDeleteBatch, PostSaveBatch, PreDeleteBatch, PreSaveBatch};
pub use context::{Committed, PostDelete, PostSave, PreDelete, PreSave};
pub use custom::{BoxFuture, Signal, SignalReceiver};
pub use hooks::Hooks;
pub use m2m::{M2mAction, M2mChange, M2mChanged};
pub use muting::{Fired, MuteGuard, mute, mute_receiver, record_signals};
pub use runtime::{
    Receiver, connect_post_delete, connect_post_save, connect_pre_delete, connect_pre_save,
    disconnect, receivers,
};
pub use scope::isolate_receivers;
