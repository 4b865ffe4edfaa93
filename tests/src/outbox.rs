//! The durable-receiver fixture shared by `tests/outbox.rs` and the `outbox-child` program it
//! runs (and kills): an order whose durable receiver writes one effect row per delivery it
//! handles, so a duplicate handling would show as a second row.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use signals_core::durable::Delivery;
use signals_core::schema::Schema;
use signals_core::{Db, Model};

/// An order; its note steers the receiver: `poison` always fails, `slow` stalls the first
/// worker that takes it (after writing its pid to `$OUTBOX_SLOW_MARKER`), so it can be killed
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

/// The tokens of `sick:<token>` orders whose receiver has been mended ([`cure`]).
static CURED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Mends the receiver for orders noted `sick:<token>`: their next delivery succeeds.
pub fn cure(token: &str) {
    CURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(token.to_owned());
}

/// The durable receiver. Notes: `poison` always fails; `permanent` fails with a
/// [`Permanent`](signals_core::durable::Permanent) error; `flaky:<n>` fails its first `n`
/// deliveries; `sick:<token>` fails until [`cure`]d.
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
    if order.note == "permanent" {
        return Err(signals_core::durable::Permanent::new(format!(
            "order {:?} can never be recorded",
            order.id
        ))
        .into());
    }
    if let Some(n) = order.note.strip_prefix("flaky:") {
        let n: u32 = n.parse().unwrap_or(0);
        if delivery.event().attempt <= n {
            return Err(signals_core::Error::Config(format!(
                "order {:?} failed delivery {}",
                order.id,
                delivery.event().attempt
            )));
        }
    }
    if let Some(token) = order.note.strip_prefix("sick:") {
        let cured = CURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t == token);
        if !cured {
            return Err(signals_core::Error::Config(format!(
                "order {:?} is sick",
                order.id
            )));
        }
    }
    if order.note == "slow"
        && let Ok(marker) = std::env::var("OUTBOX_SLOW_MARKER")
    {
        // The first worker to take it stalls (whichever delivery that is: an earlier one may
        // have failed on a busy database), saying so in the marker, so that it can be killed
        // mid-event; the marker then exists, and the next worker runs it.
        use std::io::Write as _;
        let first = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker);
        if let Ok(mut file) = first {
            let _ = file.write_all(std::process::id().to_string().as_bytes());
            drop(file);
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
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

/// A shipment whose durable receiver runs only when its status changed
/// (`#[on_commit(.., durable, changed(status))]`).
#[derive(Model, Clone, Debug, Serialize, Deserialize)]
#[model(table = "outbox_shipment")]
#[on_commit(record_shipment, durable, changed(status))]
pub struct OutboxShipment {
    /// Key.
    pub id: Option<i64>,
    /// What the receiver watches.
    pub status: String,
    /// A field it does not.
    pub total: i64,
}

/// The shipment's durable receiver: an effect whose `committed` is `<kind>:<status>:<total>`.
pub async fn record_shipment(
    shipment: OutboxShipment,
    delivery: &mut Delivery<'_>,
) -> signals_core::Result<()> {
    let committed = format!(
        "{}:{}:{}",
        signals_core::durable::committed_name(delivery.committed()),
        shipment.status,
        shipment.total
    );
    OutboxEffect {
        id: None,
        event_id: delivery.event().id.clone(),
        order_id: shipment.id.unwrap_or_default(),
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
        .model::<OutboxShipment>()
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
