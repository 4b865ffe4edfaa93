//! The durable-receiver fixture shared by `tests/outbox.rs` and the `outbox-child` program it
//! runs (and kills): an order whose durable receiver writes one effect row per delivery it
//! handles, so a duplicate handling would show as a second row.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use signals_core::durable::Delivery;
use signals_core::schema::Schema;
use signals_core::{Db, Model};

/// An order; its note steers the receiver: `poison` always fails, `slow` stalls its first
/// delivery (after writing the worker's pid to `$OUTBOX_SLOW_MARKER`), so it can be killed
/// mid-event.
#[derive(Model, Clone, Debug, Serialize, Deserialize)]
#[model(table = "outbox_order")]
#[on_commit(record_order, durable)]
pub struct OutboxOrder {
    /// Key.
    pub id: Option<i64>,
    /// What the receiver does.
    pub note: String,
}

/// One handling of an event.
#[derive(Model, Clone, Debug)]
#[model(table = "outbox_effect")]
pub struct OutboxEffect {
    /// Key.
    pub id: Option<i64>,
    /// The event handled.
    pub event_id: String,
    /// The order it was for.
    pub order_id: i64,
    /// `created`, `updated` or `deleted`.
    pub committed: String,
}

/// The durable receiver.
pub async fn record_order(
    order: OutboxOrder,
    delivery: &mut Delivery<'_>,
) -> signals_core::Result<()> {
    if order.note == "poison" {
        return Err(signals_core::Error::Config(format!(
            "order {:?} is poison",
            order.id
        )));
    }
    if order.note == "slow" && delivery.event().attempt == 1 {
        if let Ok(marker) = std::env::var("OUTBOX_SLOW_MARKER") {
            let _ = std::fs::write(&marker, std::process::id().to_string());
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    let event_id = delivery.event().id.clone();
    let committed = signals_core::durable::committed_name(delivery.committed()).to_owned();
    OutboxEffect {
        id: None,
        event_id,
        order_id: order.id.unwrap_or_default(),
        committed,
    }
    .save(delivery.tx())
    .await?;
    Ok(())
}

/// Commits `n` new orders with note `note` in one bulk save (one durable event each).
pub async fn commit_orders(db: &Db, n: usize, note: &str) -> Vec<OutboxOrder> {
    let mut rows: Vec<OutboxOrder> = (0..n)
        .map(|_| OutboxOrder {
            id: None,
            note: note.into(),
        })
        .collect();
    let mut tx = db.begin().await.expect("begin");
    OutboxOrder::bulk_save(&mut tx, &mut rows)
        .await
        .expect("bulk save");
    tx.commit().await.expect("commit");
    rows
}

/// Creates the fixture's tables and the outbox's.
pub async fn install(db: &Db) {
    Schema::new()
        .model::<OutboxOrder>()
        .model::<OutboxEffect>()
        .create(db)
        .await
        .expect("fixture tables");
    signals_outbox::install(db).await.expect("outbox tables");
}

/// Panics unless the fixture's durable receiver is registered in this program (a program
/// calling this also links the module that registers it).
pub fn assert_registered() {
    assert!(
        signals_core::durable::find("OutboxOrder", "record_order").is_some(),
        "the fixture's durable receiver is not linked in"
    );
}
