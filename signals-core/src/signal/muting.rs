//! Muting receivers (tests, bulk jobs) and recording which signals were sent.
//!
//! Uses `kind` and `model`.

use std::any::TypeId;
use std::cell::RefCell;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::kind::SignalKind;
use crate::model::Model;

struct Mute {
    id: u64,
    model: TypeId,
    receiver: Option<String>,
}

static MUTES: RwLock<Vec<Mute>> = RwLock::new(Vec::new());
/// How many mutes are in force: dispatch skips the registry while it is zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Keeps receivers muted until dropped; see [`mute`] and [`mute_receiver`].
#[must_use = "the receivers are muted only while the guard lives"]
#[derive(Debug)]
pub struct MuteGuard {
    id: u64,
}

impl Drop for MuteGuard {
    fn drop(&mut self) {
        let mut mutes = MUTES.write().unwrap_or_else(|e| e.into_inner());
        let before = mutes.len();
        mutes.retain(|m| m.id != self.id);
        ACTIVE.fetch_sub(before - mutes.len(), Ordering::SeqCst);
    }
}

fn add(model: TypeId, receiver: Option<String>) -> MuteGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    MUTES.write().unwrap_or_else(|e| e.into_inner()).push(Mute {
        id,
        model,
        receiver,
    });
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    MuteGuard { id }
}

/// Mutes every receiver of `M` (the derive's and runtime ones, all four signals) while the
/// guard lives: saves and deletes still write, in their transaction, but no receiver of `M`
/// runs. Muting is process-wide, like Django's `mute_signals`: tests that mute a model should
/// not run in parallel with tests that need its receivers. To skip receivers for one call,
/// use [`SaveOptions::quietly`](crate::SaveOptions::quietly) instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, PostSave, Result, mute};
///
/// #[derive(Model)]
/// #[post_save(fail)]
/// struct Tag { id: Option<i64> }
///
/// async fn fail(_: &Tag, _: &mut PostSave<'_>) -> Result<()> {
///     Err(signals_core::BoxError::from("should not run").into())
/// }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY)").await?;
/// {
///     let _muted = mute::<Tag>();
///     Tag { id: None }.save(&db).await?; // `fail` is muted
/// }
/// assert!(Tag { id: None }.save(&db).await.is_err()); // and back
/// # Ok(()) }
/// ```
pub fn mute<M: Model>() -> MuteGuard {
    add(TypeId::of::<M>(), None)
}

/// Mutes one receiver of `M` while the guard lives: a derive receiver by its path as written
/// in the attribute (`"save_profile"`), or a runtime receiver by its dispatch id.
pub fn mute_receiver<M: Model>(receiver: &str) -> MuteGuard {
    add(TypeId::of::<M>(), Some(receiver.to_owned()))
}

/// Whether `receiver` of the model `model` is muted.
pub(crate) fn is_muted(model: TypeId, receiver: &str) -> bool {
    ACTIVE.load(Ordering::SeqCst) > 0
        && MUTES
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.model == model && m.receiver.as_deref().is_none_or(|r| r == receiver))
}

/// One signal sent, as [`record_signals`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fired {
    /// The model's name (for `m2m_changed`, the through model's).
    pub model: &'static str,
    /// The signal.
    pub signal: SignalKind,
    /// The instance's primary key, as JSON (`null` in the `pre_save` of a creation; for
    /// `m2m_changed`, the key of the instance whose links changed).
    pub key: serde_json::Value,
    /// The receivers it reached, in the order they ran: the derive's by their path as
    /// written in the attribute (`"create_profile"`), runtime ones by dispatch id. A muted
    /// receiver is not listed; in a bulk write, a per-row receiver is listed on the rows it ran
    /// for, a batch receiver on every row of its chunk.
    pub receivers: Vec<&'static str>,
    /// For `post_save`: whether the save INSERTed.
    pub created: Option<bool>,
    /// For saves: whether it was a raw save.
    pub raw: bool,
    /// For saves: the fields saved, when only some were.
    pub update_fields: Option<Vec<&'static str>>,
}

/// What a [`record_signals`] has seen so far: the signals, and those being sent now, innermost
/// last, with the receivers reached so far.
#[derive(Default)]
struct Recording {
    fired: Vec<Fired>,
    open: Vec<Open>,
    next: u64,
}

/// A signal being sent for some rows (one, or a batch's), and how many times each receiver
/// ran for it, in the order they first ran.
struct Open {
    id: u64,
    rows: std::ops::Range<usize>,
    signal: SignalKind,
    /// What ran for it, in order: the receivers, and before each call of a batch's per-row
    /// receivers the row it is for, before each batch receiver the batch.
    log: Vec<Event>,
}

