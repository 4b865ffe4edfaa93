//! Receivers for every model (Django's `@receiver(post_save)` without a sender), connected at
//! run time: they get a type-erased [`Instance`] and run after each model's own receivers, in
//! the same transaction, muted and recorded as the others.
//!
//! Uses `error`, `kind`, `meta`, `model`, and of `signal` the contexts, muting, the receiver
//! runner, the registry and the runtime receivers' trait.

use std::any::{Any, TypeId};
use std::sync::Arc;

use serde_json::Value;

use super::context::{PostDelete, PostSave, PreDelete, PreSave};
use super::custom::BoxFuture;
use super::muting::is_muted;
use super::receiver::receive_boxed;
use super::registry::Registry;
use super::runtime::Receiver;
use crate::error::Result;
use crate::kind::{SignalKind, model_signals};
use crate::meta::ModelMeta;
use crate::model::Model;

/// An instance of any model, as receivers connected to every model see it: its model, key and
/// fields as JSON, and, for saves, the row it replaced.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Instance, Model, PostSave, Result, connect_any_post_save};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// // An audit of every change of every model: who, what, old -> new.
/// async fn audit(instance: &Instance<'_>, signal: &mut PostSave<'_>) -> Result<()> {
///     for change in instance.changes() {
///         println!("{} {}: {} {} -> {}", instance.model(), instance.key(), change.field, change.old, change.new);
///     }
///     let _ = signal.tx(); // the save's own transaction, for an audit table
///     Ok(())
/// }
/// assert!(connect_any_post_save("audit", audit));
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_tables::<Tag>().await?;
/// let mut tag = Tag { id: None, name: "rust".into() };
/// tag.save(&db).await?; // audit: Tag 1: id null -> 1, name null -> "rust"
/// tag.name = "Rust".into();
/// tag.save(&db).await?; // audit: Tag 1: name "rust" -> "Rust"
/// assert!(signals_core::disconnect_any(signals_core::SignalKind::PostSave, "audit"));
/// # Ok(()) }
/// ```
pub struct Instance<'a> {
    meta: &'static ModelMeta,
    this: &'a dyn Erased,
    /// The row a save replaced; `None` for a creation and for deletes.
    old: Option<&'a dyn Erased>,
    /// The fields the save wrote (`update_fields`), all for other saves.
    saved: Option<&'a [&'static str]>,
}

/// One field a save changed, as [`Instance::changes`] lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The field's name.
    pub field: &'static str,
    /// What the database held (`null` for a creation).
    pub old: Value,
    /// What the save wrote.
    pub new: Value,
}

/// A model instance behind a type-erased reference.
pub(crate) trait Erased: Send + Sync {
    fn json(&self, index: usize) -> Value;
    fn key_json(&self) -> Value;
    fn as_any(&self) -> &dyn Any;
}

impl<M: Model> Erased for M {
    fn json(&self, index: usize) -> Value {
        self.__json(index)
    }
    fn key_json(&self) -> Value {
        self.__json(M::META.primary_key)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<'a> Instance<'a> {
    /// The model's name (`"User"`).
    pub fn model(&self) -> &'static str {
        self.meta.name
    }

    /// The model's table.
    pub fn table(&self) -> &'static str {
        self.meta.table
    }

    /// The model's description: fields, columns, receivers.
    pub fn meta(&self) -> &'static ModelMeta {
        self.meta
    }

    /// The primary key, as JSON (`null` before a creation's INSERT, in `pre_save`).
    pub fn key(&self) -> Value {
        self.this.key_json()
    }

    /// Field `name`, as JSON; `None` when the model has no such field.
    pub fn field(&self, name: &str) -> Option<Value> {
        let index = self.meta.fields.iter().position(|f| *f == name)?;
        Some(self.this.json(index))
    }

    /// Every field with its value, in declaration order.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        (0..self.meta.fields.len())
            .map(|i| (self.meta.fields[i], self.this.json(i)))
            .collect()
    }

    /// The row the save replaced, as the database held it; `None` for a creation and for
    /// deletes. (Saves read it for every model while a receiver is connected to every
    /// model's `pre_save` or `post_save`.)
    pub fn old(&self) -> Option<Instance<'a>> {
        self.old.map(|old| Instance {
            meta: self.meta,
            this: old,
            old: None,
            saved: None,
        })
    }

    /// The fields the save changed, old and new, in declaration order: among the fields it
    /// wrote, those whose value differs from the row it replaced, as the database stores it
    /// (times to the microsecond, decimals at their column's scale: re-saving `Utc::now()` or
    /// `12.5` into a `DECIMAL(10, 2)` changes nothing); every field for a creation (old values
    /// `null`). Empty for deletes.
    pub fn changes(&self) -> Vec<Change> {
        (0..self.meta.fields.len())
            .filter(|&i| self.saved.is_none_or(|f| f.contains(&self.meta.fields[i])))
            .filter_map(|i| {
                let new = self.this.json(i);
                let old = match self.old {
                    Some(old) => old.json(i),
                    None => Value::Null,
                };
                (old != new || self.old.is_none()).then_some(Change {
                    field: self.meta.fields[i],
                    old,
                    new,
                })
            })
            .collect()
    }

    /// The instance itself, when it is an `M`.
    pub fn downcast<M: Model>(&self) -> Option<&'a M> {
        self.this.as_any().downcast_ref::<M>()
    }
}

