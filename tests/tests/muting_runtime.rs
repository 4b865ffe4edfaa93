//! Muting receivers connected at run time: a muted receiver is not called at all, so neither
//! the code a closure runs before returning its future nor its future runs. Mutes are
//! process-wide, so this file holds one test only.
#![allow(clippy::unwrap_used)]

use signals_core::{
    Backend, Model, PostDelete, PostSave, PreDelete, PreSave, Result, connect_post_delete,
    connect_post_save, connect_pre_delete, connect_pre_save, mute, mute_receiver,
};
use signals_tests::{count, create_tables, record, take_events};

#[derive(Debug, Clone, Model)]
struct Note {
    id: Option<i64>,
    body: String,
}

const SCHEMA: &str = "CREATE TABLE note (id {pk}, body {text} NOT NULL)";

async fn audit_post_save(note: &Note, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!(
        "async fn post_save {} created={}",
        note.body,
        signal.created()
    ));
    Ok(())
}

/// Each closure does its work in its body, before the future: muting must skip the call.
fn connect_all() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        assert!(connect_pre_save::<Note, _>(
            "bang",
            |note: &mut Note, _: &mut PreSave<'_>| {
                note.body.push('!');
                record("closure pre_save");
                Box::pin(async { Ok(()) })
            }
        ));
        assert!(connect_post_save::<Note, _>(
            "post",
            |_: &Note, _: &mut PostSave<'_>| {
                record("closure post_save");
                Box::pin(async { Ok(()) })
            }
        ));
        assert!(connect_post_save::<Note, _>("audit", audit_post_save));
        assert!(connect_pre_delete::<Note, _>(
            "pre_del",
            |_: &Note, _: &mut PreDelete<'_>| {
                record("closure pre_delete");
                Box::pin(async { Ok(()) })
            }
        ));
        assert!(connect_post_delete::<Note, _>(
            "post_del",
            |_: &Note, _: &mut PostDelete<'_>| {
                record("closure post_delete");
                Box::pin(async { Ok(()) })
            }
        ));
    });
}

#[test]
fn muted_runtime_receivers_are_not_called() {
    connect_all();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        runtime.block_on(signals_tests::run(
            backend,
            "muting_runtime",
            |db| async move {
                create_tables(&db, SCHEMA).await;
                {
                    let _muted = mute::<Note>();
                    let mut note = Note {
                        id: None,
                        body: "quiet".into(),
                    };
                    note.save(&db).await.unwrap();
                    note.save(&db).await.unwrap();
                    assert_eq!(note.body, "quiet", "the muted pre_save closure did not run");
                    note.delete(&db).await.unwrap();
                    assert!(take_events().is_empty(), "no muted receiver was called");
                    assert_eq!(count(&db, "note").await, 0, "the writes still happened");
                }
                {
                    let _bang = mute_receiver::<Note>("bang");
                    let _post = mute_receiver::<Note>("post");
                    let _pre_del = mute_receiver::<Note>("pre_del");
                    let mut note = Note {
                        id: None,
                        body: "half".into(),
                    };
                    note.save(&db).await.unwrap();
                    assert_eq!(note.body, "half");
                    note.delete(&db).await.unwrap();
                    assert_eq!(
                        take_events(),
                        [
                            "async fn post_save half created=true",
                            "closure post_delete"
                        ],
                        "only the receivers not muted ran"
                    );
                }
                let mut note = Note {
                    id: None,
                    body: "loud".into(),
                };
                note.save(&db).await.unwrap();
                assert_eq!(note.body, "loud!");
                note.delete(&db).await.unwrap();
                assert_eq!(
                    take_events(),
                    [
                        "closure pre_save",
                        "closure post_save",
                        "async fn post_save loud! created=true",
                        "closure pre_delete",
                        "closure post_delete",
                    ],
                    "unmuted, all run in connection order"
                );
            },
        ));
    }
}
