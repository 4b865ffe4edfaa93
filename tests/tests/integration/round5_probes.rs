//! Round 5 probes, written as a hostile user against the change that opens and closes every
//! operation's transaction or savepoint through one type (`Atomic`), runs the single-instance
//! save through type-erased code (`ops/erased.rs`, `ops/save.rs`), spawns the server COMMIT
//! into a task of its own (`conn/exec.rs` `to_the_end`), and boxes the harness's tests.
//!
//! Every probe runs on SQLite, PostgreSQL and MariaDB.
// Clippy reads `n` in two `changed(..)` lists as a repeated attribute argument.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt as _;
use signals_core::{
    Backend, BoxError, Committed, Db, Error, ErrorKind, Executor, FieldSet, Model, PostSave,
    PreSave, Result, SaveOptions, Tx,
};
use signals_tests::{cancel_at, create_tables, db_test, record, scalar, take_events};

// Models ---------------------------------------------------------------------------------------

/// A model with every kind of save receiver: `pre_save` (fails or panics on demand),
/// `post_save` (writes a log row in the save's transaction, then fails or panics on demand) and
/// an after-commit receiver (notes the name in a process-wide set).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_item")]
#[pre_save(r5_item_pre)]
#[post_save(r5_item_post)]
#[on_commit(r5_item_committed)]
struct R5Item {
    id: Option<i64>,
    name: String,
    n: i64,
    note: String,
}

/// One row per committed save of an item, written by its `post_save` receiver.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_log")]
struct R5Log {
    id: Option<i64>,
    name: String,
    n: i64,
}

/// Cascades from an item.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_kid")]
struct R5Kid {
    id: Option<i64>,
    #[model(foreign_key = R5Item, on_delete = cascade)]
    item_id: i64,
    name: String,
}

static COMMITTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn committed(name: &str) -> bool {
    COMMITTED.lock().unwrap().contains(name)
}

async fn r5_item_pre(item: &mut R5Item, _: &mut PreSave<'_>) -> Result<()> {
    if item.name.contains("fail-pre") {
        return Err(BoxError::from("pre_save refused").into());
    }
    if item.name.contains("panic-pre") {
        panic!("pre_save panicked");
    }
    Ok(())
}

async fn r5_item_post(item: &R5Item, signal: &mut PostSave<'_>) -> Result<()> {
    R5Log {
        id: None,
        name: item.name.clone(),
        n: item.n,
    }
    .save(signal.tx())
    .await?;
    if item.name.contains("fail-post") {
        return Err(BoxError::from("post_save refused").into());
    }
    if item.name.contains("panic-post") {
        panic!("post_save panicked");
    }
    Ok(())
}

async fn r5_item_committed(item: R5Item, what: Committed) -> Result<()> {
    if matches!(what, Committed::Saved { .. }) {
        COMMITTED.lock().unwrap().insert(item.name.clone());
    }
    Ok(())
}

async fn tables(db: &Db) {
    db.create_tables::<(R5Item, R5Log, R5Kid)>().await.unwrap();
}

fn tag(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Sqlite => "s",
        Backend::Postgres => "p",
        _ => "m",
    }
}

fn item(name: &str) -> R5Item {
    R5Item {
        id: None,
        name: name.to_owned(),
        n: 0,
        note: "old".into(),
    }
}

/// The committed item named `name`: its key, or -1.
async fn item_key(db: &Db, name: &str) -> i64 {
    scalar(
        db,
        &format!("SELECT COALESCE(MAX(id), -1) FROM r5_item WHERE name = '{name}'"),
    )
    .await
}

async fn item_n(db: &Db, name: &str) -> i64 {
    scalar(
        db,
        &format!("SELECT COALESCE(MAX(n), -1) FROM r5_item WHERE name = '{name}'"),
    )
    .await
}

async fn note_is_old(db: &Db, name: &str) -> i64 {
    scalar(
        db,
        &format!("SELECT COUNT(*) FROM r5_item WHERE name = '{name}' AND note = 'old'"),
    )
    .await
}

async fn logs(db: &Db, name: &str, n: i64) -> i64 {
    scalar(
        db,
        &format!("SELECT COUNT(*) FROM r5_log WHERE name = '{name}' AND n = {n}"),
    )
    .await
}

async fn kids_of_name(db: &Db, name: &str) -> i64 {
    scalar(
        db,
        &format!("SELECT COUNT(*) FROM r5_kid WHERE name = '{name}'"),
    )
    .await
}

/// Where a probe runs its operation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Pool,
    Tx,
    Savepoint,
}

/// Which operation a probe runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
    UpdateFields,
    Delete,
    BulkDelete,
    BulkSave,
}

async fn run_op<'e>(op: Op, ex: impl Executor<'e>, items: &mut [R5Item]) -> Result<()> {
    match op {
        Op::Insert | Op::Update => items[0].save(ex).await.map(drop),
        Op::UpdateFields => items[0]
            .save_with(ex, SaveOptions::new().update_fields(R5Item::N))
            .await
            .map(drop),
        Op::Delete => items[0].delete(ex).await.map(drop),
        Op::BulkDelete => R5Item::bulk_delete(ex, items).await.map(drop),
        Op::BulkSave => R5Item::bulk_save(ex, items).await.map(drop),
    }
}

// 1. Every operation cancelled at every await point ------------------------------------------