impl std::fmt::Debug for Instance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("model", &self.meta.name)
            .field("fields", &self.fields())
            .finish_non_exhaustive()
    }
}

/// The receivers as stored, one boxed type per signal kind.
mod erased {
    use super::*;

    macro_rules! erased {
        ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
            pub(super) type $kind = dyn for<'a> Fn(&'a Instance<'a>, &'a mut crate::signal::context::$ctx<'a>) -> BoxFuture<'a, Result<()>>
                + Send
                + Sync;
        )*};
    }
    model_signals!(erased);
}

/// Receivers for every model, keyed by signal; each an `Arc<erased::Kind>` for its signal.
static RECEIVERS: Registry<SignalKind, Arc<dyn Any + Send + Sync>> = Registry::new();

/// Muting and recording name these receivers by their dispatch id, for the model saved: they
/// are muted with `mute_receiver::<M>(uid)` for a model, like the others.
fn connect(signal: SignalKind, uid: &str, receiver: Arc<dyn Any + Send + Sync>) -> bool {
    RECEIVERS.connect(signal, uid, receiver)
}

/// Disconnects the receiver `dispatch_uid` connected to every model's `signal`; returns
/// whether there was one.
pub fn disconnect_any(signal: SignalKind, dispatch_uid: &str) -> bool {
    RECEIVERS.disconnect(&signal, dispatch_uid)
}

/// The receivers connected to every model's `signal`, in the order they run.
pub fn any_receivers(signal: SignalKind) -> Vec<&'static str> {
    snapshot(signal).into_iter().map(|(uid, _)| uid).collect()
}

fn snapshot(signal: SignalKind) -> Vec<(&'static str, Arc<dyn Any + Send + Sync>)> {
    RECEIVERS.snapshot(&signal)
}

/// Whether receivers for every model are connected to any of `signals`.
pub(crate) fn connected(signals: &[SignalKind]) -> bool {
    !RECEIVERS.is_empty() && signals.iter().any(|s| RECEIVERS.has(s))
}

/// Drops the receivers of `isolate_receivers` scopes that ended.
pub(crate) fn purge_ended() {
    RECEIVERS.purge_ended();
}

/// Whether saves must read the rows they replace for receivers of every model.
pub(crate) fn wants_old_values() -> bool {
    connected(&[SignalKind::PreSave, SignalKind::PostSave])
}

/// What each context gives an [`Instance`]: the replaced row and the saved fields.
trait View<'t> {
    fn old_any(&self) -> Option<&'t (dyn Any + Send + Sync)>;
    fn saved_fields(&self) -> Option<&'t [&'static str]>;
}

macro_rules! save_view {
    ($($ctx:ident)*) => {$(
        impl<'t> View<'t> for $ctx<'t> {
            fn old_any(&self) -> Option<&'t (dyn Any + Send + Sync)> {
                self.__old_any()
            }
            fn saved_fields(&self) -> Option<&'t [&'static str]> {
                self.__update_fields()
            }
        }
    )*};
}
save_view!(PreSave PostSave);

macro_rules! delete_view {
    ($($ctx:ident)*) => {$(
        impl<'t> View<'t> for $ctx<'t> {
            fn old_any(&self) -> Option<&'t (dyn Any + Send + Sync)> {
                None
            }
            fn saved_fields(&self) -> Option<&'t [&'static str]> {
                None
            }
        }
    )*};
}
delete_view!(PreDelete PostDelete);

