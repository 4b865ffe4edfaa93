//! Where issue 27's features meet the rest, second round (a reviewer's probes of the first
//! round's fixes): times floored when sent (filters and writes with nanoseconds), MariaDB's
//! `DateTime<Utc>` of any year in filters, panicking receivers and after-rollback work,
//! nested scopes, `post_load` on `refresh` and `get_for_update`, `record_signals` past one
//! chunk and with saves joined, and test futures that stay small.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use futures_util::FutureExt as _;
use signals_core::{
    BoxError, Error, Instance, Model, PostDelete, PostSave, PreDelete, PreDeleteBatch, PreSave,
    Result, Signal, SignalKind, connect_any_post_save, connect_post_save, isolate_receivers,
    record_signals,
};
use signals_tests::{count, db_test, record, scalar, take_events};

/// Tests that overflowed the 2 MiB stack of libtest's threads and aborted the whole binary
/// when `record_signals` and `isolate_receivers` were `async fn`s (each tripled the future it
/// wrapped), run on a multi-threaded runtime of their own, on every backend.
macro_rules! on_every_backend {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                signals_tests::run(signals_core::Backend::Sqlite, stringify!($name), $body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                signals_tests::run(signals_core::Backend::Postgres, stringify!($name), $body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                signals_tests::run(signals_core::Backend::MySql, stringify!($name), $body).await
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// 1. Custom-signal receivers connected in a scope: dropped when the scope ends?
// RELIABILITY 27.1: "connected inside `isolate_receivers`, it runs only for work inside, and
// is dropped when that ends (the channel it holds closes)" — for a custom signal too.
// ---------------------------------------------------------------------------------------

static B2_SIG: Signal<i64> = Signal::new("b2_sig");

#[derive(Debug, Clone, Model)]
#[model(table = "b2_plain")]
struct B2Plain {
    id: Option<i64>,
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_custom_signal_receiver_dropped_at_the_signals_next_use() {
    let state = Arc::new(Mutex::new(0i64));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let model_state = Arc::new(());
    isolate_receivers(async {
        let s = state.clone();
        assert!(B2_SIG.connect("b2_custom_scoped", async move |v: &i64| {
            *s.lock().unwrap() += *v;
            let _ = tx.send(*v);
            Ok(())
        }));
        // Control: a model receiver holding state.
        let m = model_state.clone();
        assert!(connect_post_save::<B2Plain, _>(
            "b2_model_scoped",
            async move |_: &B2Plain, _: &mut PostSave<'_>| {
                let _ = &m;
                Ok(())
            }
        ));
        assert_eq!(B2_SIG.send(&2).await.unwrap(), 1);
    })
    .await;
    assert_eq!(rx.recv().await, Some(2));
    // The model receiver went with the scope; the custom signal's goes at its next use (and
    // never runs outside the scope).
    assert_eq!(Arc::strong_count(&model_state), 1);
    assert_eq!(B2_SIG.send(&3).await.unwrap(), 0, "not outside the scope");
    assert_eq!(Arc::strong_count(&state), 1);
    let closed = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(
        matches!(closed, Ok(None)),
        "the receiver's channel closed with it"
    );
}

// ---------------------------------------------------------------------------------------
// 3. record_signals: a batch receiver on every row of its batch (27.5) — past 1000 rows.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "b2_many")]
#[pre_delete(b2_many_going, batch)]
struct B2Many {
    id: Option<i64>,
    n: i64,
}

async fn b2_many_going(_: &[B2Many], _: &mut PreDeleteBatch<'_>) -> Result<()> {
    Ok(())
}

db_test!(async fn record_signals_batch_receiver_past_1000_rows(db) {
    db.create_tables::<B2Many>().await.unwrap();
    let mut rows: Vec<B2Many> = (0..1001).map(|n| B2Many { id: None, n }).collect();
    B2Many::bulk_save(&db, &mut rows).await.unwrap();
    let (res, fired) = record_signals(B2Many::bulk_delete(&db, &mut rows)).await;
    res.unwrap();
    let pre: Vec<_> = fired.iter().filter(|f| f.signal == SignalKind::PreDelete).collect();
    let listed = pre.iter().filter(|f| f.receivers.contains(&"b2_many_going")).count();
    assert_eq!(
        (pre.len(), listed),
        (1001, 1001),
        "{:?}: pre_delete rows recorded, and how many list the batch receiver that ran for all",
        db.backend()
    );
});

// ---------------------------------------------------------------------------------------
// 5. Times with nanoseconds: filters, in_, query().update, bulk_save/bulk_update re-saves,
// Option None on MySQL.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "b2_when")]
#[post_save(b2_when_moved, changed(at, naive, t, maybe))]
struct B2When {
    id: Option<i64>,
    tag: String,
    at: DateTime<Utc>,
    naive: NaiveDateTime,
    t: NaiveTime,
    maybe: Option<DateTime<Utc>>,
}

async fn b2_when_moved(w: &B2When, s: &mut PostSave<'_>) -> Result<()> {
    let mut which = Vec::new();
    if s.changed(B2When::AT) {
        which.push("at");
    }
    if s.changed(B2When::NAIVE) {
        which.push("naive");
    }
    if s.changed(B2When::T) {
        which.push("t");
    }
    if s.changed(B2When::MAYBE) {
        which.push("maybe");
    }
    record(format!("moved {} {}", w.tag, which.join(",")));
    Ok(())
}

fn nanos(y: i32, mo: u32, d: u32, ns: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, 10, 0, 0)
        .unwrap()
        .with_nanosecond(ns)
        .unwrap()
}

fn when(tag: &str, at: DateTime<Utc>) -> B2When {
    B2When {
        id: None,
        tag: tag.into(),
        at,
        naive: at.naive_utc(),
        t: at.time(),
        maybe: Some(at),
    }
}

db_test!(async fn time_filters_and_writes_with_nanoseconds(db) {
    db.create_tables::<B2When>().await.unwrap();
    let mut failures = Vec::new();
    for at in [nanos(2026, 12, 4, 123_456_789), nanos(1999, 12, 31, 999_999_999), nanos(1960, 6, 1, 500_000_001)] {
        db.execute_unprepared("DELETE FROM b2_when").await.unwrap();
        let label = at.format("%FT%T%.9f").to_string();
        let mut w = when("a", at);
        w.save(&db).await.unwrap();
        take_events();
        let q = || B2When::query().filter(B2When::TAG.eq("a"));
        let checks: Vec<(&str, i64, i64)> = vec![
            ("at eq", q().filter(B2When::AT.eq(at)).count(&db).await.unwrap(), 1),
            ("naive eq", q().filter(B2When::NAIVE.eq(at.naive_utc())).count(&db).await.unwrap(), 1),
            ("t eq", q().filter(B2When::T.eq(at.time())).count(&db).await.unwrap(), 1),
            ("maybe eq", q().filter(B2When::MAYBE.eq(Some(at))).count(&db).await.unwrap(), 1),
            ("at in_", q().filter(B2When::AT.in_([at])).count(&db).await.unwrap(), 1),
            ("t in_", q().filter(B2When::T.in_([at.time()])).count(&db).await.unwrap(), 1),
            ("at ge", q().filter(B2When::AT.ge(at)).count(&db).await.unwrap(), 1),
            ("at le", q().filter(B2When::AT.le(at)).count(&db).await.unwrap(), 1),
            ("at lt", q().filter(B2When::AT.lt(at)).count(&db).await.unwrap(), 0),
            ("at gt", q().filter(B2When::AT.gt(at)).count(&db).await.unwrap(), 0),
            ("Model::filter at", B2When::filter(&db, B2When::AT, at).await.unwrap().len() as i64, 1),
        ];
        for (what, got, want) in checks {
            if got != want {
                failures.push(format!("{label}: {what} found {got}, want {want}"));
            }
        }
        // query().update with a time with nanoseconds, then a filter by it.
        let at2 = at + chrono::Duration::nanoseconds(1_234_567);
        let n = q().update(&db, B2When::AT.set(at2)).await.unwrap();
        assert_eq!(n, 1);
        let found = q().filter(B2When::AT.eq(at2)).count(&db).await.unwrap();
        if found != 1 {
            failures.push(format!("{label}: after query().update(AT = {}), eq finds {found}", at2.format("%T%.9f")));
        }
        // Bulk save of new rows, then re-saves of the very same instances.
        let mut rows = vec![when("b1", at), when("b2", at2)];
        B2When::bulk_save(&db, &mut rows).await.unwrap();
        take_events();
        B2When::bulk_save(&db, &mut rows).await.unwrap();
        let ev = take_events();
        if !ev.is_empty() {
            failures.push(format!("{label}: bulk re-save reported {ev:?}"));
        }
        B2When::bulk_update(&db, &mut rows, B2When::AT).await.unwrap();
        let ev = take_events();
        if !ev.is_empty() {
            failures.push(format!("{label}: bulk_update re-save reported {ev:?}"));
        }
        let found = B2When::query().filter(B2When::AT.in_([at, at2])).count(&db).await.unwrap();
        if found != 3 {
            failures.push(format!("{label}: in_([at, at2]) after bulk saves finds {found}, want 3"));
        }
        // Option None.
        let mut none = when("none", at);
        none.maybe = None;
        none.save(&db).await.unwrap();
        take_events();
        let nulls = B2When::query().filter(B2When::MAYBE.eq(None::<DateTime<Utc>>)).count(&db).await.unwrap();
        if nulls != 1 {
            failures.push(format!("{label}: MAYBE.eq(None) finds {nulls}"));
        }
        let set_null = B2When::query().filter(B2When::TAG.eq("a")).update(&db, B2When::MAYBE.set(None::<DateTime<Utc>>)).await;
        if let Err(e) = set_null {
            failures.push(format!("{label}: update MAYBE = NULL failed: {e}"));
        }
        let nulls = B2When::query().filter(B2When::MAYBE.is_null()).count(&db).await.unwrap();
        if nulls != 2 {
            failures.push(format!("{label}: after setting NULL, {nulls} NULLs"));
        }
        none.maybe = Some(at2);
        none.save(&db).await.unwrap();
        let ev = take_events();
        if ev != ["moved none maybe"] {
            failures.push(format!("{label}: None -> Some reported {ev:?}"));
        }
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

#[derive(Debug, Clone, Model)]
#[model(table = "b2_utc")]
struct B2Utc {
    id: Option<i64>,
    at: DateTime<Utc>,
    maybe: Option<DateTime<Utc>>,
}

db_test!(async fn utc_years_1_to_9999_in_filters(db) {
    db.create_tables::<B2Utc>().await.unwrap();
    let times = [
        Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(1960, 6, 1, 12, 0, 0).unwrap().with_nanosecond(250_000_999).unwrap(),
        Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().with_nanosecond(999_999_999).unwrap(),
    ];
    for at in times {
        B2Utc { id: None, at, maybe: Some(at) }.save(&db).await.unwrap();
    }
    let mut failures = Vec::new();
    for at in times {
        let eq = B2Utc::query().filter(B2Utc::AT.eq(at)).count(&db).await.unwrap();
        let meq = B2Utc::query().filter(B2Utc::MAYBE.eq(Some(at))).count(&db).await.unwrap();
        if (eq, meq) != (1, 1) {
            failures.push(format!("{at}: eq {eq}, maybe eq {meq}"));
        }
    }
    let all = B2Utc::query().filter(B2Utc::AT.in_(times)).count(&db).await.unwrap();
    let before_1970 = B2Utc::query().filter(B2Utc::AT.lt(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap())).count(&db).await.unwrap();
    let after_2038 = B2Utc::query().filter(B2Utc::MAYBE.gt(Some(Utc.with_ymd_and_hms(2038, 1, 20, 0, 0, 0).unwrap()))).count(&db).await.unwrap();
    if (all, before_1970, after_2038) != (4, 2, 2) {
        failures.push(format!("in_ {all} (4), < 1970 {before_1970} (2), maybe > 2038 {after_2038} (2)"));
    }
    let ordered: Vec<i32> = B2Utc::query().order_by(B2Utc::AT.asc()).all(&db).await.unwrap().iter().map(|u| chrono::Datelike::year(&u.at)).collect();
    if ordered != [1, 1960, 2040, 9999] {
        failures.push(format!("ordered {ordered:?}"));
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

// ---------------------------------------------------------------------------------------
// 6. Capturing async closures that panic: after-rollback work, recording, the connection.
// ---------------------------------------------------------------------------------------

static RELEASES: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn release(name: String) {
    let mut g = RELEASES.lock().unwrap();
    *g.get_or_insert_with(HashMap::new).entry(name).or_insert(0) += 1;
}

fn released(name: &str) -> u32 {
    RELEASES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(name)
        .copied()
        .unwrap_or(0)
}

#[derive(Debug, Clone, Model)]
#[model(table = "b2_boom")]
struct B2Boom {
    id: Option<i64>,
    name: String,
}

db_test!(async fn panicking_capturing_closure(db) {
    db.create_tables::<B2Boom>().await.unwrap();
    let p = format!("{:?}-boom-", db.backend());
    let calls = Arc::new(Mutex::new(0));
    let ((), fired) = isolate_receivers(record_signals(async {
        let c = calls.clone();
        connect_post_save::<B2Boom, _>("b2_boom_rt", async move |b: &B2Boom, s: &mut PostSave<'_>| {
            *c.lock().unwrap() += 1;
            let name = b.name.clone();
            s.on_rollback(async move { release(name) });
            if b.name.ends_with("boom") {
                panic!("receiver panics for {}", b.name);
            }
            Ok(())
        });
        // On &Db.
        let r = AssertUnwindSafe(B2Boom { id: None, name: format!("{p}db-boom") }.save(&db)).catch_unwind().await;
        assert!(r.is_err(), "the panic reaches the caller");
        B2Boom { id: None, name: format!("{p}ok1") }.save(&db).await.unwrap();
        // In a caller's transaction.
        let mut tx = db.begin().await.unwrap();
        B2Boom { id: None, name: format!("{p}tx-a") }.save(&mut tx).await.unwrap();
        let r = AssertUnwindSafe(B2Boom { id: None, name: format!("{p}tx-boom") }.save(&mut tx)).catch_unwind().await;
        assert!(r.is_err());
        let c = B2Boom { id: None, name: format!("{p}tx-c") }.save(&mut tx).await;
        let committed = tx.commit().await;
        eprintln!("{:?}: save after the panic: {:?}; commit: {:?}", db.backend(), c.as_ref().err().map(|e| e.to_string()), committed.as_ref().err().map(|e| e.to_string()));
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names: Vec<String> = B2Boom::query().order_by(B2Boom::ID.asc()).all(&db).await.unwrap().into_iter().map(|b| b.name).collect();
    let mut problems = Vec::new();
    for (name, want) in [("db-boom", 1), ("tx-boom", 1), ("ok1", 0), ("tx-a", 0), ("tx-c", 0)] {
        let got = released(&format!("{p}{name}"));
        if got != want {
            problems.push(format!("{name}: after-rollback work ran {got} times, want {want}"));
        }
    }
    let want_rows: Vec<String> = ["ok1", "tx-a", "tx-c"].iter().map(|n| format!("{p}{n}")).collect();
    if names != want_rows {
        problems.push(format!("rows {names:?}, want {want_rows:?}"));
    }
    // Recording: the post_save of ok1 lists the runtime receiver once.
    let ok_post: Vec<_> = fired.iter().filter(|f| f.signal == SignalKind::PostSave).map(|f| (f.key.clone(), f.receivers.clone())).collect();
    if ok_post.iter().any(|(_, r)| r.as_slice() != ["b2_boom_rt"]) {
        problems.push(format!("post_save recorded {ok_post:?}"));
    }
    assert!(problems.is_empty(), "{:?}: {problems:#?}", db.backend());
});

// ---------------------------------------------------------------------------------------
// 7. After-rollback work that panics or never finishes, in a savepoint rolled back.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "b2_hold")]
struct B2Hold {
    id: Option<i64>,
    name: String,
    mode: String,
}

db_test!(async fn on_rollback_work_that_panics_or_hangs(db) {
    db.create_tables::<B2Hold>().await.unwrap();
    let p = format!("{:?}-hold-", db.backend());
    isolate_receivers(async {
        connect_post_save::<B2Hold, _>("b2_hold_rt", async |h: &B2Hold, s: &mut PostSave<'_>| {
            let (n1, n2) = (format!("{}#1", h.name), format!("{}#2", h.name));
            match h.mode.as_str() {
                "panic" => s.on_rollback(async move { panic!("compensation {n1} panics") }),
                "hang" => s.on_rollback(std::future::pending::<()>()),
                _ => s.on_rollback(async move { release(n1) }),
            }
            s.on_rollback(async move { release(n2) });
            Err(BoxError::from("refused").into())
        });
        // In a caller's transaction: the savepoint's work runs before the save returns.
        let mut tx = db.begin().await.unwrap();
        let r = AssertUnwindSafe(B2Hold { id: None, name: format!("{p}p"), mode: "panic".into() }.save(&mut tx)).catch_unwind().await;
        let panic_outcome = match &r {
            Err(_) => "the save panicked".to_owned(),
            Ok(Err(e)) => format!("the save failed: {e}"),
            Ok(Ok(_)) => "saved".to_owned(),
        };
        let hang = tokio::time::timeout(Duration::from_secs(2), B2Hold { id: None, name: format!("{p}h"), mode: "hang".into() }.save(&mut tx)).await;
        let hang_outcome = match &hang {
            Err(_) => "the save did not return within 2 s".to_owned(),
            Ok(Err(e)) => format!("the save failed: {e}"),
            Ok(Ok(_)) => "saved".to_owned(),
        };
        drop(tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!(
            "{:?}: panicking compensation: {panic_outcome}; second work ran {} times. hanging compensation: {hang_outcome}; second work ran {} times",
            db.backend(),
            released(&format!("{p}p#2")),
            released(&format!("{p}h#2"))
        );
        assert!(matches!(r, Ok(Err(_))), "{:?}: {panic_outcome}", db.backend());
        assert_eq!(released(&format!("{p}p#2")), 1, "{:?}: the work after the panicking one", db.backend());
    })
    .await;
});

// ---------------------------------------------------------------------------------------
// 8. record_signals with a nested save, a bulk save and a delete joined on one task.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "b2_jp")]
#[post_save(b2_jp_saved)]
struct B2Jp {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "b2_jc")]
#[pre_save(b2_jc_pre)]
#[post_save(b2_jc_saved)]
struct B2Jc {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "b2_jd")]
#[pre_delete(b2_jd_going)]
#[post_delete(b2_jd_gone)]
struct B2Jd {
    id: Option<i64>,
    name: String,
}

async fn b2_jp_saved(p: &B2Jp, s: &mut PostSave<'_>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    B2Jc {
        id: None,
        name: format!("{}-child", p.name),
    }
    .save(s.tx())
    .await?;
    tokio::time::sleep(Duration::from_millis(15)).await;
    Ok(())
}
async fn b2_jc_pre(_: &mut B2Jc, _: &mut PreSave<'_>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(7)).await;
    Ok(())
}
async fn b2_jc_saved(_: &B2Jc, _: &mut PostSave<'_>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(11)).await;
    Ok(())
}
async fn b2_jd_going(_: &B2Jd, _: &mut PreDelete<'_>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(13)).await;
    Ok(())
}
async fn b2_jd_gone(_: &B2Jd, _: &mut PostDelete<'_>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(9)).await;
    Ok(())
}

async fn record_signals_join_nested_bulk_and_delete_body(db: signals_core::Db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    let mut d = B2Jd {
        id: None,
        name: "d".into(),
    };
    d.save(&db).await.unwrap();
    let rt_hits = Arc::new(Mutex::new(0));
    let h = rt_hits.clone();
    let (res, fired) = isolate_receivers(record_signals(async {
        connect_any_post_save(
            "b2_any_post",
            async move |_: &Instance<'_>, _: &mut PostSave<'_>| {
                *h.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            },
        );
        let mut p = B2Jp {
            id: None,
            name: "p".into(),
        };
        let mut rows = vec![
            B2Jc {
                id: None,
                name: "b1".into(),
            },
            B2Jc {
                id: None,
                name: "b2".into(),
            },
        ];
        let (a, b, c) = tokio::join!(p.save(&db), B2Jc::bulk_save(&db, &mut rows), d.delete(&db));
        a.map(drop).and(b.map(drop)).and(c.map(drop))
    }))
    .await;
    res.unwrap();
    let mut seen: Vec<(&str, SignalKind, Vec<&str>)> = fired
        .iter()
        .map(|f| (f.model, f.signal, f.receivers.clone()))
        .collect();
    seen.sort_by_key(|(m, s, _)| (m.to_string(), format!("{s:?}")));
    let mut want: Vec<(&str, SignalKind, Vec<&str>)> = vec![
        (
            "B2Jc",
            SignalKind::PostSave,
            vec!["b2_jc_saved", "b2_any_post"],
        ),
        (
            "B2Jc",
            SignalKind::PostSave,
            vec!["b2_jc_saved", "b2_any_post"],
        ),
        (
            "B2Jc",
            SignalKind::PostSave,
            vec!["b2_jc_saved", "b2_any_post"],
        ),
        ("B2Jc", SignalKind::PreSave, vec!["b2_jc_pre"]),
        ("B2Jc", SignalKind::PreSave, vec!["b2_jc_pre"]),
        ("B2Jc", SignalKind::PreSave, vec!["b2_jc_pre"]),
        ("B2Jd", SignalKind::PostDelete, vec!["b2_jd_gone"]),
        ("B2Jd", SignalKind::PreDelete, vec!["b2_jd_going"]),
        (
            "B2Jp",
            SignalKind::PostSave,
            vec!["b2_jp_saved", "b2_any_post"],
        ),
        ("B2Jp", SignalKind::PreSave, vec![]),
    ];
    want.sort_by_key(|(m, s, _)| (m.to_string(), format!("{s:?}")));
    assert_eq!(seen, want, "{:?}", db.backend());
    assert_eq!(*rt_hits.lock().unwrap(), 4);
}
on_every_backend!(
    record_signals_join_nested_bulk_and_delete,
    record_signals_join_nested_bulk_and_delete_body
);

// ---------------------------------------------------------------------------------------
// 9. Nested scopes: the outer scope's receiver, disconnected from the inner one; a scope
// ended while a task it spawned still saves; dispatch ids.
// ---------------------------------------------------------------------------------------

db_test!(async fn nested_scopes_disconnect_and_spawned_tasks(db) {
    db.create_tables::<B2Plain>().await.unwrap();
    let hits = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut problems = Vec::new();
    let h = hits.clone();
    let uid = format!("b2_nest_{:?}", db.backend());
    let spawned = isolate_receivers(async {
        assert!(connect_post_save::<B2Plain, _>(&uid, async move |p: &B2Plain, _: &mut PostSave<'_>| {
            h.lock().unwrap().push(p.name.clone());
            Ok(())
        }));
        let inner = isolate_receivers(async {
            let again = connect_post_save::<B2Plain, _>(&uid, async |_: &B2Plain, _: &mut PostSave<'_>| Ok(()));
            B2Plain { id: None, name: "inner".into() }.save(&db).await.unwrap();
            again
        })
        .await;
        if inner {
            problems.push("the inner scope connected an id the outer scope holds".to_owned());
        }
        // A task spawned inside the scope, still saving after the scope ends.
        let db2 = db.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            B2Plain { id: None, name: "spawned".into() }.save(&db2).await.unwrap();
        });
        B2Plain { id: None, name: "outer".into() }.save(&db).await.unwrap();
        Some(task)
    })
    .await;
    spawned.expect("the spawned task").await.unwrap();
    B2Plain { id: None, name: "after".into() }.save(&db).await.unwrap();
    let got = hits.lock().unwrap().clone();
    if got != ["inner", "outer"] {
        problems.push(format!("the scoped receiver saw {got:?}, want [inner, outer]"));
    }
    // After the scope ended the id is free for a process-wide receiver, and nothing of the
    // scope remains.
    let free = connect_post_save::<B2Plain, _>(&uid, async |_: &B2Plain, _: &mut PostSave<'_>| Ok(()));
    signals_core::disconnect::<B2Plain>(SignalKind::PostSave, &uid);
    if !free {
        problems.push("the id is still taken after its scope ended".into());
    }
    assert!(problems.is_empty(), "{:?}: {problems:#?}", db.backend());
});

// ---------------------------------------------------------------------------------------
// 10. post_load: refresh, get_for_update, and a save's signal.old() in one transaction.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "b2_doc")]
#[post_load(b2_doc_upper)]
#[post_save(b2_doc_saved, changed(code))]
struct B2Doc {
    id: Option<i64>,
    code: String,
}

fn b2_doc_upper(d: &mut B2Doc) -> Result<()> {
    record(format!("post_load {}", d.code));
    d.code = d.code.to_uppercase();
    Ok(())
}

async fn b2_doc_saved(d: &B2Doc, s: &mut PostSave<'_>) -> Result<()> {
    let old = s.old::<B2Doc>().map(|o| o.code.clone());
    record(format!("saved {} old {old:?}", d.code));
    Ok(())
}

db_test!(async fn post_load_on_refresh_and_get_for_update(db) {
    db.create_tables::<B2Doc>().await.unwrap();
    let mut d = B2Doc { id: None, code: "abc".into() };
    d.save(&db).await.unwrap();
    take_events();
    d.refresh(&db).await.unwrap();
    assert_eq!(d.code, "ABC", "refresh ran no post_load");
    let mut tx = db.begin().await.unwrap();
    let mut locked = B2Doc::get_for_update(&mut tx, d.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(locked.code, "ABC");
    locked.code = "xyz".into();
    locked.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let ev = take_events();
    assert_eq!(
        ev,
        ["post_load abc", "post_load abc", "saved xyz old Some(\"abc\")"],
        "{:?}",
        db.backend()
    );
    let _ = scalar(&db, "SELECT COUNT(*) FROM b2_doc").await;
    let _ = count(&db, "b2_doc").await;
    let _: Option<Error> = None;
});

// ---------------------------------------------------------------------------------------
// 11. How big are the futures the stack overflow above is made of?
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_sizes() {
    let db = signals_core::Db::connect("sqlite::memory:").await.unwrap();
    let mut p = B2Jp {
        id: None,
        name: "p".into(),
    };
    let mut rows = vec![B2Jc {
        id: None,
        name: "b1".into(),
    }];
    let mut d = B2Jd {
        id: Some(1),
        name: "d".into(),
    };
    let mut plain = B2Plain {
        id: None,
        name: "x".into(),
    };
    let s_plain = std::mem::size_of_val(&plain.save(&db));
    let s_save = std::mem::size_of_val(&p.save(&db));
    let s_bulk = std::mem::size_of_val(&B2Jc::bulk_save(&db, &mut rows));
    let s_del = std::mem::size_of_val(&d.delete(&db));
    let s_join = std::mem::size_of_val(&async {
        tokio::join!(p.save(&db), B2Jc::bulk_save(&db, &mut rows), d.delete(&db))
    });
    let s_rec = std::mem::size_of_val(&record_signals(async { p.save(&db).await }));
    let s_j3 = std::mem::size_of_val(&b2_join_three(&db));
    let s_rj3 = std::mem::size_of_val(&record_signals(b2_join_three(&db)));
    let s_irj3 = std::mem::size_of_val(&isolate_receivers(async {
        record_signals(b2_join_three(&db)).await
    }));
    let s_ij3 = std::mem::size_of_val(&isolate_receivers(async { b2_join_three(&db).await }));
    eprintln!(
        "b2_join_three {s_j3}, record_signals(it) {s_rj3}, isolate_receivers(record_signals(it)) {s_irj3}, isolate_receivers(it) {s_ij3}"
    );
    eprintln!(
        "B2Plain save {s_plain}, B2Jp save {s_save}, bulk_save {s_bulk}, delete {s_del}, join of the three {s_join}, record_signals(save) {s_rec}"
    );
}

// Narrowing the stack overflow of `record_signals_join_nested_bulk_and_delete`.
async fn b2_any_noop(_: &Instance<'_>, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

db_test!(async fn overflow_a_nested_save_alone(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    B2Jp { id: None, name: "p".into() }.save(&db).await.unwrap();
});

db_test!(async fn overflow_b_nested_save_recorded(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    let (r, _) = record_signals(B2Jp { id: None, name: "p".into() }.save(&db)).await;
    r.unwrap();
});

db_test!(async fn overflow_c_nested_save_any_receiver(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save("b2_any_c", b2_any_noop);
        B2Jp { id: None, name: "p".into() }.save(&db).await.unwrap();
    })
    .await;
});

db_test!(async fn overflow_d_nested_save_any_receiver_recorded(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save("b2_any_d", b2_any_noop);
        let (r, _) = record_signals(B2Jp { id: None, name: "p".into() }.save(&db)).await;
        r.unwrap();
    })
    .await;
});

db_test!(async fn overflow_e_join_no_any(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    let mut d = B2Jd { id: None, name: "d".into() };
    d.save(&db).await.unwrap();
    let mut p = B2Jp { id: None, name: "p".into() };
    let mut rows = vec![B2Jc { id: None, name: "b1".into() }];
    let (a, b, c) = tokio::join!(p.save(&db), B2Jc::bulk_save(&db, &mut rows), d.delete(&db));
    a.unwrap();
    b.unwrap();
    c.unwrap();
});

async fn b2_join_three(db: &signals_core::Db) {
    let mut d = B2Jd {
        id: None,
        name: "d".into(),
    };
    d.save(db).await.unwrap();
    let mut p = B2Jp {
        id: None,
        name: "p".into(),
    };
    let mut rows = vec![B2Jc {
        id: None,
        name: "b1".into(),
    }];
    let (a, b, c) = tokio::join!(p.save(db), B2Jc::bulk_save(db, &mut rows), d.delete(db));
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

db_test!(async fn overflow_f_join_recorded(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    record_signals(b2_join_three(&db)).await;
});

db_test!(async fn overflow_g_join_any_fn(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save("b2_any_g", b2_any_noop);
        b2_join_three(&db).await;
    })
    .await;
});

async fn overflow_h_join_any_fn_recorded_body(db: signals_core::Db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save("b2_any_h", b2_any_noop);
        record_signals(b2_join_three(&db)).await;
    })
    .await;
}
on_every_backend!(
    overflow_h_join_any_fn_recorded,
    overflow_h_join_any_fn_recorded_body
);

db_test!(async fn overflow_i_one_save_any_closure(db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    let hits = Arc::new(Mutex::new(0));
    isolate_receivers(async {
        let h = hits.clone();
        connect_any_post_save("b2_any_i", async move |_: &Instance<'_>, _: &mut PostSave<'_>| {
            *h.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        });
        B2Jp { id: None, name: "p".into() }.save(&db).await.unwrap();
    })
    .await;
    assert_eq!(*hits.lock().unwrap(), 2);
});

async fn overflow_k_save_and_delete_joined_body(db: signals_core::Db) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save("b2_any_k", b2_any_noop);
        record_signals(async {
            let mut d = B2Jd {
                id: None,
                name: "d".into(),
            };
            d.save(&db).await.unwrap();
            let mut p = B2Jp {
                id: None,
                name: "p".into(),
            };
            let (a, c) = tokio::join!(p.save(&db), d.delete(&db));
            a.unwrap();
            c.unwrap();
        })
        .await;
    })
    .await;
}
on_every_backend!(
    overflow_k_save_and_delete_joined,
    overflow_k_save_and_delete_joined_body
);

