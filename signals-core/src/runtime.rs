//! Model receivers connected at run time (plugins, tests), after the derive's static ones.

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::custom::{BoxFuture, intern};
use crate::error::{Result, SignalKind};
use crate::model::Model;
use crate::signal::{PostDelete, PostSave, PreDelete, PreSave};

type PreSaveFn<M> =
    dyn for<'a, 't> Fn(&'a mut M, &'a mut PreSave<'t>) -> BoxFuture<'a, Result<()>> + Send + Sync;
type PostSaveFn<M> =
    dyn for<'a, 't> Fn(&'a M, &'a mut PostSave<'t>) -> BoxFuture<'a, Result<()>> + Send + Sync;
type PreDeleteFn<M> =
    dyn for<'a, 't> Fn(&'a M, &'a mut PreDelete<'t>) -> BoxFuture<'a, Result<()>> + Send + Sync;
type PostDeleteFn<M> =
    dyn for<'a, 't> Fn(&'a M, &'a mut PostDelete<'t>) -> BoxFuture<'a, Result<()>> + Send + Sync;

struct Entry {
    model: TypeId,
    signal: SignalKind,
    uid: &'static str,
    /// An `Arc<XxxFn<M>>` for the entry's model and signal.
    receiver: Arc<dyn Any + Send + Sync>,
}

static RECEIVERS: RwLock<Vec<Entry>> = RwLock::new(Vec::new());
/// How many runtime receivers are connected: saves skip the registry while it is zero.
static CONNECTED: AtomicUsize = AtomicUsize::new(0);

fn connect<M: Model>(signal: SignalKind, uid: &str, receiver: Arc<dyn Any + Send + Sync>) -> bool {
    let model = TypeId::of::<M>();
    let mut all = RECEIVERS.write().unwrap_or_else(|e| e.into_inner());
    if all
        .iter()
        .any(|e| e.model == model && e.signal == signal && e.uid == uid)
    {
        return false;
    }
    all.push(Entry {
        model,
        signal,
        uid: intern(uid),
        receiver,
    });
    CONNECTED.fetch_add(1, Ordering::SeqCst);
    true
}

/// Connects a `pre_save` receiver of `M` at run time under `dispatch_uid`; it runs after the
/// static receivers and those connected before it. Returns `false`, changing nothing, when
/// that id is connected to this model and signal already.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, PreSave, SignalKind, connect_pre_save, disconnect, receivers};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// assert!(connect_pre_save::<Tag, _>("lowercase", |tag: &mut Tag, _: &mut PreSave<'_>| {
///     tag.name = tag.name.to_lowercase();
///     Box::pin(async { Ok(()) })
/// }));
/// assert_eq!(receivers::<Tag>(SignalKind::PreSave), ["lowercase"]);
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
/// let mut tag = Tag { id: None, name: "Rust".into() };
/// tag.save(&db).await?;
/// assert_eq!(tag.name, "rust");
/// assert!(disconnect::<Tag>(SignalKind::PreSave, "lowercase"));
/// # Ok(()) }
/// ```
pub fn connect_pre_save<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a, 't> Fn(&'a mut M, &'a mut PreSave<'t>) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
{
    let f: Arc<PreSaveFn<M>> = Arc::new(receiver);
    connect::<M>(SignalKind::PreSave, dispatch_uid, Arc::new(f))
}

/// Connects a `post_save` receiver of `M` at run time; see [`connect_pre_save`].
pub fn connect_post_save<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a, 't> Fn(&'a M, &'a mut PostSave<'t>) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
{
    let f: Arc<PostSaveFn<M>> = Arc::new(receiver);
    connect::<M>(SignalKind::PostSave, dispatch_uid, Arc::new(f))
}

/// Connects a `pre_delete` receiver of `M` at run time; see [`connect_pre_save`].
pub fn connect_pre_delete<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a, 't> Fn(&'a M, &'a mut PreDelete<'t>) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
{
    let f: Arc<PreDeleteFn<M>> = Arc::new(receiver);
    connect::<M>(SignalKind::PreDelete, dispatch_uid, Arc::new(f))
}

/// Connects a `post_delete` receiver of `M` at run time; see [`connect_pre_save`].
pub fn connect_post_delete<M, F>(dispatch_uid: &str, receiver: F) -> bool
where
    M: Model,
    F: for<'a, 't> Fn(&'a M, &'a mut PostDelete<'t>) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
{
    let f: Arc<PostDeleteFn<M>> = Arc::new(receiver);
    connect::<M>(SignalKind::PostDelete, dispatch_uid, Arc::new(f))
}

/// Disconnects the runtime receiver `dispatch_uid` of `M`'s `signal`; returns whether there
/// was one. Receivers wired by the derive cannot be disconnected: they are part of the type.
pub fn disconnect<M: Model>(signal: SignalKind, dispatch_uid: &str) -> bool {
    let model = TypeId::of::<M>();
    let mut all = RECEIVERS.write().unwrap_or_else(|e| e.into_inner());
    let before = all.len();
    all.retain(|e| !(e.model == model && e.signal == signal && e.uid == dispatch_uid));
    let removed = before - all.len();
    CONNECTED.fetch_sub(removed, Ordering::SeqCst);
    removed > 0
}

/// The receivers of `M`'s `signal`, in the order they run: the derive's (by path), then the
/// runtime ones (by dispatch id).
pub fn receivers<M: Model>(signal: SignalKind) -> Vec<&'static str> {
    let wired = &M::META.receivers;
    let mut out: Vec<&'static str> = match signal {
        SignalKind::PreSave => wired.pre_save,
        SignalKind::PostSave => wired.post_save,
        SignalKind::PreDelete => wired.pre_delete,
        SignalKind::PostDelete => wired.post_delete,
        SignalKind::OnCommit => wired.on_commit,
    }
    .to_vec();
    out.extend(snapshot::<M>(signal).into_iter().map(|(uid, _)| uid));
    out
}