/// Running the receivers of every model, once for all models: `m` is the instance and `erase`
/// views it (and the row a save replaced) as these receivers take it.
pub(crate) mod dispatch {
    use super::*;

    macro_rules! dispatch {
        ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
            pub(crate) async fn $name(
                model: TypeId,
                meta: &'static ModelMeta,
                m: &(dyn Any + Send + Sync),
                erase: for<'x> fn(&'x (dyn Any + Send + Sync)) -> &'x dyn Erased,
                ctx: &mut $ctx<'_>,
            ) -> Result<()> {
                let receivers = snapshot(SignalKind::$kind);
                if receivers.is_empty() {
                    return Ok(());
                }
                let this = erase(m);
                let old = View::old_any(&*ctx).map(erase);
                for (uid, receiver) in receivers {
                    if is_muted(model, uid) {
                        tracing::debug!(model = meta.name, signal = %SignalKind::$kind, receiver = uid, "receiver muted");
                        continue;
                    }
                    let Some(f) = receiver.downcast_ref::<Arc<erased::$kind>>() else { continue };
                    let mut ctx = ctx.reborrow();
                    let instance = Instance { meta, this, old, saved: ctx.saved_fields() };
                    receive_boxed(meta.name, SignalKind::$kind, uid, f(&instance, &mut ctx), model).await?;
                }
                Ok(())
            }
        )*};
    }
    model_signals!(dispatch);
}

/// Boxing each kind's receivers, for the `connect_*` functions, written out below so that a
/// receiver of the wrong shape is reported against a signature the user can read.
macro_rules! any_erase {
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {$(
        pub(super) fn $connect<F>(receiver: F) -> Arc<dyn Any + Send + Sync>
        where
            F: for<'a> Receiver<'a, &'a Instance<'a>, $ctx<'a>>,
        {
            let f: Arc<erased::$kind> =
                Arc::new(move |m, signal| Box::pin(receiver.clone()(m, signal)));
            Arc::new(f)
        }
    )*};
}

mod stored {
    use super::*;
    model_signals!(any_erase);
}

/// Connects a `pre_save` receiver of every model under `dispatch_uid` (Django's
/// `@receiver(pre_save)` with no sender): it runs after each model's own receivers, in the
/// same transaction, with the instance as an [`Instance`]. Returns `false`, changing nothing,
/// when that id is connected to this signal already.
///
/// Muting a model (`mute::<M>()`) or this receiver for a model
/// (`mute_receiver::<M>(dispatch_uid)`) keeps it from running for that model;
/// `record_signals` records it as any receiver. While one is connected to `pre_save` or
/// `post_save`, saves read the rows they replace (for [`Instance::old`]); in tests, connect
/// it inside [`isolate_receivers`](crate::isolate_receivers) so other tests' saves do not.
pub fn connect_any_pre_save<F>(dispatch_uid: &str, receiver: F) -> bool
where
    F: for<'a> Receiver<'a, &'a Instance<'a>, PreSave<'a>>,
{
    connect(
        SignalKind::PreSave,
        dispatch_uid,
        stored::connect_pre_save(receiver),
    )
}

/// Connects a `post_save` receiver of every model under `dispatch_uid`; see
/// [`connect_any_pre_save`] and the example of [`Instance`].
pub fn connect_any_post_save<F>(dispatch_uid: &str, receiver: F) -> bool
where
    F: for<'a> Receiver<'a, &'a Instance<'a>, PostSave<'a>>,
{
    connect(
        SignalKind::PostSave,
        dispatch_uid,
        stored::connect_post_save(receiver),
    )
}

/// Connects a `pre_delete` receiver of every model under `dispatch_uid`; see
/// [`connect_any_pre_save`].
pub fn connect_any_pre_delete<F>(dispatch_uid: &str, receiver: F) -> bool
where
    F: for<'a> Receiver<'a, &'a Instance<'a>, PreDelete<'a>>,
{
    connect(
        SignalKind::PreDelete,
        dispatch_uid,
        stored::connect_pre_delete(receiver),
    )
}

/// Connects a `post_delete` receiver of every model under `dispatch_uid`; see
/// [`connect_any_pre_save`].
pub fn connect_any_post_delete<F>(dispatch_uid: &str, receiver: F) -> bool
where
    F: for<'a> Receiver<'a, &'a Instance<'a>, PostDelete<'a>>,
{
    connect(
        SignalKind::PostDelete,
        dispatch_uid,
        stored::connect_post_delete(receiver),
    )
}
