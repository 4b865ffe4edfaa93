//! Muting receivers. Mutes are process-wide, so this file holds one test only: no other test
//! of its process can see them.
#![allow(clippy::unwrap_used)]

mod common;

use common::{User, setup};
use signals_core::{Backend, Model, mute, mute_receiver};
use signals_tests::{count, take_events};

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
