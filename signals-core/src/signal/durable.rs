//! Durable receivers (`#[on_commit(f, durable)]`): instead of a future run after the commit,
//! a save writes an event to the outbox table in its own transaction (see `tx::outbox`), and a
//! runner — in this process, or workers behind a broker (the `signals-outbox` crate) — runs the
//! receiver from it later, at least once, with a [`Delivery`] that holds the runner's
//! transaction.
//!
//! This module is what the derive and the runners share: the registry of durable receivers
//! by model and name, the context they get, and how an event is buffered.
//!
//! Uses `error`, `kind`, `tx`, `model`, and of `signal` the contexts, `custom` and `receiver`.

use std::any::TypeId;

use super::context::Committed;
use super::custom::BoxFuture;
use super::muting::is_muted;
use super::receiver::{ReceiverFuture, receive, track};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::model::Model;
use crate::tx::Tx;
use crate::tx::outbox::{Condition, OutboxRow};

pub use crate::tx::outbox::{NOTIFY_CHANNEL, OUTBOX_TABLE, commits, now_millis};

/// How many partitions the outbox's events are spread over, by instance: events of one
/// instance share a partition, and one runner at a time publishes a partition, in order.
pub const PARTITIONS: i32 = 16;

/// One durable event as a runner hands it to its receiver.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's id (a UUID), unique across the outbox: the broker's de-duplication key and
    /// the inbox's.
    pub id: String,
    /// The model's name (`User`).
    pub model: String,
    /// The receiver's name as written in the attribute (`send_welcome`).
    pub receiver: String,
    /// What committed.
    pub committed: Committed,
    /// Which delivery of the event this is, from 1.
    pub attempt: u32,
}

/// Names `committed` as the outbox stores it.
pub fn committed_name(committed: Committed) -> &'static str {
    match committed {
        Committed::Saved { created: true } => "created",
        Committed::Saved { created: false } => "updated",
        Committed::Deleted => "deleted",
    }
}

/// Reads what the outbox stores back (`created`, `updated` or `deleted`).
pub fn committed_from_name(name: &str) -> Option<Committed> {
    match name {
        "created" => Some(Committed::Saved { created: true }),
        "updated" => Some(Committed::Saved { created: false }),
        "deleted" => Some(Committed::Deleted),
        _ => None,
    }
}

/// What a durable receiver gets beside the instance: the event, and the runner's transaction.
///
/// The runner records the event as handled in the same transaction before it calls the
/// receiver, and commits once the receiver returns `Ok`: database work done through
/// [`tx`](Self::tx) happens exactly once, however often the event is delivered. Work outside
/// the database (a file, a mail) happens at least once: make it idempotent, keyed by
/// [`Event::id`].
///
/// ```
/// use signals_core::Model;
/// use signals_core::durable::Delivery;
///
/// #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
/// #[on_commit(send_welcome, durable)]
/// struct User { id: Option<i64>, username: String }
///
/// async fn send_welcome(user: User, delivery: &mut Delivery<'_>) -> signals_core::Result<()> {
///     println!("welcome, {} (event {})", user.username, delivery.event().id);
///     let _tx = delivery.tx(); // the runner's transaction, for database work
///     Ok(())
/// }
/// ```
pub struct Delivery<'t> {
    tx: &'t mut Tx,
    event: &'t Event,
}

impl<'t> Delivery<'t> {
    /// For runners: the context of one delivery of `event`, in `tx`.
    pub fn new(tx: &'t mut Tx, event: &'t Event) -> Self {
        Delivery { tx, event }
    }

    /// The runner's transaction: what the receiver writes here commits with the record that
    /// the event was handled, or not at all.
    pub fn tx(&mut self) -> &mut Tx {
        self.tx
    }

    /// The event being delivered.
    pub fn event(&self) -> &Event {
        self.event
    }

    /// What committed: a creation, an update or a delete.
    pub fn committed(&self) -> Committed {
        self.event.committed
    }
}

impl std::fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", self.event)
            .finish_non_exhaustive()
    }
}