enum Event {
    Row(usize),
    Batch,
    Reached(&'static str),
}

impl Recording {
    /// Lists the receivers an ended signal reached on its rows: a per-row receiver on the row
    /// it ran for, a batch receiver (or the receivers of a single row) on every row.
    fn close(&mut self, id: u64) {
        let Some(at) = self.open.iter().position(|o| o.id == id) else {
            return;
        };
        let open = self.open.remove(at);
        let Some(rows) = self.fired.get_mut(open.rows) else {
            return;
        };
        let mut row = None;
        for event in open.log {
            match event {
                Event::Row(i) => row = Some(i),
                Event::Batch => row = None,
                Event::Reached(receiver) => match row.and_then(|i| rows.get_mut(i)) {
                    Some(fired) => fired.receivers.push(receiver),
                    None => rows.iter_mut().for_each(|f| f.receivers.push(receiver)),
                },
            }
        }
    }
}

tokio::task_local! {
    static RECORDING: RefCell<Recording>;
}

/// Runs `work` and returns, with its output, every model signal it sent, in order (a test
/// helper). Recording follows the task, so tests running in parallel each see their own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, Model, PostSave, Result, SignalKind, record_signals};
///
/// #[derive(Model)]
/// #[post_save(noop)]
/// struct Tag { id: Option<i64> }
/// async fn noop(_: &Tag, _: &mut PostSave<'_>) -> Result<()> { Ok(()) }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY)").await?;
/// let (saved, fired) = record_signals(Tag { id: None }.save(&db)).await;
/// saved?;
/// let sent: Vec<_> = fired.iter().map(|f| (f.signal, f.created)).collect();
/// assert_eq!(sent, [(SignalKind::PreSave, None), (SignalKind::PostSave, Some(true))]);
/// // "post_save of Tag 1 reached noop":
/// assert_eq!((fired[1].key.clone(), fired[1].receivers.clone()), (serde_json::json!(1), vec!["noop"]));
/// # Ok(()) }
/// ```
///
/// (A combinator, not an `async fn`, so that it holds `work` once: wrapped in this and in
/// [`isolate_receivers`](crate::isolate_receivers), a test's future stays the size it was.)
pub fn record_signals<F: Future>(work: F) -> impl Future<Output = (F::Output, Vec<Fired>)> {
    use futures_util::FutureExt as _;
    // The closure runs inside the scope's poll, where the recording is in force.
    let work = work.map(|output| {
        let fired = RECORDING.with(|r| std::mem::take(&mut r.borrow_mut().fired));
        (output, fired)
    });
    RECORDING.scope(RefCell::new(Recording::default()), work)
}

/// A signal being sent, noted for a surrounding [`record_signals`]: the receivers run by the
/// futures given to [`within`](Self::within) are listed on its rows when it is dropped.
#[must_use]
pub(crate) struct Noted(Option<u64>);

std::thread_local! {
    /// The noted signal whose receivers the future being polled runs (see [`Noted::within`]).
    static CURRENT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

impl Noted {
    /// Runs `fut`, the sending of this signal: the receivers it reaches are this signal's,
    /// even when another save of the same task (`join!`) sends its own signals meanwhile,
    /// since each poll says whose receivers run. (A struct, not an `async fn`: every save's
    /// future holds one per signal, and nested saves nest them.)
    pub(crate) fn within<F: Future>(&self, fut: F) -> Within<F> {
        Within { id: self.0, fut }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Noted::within`].
    pub(crate) struct Within<F> {
        id: Option<u64>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let Some(id) = *this.id else {
            return this.fut.poll(cx);
        };
        /// Puts the outer signal back when the poll ends, by a panic too.
        struct Restore(Option<u64>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.set(self.0);
            }
        }
        let _restore = Restore(CURRENT.replace(Some(id)));
        this.fut.poll(cx)
    }
}

impl Drop for Noted {
    fn drop(&mut self) {
        if let Some(id) = self.0 {
            let _ = RECORDING.try_with(|r| r.borrow_mut().close(id));
        }
    }
}

/// The instance's key as JSON, as `record_signals` lists it.
pub(crate) fn key_json<M: Model>(m: &M) -> serde_json::Value {
    m.__json(M::META.primary_key)
}

/// Notes a signal for a surrounding [`record_signals`], if any.
pub(crate) fn note(fired: impl FnOnce() -> Fired) -> Noted {
    note_rows(std::iter::once_with(fired))
}

/// Notes a signal sent for several rows at once (a batch), made only when recording.
pub(crate) fn note_rows(rows: impl IntoIterator<Item = Fired>) -> Noted {
    note_each(&mut rows.into_iter())
}

/// [`note_rows`], compiled once: `rows` is only iterated when recording.
fn note_each(rows: &mut dyn Iterator<Item = Fired>) -> Noted {
    Noted(
        RECORDING
            .try_with(|r| {
                let mut r = r.borrow_mut();
                let start = r.fired.len();
                r.fired.extend(rows);
                let id = r.next;
                r.next += 1;
                let end = r.fired.len();
                let signal = r.fired.get(start).map(|f| f.signal)?;
                r.open.push(Open {
                    id,
                    rows: start..end,
                    signal,
                    log: Vec::new(),
                });
                Some(id)
            })
            .ok()
            .flatten(),
    )
}

/// Notes that `receiver` runs for the signal being sent (`signal`), if it is recorded.
pub(crate) fn reached(signal: SignalKind, receiver: &'static str) {
    log(Some(signal), Event::Reached(receiver));
}

/// Notes that a batch's per-row receivers run for row `i` of it now.
pub(crate) fn row_starts(i: usize) {
    log(None, Event::Row(i));
}

/// Notes that a batch receiver runs now (for all of its rows).
pub(crate) fn batch_starts() {
    log(None, Event::Batch);
}

/// Adds `event` to the signal being sent by the future being polled, if it is recorded (and
/// is `signal`, when given).
fn log(signal: Option<SignalKind>, event: Event) {
    let Some(current) = CURRENT.get() else {
        return;
    };
    let _ = RECORDING.try_with(|r| {
        let mut r = r.borrow_mut();
        if let Some(open) = r
            .open
            .iter_mut()
            .find(|o| o.id == current && signal.is_none_or(|s| o.signal == s))
        {
            open.log.push(event);
        }
    });
}
