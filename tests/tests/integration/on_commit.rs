//! `#[on_commit]` receivers: after the outermost commit only, with their own copy of the
//! instance; their errors never fail the save.

use signals_core::{BoxError, Committed, Error, Model, Result, SignalKind, Tx};
use signals_tests::{count, create_tables, db_test, record, take_events};

#[derive(Debug, Clone, Model)]
#[on_commit(welcome)]
struct Signup {
    id: Option<i64>,
    email: String,
}

#[derive(Debug, Clone, Model)]
#[on_commit(ticket_gone)]
struct Ticket {
    id: Option<i64>,
    #[model(foreign_key = Signup, on_delete = cascade)]
    signup_id: i64,
}

async fn welcome(signup: Signup, what: Committed) -> Result<()> {
    record(format!("welcome {} {what:?}", signup.email));
    if signup.email == "fail" {
        return Err(BoxError::from("mail server down").into());
    }
    Ok(())
}

async fn ticket_gone(ticket: Ticket, what: Committed) -> Result<()> {
    record(format!("ticket of {} {what:?}", ticket.signup_id));
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE signup (id {pk}, email {text} NOT NULL);
CREATE TABLE ticket (id {pk}, signup_id {bigint} NOT NULL,
    CONSTRAINT ticket_signup_fk FOREIGN KEY (signup_id) REFERENCES signup (id))";

db_test!(async fn runs_after_its_own_commit(db) {
    create_tables(&db, SCHEMA).await;
    let mut s = Signup { id: None, email: "a@x.org".into() };
    let saved = s.save(&db).await.unwrap();
    assert!(saved.post_commit_errors().is_empty());
    assert_eq!(take_events(), ["welcome a@x.org Saved { created: true }"]);
    s.save(&db).await.unwrap();
    assert_eq!(take_events(), ["welcome a@x.org Saved { created: false }"]);
});

db_test!(async fn waits_for_the_callers_commit_and_never_runs_after_a_rollback(db) {
    create_tables(&db, SCHEMA).await;
    let mut tx = db.begin().await.unwrap();
    Signup { id: None, email: "kept".into() }.save(&mut tx).await.unwrap();
    let failed: Result<()> = tx
        .savepoint(async |tx: &mut Tx| {
            Signup { id: None, email: "undone".into() }.save(&mut *tx).await?;
            Err(BoxError::from("changed my mind").into())
        })
        .await;
    assert!(failed.is_err());
    assert!(take_events().is_empty(), "nothing before the commit");
    assert!(tx.commit_reporting().await.unwrap().is_empty());
    assert_eq!(take_events(), ["welcome kept Saved { created: true }"], "the rolled-back savepoint's receiver never runs");

    let mut tx = db.begin().await.unwrap();
    Signup { id: None, email: "rolled back".into() }.save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(take_events().is_empty());
    assert_eq!(count(&db, "signup").await, 1);
});

db_test!(async fn errors_are_reported_never_a_failed_save(db) {
    create_tables(&db, SCHEMA).await;
    let mut s = Signup { id: None, email: "fail".into() };
    let saved = s.save(&db).await.unwrap();
    assert!(saved.created());
    assert_eq!(count(&db, "signup").await, 1, "the save stands");
    match saved.post_commit_errors() {
        [err] => {
            assert!(matches!(err, Error::Receiver { signal: SignalKind::OnCommit, receiver: "welcome", .. }), "{err:?}");
            assert!(err.to_string().contains("on_commit receiver `welcome` of `Signup` failed"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    // Through a transaction of the caller's, `commit_reporting` returns them.
    let mut tx = db.begin().await.unwrap();
    s.save(&mut tx).await.unwrap();
    assert_eq!(tx.commit_reporting().await.unwrap().len(), 1);
    take_events();
});

db_test!(async fn deletes_commit_the_cascade_too(db) {
    create_tables(&db, SCHEMA).await;
    let mut s = Signup { id: None, email: "b@x.org".into() };
    s.save(&db).await.unwrap();
    let id = s.id.unwrap();
    Ticket { id: None, signup_id: id }.save(&db).await.unwrap();
    take_events();
    let deleted = s.delete(&db).await.unwrap();
    assert!(deleted.post_commit_errors().is_empty());
    assert_eq!(take_events(), [format!("ticket of {id} Deleted"), "welcome b@x.org Deleted".to_owned()]);
    assert_eq!(Signup::META.receivers.on_commit, ["welcome"]);
});

// After-commit work that panics or hangs --------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "upload")]
#[on_commit(explode, clean_up)]
struct Upload {
    id: Option<i64>,
    name: String,
}

async fn explode(upload: Upload, _: Committed) -> Result<()> {
    if upload.name == "panic" {
        panic!("thumbnailer crashed on {}", upload.name);
    }
    if upload.name == "hang" {
        std::future::pending::<()>().await;
    }
    Ok(())
}

async fn clean_up(upload: Upload, _: Committed) -> Result<()> {
    record(format!("clean_up {}", upload.name));
    Ok(())
}

db_test!(async fn after_commit_work_that_panics_is_reported_and_the_rest_runs(db) {
    create_tables(&db, "CREATE TABLE upload (id {pk}, name {text} NOT NULL)").await;
    let saved = Upload { id: None, name: "panic".into() }.save(&db).await.unwrap();
    assert_eq!(count(&db, "upload").await, 1, "the commit stands");
    let errors = saved.post_commit_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), signals_core::ErrorKind::Panicked);
    assert!(errors[0].to_string().contains("thumbnailer crashed on panic"), "{}", errors[0]);
    assert_eq!(take_events(), ["clean_up panic"], "the work after it ran");

    // Work of the caller's own, through `Tx::on_commit`, alike.
    let mut tx = db.begin().await.unwrap();
    tx.on_commit(async { panic!("boom") });
    tx.on_commit(async { record("after boom") });
    let errors = tx.commit_reporting().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), signals_core::ErrorKind::Panicked);
    assert_eq!(take_events(), ["after boom"]);
});

db_test!(async fn after_commit_work_is_bounded_by_the_on_commit_timeout(db) {
    create_tables(&db, "CREATE TABLE upload (id {pk}, name {text} NOT NULL)").await;
    let db = db.with_on_commit_timeout(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let saved = Upload { id: None, name: "hang".into() }.save(&db).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "save returned");
    assert_eq!(count(&db, "upload").await, 1, "the commit stands");
    let errors = saved.post_commit_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), signals_core::ErrorKind::TimedOut);
    assert_eq!(take_events(), ["clean_up hang"], "the work after it ran");
});
