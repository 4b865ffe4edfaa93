//! Transactions around receivers: rollback, savepoints, after-commit work, recursion.

use std::future::Future;
use std::pin::Pin;

use crate::common::{
    FAIL_POST_DELETE, FAIL_POST_SAVE, FAIL_PRE_DELETE, FAIL_PRE_SAVE, User, setup,
};
use signals_core::{Error, ErrorKind, Model, PostSave, Result, Saved, SignalKind, Tx};
use signals_tests::{count, create_tables, db_test, record, take_events};

fn failing_user(email: &str) -> User {
    User {
        id: None,
        username: "doomed".into(),
        email: email.into(),
    }
}

db_test!(async fn post_save_failure_rolls_back_user_and_profile(db) {
    setup(&db).await;
    let mut user = failing_user(FAIL_POST_SAVE);
    let err = user.save(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Receiver { model: "User", signal: SignalKind::PostSave, receiver: "save_profile", .. }),
        "names the receiver: {err:?}"
    );
    assert_eq!(err.to_string(), "post_save receiver `save_profile` of `User` failed: post_save refused");
    assert_eq!(user.id, None, "the rolled-back INSERT's key is not kept");
    assert_eq!(count(&db, "account_user").await, 0);
    assert_eq!(count(&db, "account_profile").await, 0, "the profile written by create_profile is gone too");
    // The pool is fine afterwards.
    User::new("next").save(&db).await.unwrap();
    assert_eq!(count(&db, "account_profile").await, 1);
});

db_test!(async fn pre_save_failure_writes_nothing(db) {
    setup(&db).await;
    let err = failing_user(FAIL_PRE_SAVE).save(&db).await.unwrap_err();
    assert_eq!(err.receiver_chain(), [("User", SignalKind::PreSave, "normalize_username")]);
    assert_eq!(count(&db, "account_user").await, 0);
    assert_eq!(
        take_events(),
        ["pre_save User adding=true"],
        "nothing after the failing receiver ran"
    );
});

db_test!(async fn delete_receiver_failures_keep_both_rows(db) {
    setup(&db).await;
    for email in [FAIL_PRE_DELETE, FAIL_POST_DELETE] {
        let mut user = User { id: None, username: email.replace('@', "_"), email: email.into() };
        user.save(&db).await.unwrap();
        let err = user.delete(&db).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(user.id.is_some(), "a failed delete keeps the key");
    }
    assert_eq!(count(&db, "account_user").await, 2);
    assert_eq!(count(&db, "account_profile").await, 2);
});

db_test!(async fn savepoints_undo_only_the_failed_save(db) {
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    User::new("first").save(&mut tx).await.unwrap();
    let err = failing_user(FAIL_POST_SAVE).save(&mut tx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    // The transaction is still usable (on PostgreSQL too: the failure stayed in its savepoint).
    User::new("second").save(&mut tx).await.unwrap();
    assert_eq!(User::all(&mut tx).await.unwrap().len(), 2);
    assert_eq!(tx.depth(), 0);
    tx.commit().await.unwrap();
    assert_eq!(count(&db, "account_user").await, 2);
    assert_eq!(count(&db, "account_profile").await, 2);
});

db_test!(async fn rolled_back_transaction_keeps_nothing(db) {
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    User::new("first").save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&db, "account_user").await, 0);

    // Dropped without commit: the same.
    {
        let mut tx = db.begin().await.unwrap();
        User::new("second").save(&mut tx).await.unwrap();
    }
    assert_eq!(count(&db, "account_user").await, 0);
    assert_eq!(count(&db, "account_profile").await, 0);

    // The closure form rolls back on Err and commits on Ok.
    let res: Result<()> = db
        .transaction(async |tx: &mut Tx| {
            User::new("third").save(&mut *tx).await?;
            Err(Error::NotSaved { model: "whatever" })
        })
        .await;
    assert!(res.is_err());
    assert_eq!(count(&db, "account_user").await, 0);
    let id = db
        .transaction(async |tx: &mut Tx| {
            let mut user = User::new("fourth");
            user.save(&mut *tx).await?;
            Ok::<_, Error>(user.id)
        })
        .await
        .unwrap();
    assert!(id.is_some());
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
});

/// A model whose receiver schedules after-commit work, and fails on demand.
#[derive(Debug, Clone, Model)]
#[model(table = "outbox")]
#[post_save(announce)]
struct Outbox {
    id: Option<i64>,
    title: String,
}

async fn announce(item: &Outbox, signal: &mut PostSave<'_>) -> Result<()> {
    let title = item.title.clone();
    signal.on_commit(async move { record(format!("on_commit {title}")) });
    if item.title.starts_with("fail") {
        return Err(signals_core::BoxError::from("announce refused").into());
    }
    Ok(())
}

