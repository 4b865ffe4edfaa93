//! Muting receivers, and recording which signals were sent.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Profile, User, setup};
use signals_core::{Backend, Model, SaveOptions, SignalKind, mute, mute_receiver, record_signals};
use signals_tests::{count, db_test, take_events};

/// Mutes are process-wide: one test, the backends one after another, so no other test of
/// this process sees them.
#[test]
fn muted_receivers_do_not_run() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        runtime.block_on(signals_tests::run(backend, "muting", |db| async move {
            setup(&db).await;
            {
                let _muted = mute::<User>();
                User::new("quiet").save(&db).await.unwrap();
                assert_eq!(
                    count(&db, "account_profile").await,
                    0,
                    "create_profile was muted"
                );
                assert!(take_events().is_empty());
            }
            {
                let _muted = mute_receiver::<User>("save_profile");
                User::new("half").save(&db).await.unwrap();
                assert_eq!(
                    take_events(),
                    [
                        "pre_save User adding=true",
                        "create_profile created=true",
                        "pre_save Profile adding=true",
                        "post_save Profile created=true",
                    ],
                    "save_profile did not run, the others did"
                );
            }
            User::new("loud").save(&db).await.unwrap();
            assert!(
                take_events().contains(&"save_profile created=true".to_owned()),
                "unmuted"
            );
            assert_eq!(count(&db, "account_profile").await, 2);
        }));
    }
}

db_test!(async fn record_signals_lists_what_was_sent(db) {
    setup(&db).await;
    let (saved, fired) = record_signals(User::new("johndoe").save(&db)).await;
    saved.unwrap();
    let sent: Vec<(&str, SignalKind, Option<bool>)> =
        fired.iter().map(|f| (f.model, f.signal, f.created)).collect();
    assert_eq!(
        sent,
        [
            ("User", SignalKind::PreSave, None),
            ("User", SignalKind::PostSave, Some(true)),
            ("Profile", SignalKind::PreSave, None),
            ("Profile", SignalKind::PostSave, Some(true)),
            ("Profile", SignalKind::PreSave, None),
            ("Profile", SignalKind::PostSave, Some(false)),
        ]
    );

    let mut user = User::filter(&db, User::USERNAME, "johndoe").await.unwrap().remove(0);
    let (_, fired) = record_signals(user.save_with(&db, SaveOptions::new().update_fields(User::EMAIL).raw())).await;
    assert_eq!(fired[0].update_fields.as_deref(), Some(&["email"][..]));
    assert!(fired[0].raw);

    let (_, fired) = record_signals(user.delete(&db)).await;
    let sent: Vec<(&str, SignalKind)> = fired.iter().map(|f| (f.model, f.signal)).collect();
    assert_eq!(
        sent,
        [
            ("Profile", SignalKind::PreDelete),
            ("User", SignalKind::PreDelete),
            ("Profile", SignalKind::PostDelete),
            ("User", SignalKind::PostDelete),
        ]
    );
    // Outside a recording nothing is kept, and a quiet save sends nothing to record.
    let (_, fired) = record_signals(User::new("q").save_with(&db, SaveOptions::new().quietly())).await;
    assert!(fired.is_empty());
    let _unused = Profile::blank(0);
});