// Each operation, on a pool, inside `db.begin()` and inside `tx.savepoint(..)`, cancelled at its
// N-th await point for every N until it finishes. Then (after the caller's transaction saved
// one more row and committed, and a pause for a COMMIT left in flight) the probe checks: each
// instance has a key exactly when its row is committed; the `post_save` log rows, the kids and
// the rows agree (nothing half applied); `update_fields` touched no other column; the
// after-commit receiver ran only for committed saves; the caller's transaction stayed usable
// (given up only on MySQL, where a statement cut midway closes the connection).
db_test!(async fn r5_every_operation_cancelled_at_every_await_point(db) {
    tables(&db).await;
    // On SQLite the `Db`'s kept connection runs every statement without a wait, so nothing
    // can be cancelled midway: a pool without one (`Db::from`) goes through sqlx's worker
    // thread, and waits at every statement.
    let mut pools = vec![db.clone()];
    if db.backend() == Backend::Sqlite {
        pools.push(signals_tests::another_pool(&db).await);
    }
    let mut wrong = Vec::new();
    let mut given_up_count = 0;
    for (k, db) in pools.into_iter().enumerate() {
    let t = format!("{}{k}", tag(&db));
    for mode in [Mode::Pool, Mode::Tx, Mode::Savepoint] {
        for op in [Op::Insert, Op::Update, Op::UpdateFields, Op::Delete, Op::BulkDelete, Op::BulkSave] {
            let mut finished = false;
            for waits in 0..400 {
                let prefix = format!("{t}-{mode:?}-{op:?}-{waits}-").to_lowercase();
                let mut items: Vec<R5Item> =
                    (0..2).map(|i| item(&format!("{prefix}{i}"))).collect();
                if matches!(op, Op::Update | Op::UpdateFields | Op::Delete | Op::BulkDelete) {
                    for it in &mut items {
                        it.save(&db).await.unwrap();
                        R5Kid { id: None, item_id: it.id.unwrap(), name: it.name.clone() }
                            .save(&db)
                            .await
                            .unwrap();
                    }
                    for it in &mut items {
                        it.n = 1;
                        it.note = "new".into();
                    }
                }
                let before: Vec<Option<i64>> = items.iter().map(|i| i.id).collect();
                let mut given_up = None;
                let done = match mode {
                    Mode::Pool => tokio::time::timeout(
                        Duration::from_secs(60),
                        cancel_at(waits, run_op(op, &db, &mut items)),
                    )
                    .await
                    .expect("hung"),
                    Mode::Tx | Mode::Savepoint => {
                        let mut tx = db.begin().await.unwrap();
                        let done = if mode == Mode::Tx {
                            tokio::time::timeout(
                                Duration::from_secs(60),
                                cancel_at(waits, run_op(op, &mut tx, &mut items)),
                            )
                            .await
                            .expect("hung")
                        } else {
                            let work = tx.savepoint(async |tx: &mut Tx| run_op(op, tx, &mut items).await);
                            tokio::time::timeout(Duration::from_secs(60), cancel_at(waits, work))
                                .await
                                .expect("hung")
                        };
                        let mut after = item(&format!("{prefix}after"));
                        match after.save(&mut tx).await {
                            Ok(_) => {
                                if let Err(e) = tx.commit().await {
                                    wrong.push(format!("{mode:?} {op:?} at {waits}: commit failed: {e}"));
                                }
                                if item_key(&db, &format!("{prefix}after")).await != after.id.unwrap() {
                                    wrong.push(format!("{mode:?} {op:?} at {waits}: the row saved after is missing"));
                                }
                            }
                            Err(e) => {
                                if db.backend() != Backend::MySql || e.kind() != ErrorKind::Transaction {
                                    wrong.push(format!("{mode:?} {op:?} at {waits}: transaction unusable: {e}"));
                                }
                                given_up = Some(e.to_string());
                                given_up_count += 1;
                                let _ = tx.rollback().await;
                            }
                        }
                        done
                    }
                };
                take_events();
                // A COMMIT cancelled while in flight finishes on its own.
                if done.is_none() {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
                let outcome = match &done {
                    None => "cancelled".to_string(),
                    Some(res) => format!("finished {:?}", res.as_ref().map_err(ToString::to_string)),
                };
                let checked = match op {
                    Op::Insert | Op::Update | Op::UpdateFields | Op::Delete => 1,
                    Op::BulkDelete | Op::BulkSave => 2,
                };
                let mut present = Vec::new();
                for (i, it) in items.iter().enumerate().take(checked) {
                    let name = format!("{prefix}{i}");
                    let row = item_key(&db, &name).await;
                    present.push(row != -1);
                    let ctx = format!("{mode:?} {op:?} at {waits} ({outcome}; given up {given_up:?}) row {i}");
                    // Keys and rows.
                    let agrees = match it.id {
                        Some(k) => k == row,
                        None => row == -1,
                    };
                    if !agrees && given_up.is_none() {
                        wrong.push(format!("{ctx}: key {:?} (before {:?}), committed row {row}", it.id, before[i]));
                    }
                    // Nothing half applied.
                    match op {
                        Op::Insert | Op::BulkSave => {
                            let l = logs(&db, &name, 0).await;
                            if l != i64::from(row != -1) {
                                wrong.push(format!("{ctx}: row {row} with {l} log rows"));
                            }
                            if committed(&name) && row == -1 {
                                wrong.push(format!("{ctx}: after-commit receiver ran, no row"));
                            }
                            if mode == Mode::Pool && done.as_ref().is_some_and(Result::is_ok) && !committed(&name) {
                                wrong.push(format!("{ctx}: finished on a pool, after-commit receiver did not run"));
                            }
                        }
                        Op::Update | Op::UpdateFields => {
                            let n = item_n(&db, &name).await;
                            let l = logs(&db, &name, 1).await;
                            if l != i64::from(n == 1) {
                                wrong.push(format!("{ctx}: n = {n} with {l} update logs"));
                            }
                            if op == Op::UpdateFields && note_is_old(&db, &name).await != 1 {
                                wrong.push(format!("{ctx}: update_fields(n) wrote `note`"));
                            }
                            if op == Op::Update && n == 1 && note_is_old(&db, &name).await != 0 {
                                wrong.push(format!("{ctx}: half an update (n written, note not)"));
                            }
                        }
                        Op::Delete | Op::BulkDelete => {
                            let kids = kids_of_name(&db, &name).await;
                            if kids != i64::from(row != -1) {
                                wrong.push(format!("{ctx}: parent row {row}, {kids} kids"));
                            }
                        }
                    }
                }
                if checked == 2 && present[0] != present[1] && given_up.is_none() {
                    wrong.push(format!("{mode:?} {op:?} at {waits} ({outcome}): half a bulk: {present:?}"));
                }
                if let Some(res) = done {
                    if let Err(e) = res {
                        wrong.push(format!("{mode:?} {op:?} at {waits}: finished with an error: {e}"));
                    }
                    finished = true;
                    break;
                }
            }
            assert!(finished, "{mode:?} {op:?} never finished");
        }
    }
    }
    if db.backend() != Backend::MySql {
        assert_eq!(given_up_count, 0, "only MySQL gives a transaction up");
    }
    assert!(wrong.is_empty(), "{}: {} faults: {wrong:#?}", db.backend(), wrong.len());
});

// 2. Receivers that fail or panic ---------------------------------------------------------------

// A failing `pre_save` or `post_save` (after the latter wrote its log row) leaves no row, no
// log, no key, no after-commit work, on a pool and inside a caller's transaction, which stays
// usable and commits the rest. A panicking receiver, caught by the caller, likewise leaves
// nothing behind; the pool and the caller's transaction carry on.
db_test!(async fn r5_failing_and_panicking_receivers_leave_nothing(db) {
    tables(&db).await;
    let t = tag(&db);
    for what in ["fail-pre", "fail-post", "panic-pre", "panic-post"] {
        for mode in [Mode::Pool, Mode::Tx, Mode::Savepoint] {
            let name = format!("{t}-{what}-{mode:?}").to_lowercase();
            // Names of the rows saved after it, without the marker that makes receivers fail.
            let after_name = format!("{t}-after-{what}-{mode:?}").to_lowercase().replace("fail-", "f-").replace("panic-", "p-");
            let again_name = format!("{after_name}-again");
            let mut it = item(&name);
            let pool_res = if mode == Mode::Pool {
                Some(AssertUnwindSafe(it.save(&db)).catch_unwind().await)
            } else {
                None
            };
            let mut tx = db.begin().await.unwrap();
            let res = match mode {
                Mode::Pool => pool_res.unwrap(),
                Mode::Tx => AssertUnwindSafe(it.save(&mut tx)).catch_unwind().await,
                Mode::Savepoint => {
                    AssertUnwindSafe(tx.savepoint(async |tx: &mut Tx| it.save(tx).await))
                        .catch_unwind()
                        .await
                }
            };
            let ctx = format!("{what} {mode:?}");
            match (&res, what.starts_with("panic")) {
                (Err(_), true) => {}
                (Ok(Err(e)), false) => assert_eq!(e.kind(), ErrorKind::Other, "{ctx}: {e}"),
                (other, _) => panic!("{ctx}: unexpected {:?}", other.as_ref().map(|r| r.as_ref().map(drop).map_err(ToString::to_string))),
            }
            assert_eq!(it.id, None, "{ctx}: a key for a row rolled back");
            let mut after = item(&after_name);
            after.save(&mut tx).await.unwrap_or_else(|e| panic!("{ctx}: transaction unusable: {e}"));
            tx.commit().await.unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
            assert_eq!(item_key(&db, &name).await, -1, "{ctx}: row committed");
            assert_eq!(logs(&db, &name, 0).await, 0, "{ctx}: log committed");
            assert!(!committed(&name), "{ctx}: after-commit work ran");
            assert_eq!(item_key(&db, &after_name).await, after.id.unwrap(), "{ctx}");
            // The pool still works.
            let mut again = item(&again_name);
            again.save(&db).await.unwrap_or_else(|e| panic!("{ctx}: pool unusable: {e}"));
            assert_eq!(logs(&db, &again_name, 0).await, 1);
        }
    }
    take_events();
});

// 3. update_fields edge cases ------------------------------------------------------------------

/// Records what its receivers see.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_opt")]
#[pre_save(r5_opt_pre)]
#[post_save(r5_opt_post)]
#[post_save(r5_opt_n_changed, changed(n))]
#[post_save(r5_opt_title_changed, changed(title))]
struct R5Opt {
    id: Option<i64>,
    title: String,
    n: i64,
}

async fn r5_opt_pre(o: &mut R5Opt, signal: &mut PreSave<'_>) -> Result<()> {
    record(format!(
        "pre {} fields={:?} raw={}",
        o.title,
        signal.update_fields(),
        signal.raw()
    ));
    Ok(())
}

async fn r5_opt_post(o: &R5Opt, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!(
        "post {} created={} fields={:?} raw={} old_n={:?}",
        o.title,
        signal.created(),
        signal.update_fields(),
        signal.raw(),
        signal.was(R5Opt::N)
    ));
    Ok(())
}