const OUTBOX: &str = "CREATE TABLE outbox (id {pk}, title {text} NOT NULL)";

db_test!(async fn on_commit_runs_only_after_the_outermost_commit(db) {
    create_tables(&db, OUTBOX).await;
    Outbox { id: None, title: "a".into() }.save(&db).await.unwrap();
    assert_eq!(take_events(), ["on_commit a"], "its own transaction committed");

    let mut tx = db.begin().await.unwrap();
    Outbox { id: None, title: "b".into() }.save(&mut tx).await.unwrap();
    let failed = Outbox { id: None, title: "fail-c".into() }.save(&mut tx).await;
    assert!(failed.is_err());
    Outbox { id: None, title: "d".into() }.save(&mut tx).await.unwrap();
    assert!(take_events().is_empty(), "nothing runs before the user's commit");
    tx.commit().await.unwrap();
    assert_eq!(
        take_events(),
        ["on_commit b", "on_commit d"],
        "in order; the rolled-back savepoint's work was dropped"
    );

    let mut tx = db.begin().await.unwrap();
    Outbox { id: None, title: "e".into() }.save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(take_events().is_empty(), "a rollback drops the work");
    assert_eq!(count(&db, "outbox").await, 3);
});

/// A model whose receiver re-saves its own instance: Django recurses until RecursionError.
#[derive(Debug, Clone, Model)]
#[model(table = "looper")]
#[post_save(save_again)]
struct Looper {
    id: Option<i64>,
    n: i64,
}

async fn save_again(this: &Looper, signal: &mut PostSave<'_>) -> Result<()> {
    let mut again = this.clone();
    again.n += 1;
    // A model saving itself has a recursive future type: box it behind `dyn`.
    let fut: Pin<Box<dyn Future<Output = Result<Saved>> + Send + '_>> =
        Box::pin(again.save(signal.tx()));
    fut.await?;
    Ok(())
}

db_test!(async fn receiver_resaving_itself_stops_at_the_depth_limit(db) {
    create_tables(&db, "CREATE TABLE looper (id {pk}, n {bigint} NOT NULL)").await;
    let err = Looper { id: None, n: 0 }.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RecursionLimit, "{err}");
    assert_eq!(err.receiver_chain().len(), signals_core::DEFAULT_MAX_DEPTH as usize + 1);
    assert!(err.to_string().contains("save_again"), "{err}");
    assert_eq!(count(&db, "looper").await, 0, "nothing written");

    let shallow = db.clone().with_max_depth(2);
    let err = Looper { id: None, n: 0 }.save(&shallow).await.unwrap_err();
    assert!(
        matches!(err.root(), Error::RecursionLimit { model: "Looper", depth: 2 }),
        "{err}"
    );
    assert_eq!(err.receiver_chain().len(), 3, "the first save and two nested ones");
    assert_eq!(count(&db, "looper").await, 0);
});

// A receiver's nested saves keep the operations around them on the stack: 16 saves deep (the
// default depth limit) they fit a 1 MiB thread in a debug build, half of a tokio worker's 2 MiB,
// and the limit is an error, never a stack overflow. (Before the saves boxed their inner
// futures, each level took about 110 KiB of stack, and 16 took more than 1.8 MiB.)
db_test!(async fn nested_saves_to_the_depth_limit_fit_a_small_stack(db) {
    create_tables(&db, "CREATE TABLE looper (id {pk}, n {bigint} NOT NULL)").await;
    let shared = db.clone();
    let thread = signals_tests::on_a_stack_of(1 << 20, || async move {
        let db = signals_tests::another_pool(&shared).await;
        let err = Looper { id: None, n: 0 }.save(&db).await.unwrap_err();
        db.close().await;
        (err.kind(), err.receiver_chain().len())
    });
    let (kind, chain) = tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(kind, ErrorKind::RecursionLimit);
    assert_eq!(chain, signals_core::DEFAULT_MAX_DEPTH as usize + 1);
    assert_eq!(count(&db, "looper").await, 0, "nothing written");
});

db_test!(async fn receivers_see_and_use_the_same_transaction(db) {
    setup(&db).await;
    let mut tx = db.begin().await.unwrap();
    let mut user = User::new("johndoe");
    user.save(&mut tx).await.unwrap();
    // The profile exists inside the transaction, and not outside it yet.
    assert!(crate::common::Profile::for_user(&mut tx, &user).await.unwrap().is_some());
    tx.commit().await.unwrap();
    assert!(crate::common::Profile::for_user(&db, &user).await.unwrap().is_some());
});