fn snapshot<M: Model>(signal: SignalKind) -> Vec<(&'static str, Arc<dyn Any + Send + Sync>)> {
    if CONNECTED.load(Ordering::SeqCst) == 0 {
        return Vec::new();
    }
    let model = TypeId::of::<M>();
    RECEIVERS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.model == model && e.signal == signal)
        .map(|e| (e.uid, e.receiver.clone()))
        .collect()
}

/// Whether `M` has runtime receivers for any of `signals`.
pub(crate) fn connected<M: Model>(signals: [SignalKind; 2]) -> bool {
    CONNECTED.load(Ordering::SeqCst) > 0
        && signals
            .into_iter()
            .any(|signal| !snapshot::<M>(signal).is_empty())
}

macro_rules! dispatch {
    ($name:ident, $kind:ident, $ty:ident, $ctx:ident, $($instance:tt)*) => {
        pub(crate) async fn $name<M: Model>(m: $($instance)* M, ctx: &mut $ctx<'_>) -> Result<()> {
            for (uid, receiver) in snapshot::<M>(SignalKind::$kind) {
                if let Some(f) = receiver.downcast_ref::<Arc<$ty<M>>>() {
                    crate::__private::receive(
                        M::META.name,
                        SignalKind::$kind,
                        uid,
                        f(m, ctx),
                        TypeId::of::<M>(),
                    )
                    .await?;
                }
            }
            Ok(())
        }
    };
}

dispatch!(pre_save, PreSave, PreSaveFn, PreSave, &mut);
dispatch!(post_save, PostSave, PostSaveFn, PostSave, &);
dispatch!(pre_delete, PreDelete, PreDeleteFn, PreDelete, &);
dispatch!(post_delete, PostDelete, PostDeleteFn, PostDelete, &);