async fn r5_opt_n_changed(o: &R5Opt, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!("n {:?} -> {}", signal.was(R5Opt::N), o.n));
    Ok(())
}

async fn r5_opt_title_changed(o: &R5Opt, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!(
        "title {:?} -> {}",
        signal.was(R5Opt::TITLE),
        o.title
    ));
    Ok(())
}

db_test!(async fn r5_update_fields_edges(db) {
    db.create_tables::<R5Opt>().await.unwrap();
    let mut o = R5Opt { id: None, title: "a".into(), n: 1 };
    // Unsaved with fields: NotSaved, no key, no row, no signal.
    let err = o.save_with(&db, SaveOptions::new().update_fields(R5Opt::N)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSaved, "{err}");
    assert_eq!(o.id, None);
    assert!(take_events().is_empty());
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_opt").await, 0);
    // Unsaved with an empty set: nothing, Django's rule.
    let saved = o.save_with(&db, SaveOptions::new().update_fields(FieldSet::empty())).await.unwrap();
    assert!(!saved.created());
    assert_eq!(o.id, None);
    assert!(take_events().is_empty());
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_opt").await, 0);
    o.save(&db).await.unwrap();
    let id = o.id.unwrap();
    assert_eq!(
        take_events(),
        [
            "pre a fields=None raw=false",
            "post a created=true fields=None raw=false old_n=None",
            "n None -> 1",
            "title None -> a",
        ]
    );
    // The key among the fields: refused, key kept, nothing sent.
    o.n = 2;
    let err = o.save_with(&db, SaveOptions::new().update_fields(R5Opt::ID | R5Opt::N)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert_eq!(o.id, Some(id));
    assert!(take_events().is_empty());
    // Only `title` written: `changed(n)` does not fire (n is not written), `changed(title)` does.
    o.title = "b".into();
    o.save_with(&db, SaveOptions::new().update_fields(R5Opt::TITLE)).await.unwrap();
    let ev = take_events();
    assert_eq!(
        ev,
        [
            "pre b fields=Some([\"title\"]) raw=false",
            "post b created=false fields=Some([\"title\"]) raw=false old_n=Some(1)",
            "title Some(\"a\") -> b",
        ],
        "{ev:?}"
    );
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_opt WHERE id = {id}")).await, 1);
    // Raw and quiet.
    o.n = 3;
    o.save_with(&db, SaveOptions::new().raw()).await.unwrap();
    let ev = take_events();
    assert!(ev.contains(&"pre b fields=None raw=true".to_owned()), "{ev:?}");
    assert!(ev.contains(&"n Some(1) -> 3".to_owned()), "{ev:?}");
    o.n = 4;
    o.save_with(&db, SaveOptions::new().quietly()).await.unwrap();
    assert!(take_events().is_empty());
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_opt WHERE id = {id}")).await, 4);
    // Deleted behind its back: update_fields says NotFound, keeps the key, inside a caller's
    // transaction that stays usable (also on PostgreSQL) and commits the rest.
    signals_tests::exec(&db, &format!("DELETE FROM r5_opt WHERE id = {id}")).await;
    let mut tx = db.begin().await.unwrap();
    o.n = 5;
    let err = o.save_with(&mut tx, SaveOptions::new().update_fields(R5Opt::N)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(o.id, Some(id));
    let mut other = R5Opt { id: None, title: "other".into(), n: 0 };
    other.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_opt").await, 1);
    take_events();
    // A plain save re-creates it with its key.
    assert!(o.save(&db).await.unwrap().created());
    assert_eq!(o.id, Some(id));
    // update_fields quiet: written, nothing sent.
    take_events();
    o.n = 6;
    o.save_with(&db, SaveOptions::new().update_fields(R5Opt::N).quietly()).await.unwrap();
    assert!(take_events().is_empty());
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_opt WHERE id = {id}")).await, 6);
});

// 4. Old values: the row as committed and as this transaction left it -------------------------

db_test!(async fn r5_old_values_follow_the_transaction_and_ignore_cancelled_saves(db) {
    db.create_tables::<R5Opt>().await.unwrap();
    let mut o = R5Opt { id: None, title: "t".into(), n: 1 };
    o.save(&db).await.unwrap();
    take_events();
    let mut tx = db.begin().await.unwrap();
    o.n = 2;
    o.save(&mut tx).await.unwrap();
    o.n = 3;
    o.save(&mut tx).await.unwrap();
    let ev: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("n ")).collect();
    assert_eq!(ev, ["n Some(1) -> 2", "n Some(2) -> 3"]);
    // A save to 4 cancelled at each await point, then a save to 5: it compares with 3, unless
    // the transaction was given up (MySQL).
    let mut given_up = false;
    for waits in 0..50 {
        let mut c = o.clone();
        c.n = 4;
        let done = cancel_at(waits, c.save(&mut tx)).await;
        if let Some(res) = done {
            res.unwrap();
            // Finished: undo it for the next round.
            o.n = 3;
            o.save(&mut tx).await.unwrap();
            take_events();
            break;
        }
        take_events();
        // Cancelled before its RELEASE, the save to 4 is undone; once its RELEASE was sent, it
        // stays (RELIABILITY 25.8): the row in the transaction tells which.
        let now = match R5Opt::get(&mut tx, o.id.unwrap()).await {
            Ok(row) => row.unwrap().n,
            Err(e) => {
                assert_eq!(db.backend(), Backend::MySql, "given up at {waits}: {e}");
                given_up = true;
                break;
            }
        };
        assert!(now == 3 || now == 4, "at {waits}: n = {now}");
        o.n = 5;
        match o.save(&mut tx).await {
            Ok(_) => {
                let ev: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("n ")).collect();
                assert_eq!(ev, [format!("n Some({now}) -> 5")], "cancelled at {waits}");
                o.n = 3;
                o.save(&mut tx).await.unwrap();
                take_events();
            }
            Err(e) => {
                assert_eq!(db.backend(), Backend::MySql, "given up at {waits}: {e}");
                given_up = true;
                break;
            }
        }
    }
    if given_up {
        let _ = tx.rollback().await;
        return;
    }
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_opt WHERE id = {}", o.id.unwrap())).await, 3);
    // After the commit, a save on the pool compares with the committed 3.
    take_events();
    o.n = 7;
    o.save(&db).await.unwrap();
    let ev: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("n ")).collect();
    assert_eq!(ev, ["n Some(3) -> 7"]);
});

