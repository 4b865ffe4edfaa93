//! `record_signals`: which model signals a piece of work sent, with their flags.

use crate::common::{Profile, User, setup};
use signals_core::{Model, SaveOptions, SignalKind, record_signals};
use signals_tests::db_test;

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
