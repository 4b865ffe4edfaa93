//! Running one delivery of an event: in a transaction that first records the event in the
//! inbox, so a repeated delivery runs nothing and the receiver's database work happens once.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use signals_core::Db;
use signals_core::durable::{self, Delivery, Event};
use tracing::Instrument as _;

use crate::error::Result;
use crate::store;

/// What became of a delivery.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The receiver ran and its transaction committed.
    Ran,
    /// The inbox had the event: an earlier delivery was handled.
    Duplicate,
    /// The receiver failed (or panicked, or is not in this program); nothing it did stays.
    Failed(String),
}

/// Runs `event`'s receiver with its instance `payload`. `outbox_row` (the embedded runner)
/// is marked handled in the same transaction.
pub(crate) async fn handle(
    db: &Db,
    event: &Event,
    payload: &str,
    outbox_row: Option<i64>,
) -> Result<Outcome> {
    let span = tracing::info_span!(
        "handle",
        event_id = %event.id,
        model = %event.model,
        receiver = %event.receiver,
        attempt = event.attempt,
    );
    async {
        let Some(receiver) = durable::find(&event.model, &event.receiver) else {
            return Ok(Outcome::Failed(format!(
                "no durable receiver `{}` of `{}` in this program",
                event.receiver, event.model
            )));
        };
        let mut tx = db.begin().await?;
        if !store::record_handled(&mut tx, event).await? {
            tx.rollback().await?;
            if let Some(id) = outbox_row {
                store::set_state_on(db, id, store::HANDLED).await?;
            }
            tracing::debug!("already handled");
            return Ok(Outcome::Duplicate);
        }
        let run = async {
            let mut delivery = Delivery::new(&mut tx, event);
            receiver.run(payload, &mut delivery).await
        };
        let res = AssertUnwindSafe(run).catch_unwind().await;
        let err = match res {
            Ok(Ok(())) => {
                if let Some(id) = outbox_row {
                    store::set_state(&mut tx, id, store::HANDLED).await?;
                }
                match tx.commit().await {
                    Ok(()) => {
                        tracing::debug!("handled");
                        return Ok(Outcome::Ran);
                    }
                    Err(err) => return Ok(Outcome::Failed(format!("commit failed: {err}"))),
                }
            }
            Ok(Err(err)) => err.to_string(),
            Err(panic) => format!("the receiver panicked: {}", panic_message(panic.as_ref())),
        };
        // The receiver's work and the inbox row go together.
        let _ = tx.rollback().await;
        tracing::warn!(error = %err, "receiver failed");
        Ok(Outcome::Failed(err))
    }
    .instrument(span)
    .await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