/// Two saves joined inside `record_signals` inside `isolate_receivers`, with a receiver for
/// every model connected under `uid`.
async fn two_saves_joined(db: &signals_core::Db, uid: &str) {
    db.create_tables::<(B2Jp, B2Jc, B2Jd)>().await.unwrap();
    isolate_receivers(async {
        connect_any_post_save(uid, b2_any_noop);
        record_signals(async {
            let mut a = B2Jc {
                id: None,
                name: "a".into(),
            };
            let mut b = B2Jc {
                id: None,
                name: "b".into(),
            };
            let (x, y) = tokio::join!(a.save(db), b.save(db));
            x.unwrap();
            y.unwrap();
        })
        .await;
    })
    .await;
}

async fn overflow_l_two_plain_saves_joined_body(db: signals_core::Db) {
    two_saves_joined(&db, "b2_any_l").await;
}
on_every_backend!(
    overflow_l_two_plain_saves_joined,
    overflow_l_two_plain_saves_joined_body
);

// The same without the harness: a plain #[tokio::test], SQLite in memory, two saves joined
// inside record_signals inside isolate_receivers with a receiver for every model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_m_plain_tokio_test() {
    let db = signals_core::Db::connect("sqlite::memory:").await.unwrap();
    two_saves_joined(&db, "b2_any_m").await;
}
