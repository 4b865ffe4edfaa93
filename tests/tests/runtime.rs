//! Receivers connected at run time: after the static ones, in connection order, in the same
//! transaction; custom signals from many tasks.
#![allow(clippy::unwrap_used)]

use std::sync::Once;

use signals_core::{
    BoxError, ErrorKind, Model, PostDelete, PostSave, PreDelete, PreSave, Result, Signal,
    SignalKind, connect_post_delete, connect_post_save, connect_pre_delete, connect_pre_save,
    disconnect, receivers,
};
use signals_tests::{count, create_tables, db_test, record, take_events};

#[derive(Debug, Clone, Model)]
#[post_save(wired)]
struct Doc {
    id: Option<i64>,
    title: String,
}

async fn wired(_: &Doc, _: &mut PostSave<'_>) -> Result<()> {
    record("post_save wired");
    Ok(())
}

/// A model with no static receivers at all: runtime ones must still run, in a transaction.
#[derive(Debug, Clone, Model)]
struct Plain {
    id: Option<i64>,
    #[model(foreign_key = Doc, on_delete = cascade)]
    doc_id: i64,
}

const SCHEMA: &str = "
CREATE TABLE doc (id {pk}, title {text} NOT NULL);
CREATE TABLE plain (id {pk}, doc_id {bigint} NOT NULL,
    CONSTRAINT plain_doc_fk FOREIGN KEY (doc_id) REFERENCES doc (id))";

/// Connected at run time (below): saves through the signal's transaction.
async fn attach(doc: &Doc, signal: &mut PostSave<'_>) -> Result<()> {
    record("post_save attach");
    if signal.created() {
        Plain {
            id: None,
            doc_id: doc.id.unwrap(),
        }
        .save(signal.tx())
        .await?;
    }
    if doc.title == "refuse" {
        return Err(BoxError::from("attach refused").into());
    }
    Ok(())
}

/// Connected once for the whole test process; receivers record into each test's own log.
fn connect_all() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert!(connect_pre_save::<Doc, _>(
            "trim",
            |doc: &mut Doc, _: &mut PreSave<'_>| {
                doc.title = doc.title.trim().to_owned();
                record("pre_save trim");
                Box::pin(async { Ok(()) })
            }
        ));
        assert!(connect_post_save::<Doc, _>(
            "first",
            |_: &Doc, _: &mut PostSave<'_>| {
                record("post_save first");
                Box::pin(async { Ok(()) })
            }
        ));
        // A receiver whose future uses its arguments is an `async fn`, as the derive's are.
        assert!(connect_post_save::<Doc, _>("attach", attach));
        assert!(
            !connect_post_save::<Doc, _>("first", |_: &Doc, _: &mut PostSave<'_>| {
                Box::pin(async { Ok(()) })
            }),
            "the same dispatch id is never connected twice"
        );
        assert!(connect_pre_delete::<Plain, _>(
            "plain_pre",
            |_: &Plain, s: &mut PreDelete<'_>| {
                record(format!("pre_delete Plain origin={}", s.origin()));
                Box::pin(async { Ok(()) })
            }
        ));
        assert!(connect_post_delete::<Plain, _>(
            "plain_post",
            |_: &Plain, _: &mut PostDelete<'_>| {
                record("post_delete Plain");
                Box::pin(async { Ok(()) })
            }
        ));
    });
}

db_test!(async fn runtime_receivers_run_after_static_ones_in_the_transaction(db) {
    connect_all();
    create_tables(&db, SCHEMA).await;
    let mut doc = Doc { id: None, title: "  spec  ".into() };
    doc.save(&db).await.unwrap();
    assert_eq!(doc.title, "spec");
    assert_eq!(take_events(), ["pre_save trim", "post_save wired", "post_save first", "post_save attach"]);
    assert_eq!(count(&db, "plain").await, 1);
    assert_eq!(receivers::<Doc>(SignalKind::PostSave), ["wired", "first", "attach"]);

    // A failing runtime receiver rolls the whole save back, and is named.
    let err = Doc { id: None, title: "refuse".into() }.save(&db).await.unwrap_err();
    assert_eq!(err.receiver_chain(), [("Doc", SignalKind::PostSave, "attach")]);
    assert_eq!(count(&db, "doc").await, 1);
    assert_eq!(count(&db, "plain").await, 1);
    take_events();

    // Runtime delete receivers of a cascaded model without static receivers run too.
    doc.delete(&db).await.unwrap();
    assert_eq!(take_events(), ["pre_delete Plain origin=Doc", "post_delete Plain"]);
    assert_eq!(count(&db, "plain").await, 0);
});

#[derive(Debug, Model)]
struct Lonely {
    id: Option<i64>,
}

#[tokio::test]
async fn connect_and_disconnect() {
    assert!(receivers::<Lonely>(SignalKind::PostSave).is_empty());
    for uid in ["a", "b", "c"] {
        assert!(connect_post_save::<Lonely, _>(
            uid,
            |_: &Lonely, _: &mut PostSave<'_>| { Box::pin(async { Ok(()) }) }
        ));
    }
    assert!(disconnect::<Lonely>(SignalKind::PostSave, "b"));
    assert!(
        !disconnect::<Lonely>(SignalKind::PostSave, "b"),
        "already gone"
    );
    assert!(
        !disconnect::<Lonely>(SignalKind::PreSave, "a"),
        "another signal"
    );
    assert_eq!(receivers::<Lonely>(SignalKind::PostSave), ["a", "c"]);
    // Reconnecting puts it last: connection order, as documented.
    connect_post_save::<Lonely, _>("b", |_: &Lonely, _: &mut PostSave<'_>| {
        Box::pin(async { Ok(()) })
    });
    assert_eq!(receivers::<Lonely>(SignalKind::PostSave), ["a", "c", "b"]);
}

static PING: Signal<u32> = Signal::new("ping");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_signals_from_many_tasks() {
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        tasks.push(tokio::spawn(async move {
            let uid = format!("task{t}");
            assert!(PING.connect(&uid, |n: &u32| {
                let n = *n;
                Box::pin(async move {
                    if n == 13 {
                        Err(BoxError::from("unlucky").into())
                    } else {
                        Ok(())
                    }
                })
            }));
            for _ in 0..50 {
                let _ = PING.send(&1).await.unwrap();
            }
            let robust = PING.send_robust(&13).await;
            assert!(robust.iter().all(|(_, r)| r.is_err()));
            assert!(PING.disconnect(&uid));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(PING.receivers().is_empty());
    PING.connect("last", |_: &u32| {
        Box::pin(async { Err(BoxError::from("no").into()) })
    });
    let err = PING.send(&1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "receiver `last` of signal `ping` failed: no"
    );
    assert_eq!(err.kind(), ErrorKind::Other);
}

#[derive(Debug, Model)]
struct Busy {
    id: Option<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_receivers_from_many_tasks() {
    let mut tasks = Vec::new();
    for t in 0..16 {
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let uid = format!("busy_{t}_{i}");
                assert!(connect_post_save::<Busy, _>(
                    &uid,
                    |_: &Busy, _: &mut PostSave<'_>| { Box::pin(async { Ok(()) }) }
                ));
                assert!(receivers::<Busy>(SignalKind::PostSave).contains(&uid.as_str()));
                assert!(disconnect::<Busy>(SignalKind::PostSave, &uid));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(receivers::<Busy>(SignalKind::PostSave).is_empty());
}
