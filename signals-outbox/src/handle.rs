//! Running one delivery of an event: in a transaction (or a savepoint of one) that first
//! records the event in the inbox, so a repeated delivery runs nothing and the receiver's
//! database work happens once.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use signals_core::durable::{self, Delivery, Event};
use signals_core::{Db, Tx};
use tracing::Instrument as _;

use crate::error::Result;
use crate::{store, trace};

/// What became of a delivery.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The receiver ran.
    Ran,
    /// The inbox had the event: an earlier delivery was handled.
    Duplicate,
    /// The receiver failed (or panicked, or is not in this program): the caller rolls back
    /// what it did.
    Failed(Failure),
    /// The event committed before the inbox's horizon and is not in it: it may have been
    /// handled and purged since, so it is not run; the caller rolls back and dead-letters it
    /// with this reason.
    Forgotten(String),
}

/// Why a delivery failed, and whether delivering it again may ever succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The error, as the dead letter keeps it.
    pub(crate) error: String,
    /// No later delivery can succeed: the receiver said so ([`Permanent`]), or it is not
    /// in this program. Dead-lettered at once.
    ///
    /// [`Permanent`]: signals_core::durable::Permanent
    pub(crate) permanent: bool,
}

impl Failure {
    fn passing(error: String) -> Self {
        Failure {
            error,
            permanent: false,
        }
    }
}

/// The durable receivers of this program, as `Model.receiver`, sorted (`none` when it has
/// none).
pub(crate) fn served() -> Vec<String> {
    let mut served = crate::receivers();
    if served.is_empty() {
        served.push("none".to_owned());
    }
    served
}

/// The error of an event whose receiver is not in this program, naming those it has.
pub(crate) fn missing_receiver(event: &Event) -> String {
    let served = served().join(", ");
    format!(
        "no durable receiver `{}` of `{}` in this program (it has: {served}); run a worker \
         built with it, then replay the dead letter",
        event.receiver, event.model
    )
}

/// Runs `event`'s receiver with its instance `payload` inside `tx`, after recording the event
/// in the inbox; `outbox_row` (the embedded runner) is marked handled there too. On
/// [`Outcome::Failed`] and [`Outcome::Forgotten`] the caller must roll `tx` (or its
/// savepoint) back.
///
/// `committed_at` (a broker's delivery, which may be a replay from the stream) is checked
/// against the inbox's horizon (see [`purge`](crate::purge)): an event the inbox does not know
/// that committed before it is [`Outcome::Forgotten`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deliver_in(
    tx: &mut Tx,
    event: &Event,
    payload: &str,
    outbox_row: Option<i64>,
    committed_at: Option<i64>,
    trace: &trace::Fields,
) -> Result<Outcome> {
    let span = tracing::info_span!(
        "handle",
        event_id = %event.id,
        model = %event.model,
        receiver = %event.receiver,
        attempt = event.attempt,
    );
    // The save's trace, carried with the event: this span joins it.
    trace::adopt(&span, trace);
    async {
        let Some(receiver) = durable::find(&event.model, &event.receiver) else {
            return Ok(Outcome::Failed(Failure {
                error: missing_receiver(event),
                permanent: true,
            }));
        };
        if !store::record_handled(tx, event).await? {
            if let Some(id) = outbox_row {
                store::set_state(tx, id, store::State::Handled).await?;
            }
            tracing::debug!("already handled");
            return Ok(Outcome::Duplicate);
        }
        if let Some(committed_at) = committed_at {
            let horizon = store::inbox_horizon(tx).await?;
            if committed_at < horizon {
                let reason = format!(
                    "the event committed at {committed_at} ms, before the inbox's horizon \
                     ({horizon} ms: `purge` removed what was handled earlier), so whether it \
                     was handled is unknown; not run again (replay it if it never ran)"
                );
                tracing::warn!(%reason, "event older than the inbox's memory");
                return Ok(Outcome::Forgotten(reason));
            }
        }
        let run = async {
            let mut delivery = Delivery::new(&mut *tx, event);
            receiver.run(payload, &mut delivery).await
        };
        let err = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(())) => {
                if let Some(id) = outbox_row {
                    store::set_state(tx, id, store::State::Handled).await?;
                }
                tracing::debug!("handled");
                return Ok(Outcome::Ran);
            }
            Ok(Err(err)) if durable::is_permanent(&err) => {
                tracing::warn!(error = %err, "receiver failed for good");
                return Ok(Outcome::Failed(Failure {
                    error: err.to_string(),
                    permanent: true,
                }));
            }
            Ok(Err(err)) => err.to_string(),
            Err(panic) => format!("the receiver panicked: {}", panic_message(panic.as_ref())),
        };
        tracing::warn!(error = %err, "receiver failed");
        Ok(Outcome::Failed(Failure::passing(err)))
    }
    .instrument(span)
    .await
}

/// One delivery in a transaction of its own (a worker's): committed when the receiver ran,
/// rolled back when it failed.
pub(crate) async fn handle(
    db: &Db,
    event: &Event,
    payload: &str,
    committed_at: i64,
    trace: &trace::Fields,
) -> Result<Outcome> {
    let mut tx = db.begin().await?;
    let outcome = deliver_in(&mut tx, event, payload, None, Some(committed_at), trace).await?;
    if let Outcome::Failed(_) | Outcome::Forgotten(_) = outcome {
        // The receiver's work and the inbox row go together.
        let _ = tx.rollback().await;
        return Ok(outcome);
    }
    match tx.commit().await {
        Ok(()) => Ok(outcome),
        Err(err) => Ok(Outcome::Failed(Failure::passing(format!(
            "commit failed: {err}"
        )))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