/// A durable receiver's failure that no later delivery can mend (a payload the receiver
/// refuses, an address that does not exist): the runner dead-letters the event at once, with
/// this error, instead of delivering it again. Any other error is retried with backoff, up to
/// the receiver's attempts.
///
/// ```
/// use signals_core::Model;
/// use signals_core::durable::{Delivery, Permanent, is_permanent};
///
/// #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
/// #[on_commit(send_welcome, durable)]
/// struct User { id: Option<i64>, email: String }
///
/// async fn send_welcome(user: User, _: &mut Delivery<'_>) -> signals_core::Result<()> {
///     if !user.email.contains('@') {
///         return Err(Permanent::new(format!("{:?} is no address", user.email)).into());
///     }
///     Ok(())
/// }
///
/// let err: signals_core::Error = Permanent::new("no such mailbox").into();
/// assert!(is_permanent(&err));
/// assert_eq!(err.to_string(), "no such mailbox (permanent: not delivered again)");
/// ```
#[derive(Debug)]
pub struct Permanent(crate::error::BoxError);

impl Permanent {
    /// Marks `error` permanent.
    pub fn new(error: impl Into<crate::error::BoxError>) -> Self {
        Permanent(error.into())
    }

    /// The error marked permanent.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (permanent: not delivered again)", self.0)
    }
}

impl std::error::Error for Permanent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<Permanent> for Error {
    fn from(permanent: Permanent) -> Self {
        Error::Other(Box::new(permanent))
    }
}

/// Whether `err` (a durable receiver's, looking through the wrappers that name the receiver)
/// is [`Permanent`].
pub fn is_permanent(err: &Error) -> bool {
    matches!(err.root(), Error::Other(e) if e.downcast_ref::<Permanent>().is_some())
}

/// The call of one durable receiver: the instance as JSON, and the delivery.
pub type RunDurable = for<'a, 'b> fn(&'a str, &'a mut Delivery<'b>) -> BoxFuture<'a, Result<()>>;

/// A durable receiver, registered by the derive; runners find it by model and name.
pub struct DurableReceiver {
    /// The model's name.
    pub model: &'static str,
    /// The receiver's name as written in the attribute.
    pub receiver: &'static str,
    #[doc(hidden)]
    pub __run: RunDurable,
}

inventory::collect!(DurableReceiver);

impl std::fmt::Debug for DurableReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableReceiver")
            .field("model", &self.model)
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl DurableReceiver {
    /// Runs the receiver for the instance `payload` (as the outbox stores it). A payload that
    /// no longer reads as the model is a [`Decode`](crate::ErrorKind::Decode) error.
    pub async fn run(&self, payload: &str, delivery: &mut Delivery<'_>) -> Result<()> {
        (self.__run)(payload, delivery).await
    }
}

/// Every durable receiver linked into this program.
pub fn receivers() -> impl Iterator<Item = &'static DurableReceiver> {
    inventory::iter::<DurableReceiver>.into_iter()
}

/// The durable receiver `receiver` of the model named `model`, if linked into this program.
pub fn find(model: &str, receiver: &str) -> Option<&'static DurableReceiver> {
    receivers().find(|r| r.model == model && r.receiver == receiver)
}

/// For the derive: buffers one durable receiver's event for `this` in the current savepoint
/// of `tx`; it is written to the outbox when the transaction commits. A muted receiver gets
/// no event.
pub fn schedule<M>(
    tx: &mut Tx,
    model: &'static str,
    receiver: &'static str,
    this: &M,
    committed: Committed,
) -> Result<()>
where
    M: Model + serde::Serialize,
{
    if is_muted(TypeId::of::<M>(), receiver) {
        tracing::debug!(model, receiver, "durable receiver muted: no event");
        return Ok(());
    }
    let payload = payload_of(model, receiver, this)?;
    let instance_key = format!("{:?}", this.__key());
    let part = partition(model, &instance_key);
    tx.scopes.current().outbox.push(OutboxRow {
        event_id: uuid::Uuid::new_v4().to_string(),
        model,
        receiver,
        instance_key,
        part,
        event: committed_name(committed),
        payload,
        condition: None,
        trace: trace_context(),
    });
    Ok(())
}

/// The W3C trace context of the current span (`traceparent`, `tracestate`), as the global
/// OpenTelemetry propagator writes it, in JSON: what a runner gives the receiver's span as its
/// parent. `None` without the `otel` feature, or when there is no context to carry.
fn trace_context() -> Option<String> {
    #[cfg(feature = "otel")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = tracing::Span::current().context();
        let mut fields = std::collections::HashMap::<String, String>::new();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut fields));
        if fields.is_empty() {
            return None;
        }
        serde_json::to_string(&fields).ok()
    }
    #[cfg(not(feature = "otel"))]
    None
}