// 5. Receivers that save themselves or other models -------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_loop")]
#[post_save(r5_loop_again)]
struct R5Loop {
    id: Option<i64>,
    n: i64,
    limit: i64,
}

/// Saves the instance again (a new copy with `n + 1`) until `n` reaches `limit`; a limit of
/// -1 never stops.
async fn r5_loop_again(l: &R5Loop, signal: &mut PostSave<'_>) -> Result<()> {
    if l.limit < 0 || l.n < l.limit {
        let mut next = l.clone();
        next.n += 1;
        next.save(signal.tx()).await?;
    }
    Ok(())
}

db_test!(async fn r5_receivers_resaving_themselves(db) {
    db.create_tables::<R5Loop>().await.unwrap();
    let mut l = R5Loop { id: None, n: 0, limit: 5 };
    assert!(l.save(&db).await.unwrap().created());
    let id = l.id.unwrap();
    assert_eq!(l.n, 0, "the caller's copy is the caller's");
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_loop WHERE id = {id}")).await, 5);
    // Without end: the depth limit, nothing committed, no key.
    let mut forever = R5Loop { id: None, n: 0, limit: -1 };
    let err = forever.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RecursionLimit, "{err}");
    assert_eq!(forever.id, None);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_loop").await, 1);
    // Inside a caller's transaction: same, and the transaction carries on.
    let mut tx = db.begin().await.unwrap();
    let err = forever.save(&mut tx).await.unwrap_err();
    assert!(matches!(err.root(), Error::RecursionLimit { model: "R5Loop", .. }), "{err}");
    assert_eq!(forever.id, None);
    let mut ok = R5Loop { id: None, n: 0, limit: 2 };
    ok.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_loop").await, 2);
    // Resaving an existing row through update_fields from the receiver.
    l.limit = 8;
    l.save_with(&db, SaveOptions::new().update_fields(R5Loop::LIMIT)).await.unwrap();
    assert_eq!(scalar(&db, &format!("SELECT n FROM r5_loop WHERE id = {id}")).await, 8);
});

