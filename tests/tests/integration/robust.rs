//! Receivers marked `robust`: their errors are collected, their own work undone, and the save
//! goes on.

use signals_core::{BoxError, Error, Model, PostSave, PreDelete, Result, SignalKind};
use signals_tests::{count, create_tables, db_test, record, take_events};

#[derive(Debug, Clone, Model)]
#[model(table = "orders")]
#[post_save(audit)]
#[post_save(notify, count_it, robust)]
#[pre_delete(archive, robust)]
struct Order {
    id: Option<i64>,
    note: String,
}

#[derive(Debug, Clone, Model)]
struct Outbox {
    id: Option<i64>,
    body: String,
}

async fn audit(_: &Order, _: &mut PostSave<'_>) -> Result<()> {
    record("audit");
    Ok(())
}

/// Writes to the outbox and schedules work, then fails on demand: all of it must be undone.
async fn notify(order: &Order, signal: &mut PostSave<'_>) -> Result<()> {
    record("notify");
    Outbox {
        id: None,
        body: format!("order {}", order.note),
    }
    .save(signal.tx())
    .await?;
    signal.on_commit(async { record("notify on_commit") });
    if order.note == "fail" {
        return Err(BoxError::from("mail server down").into());
    }
    Ok(())
}

async fn count_it(_: &Order, _: &mut PostSave<'_>) -> Result<()> {
    record("count_it");
    Ok(())
}

async fn archive(order: &Order, _: &mut PreDelete<'_>) -> Result<()> {
    if order.note == "fail" {
        return Err(BoxError::from("archive full").into());
    }
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE orders (id {pk}, note {text} NOT NULL);
CREATE TABLE outbox (id {pk}, body {text} NOT NULL)";

db_test!(async fn a_failing_robust_receiver_does_not_fail_the_save(db) {
    create_tables(&db, SCHEMA).await;
    let mut ok = Order { id: None, note: "fine".into() };
    let saved = ok.save(&db).await.unwrap();
    assert!(saved.receiver_errors().is_empty());
    assert_eq!(take_events(), ["audit", "notify", "count_it", "notify on_commit"]);

    let mut order = Order { id: None, note: "fail".into() };
    let saved = order.save(&db).await.unwrap();
    assert!(saved.created());
    assert_eq!(take_events(), ["audit", "notify", "count_it"], "the next receivers still ran; notify's on_commit was dropped");
    let errors = saved.receiver_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].receiver_chain(), [("Order", SignalKind::PostSave, "notify")]);
    assert!(errors[0].to_string().contains("mail server down"), "{}", errors[0]);
    assert_eq!(count(&db, "orders").await, 2, "the save committed");
    assert_eq!(count(&db, "outbox").await, 1, "only the successful notify's row: the failed one was undone");

    let deleted = order.delete(&db).await.unwrap();
    assert!(matches!(deleted.receiver_errors(), [Error::Receiver { receiver: "archive", .. }]));
    assert_eq!(count(&db, "orders").await, 1);
});

#[test]
fn robust_is_recorded_in_the_wiring() {
    assert_eq!(
        Order::META.receivers.post_save,
        ["audit", "notify", "count_it"]
    );
    assert_eq!(Order::META.receivers.pre_delete, ["archive"]);
}
