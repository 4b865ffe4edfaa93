//! After-rollback work (`tx.on_rollback`, `signal.on_rollback`): it runs once what it belongs
//! to is rolled back — a savepoint, the transaction, a cancelled operation — never after a
//! commit, on every backend.

use std::sync::Mutex;
use std::time::Duration;

use signals_core::{BoxError, Db, Error, Model, PostSave, Result, Tx};
use signals_tests::db_test;

/// What the after-rollback work released, by name (names are unique per test and backend).
static RELEASED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn released(prefix: &str) -> Vec<String> {
    RELEASED
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect()
}

#[derive(Debug, Clone, Model)]
#[model(table = "rb_hold")]
#[post_save(reserve)]
struct Hold {
    id: Option<i64>,
    name: String,
}

/// Reserves something outside the database; its release is the after-rollback work.
async fn reserve(hold: &Hold, signal: &mut PostSave<'_>) -> Result<()> {
    let name = hold.name.clone();
    signal.on_rollback(async move { RELEASED.lock().unwrap().push(name) });
    if hold.name.ends_with("fail") {
        return Err(BoxError::from("refused").into());
    }
    if hold.name.ends_with("slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    Ok(())
}

fn hold(prefix: &str, name: &str) -> Hold {
    Hold {
        id: None,
        name: format!("{prefix}{name}"),
    }
}

/// Waits (a bounded time) for work spawned by a dropped transaction.
async fn eventually_released(prefix: &str, want: &[String]) {
    for _ in 0..200 {
        if released(prefix) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(released(prefix), want);
}

fn names(prefix: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{prefix}{n}")).collect()
}

db_test!(async fn after_rollback_work_runs_on_rollback_and_never_after_a_commit(db) {
    db.create_tables::<Hold>().await.unwrap();
    let p = &format!("{:?}-explicit-", db.backend());

    // Committed: dropped.
    let mut tx = db.begin().await.unwrap();
    hold(p, "kept").save(&mut tx).await.unwrap();
    tx.on_rollback(async { panic!("a commit must drop after-rollback work") });
    tx.commit().await.unwrap();
    assert!(released(p).is_empty());

    // Rolled back: everything scheduled, in order, before `rollback` returns.
    let mut tx = db.begin().await.unwrap();
    hold(p, "a").save(&mut tx).await.unwrap();
    let name = format!("{p}b");
    tx.on_rollback(async move { RELEASED.lock().unwrap().push(name) });
    hold(p, "c").save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(released(p), names(p, &["a", "b", "c"]));

    // A failed `Db::transaction`.
    let res: std::result::Result<(), Error> = db
        .transaction(async |tx: &mut Tx| {
            hold(p, "d").save(tx).await?;
            Err(Error::Config("give up".into()))
        })
        .await;
    assert!(res.is_err());
    assert_eq!(released(p), names(p, &["a", "b", "c", "d"]));

    // A save on `&Db` whose receiver fails: its own transaction rolls back.
    assert!(hold(p, "e-fail").save(&db).await.is_err());
    assert_eq!(released(p), names(p, &["a", "b", "c", "d", "e-fail"]));
    assert_eq!(Hold::all(&db).await.unwrap().len(), 1, "only `kept`");
});

db_test!(async fn a_rolled_back_savepoint_runs_its_work_and_the_rest_commits(db) {
    db.create_tables::<Hold>().await.unwrap();
    let p = &format!("{:?}-savepoint-", db.backend());
    let mut tx = db.begin().await.unwrap();
    hold(p, "kept").save(&mut tx).await.unwrap();
    // The failing save's savepoint rolls back: its work runs before the save returns.
    assert!(hold(p, "fail").save(&mut tx).await.is_err());
    assert_eq!(released(p), names(p, &["fail"]));
    // A savepoint of the caller's own, rolled back.
    let res: std::result::Result<(), Error> = tx
        .savepoint(async |tx: &mut Tx| {
            hold(p, "inner").save(tx).await?;
            Err(Error::Config("undo".into()))
        })
        .await;
    assert!(res.is_err());
    assert_eq!(released(p), names(p, &["fail", "inner"]));
    tx.commit().await.unwrap();
    // The commit ran none of it again, and kept the rest.
    assert_eq!(released(p), names(p, &["fail", "inner"]));
    let kept: Vec<String> = Hold::all(&db).await.unwrap().into_iter().map(|h| h.name).collect();
    assert_eq!(kept, names(p, &["kept"]));
});

db_test!(async fn a_cancelled_operation_counts_as_a_rollback(db) {
    db.create_tables::<Hold>().await.unwrap();
    let p = &format!("{:?}-cancel-", db.backend());

    // A save on `&Db` cancelled inside its receiver: the dropped transaction rolls back, then
    // the work runs on a task of its own.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), hold(p, "a-slow").save(&db)).await;
    assert!(cancelled.is_err());
    eventually_released(p, &names(p, &["a-slow"])).await;

    // Inside a caller's transaction: the next use of the transaction rolls the cancelled
    // save back, and runs its work; the commit does not run it again.
    let mut tx = db.begin().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(200), hold(p, "b-slow").save(&mut tx)).await;
    assert!(cancelled.is_err());
    hold(p, "kept").save(&mut tx).await.unwrap();
    assert_eq!(released(p), names(p, &["a-slow", "b-slow"]));
    tx.commit().await.unwrap();
    assert_eq!(released(p), names(p, &["a-slow", "b-slow"]));

    // A transaction dropped with work pending (a `?` past it, a cancelled task).
    {
        let mut tx = db.begin().await.unwrap();
        hold(p, "c").save(&mut tx).await.unwrap();
    }
    eventually_released(p, &names(p, &["a-slow", "b-slow", "c"])).await;
    let kept: Vec<String> = Hold::all(&db).await.unwrap().into_iter().map(|h| h.name).collect();
    assert_eq!(kept, names(p, &["kept"]));
    // The pool's connections are all usable afterwards.
    let db2: Db = db.clone();
    hold(p, "after").save(&db2).await.unwrap();
});