/// For the derive: buffers the event of a durable `changed(..)` receiver
/// (`#[on_commit(f, durable, changed(status))]`) for a save of `this`, decided just before
/// the transaction's COMMIT, inside it: written once per row, for the row's last committed
/// save, when a named field differs between the row before its first save in the
/// transaction and the instance as last saved (always for a creation), as a non-durable
/// `changed(..)` receiver runs. `old` is `None` for deletes: no event.
pub fn schedule_changed<M>(
    tx: &mut Tx,
    model: &'static str,
    receiver: &'static str,
    this: &M,
    old: Option<Option<&M>>,
    written: u128,
    differs: fn(&M, &M, u128) -> bool,
) -> Result<()>
where
    M: Model + Clone + serde::Serialize,
{
    let Some(old) = old else { return Ok(()) };
    if is_muted(TypeId::of::<M>(), receiver) {
        tracing::debug!(model, receiver, "durable receiver muted: no event");
        return Ok(());
    }
    let payload = payload_of(model, receiver, this)?;
    let scheduled = track(tx, receiver, this, old, written);
    let instance = this.clone();
    let decide = move || {
        let created = scheduled.settle(&instance, differs)?;
        Some(committed_name(Committed::Saved { created }))
    };
    let instance_key = format!("{:?}", this.__key());
    tx.scopes.current().outbox.push(OutboxRow {
        event_id: uuid::Uuid::new_v4().to_string(),
        model,
        receiver,
        part: partition(model, &instance_key),
        instance_key,
        event: committed_name(Committed::Saved { created: false }),
        payload,
        condition: Some(Condition(Box::new(decide))),
        trace: trace_context(),
    });
    Ok(())
}

/// The instance as the outbox stores it.
fn payload_of<M: serde::Serialize>(
    model: &'static str,
    receiver: &'static str,
    this: &M,
) -> Result<String> {
    serde_json::to_string(this).map_err(|e| Error::Receiver {
        model,
        signal: SignalKind::OnCommit,
        receiver,
        source: Box::new(Error::Config(format!(
            "the instance cannot be written as JSON for a durable receiver: {e}"
        ))),
    })
}

/// The outbox partition of an instance of `model` whose key reads `key` (its `Debug` form,
/// as the outbox's `instance_key` column holds it): FNV-1a of both, stable across
/// processes and builds, from 0 to [`PARTITIONS`] - 1.
///
/// ```
/// use signals_core::durable::{PARTITIONS, partition};
/// let part = partition("User", "Some(1)");
/// assert!((0..PARTITIONS).contains(&part));
/// assert_eq!(part, partition("User", "Some(1)"));
/// ```
pub fn partition(model: &str, key: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in model.bytes().chain([0]).chain(key.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % PARTITIONS as u32) as i32
}

/// For the derive: the body of a durable receiver's registered call, reading the instance and
/// running the receiver in its `tracing` span, its error naming it.
pub fn run_receiver<'a, 'b, M, C, F>(
    payload: &'a str,
    delivery: &'a mut Delivery<'b>,
    model: &'static str,
    receiver: &'static str,
    call: C,
) -> BoxFuture<'a, Result<()>>
where
    M: Model + serde::de::DeserializeOwned,
    C: FnOnce(M, &'a mut Delivery<'b>) -> F + Send + 'a,
    F: ReceiverFuture + 'a,
{
    Box::pin(async move {
        // The instance as it was when its save committed: a payload written by another
        // version of the model may no longer read.
        let instance: M = serde_json::from_str(payload).map_err(|e| Error::Decode {
            model,
            column: "payload",
            source: sqlx::Error::Decode(Box::new(e)),
        })?;
        receive(
            model,
            SignalKind::OnCommit,
            receiver,
            call(instance, delivery),
            TypeId::of::<M>(),
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition("User", "Some(1)"), partition("User", "Some(1)"));
        let used: std::collections::HashSet<i32> = (0..200)
            .map(|i| partition("User", &format!("Some({i})")))
            .collect();
        assert_eq!(used.len(), PARTITIONS as usize);
        assert!(used.iter().all(|p| (0..PARTITIONS).contains(p)));
    }

    #[test]
    fn committed_round_trips() {
        for c in [
            Committed::Saved { created: true },
            Committed::Saved { created: false },
            Committed::Deleted,
        ] {
            assert_eq!(committed_from_name(committed_name(c)), Some(c));
        }
        assert_eq!(committed_from_name("other"), None);
    }
}
