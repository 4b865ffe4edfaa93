//! Helpers for tests: after-commit work captured from a transaction that is rolled back,
//! `record_signals` naming instances and receivers, and runtime receivers — async closures
//! holding state — scoped to one test, on every backend.

use std::sync::{Arc, Mutex};

use serde_json::json;
use signals_core::{
    BoxError, Committed, Instance, Model, PostSave, PreSave, Result, Signal, SignalKind,
    any_receivers, connect_any_post_save, connect_post_save, connect_pre_save, isolate_receivers,
    mute_receiver, receivers, record_signals,
};
use signals_tests::{db_test, record, take_events};

#[derive(Debug, Clone, Model)]
#[model(table = "th_shop")]
#[post_save(audit, notify)]
#[on_commit(welcome)]
struct Shop {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "th_log")]
struct ShopLog {
    id: Option<i64>,
    #[model(foreign_key = Shop, on_delete = cascade)]
    shop_id: i64,
    line: String,
}

async fn audit(shop: &Shop, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() {
        ShopLog {
            id: None,
            shop_id: shop.id.unwrap(),
            line: "created".into(),
        }
        .save(signal.tx())
        .await?;
    }
    Ok(())
}

async fn notify(_: &Shop, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

/// Muted in a test (muting is process-wide): a model of its own, so that the other tests'
/// `Shop` receivers are never muted under them.
#[derive(Debug, Clone, Model)]
#[model(table = "th_stall")]
#[post_save(stall_audit, stall_notify)]
struct Stall {
    id: Option<i64>,
    name: String,
}

async fn stall_audit(_: &Stall, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

async fn stall_notify(_: &Stall, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

async fn welcome(shop: Shop, _: Committed) -> Result<()> {
    record(format!("welcome {}", shop.name));
    Ok(())
}

db_test!(async fn after_commit_work_is_captured_from_a_transaction_rolled_back(db) {
    db.create_tables::<(Shop, ShopLog)>().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    Shop { id: None, name: "corner".into() }.save(&mut tx).await.unwrap();
    tx.on_commit(async { record("mine") });
    let work = tx.take_on_commit();
    assert_eq!(work.len(), 2);
    tx.rollback().await.unwrap();
    assert!(take_events().is_empty(), "nothing ran on its own");
    assert!(work.run().await.is_empty());
    assert_eq!(take_events(), ["welcome corner", "mine"]);

    // Taken, it is the test's: the transaction's commit does not run it too.
    let mut tx = db.begin().await.unwrap();
    Shop { id: None, name: "kiosk".into() }.save(&mut tx).await.unwrap();
    let work = tx.take_on_commit();
    tx.commit().await.unwrap();
    assert!(take_events().is_empty());
    drop(work);
    assert_eq!(Shop::all(&db).await.unwrap().len(), 1);
});

db_test!(async fn recorded_signals_name_the_instance_and_the_receivers_reached(db) {
    db.create_tables::<(Shop, ShopLog)>().await.unwrap();
    let (saved, fired) = record_signals(async {
        let mut shop = Shop { id: None, name: "corner".into() };
        shop.save(&db).await?;
        Ok::<_, signals_core::Error>(shop)
    })
    .await;
    let shop = saved.unwrap();
    let key = json!(shop.id.unwrap());
    let seen: Vec<_> = fired
        .iter()
        .map(|f| (f.model, f.signal, f.key.clone(), f.receivers.clone()))
        .collect();
    // "post_save of Shop 1 reached audit and notify". (The log the receiver saves has no
    // receivers: its save sends no signal.)
    assert_eq!(
        seen,
        [
            ("Shop", SignalKind::PreSave, json!(null), vec![]),
            ("Shop", SignalKind::PostSave, key.clone(), vec!["audit", "notify"]),
        ]
    );

    // Muted receivers are not listed; runtime ones are, by dispatch id; batches list their
    // receivers on every row.
    db.create_tables::<Stall>().await.unwrap();
    let (_, fired) = isolate_receivers(record_signals(async {
        connect_pre_save::<Stall, _>("trim", async |stall: &mut Stall, _: &mut PreSave<'_>| {
            stall.name = stall.name.trim().to_owned();
            Ok(())
        });
        let _muted = mute_receiver::<Stall>("stall_notify");
        let mut stalls = vec![Stall { id: None, name: " a ".into() }, Stall { id: None, name: "b".into() }];
        Stall::bulk_save(&db, &mut stalls).await.unwrap();
    }))
    .await;
    let pre: Vec<_> = fired.iter().filter(|f| f.model == "Stall" && f.signal == SignalKind::PreSave).collect();
    assert_eq!(pre.len(), 2);
    assert!(pre.iter().all(|f| f.receivers == ["trim"]), "{pre:?}");
    let post: Vec<_> = fired.iter().filter(|f| f.model == "Stall" && f.signal == SignalKind::PostSave).collect();
    assert_eq!(post.len(), 2);
    assert!(post.iter().all(|f| f.receivers == ["stall_audit"]), "{post:?}");
    assert_ne!(post[0].key, post[1].key);
    assert!(post.iter().all(|f| f.key.is_number()));
});

static SHOP_OPENED: Signal<String> = Signal::new("shop_opened");

db_test!(async fn capturing_async_closures_connect_for_one_test_only(db) {
    db.create_tables::<(Shop, ShopLog)>().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx_names, mut rx_names) = tokio::sync::mpsc::unbounded_channel::<String>();
    let scoped = isolate_receivers(async {
        // State held by the closure, the save's transaction used in its body.
        let log = seen.clone();
        assert!(connect_post_save::<Shop, _>("log", async move |shop: &Shop, signal: &mut PostSave<'_>| {
            log.lock().unwrap().push(shop.name.clone());
            ShopLog { id: None, shop_id: shop.id.unwrap(), line: format!("saw {}", shop.name) }
                .save(signal.tx())
                .await?;
            if shop.name == "refused" {
                return Err(BoxError::from("refused").into());
            }
            Ok(())
        }));
        // Every test of the binary may use the same id at once, each in its own scope.
        assert!(!connect_post_save::<Shop, _>("log", async |_: &Shop, _: &mut PostSave<'_>| Ok(())));
        let names = tx_names.clone();
        assert!(connect_any_post_save("names", async move |instance: &Instance<'_>, _: &mut PostSave<'_>| {
            let _ = names.send(format!("{} {}", instance.model(), instance.key()));
            Ok(())
        }));
        let opened = seen.clone();
        assert!(SHOP_OPENED.connect("opened", async move |name: &String| {
            opened.lock().unwrap().push(format!("opened {name}"));
            Ok(())
        }));
        assert_eq!(receivers::<Shop>(SignalKind::PostSave), ["audit", "notify", "log"]);
        assert_eq!(any_receivers(SignalKind::PostSave), ["names"]);

        Shop { id: None, name: "corner".into() }.save(&db).await.unwrap();
        // A failing closure rolls the whole save back, its own write included.
        assert!(Shop { id: None, name: "refused".into() }.save(&db).await.is_err());
        SHOP_OPENED.send(&"corner".to_owned()).await.unwrap();
    });
    scoped.await;
    assert_eq!(*seen.lock().unwrap(), ["corner", "refused", "opened corner"]);

    // Outside the scope they are gone, and do not run.
    assert_eq!(receivers::<Shop>(SignalKind::PostSave), ["audit", "notify"]);
    assert!(SHOP_OPENED.receivers().is_empty());
    Shop { id: None, name: "kiosk".into() }.save(&db).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The scope's receivers were dropped with it (or the channel would stay open).
    drop(tx_names);
    let mut names = Vec::new();
    while let Some(name) = rx_names.recv().await {
        names.push(name);
    }
    // The receiver for every model saw the audit's log, the closure's log, then the shop.
    assert_eq!(names[..3], ["ShopLog 1", "ShopLog 2", "Shop 1"]);
    assert!(!names.iter().any(|n| n == "Shop 3"), "not outside the scope: {names:?}");
    let lines: Vec<String> = ShopLog::all(&db).await.unwrap().into_iter().map(|l| l.line).collect();
    assert_eq!(lines, ["created", "saw corner", "created"]);
});

/// A per-row receiver that refuses a row, and a batch receiver.
#[derive(Debug, Clone, Model)]
#[model(table = "th_gate")]
#[pre_save(gate_check)]
#[post_save(gate_batch, batch)]
struct Gate {
    id: Option<i64>,
    name: String,
}

async fn gate_check(gate: &mut Gate, _: &mut PreSave<'_>) -> Result<()> {
    if gate.name == "bad" {
        return Err(BoxError::from("bad row").into());
    }
    Ok(())
}

async fn gate_batch(_: &[Gate], _: &mut signals_core::PostSaveBatch<'_>) -> Result<()> {
    Ok(())
}

db_test!(async fn recorded_receivers_are_on_the_rows_they_ran_for(db) {
    db.create_tables::<Gate>().await.unwrap();
    // Every row passes: the per-row receiver on each row once, the batch one on every row.
    let (saved, fired) = record_signals(async {
        let mut gates: Vec<Gate> = ["a", "b", "c"].map(|n| Gate { id: None, name: n.into() }).into();
        Gate::bulk_save(&db, &mut gates).await
    })
    .await;
    saved.unwrap();
    let lists: Vec<(SignalKind, Vec<&str>)> = fired.iter().map(|f| (f.signal, f.receivers.clone())).collect();
    assert_eq!(
        lists,
        [
            (SignalKind::PreSave, vec!["gate_check"]),
            (SignalKind::PreSave, vec!["gate_check"]),
            (SignalKind::PreSave, vec!["gate_check"]),
            (SignalKind::PostSave, vec!["gate_batch"]),
            (SignalKind::PostSave, vec!["gate_batch"]),
            (SignalKind::PostSave, vec!["gate_batch"]),
        ]
    );
    // The first row refused: the per-row receiver is listed on that row only.
    let (saved, fired) = record_signals(async {
        let mut gates: Vec<Gate> = ["bad", "ok1", "ok2"].map(|n| Gate { id: None, name: n.into() }).into();
        Gate::bulk_save(&db, &mut gates).await
    })
    .await;
    assert!(saved.is_err());
    let lists: Vec<Vec<&str>> = fired.iter().map(|f| f.receivers.clone()).collect();
    assert_eq!(lists, [vec!["gate_check"], vec![], vec![]]);
});