// 6. Errors that name their column --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_short")]
#[post_save(r5_short_post)]
struct R5Short {
    id: Option<i64>,
    #[model(max_length = 10)]
    longer: String,
    #[model(max_length = 5)]
    shorter: String,
}

/// The same table, its lengths not declared: PostgreSQL's error ("value too long for type
/// character varying(5)") fits two fields, and neither may be named wrongly.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_short")]
struct R5ShortUndeclared {
    id: Option<i64>,
    longer: String,
    shorter: String,
}

async fn r5_short_post(_: &R5Short, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

// Two bounded columns, `longer VARCHAR(10)` and `shorter VARCHAR(5)`: a 6-character `shorter`
// is too long, a 8-character `longer` is not. The error must name `shorter`, on a pool, in a
// caller's transaction and with update_fields; nothing is written and the transaction goes on.
db_test!(async fn r5_too_long_names_the_right_column(db) {
    create_tables(&db, "CREATE TABLE r5_short (id {pk}, longer VARCHAR(10) NOT NULL, shorter VARCHAR(5) NOT NULL)").await;
    if db.backend() == Backend::Sqlite {
        return; // SQLite keeps any length
    }
    let mut wrong = Vec::new();
    let mut s = R5Short { id: None, longer: "eightchr".into(), shorter: "sixchr".into() };
    let err = s.save(&db).await.unwrap_err();
    if err.kind() != ErrorKind::InvalidValue || !err.to_string().contains("column `shorter`") {
        wrong.push(format!("insert on a pool: {err}"));
    }
    assert_eq!(s.id, None);
    let mut tx = db.begin().await.unwrap();
    let err = s.save(&mut tx).await.unwrap_err();
    if err.kind() != ErrorKind::InvalidValue || !err.to_string().contains("column `shorter`") {
        wrong.push(format!("insert in a transaction: {err}"));
    }
    let mut fine = R5Short { id: None, longer: "ok".into(), shorter: "ok".into() };
    fine.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    // update_fields(shorter) with an overlong `longer` in memory, which is not written.
    fine.longer = "much more than ten".into();
    fine.shorter = "sixchr".into();
    let err = fine
        .save_with(&db, SaveOptions::new().update_fields(R5Short::SHORTER))
        .await
        .unwrap_err();
    if err.kind() != ErrorKind::InvalidValue || !err.to_string().contains("column `shorter`") {
        wrong.push(format!("update_fields(shorter) with a long `longer` unwritten: {err}"));
    }
    // Undeclared lengths: only the one field longer than the limit is named; with two that
    // could be, none is (the database's error stays), never the wrong one.
    let mut one = R5ShortUndeclared { id: None, longer: "abc".into(), shorter: "sixchr".into() };
    let err = one.save(&db).await.unwrap_err();
    if err.kind() != ErrorKind::InvalidValue || !err.to_string().contains("column `shorter`") {
        wrong.push(format!("undeclared, one candidate: {err}"));
    }
    let mut two = R5ShortUndeclared { id: None, longer: "eightchr".into(), shorter: "sixchr".into() };
    let err = two.save(&db).await.unwrap_err();
    if err.to_string().contains("column `longer`") {
        wrong.push(format!("undeclared, two candidates: {err}"));
    }
    if db.backend() == Backend::Postgres && err.kind() == ErrorKind::InvalidValue {
        wrong.push(format!("undeclared, two candidates, named anyway: {err}"));
    }
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_short").await, 1);
    assert!(wrong.is_empty(), "{}: {wrong:#?}", db.backend());
});

// SQLite's "FOREIGN KEY constraint failed" is named after the reference column, on a pool, in
// a caller's transaction and its savepoint (foreign keys are checked per statement).
db_test!(async fn r5_foreign_keys_named_everywhere(db) {
    tables(&db).await;
    let mut kid = R5Kid { id: None, item_id: 987_654, name: "orphan".into() };
    let err = kid.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    assert!(err.to_string().contains("r5_kid"), "{err}");
    if db.backend() == Backend::Sqlite {
        assert!(err.to_string().contains("r5_kid.item_id"), "{err}");
    }
    assert_eq!(kid.id, None);
    let mut tx = db.begin().await.unwrap();
    let res = tx.savepoint(async |tx: &mut Tx| kid.save(tx).await).await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    if db.backend() == Backend::Sqlite {
        assert!(err.to_string().contains("r5_kid.item_id"), "{err}");
    }
    assert_eq!(kid.id, None);
    // An item whose post_save saves an orphan kid: the error names the kid's column, and the
    // item goes too.
    let mut it = item("p-fk");
    it.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_kid").await, 0);
});

// 7. Many tasks on the same rows -----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_counter")]
#[post_save(r5_counter_seen, changed(value))]
struct R5Counter {
    id: Option<i64>,
    value: i64,
}

async fn r5_counter_seen(c: &R5Counter, signal: &mut PostSave<'_>) -> Result<()> {
    let was = *signal.was(R5Counter::VALUE).unwrap_or(&-1);
    record(format!("{was}->{}", c.value));
    Ok(())
}

// Eight tasks each save the same row with eight distinct values: every transition chains
// (each value is left at most once, entered once), in a caller's transaction too; then eight
// tasks delete the same items (with kids) at once: exactly one delete per row succeeds, the
// others say NotFound, no kid is left behind.
db_test!(async fn r5_many_tasks_on_the_same_rows(db) {
    tables(&db).await;
    db.create_tables::<R5Counter>().await.unwrap();
    let mut counter = R5Counter { id: None, value: 0 };
    counter.save(&db).await.unwrap();
    take_events();
    let id = counter.id.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(signals_tests::with_events(async move {
                let mut mine = Vec::new();
                for k in 1..=8 {
                    let value = t * 100 + k;
                    let mut c = R5Counter { id: Some(id), value };
                    let res = if k % 2 == 0 {
                        let mut tx = db.begin().await.unwrap();
                        let r = c.save(&mut tx).await;
                        match r {
                            Ok(_) => tx.commit().await.map(drop),
                            Err(e) => Err(e),
                        }
                    } else {
                        c.save(&db).await.map(drop)
                    };
                    match res {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::Conflict => {
                            // A deadlock victim: retried once below, rolled back whole.
                            take_events_filter_last();
                            continue;
                        }
                        Err(e) => panic!("task {t} save {k}: {e}"),
                    }
                    mine.extend(take_events());
                }
                mine
            }))
        })
        .collect();
    let mut transitions = Vec::new();
    for task in tasks {
        transitions.extend(task.await.unwrap());
    }
    let final_value = scalar(&db, &format!("SELECT value FROM r5_counter WHERE id = {id}")).await;
    // Follow the chain from 0.
    let mut from = std::collections::BTreeMap::new();
    for tr in &transitions {
        let (a, b) = tr.split_once("->").unwrap();
        let a: i64 = a.parse().unwrap();
        let b: i64 = b.parse().unwrap();
        assert!(from.insert(a, b).is_none(), "value {a} left twice: {transitions:?}");
    }
    let mut at = 0;
    let mut steps = 0;
    while let Some(next) = from.get(&at) {
        at = *next;
        steps += 1;
    }
    assert_eq!(steps, transitions.len(), "the transitions do not chain: {transitions:?}");
    assert_eq!(at, final_value, "{transitions:?}");

    // Racing deletes.
    let t = tag(&db);
    let mut items: Vec<R5Item> = (0..6).map(|i| item(&format!("{t}-race-{i}"))).collect();
    R5Item::bulk_save(&db, &mut items).await.unwrap();
    for it in &items {
        R5Kid { id: None, item_id: it.id.unwrap(), name: it.name.clone() }.save(&db).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            let mut mine = items.clone();
            tokio::spawn(async move {
                let mut ok = Vec::new();
                for (i, it) in mine.iter_mut().enumerate() {
                    let res = if t % 3 == 0 {
                        let mut tx = db.begin().await.unwrap();
                        match it.delete(&mut tx).await {
                            Ok(_) => tx.commit().await.map(drop),
                            Err(e) => Err(e),
                        }
                    } else if t % 3 == 1 {
                        R5Item::bulk_delete(&db, std::slice::from_mut(it)).await.map(drop)
                    } else {
                        it.delete(&db).await.map(drop)
                    };
                    match res {
                        Ok(()) => {
                            assert_eq!(it.id, None, "a deleted instance keeps its key");
                            ok.push(i);
                        }
                        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {}
                        Err(e) => panic!("task {t} delete {i}: {e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let mut deleted = vec![0; items.len()];
    for task in tasks {
        for i in task.await.unwrap() {
            deleted[i] += 1;
        }
    }
    let remaining = scalar(&db, &format!("SELECT COUNT(*) FROM r5_item WHERE name LIKE '{t}-race-%'")).await;
    let kids = scalar(&db, &format!("SELECT COUNT(*) FROM r5_kid WHERE name LIKE '{t}-race-%'")).await;
    assert_eq!(remaining, 0, "{deleted:?}");
    assert_eq!(kids, 0, "{deleted:?}");
    assert!(deleted.iter().all(|d| *d == 1), "each row deleted once: {deleted:?}");
});

fn take_events_filter_last() {
    take_events();
}

// 8. MariaDB in NO_BACKSLASH_ESCAPES and ANSI --------------------------------------------------

// Saves (plain, update_fields, raw), deletes, bulk saves and deletes of values with quotes,
// backslashes and `%`, with old values compared, on a pool whose sessions run in
// `NO_BACKSLASH_ESCAPES,ANSI`; a save cancelled at every await point inside a savepoint; the
// too-long error still names its column.
db_test!(async fn r5_mariadb_sql_modes(db) {
    if db.backend() != Backend::MySql {
        return;
    }
    db.create_tables::<(R5Item, R5Log, R5Kid, R5Opt)>().await.unwrap();
    create_tables(&db, "CREATE TABLE r5_short (id {pk}, longer VARCHAR(10) NOT NULL, shorter VARCHAR(5) NOT NULL)").await;
    let strict = signals_tests::mysql_pool_running(
        &db,
        &[
            signals_tests::STRICT_MODES,
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        ],
    )
    .await
    .expect("MySQL");
    let db2 = &strict;
    let names = ["a\\b", "it's", "say \"hi\"", "100%_", "back\\'slash", "tail\\"];
    let mut items: Vec<R5Item> = names.iter().map(|n| item(&format!("m-{n}"))).collect();
    R5Item::bulk_save(db2, &mut items).await.unwrap();
    for it in &mut items {
        let got = R5Item::get(db2, it.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(&got, it);
        it.note = format!("{}\\'\"", it.note);
        it.n = 9;
        it.save_with(db2, SaveOptions::new().update_fields(R5Item::NOTE)).await.unwrap();
        let got = R5Item::get(db2, it.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(got.note, it.note);
        assert_eq!(got.n, 0);
        it.save(db2).await.unwrap();
        let logs_of = R5Log::filter(db2, R5Log::NAME, it.name.clone()).await.unwrap();
        assert_eq!(logs_of.len(), 3, "{logs_of:?}");
    }
    // Old values.
    let mut o = R5Opt { id: None, title: "q'\\\"".into(), n: 1 };
    o.save(db2).await.unwrap();
    take_events();
    o.title = "r\\'".into();
    o.save(db2).await.unwrap();
    let ev = take_events();
    assert!(ev.contains(&"title Some(\"q'\\\\\\\"\") -> r\\'".to_owned()), "{ev:?}");
    // Cancelled saves inside a savepoint.
    for waits in 0..100 {
        let mut it = item(&format!("m-cancel\\'{waits}"));
        let mut tx = strict.begin().await.unwrap();
        let done = cancel_at(waits, tx.savepoint(async |tx: &mut Tx| it.save(tx).await)).await;
        let given_up = match item("m-after").save(&mut tx).await {
            Ok(_) => {
                tx.commit().await.unwrap();
                false
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Transaction, "{e}");
                let _ = tx.rollback().await;
                true
            }
        };
        let rows = R5Item::filter(db2, R5Item::NAME, it.name.clone()).await.unwrap();
        if !given_up {
            assert_eq!(rows.first().and_then(|r| r.id), it.id, "at {waits}");
        }
        if done.is_some() {
            break;
        }
    }
    // Bulk delete of all, with kids.
    for it in &items {
        R5Kid { id: None, item_id: it.id.unwrap(), name: it.name.clone() }.save(db2).await.unwrap();
    }
    R5Item::bulk_delete(db2, &mut items).await.unwrap();
    assert!(items.iter().all(|i| i.id.is_none()));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_kid").await, 0);
    // Too long, named.
    let err = R5Short { id: None, longer: "x".into(), shorter: "sixchr".into() }.save(db2).await.unwrap_err();
    assert!(err.to_string().contains("column `shorter`"), "{err}");
    strict.close().await;
});

// 9. A COMMIT the database refuses: deferred foreign keys -------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "r5_dkid")]
#[post_save(r5_dkid_post)]
#[on_commit(r5_dkid_committed)]
struct R5DKid {
    id: Option<i64>,
    item_id: i64,
    name: String,
}

async fn r5_dkid_post(_: &R5DKid, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

async fn r5_dkid_committed(k: R5DKid, _: Committed) -> Result<()> {
    COMMITTED.lock().unwrap().insert(k.name.clone());
    Ok(())
}

// The reference is checked at COMMIT (SQLite and PostgreSQL; MariaDB checks it at once): a
// save of an orphan on a pool fails at its COMMIT, leaves no key, no row and no after-commit
// work, and the pool (on SQLite its kept connection, which a refused COMMIT leaves inside
// its transaction) carries on: the next saves commit, and nothing of the refused one comes
// back with them.
db_test!(async fn r5_a_refused_commit_leaves_no_key_and_a_usable_pool(db) {
    tables(&db).await;
    let fk = if db.backend() == Backend::MySql { "" } else { "DEFERRABLE INITIALLY DEFERRED" };
    create_tables(&db, &format!("CREATE TABLE r5_dkid (id {{pk}}, item_id {{bigint}} NOT NULL, name {{varchar}} NOT NULL, \
        CONSTRAINT r5_dkid_fk FOREIGN KEY (item_id) REFERENCES r5_item (id) {fk})")).await;
    let t = tag(&db);
    for round in 0..3 {
        let name = format!("{t}-orphan-{round}");
        let mut k = R5DKid { id: None, item_id: 999_999, name: name.clone() };
        let err = k.save(&db).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "round {round}: {err}");
        assert_eq!(k.id, None, "round {round}: key of a refused commit");
        assert!(!committed(&name), "round {round}: after-commit work of a refused commit");
        // The pool carries on.
        let mut it = item(&format!("{t}-parent-{round}"));
        it.save(&db).await.unwrap_or_else(|e| panic!("round {round}: next save: {e}"));
        let good_name = format!("{t}-good-{round}");
        let mut good = R5DKid { id: None, item_id: it.id.unwrap(), name: good_name.clone() };
        good.save(&db).await.unwrap_or_else(|e| panic!("round {round}: next kid: {e}"));
        assert!(committed(&good_name));
        assert_eq!(
            scalar(&db, &format!("SELECT COUNT(*) FROM r5_dkid WHERE name = '{name}'")).await,
            0,
            "round {round}: the refused row came back"
        );
        // Same inside a caller's transaction: the caller's commit is refused, and says so.
        let mut tx = db.begin().await.unwrap();
        let mut k2 = R5DKid { id: None, item_id: 999_998, name: format!("{name}-tx") };
        let saved = k2.save(&mut tx).await;
        if db.backend() == Backend::MySql {
            assert_eq!(saved.unwrap_err().kind(), ErrorKind::ForeignKeyViolation);
            tx.rollback().await.unwrap();
        } else {
            saved.unwrap();
            let err = tx.commit().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "round {round}: {err}");
        }
        assert!(!committed(&format!("{name}-tx")));
        assert_eq!(scalar(&db, &format!("SELECT COUNT(*) FROM r5_dkid WHERE name = '{name}-tx'")).await, 0);
    }
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM r5_dkid").await, 3);
});

// 10. The caller's own COMMIT cancelled ------------------------------------------------------

// A caller's transaction with a save in it, its `commit()` cancelled at every await point:
// the after-commit work runs only if the rows committed; the save's row and its log row
// commit together or not at all (after a pause for a COMMIT left in flight); the pool
// carries on, and the next transaction never sees the old one's rows uncommitted.
db_test!(async fn r5_a_callers_commit_cancelled_at_every_await_point(db) {
    tables(&db).await;
    let t = tag(&db);
    let mut finished = false;
    for waits in 0..100 {
        let name = format!("{t}-ccommit-{waits}");
        let mut it = item(&name);
        let mut tx = db.begin().await.unwrap();
        it.save(&mut tx).await.unwrap();
        let done = tokio::time::timeout(Duration::from_secs(60), cancel_at(waits, tx.commit()))
            .await
            .expect("hung");
        if done.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let row = item_key(&db, &name).await;
        let l = logs(&db, &name, 0).await;
        assert_eq!(l, i64::from(row != -1), "at {waits}: row {row}, {l} logs");
        if committed(&name) {
            assert_ne!(row, -1, "at {waits}: after-commit work without a row");
        }
        if let Some(res) = done {
            res.unwrap();
            assert_eq!(row, it.id.unwrap());
            assert!(committed(&name), "a finished commit runs its after-commit work");
            finished = true;
            break;
        }
        // The pool carries on.
        let mut next = item(&format!("{t}-ccommit-next-{waits}"));
        next.save(&db).await.unwrap_or_else(|e| panic!("at {waits}: {e}"));
    }
    assert!(finished);
});
