//! Where issue 27's features meet the rest, as a hostile user tried them (a reviewer wrote
//! these probes; the findings are fixed): times and decimals at the precision each backend
//! stores (and MariaDB's `TIMESTAMP` parameters), `post_load` and the row a save replaces,
//! `record_signals` with saves that overlap on one task, nested `isolate_receivers` and
//! dispatch ids, `on_rollback` under concurrency and cancellation, `take_on_commit` with
//! savepoints, capturing closures for every kind, a failing `post_migrate`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use signals_core::{
    BoxError, Error, Instance, Model, PostDelete, PostSave, PreDelete, PreSave, Result, SignalKind,
    Tx, connect_any_post_save, connect_any_pre_save, connect_post_save, isolate_receivers,
    receivers, record_signals,
};
use signals_tests::{count, db_test, record, take_events};

// ---------------------------------------------------------------------------------------
// Precision: a change is what the database would store.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "br_when")]
#[post_save(when_moved, changed(at, naive, t, maybe))]
struct BrWhen {
    id: Option<i64>,
    at: DateTime<Utc>,
    naive: NaiveDateTime,
    t: NaiveTime,
    maybe: Option<DateTime<Utc>>,
}

async fn when_moved(_: &BrWhen, s: &mut PostSave<'_>) -> Result<()> {
    let mut which = Vec::new();
    if s.changed(BrWhen::AT) {
        which.push("at");
    }
    if s.changed(BrWhen::NAIVE) {
        which.push("naive");
    }
    if s.changed(BrWhen::T) {
        which.push("t");
    }
    if s.changed(BrWhen::MAYBE) {
        which.push("maybe");
    }
    record(format!("moved {}", which.join(",")));
    Ok(())
}

db_test!(async fn times_with_nanoseconds_resave_without_change(db) {
    db.create_tables::<BrWhen>().await.unwrap();
    let mut failures = Vec::new();
    let cases = [
        ("2026", Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap().with_nanosecond(123_456_789).unwrap()),
        ("1999", Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap().with_nanosecond(123_456_789).unwrap()),
        ("1960", Utc.with_ymd_and_hms(1960, 6, 1, 12, 0, 0).unwrap().with_nanosecond(500_000_001).unwrap()),
    ];
    for (label, at) in cases {
        let mut w = BrWhen {
            id: None,
            at,
            naive: at.naive_utc(),
            t: at.time(),
            maybe: Some(at),
        };
        if let Err(e) = w.save(&db).await {
            failures.push(format!("{label}: the first save failed: {e}"));
            continue;
        }
        take_events();
        // Re-save the very same instance.
        w.save(&db).await.unwrap();
        let ev = take_events();
        if !ev.is_empty() {
            let loaded = BrWhen::get(&db, w.id.unwrap()).await.unwrap().unwrap();
            failures.push(format!(
                "{label}: re-save reported {ev:?}; instance at={} stored at={}",
                w.at.format("%FT%T%.9f"),
                loaded.at.format("%FT%T%.9f")
            ));
        }
        // Instance::changes() of a receiver for every model.
        let changes = changes_on_resave(&db, &mut w).await;
        take_events();
        if !changes.is_empty() {
            failures.push(format!("{label}: Instance::changes() on re-save: {changes:?}"));
        }
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

/// What `Instance::changes()` lists, for a receiver of every model, when `m` is saved again.
async fn changes_on_resave<M: Model>(db: &signals_core::Db, m: &mut M) -> Vec<String> {
    isolate_receivers(async {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        connect_any_post_save(
            "br_changes",
            async move |i: &Instance<'_>, _: &mut PostSave<'_>| {
                for c in i.changes() {
                    s2.lock()
                        .unwrap()
                        .push(format!("{} {} -> {}", c.field, c.old, c.new));
                }
                Ok(())
            },
        );
        m.save(db).await.unwrap();
        seen.lock().unwrap().clone()
    })
    .await
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_price")]
#[post_save(price_moved, changed(plain, scaled, ratio, small, maybe))]
struct BrPrice {
    id: Option<i64>,
    plain: Decimal,
    #[model(max_digits = 10, decimal_places = 2)]
    scaled: Decimal,
    ratio: f64,
    small: f32,
    maybe: Option<f64>,
}

async fn price_moved(_: &BrPrice, s: &mut PostSave<'_>) -> Result<()> {
    let mut which = Vec::new();
    for (name, c) in [
        ("plain", s.changed(BrPrice::PLAIN)),
        ("scaled", s.changed(BrPrice::SCALED)),
        ("ratio", s.changed(BrPrice::RATIO)),
        ("small", s.changed(BrPrice::SMALL)),
        ("maybe", s.changed(BrPrice::MAYBE)),
    ] {
        if c {
            which.push(name);
        }
    }
    record(format!("price moved {}", which.join(",")));
    Ok(())
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

db_test!(async fn decimals_and_floats_resave_without_change(db) {
    db.create_tables::<BrPrice>().await.unwrap();
    let mut failures = Vec::new();
    let cases = [
        ("12.5", "12.505", 0.1f64, 0.1f32),
        ("0.12345678901234", "-12.505", 1e300, f32::MAX),
        ("100", "0.005", -0.0, 1.0e-38),
        ("1.10", "99999999.99", 123456.789, 3.4028235e38),
    ];
    for (plain, scaled, ratio, small) in cases {
        let label = format!("plain={plain} scaled={scaled} ratio={ratio} small={small}");
        let mut p = BrPrice { id: None, plain: dec(plain), scaled: dec(scaled), ratio, small, maybe: Some(ratio) };
        p.save(&db).await.unwrap();
        take_events();
        p.save(&db).await.unwrap();
        let ev = take_events();
        if !ev.is_empty() {
            let loaded = BrPrice::get(&db, p.id.unwrap()).await.unwrap().unwrap();
            failures.push(format!("{label}: typed re-save reported {ev:?}; stored {loaded:?}"));
        }
        let changes = changes_on_resave(&db, &mut p).await;
        take_events();
        if !changes.is_empty() {
            failures.push(format!("{label}: Instance::changes() on re-save: {changes:?}"));
        }
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

db_test!(async fn non_finite_floats_are_changes(db) {
    db.create_tables::<BrPrice>().await.unwrap();
    let mut failures = Vec::new();
    // +inf -> -inf.
    let mut p = BrPrice { id: None, plain: dec("1"), scaled: dec("1"), ratio: f64::INFINITY, small: 1.0, maybe: None };
    if p.save(&db).await.is_ok() {
        take_events();
        p.ratio = f64::NEG_INFINITY;
        p.save(&db).await.unwrap();
        let stored = BrPrice::get(&db, p.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.ratio, f64::NEG_INFINITY);
        let ev = take_events();
        if ev != ["price moved ratio"] {
            failures.push(format!("+inf -> -inf stored, changed(ratio) says {ev:?}"));
        }
        // None -> Some(NaN) in a nullable column.
        p.maybe = Some(f64::NAN);
        if p.save(&db).await.is_ok() {
            let stored = BrPrice::get(&db, p.id.unwrap()).await.unwrap().unwrap();
            let ev = take_events();
            if stored.maybe.is_some_and(f64::is_nan) && ev != ["price moved maybe"] {
                failures.push(format!("NULL -> NaN stored, changed(maybe) says {ev:?}"));
            }
        }
    } else {
        eprintln!("{:?}: cannot store infinity", db.backend());
    }
    // 0.0 -> -0.0: equal as `==` says, as documented (whatever bits a backend keeps).
    let mut z = BrPrice { id: None, plain: dec("1"), scaled: dec("1"), ratio: 0.0, small: 0.0, maybe: None };
    z.save(&db).await.unwrap();
    take_events();
    z.ratio = -0.0;
    z.save(&db).await.unwrap();
    let ev = take_events();
    if !ev.is_empty() {
        failures.push(format!("0.0 -> -0.0 is no change, changed(ratio) says {ev:?}"));
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

#[derive(Debug, Clone, Model)]
#[model(table = "br_utc")]
struct BrUtc {
    id: Option<i64>,
    at: Option<DateTime<Utc>>,
    naive: Option<NaiveDateTime>,
}

db_test!(async fn utc_timestamps_round_trip(db) {
    db.create_tables::<BrUtc>().await.unwrap();
    let mut failures = Vec::new();
    for (y, mo, d, h, mi, s) in [(1960, 6, 1, 12, 0, 0), (1969, 12, 31, 23, 59, 59), (1970, 1, 1, 0, 0, 0), (2040, 1, 1, 0, 0, 0), (9999, 12, 31, 23, 59, 59), (1, 1, 1, 0, 0, 0)] {
        let at = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        let mut r = BrUtc { id: None, at: Some(at), naive: Some(at.naive_utc()) };
        match r.save(&db).await {
            Err(e) => failures.push(format!("{at}: save failed: {e}")),
            Ok(_) => {
                let back = BrUtc::get(&db, r.id.unwrap()).await.unwrap().unwrap();
                if back.at != r.at || back.naive != r.naive {
                    failures.push(format!("{at}: saved {:?} / {:?}, read back {:?} / {:?}", r.at, r.naive, back.at, back.naive));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{:?}: {failures:#?}", db.backend());
});

db_test!(async fn post_load_failure_in_a_save_inside_a_transaction(db) {
    db.create_tables::<BrDoc>().await.unwrap();
    db.execute_unprepared("INSERT INTO br_doc (id, code, body) VALUES (2, 'x', 'corrupt')").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let mut repaired = BrDoc { id: Some(2), code: "X".into(), body: "repaired".into() };
    let failed = repaired.save(&mut tx).await.is_err();
    BrDoc { id: None, code: "N".into(), body: "new".into() }.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&db, "br_doc").await, 2);
    eprintln!("{:?}: the repair failed: {failed}; the transaction went on and committed", db.backend());
});

// ---------------------------------------------------------------------------------------
// post_load: "Saving builds nothing from a row, so it runs no post_load receiver."
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "br_doc")]
#[post_load(br_upper, br_verify)]
#[post_save(br_code_changed, changed(code))]
struct BrDoc {
    id: Option<i64>,
    code: String,
    body: String,
}

fn br_upper(d: &mut BrDoc) -> Result<()> {
    record("post_load upper");
    d.code = d.code.to_uppercase();
    Ok(())
}

fn br_verify(d: &mut BrDoc) -> Result<()> {
    if d.body == "corrupt" {
        return Err(BoxError::from(format!("doc {:?} is corrupt", d.id)).into());
    }
    Ok(())
}

async fn br_code_changed(d: &BrDoc, s: &mut PostSave<'_>) -> Result<()> {
    record(format!(
        "code changed {:?} -> {}",
        s.was(BrDoc::CODE),
        d.code
    ));
    Ok(())
}

db_test!(async fn a_save_compares_with_the_database_row_not_post_load(db) {
    db.create_tables::<BrDoc>().await.unwrap();
    db.execute_unprepared("INSERT INTO br_doc (id, code, body) VALUES (1, 'abc', 'fine')").await.unwrap();
    let mut doc = BrDoc::get(&db, 1).await.unwrap().unwrap();
    assert_eq!(doc.code, "ABC");
    take_events();
    // The database holds 'abc'; this save writes 'ABC': a change of what is stored.
    doc.save(&db).await.unwrap();
    let ev = take_events();
    let stored = signals_tests::scalar(&db, "SELECT COUNT(*) FROM br_doc WHERE code = 'ABC'").await;
    assert_eq!(stored, 1);
    let ran_post_load = ev.iter().any(|e| e == "post_load upper");
    let fired = ev.iter().any(|e| e.starts_with("code changed"));
    assert!(!ran_post_load && fired, "events of the save: {ev:?} (post_load ran: {ran_post_load}; 'abc' -> 'ABC' stored, changed(code) fired: {fired})");
});

db_test!(async fn a_row_failing_post_load_can_be_saved_over(db) {
    db.create_tables::<BrDoc>().await.unwrap();
    db.execute_unprepared("INSERT INTO br_doc (id, code, body) VALUES (2, 'x', 'corrupt')").await.unwrap();
    // The program repairs the row it could not load: a save builds nothing from a row.
    let mut repaired = BrDoc { id: Some(2), code: "X".into(), body: "repaired".into() };
    let res = repaired.save(&db).await;
    assert!(res.is_ok(), "saving a repaired instance over a corrupt row failed: {:?}", res.err().map(|e| (e.to_string(), e.receiver_chain())));
});

#[derive(Debug, Clone, Model)]
#[model(table = "br_plain_doc")]
#[post_load(br_plain_verify)]
struct BrPlainDoc {
    id: Option<i64>,
    body: String,
}

fn br_plain_verify(d: &mut BrPlainDoc) -> Result<()> {
    if d.body == "corrupt" {
        return Err(BoxError::from("corrupt").into());
    }
    Ok(())
}

db_test!(async fn a_receiver_for_every_model_does_not_make_saves_run_post_load(db) {
    db.create_tables::<BrPlainDoc>().await.unwrap();
    db.execute_unprepared("INSERT INTO br_plain_doc (id, body) VALUES (3, 'corrupt')").await.unwrap();
    // Without a receiver for every model the repair works ...
    let mut fixed = BrPlainDoc { id: Some(3), body: "ok".into() };
    fixed.save(&db).await.unwrap();
    db.execute_unprepared("UPDATE br_plain_doc SET body = 'corrupt' WHERE id = 3").await.unwrap();
    // ... with an audit receiver connected (another test's, say) the same save fails.
    let res = isolate_receivers(async {
        connect_any_pre_save("br_audit", async |_: &Instance<'_>, _: &mut PreSave<'_>| Ok(()));
        fixed.save(&db).await
    })
    .await;
    assert!(res.is_ok(), "same save, an audit receiver connected: {:?}", res.err().map(|e| e.to_string()));
});

// post_load on more load paths: query().delete, many-to-many, sqlx::query_as.
#[derive(Debug, Clone, Model)]
#[model(table = "br_post")]
#[model(many_to_many(tags: BrTag, through = BrPostTag))]
#[pre_delete(br_post_going)]
struct BrPost {
    id: Option<i64>,
    title: String,
}

async fn br_post_going(p: &BrPost, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre_delete post {}", p.title));
    Ok(())
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_tag")]
#[post_load(br_tag_loaded)]
struct BrTag {
    id: Option<i64>,
    name: String,
}

fn br_tag_loaded(t: &mut BrTag) -> Result<()> {
    record(format!("loaded tag {}", t.name));
    t.name = t.name.to_uppercase();
    Ok(())
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_post_tag", unique_together(post_id, tag_id))]
#[post_load(br_link_loaded)]
struct BrPostTag {
    id: Option<i64>,
    #[model(foreign_key = BrPost, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = BrTag, on_delete = cascade)]
    tag_id: i64,
}

fn br_link_loaded(_: &mut BrPostTag) -> Result<()> {
    record("loaded link");
    Ok(())
}

db_test!(async fn post_load_on_m2m_delete_and_query_as(db) {
    db.create_tables::<(BrPost, BrTag, BrPostTag)>().await.unwrap();
    let mut post = BrPost { id: None, title: "p".into() };
    post.save(&db).await.unwrap();
    let mut tag = BrTag { id: None, name: "rust".into() };
    tag.save(&db).await.unwrap();
    post.tags().add(&db, [tag.id.unwrap()]).await.unwrap();
    take_events();
    let tags = post.tags().all(&db).await.unwrap();
    assert_eq!(tags[0].name, "RUST", "m2m all() skipped post_load");
    let posts = tag.br_post_set().all(&db).await.unwrap();
    assert_eq!(posts.len(), 1);
    take_events();
    // sqlx::query_as interop.
    let rows: Vec<BrTag> = match db.pool() {
        signals_core::PoolRef::Sqlite(p) => signals_core::sqlx::query_as("SELECT * FROM br_tag").fetch_all(p).await.unwrap(),
        signals_core::PoolRef::Postgres(p) => signals_core::sqlx::query_as("SELECT * FROM br_tag").fetch_all(p).await.unwrap(),
        signals_core::PoolRef::MySql(p) => signals_core::sqlx::query_as("SELECT * FROM br_tag").fetch_all(p).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(rows[0].name, "RUST");
    take_events();
    // query().delete of the post: its pre_delete and the cascade.
    BrPost::query().filter(BrPost::TITLE.eq("p")).delete(&db).await.unwrap();
    let ev = take_events();
    assert!(ev.contains(&"pre_delete post p".to_owned()), "{ev:?}");
    assert_eq!(count(&db, "br_post_tag").await, 0);
});

// ---------------------------------------------------------------------------------------
// record_signals: keys and receivers.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "br_rec_a")]
#[post_save(rec_a_slow, rec_a_second)]
struct BrRecA {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_rec_b")]
#[pre_save(rec_b_wait)]
#[post_save(rec_b_slow, rec_b_second)]
struct BrRecB {
    id: Option<i64>,
    name: String,
}

/// Rendezvous points per test run (keyed by the instances' names, which carry the backend).
static GATES: Mutex<Option<HashMap<String, Arc<tokio::sync::Notify>>>> = Mutex::new(None);

fn gate(name: &str) -> Arc<tokio::sync::Notify> {
    GATES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_default()
        .clone()
}

// A's post_save is being sent (A's rec_a_slow runs) -> B's save goes on, so B's post_save is
// sent while A's is still open; A's second receiver then runs while B's is open too.
async fn rec_a_slow(a: &BrRecA, s: &mut PostSave<'_>) -> Result<()> {
    BrRecA::query().count(s.tx()).await?;
    if a.name.starts_with("join-") {
        gate(&format!("{}-a-in", a.name)).notify_one();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            gate(&format!("{}-b-in", a.name)).notified(),
        )
        .await;
    }
    Ok(())
}
async fn rec_a_second(_: &BrRecA, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}
async fn rec_b_wait(b: &mut BrRecB, _: &mut PreSave<'_>) -> Result<()> {
    if b.name.starts_with("join-") {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            gate(&format!("{}-a-in", b.name)).notified(),
        )
        .await;
    }
    Ok(())
}
async fn rec_b_slow(b: &BrRecB, s: &mut PostSave<'_>) -> Result<()> {
    BrRecB::query().count(s.tx()).await?;
    if b.name.starts_with("join-") {
        gate(&format!("{}-b-in", b.name)).notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
async fn rec_b_second(_: &BrRecB, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

db_test!(async fn record_signals_with_two_saves_joined(db) {
    db.create_tables::<(BrRecA, BrRecB)>().await.unwrap();
    let name = format!("join-{:?}", db.backend());
    let ((ra, rb), fired) = record_signals(async {
        let mut a = BrRecA { id: None, name: name.clone() };
        let mut b = BrRecB { id: None, name: name.clone() };
        tokio::join!(a.save(&db), b.save(&db))
    })
    .await;
    ra.unwrap();
    rb.unwrap();
    let mut post: Vec<_> = fired
        .iter()
        .filter(|f| f.signal == SignalKind::PostSave)
        .map(|f| (f.model, f.receivers.clone()))
        .collect();
    post.sort();
    assert_eq!(
        post,
        [("BrRecA", vec!["rec_a_slow", "rec_a_second"]), ("BrRecB", vec!["rec_b_slow", "rec_b_second"])],
        "{:?}",
        db.backend()
    );
});

// Nested bulk saves, deletes, muted receivers.
#[derive(Debug, Clone, Model)]
#[model(table = "br_parent")]
#[post_save(parent_saved)]
#[pre_delete(parent_going)]
struct BrParent {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_child")]
#[post_save(child_saved)]
#[post_save(child_saved_batch, batch)]
#[pre_delete(child_going)]
struct BrChild {
    id: Option<i64>,
    #[model(foreign_key = BrParent, on_delete = cascade)]
    parent_id: i64,
    n: i64,
}

async fn parent_saved(p: &BrParent, s: &mut PostSave<'_>) -> Result<()> {
    if s.created() {
        let mut kids: Vec<BrChild> = (0..3)
            .map(|n| BrChild {
                id: None,
                parent_id: p.id.unwrap(),
                n,
            })
            .collect();
        BrChild::bulk_save(s.tx(), &mut kids).await?;
    }
    Ok(())
}
async fn parent_going(_: &BrParent, _: &mut PreDelete<'_>) -> Result<()> {
    Ok(())
}
async fn child_saved(_: &BrChild, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}
async fn child_saved_batch(_: &[BrChild], _: &mut signals_core::PostSaveBatch<'_>) -> Result<()> {
    Ok(())
}
async fn child_going(_: &BrChild, _: &mut PreDelete<'_>) -> Result<()> {
    Ok(())
}

db_test!(async fn record_signals_nested_bulk_and_cascade(db) {
    db.create_tables::<(BrParent, BrChild)>().await.unwrap();
    let (res, fired) = record_signals(async {
        let mut p = BrParent { id: None, name: "p".into() };
        p.save(&db).await?;
        Ok::<_, Error>(p)
    })
    .await;
    let mut p = res.unwrap();
    let seen: Vec<_> = fired.iter().map(|f| (f.model, f.signal, f.key.clone(), f.receivers.clone())).collect();
    let kids: Vec<i64> = BrChild::all(&db).await.unwrap().into_iter().map(|c| c.id.unwrap()).collect();
    let pk = json!(p.id.unwrap());
    let mut want = vec![("BrParent", SignalKind::PreSave, json!(null), vec![])];
    want.push(("BrParent", SignalKind::PostSave, pk.clone(), vec!["parent_saved"]));
    for _ in &kids {
        want.push(("BrChild", SignalKind::PreSave, json!(null), vec![]));
    }
    for k in &kids {
        want.push(("BrChild", SignalKind::PostSave, json!(k), vec!["child_saved", "child_saved_batch"]));
    }
    assert_eq!(seen, want);

    // Delete with cascade, one child receiver muted.
    let (res, fired) = record_signals(async {
        let _m = signals_core::mute_receiver::<BrChild>("child_going");
        p.delete(&db).await
    })
    .await;
    res.unwrap();
    let pre: Vec<_> = fired
        .iter()
        .filter(|f| f.signal == SignalKind::PreDelete)
        .map(|f| (f.model, f.key.clone(), f.receivers.clone()))
        .collect();
    assert!(pre.contains(&("BrParent", pk, vec!["parent_going"])), "{pre:?}");
    for k in &kids {
        assert!(pre.contains(&("BrChild", json!(k), vec![])), "{pre:?}");
    }
});

// ---------------------------------------------------------------------------------------
// isolate_receivers: nesting, ids.
// ---------------------------------------------------------------------------------------

db_test!(async fn nested_isolate_receivers_keep_the_outer_ones(db) {
    db.create_tables::<BrRecA>().await.unwrap();
    let hits = Arc::new(Mutex::new(0));
    let h = hits.clone();
    isolate_receivers(async {
        connect_post_save::<BrRecA, _>("br_outer", async move |_: &BrRecA, _: &mut PostSave<'_>| {
            *h.lock().unwrap() += 1;
            Ok(())
        });
        BrRecA { id: None, name: "x".into() }.save(&db).await.unwrap();
        assert_eq!(*hits.lock().unwrap(), 1);
        // A helper of the test that isolates its own receivers, called inside the test.
        isolate_receivers(async {
            assert_eq!(receivers::<BrRecA>(SignalKind::PostSave), ["rec_a_slow", "rec_a_second", "br_outer"], "the outer scope's receiver is not seen in a nested scope");
            BrRecA { id: None, name: "y".into() }.save(&db).await.unwrap();
        })
        .await;
        assert_eq!(*hits.lock().unwrap(), 2, "the outer scope's receiver did not run for a save inside it (nested scope)");
    })
    .await;
});

#[derive(Debug, Clone, Model)]
#[model(table = "br_dup")]
struct BrDup {
    id: Option<i64>,
}

db_test!(async fn dispatch_ids_unique_across_scope_and_process(db) {
    db.create_tables::<BrDup>().await.unwrap();
    let uid = format!("br_dup_{:?}", db.backend());
    let runs = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let r1 = runs.clone();
    let uid1 = uid.clone();
    let dupes = isolate_receivers(async move {
        assert!(connect_post_save::<BrDup, _>(&uid1, async move |_: &BrDup, _: &mut PostSave<'_>| {
            r1.lock().unwrap().push("scoped");
            Ok(())
        }));
        // Plugin code elsewhere in the process (another task) connects the same id.
        let r2 = runs.clone();
        let uid2 = uid1.clone();
        let global = tokio::spawn(async move {
            connect_post_save::<BrDup, _>(&uid2, async move |_: &BrDup, _: &mut PostSave<'_>| {
                r2.lock().unwrap().push("global");
                Ok(())
            })
        })
        .await
        .unwrap();
        let listed = receivers::<BrDup>(SignalKind::PostSave);
        (global, listed)
    })
    .await;
    // Clean up the process-wide one whatever happened.
    signals_core::disconnect::<BrDup>(SignalKind::PostSave, &uid);
    assert!(!dupes.0 || dupes.1.iter().filter(|u| **u == uid).count() <= 1,
        "one dispatch id listed twice inside the scope: {:?}", dupes.1);
});

// ---------------------------------------------------------------------------------------
// on_rollback: exactly once, never after a commit, under concurrency and cancellation.
// ---------------------------------------------------------------------------------------

static RELEASES: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
static SCHEDULED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn release(name: String) {
    let mut g = RELEASES.lock().unwrap();
    *g.get_or_insert_with(HashMap::new).entry(name).or_insert(0) += 1;
}

fn released(prefix: &str) -> HashMap<String, u32> {
    RELEASES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .iter()
        .filter(|(k, _)| {
            k.starts_with(prefix) && (prefix.contains("hammer") || !k.ends_with("#rt"))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_hold")]
#[post_save(br_reserve)]
#[pre_delete(br_hold_going)]
struct BrHold {
    id: Option<i64>,
    name: String,
    pause_ms: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "br_hold_log")]
#[pre_delete(br_log_going)]
struct BrHoldLog {
    id: Option<i64>,
    #[model(foreign_key = BrHold, on_delete = cascade)]
    hold_id: i64,
    name: String,
}

async fn br_reserve(h: &BrHold, s: &mut PostSave<'_>) -> Result<()> {
    let name = h.name.clone();
    SCHEDULED.lock().unwrap().push(name.clone());
    s.on_rollback(async move { release(name) });
    if s.created() {
        BrHoldLog {
            id: None,
            hold_id: h.id.unwrap(),
            name: format!("{}#log", h.name),
        }
        .save(s.tx())
        .await?;
    }
    if h.pause_ms > 0 {
        tokio::time::sleep(Duration::from_millis(h.pause_ms as u64)).await;
    }
    if h.name.ends_with("fail") {
        return Err(BoxError::from("refused").into());
    }
    Ok(())
}

async fn br_hold_going(h: &BrHold, s: &mut PreDelete<'_>) -> Result<()> {
    let name = format!("{}#del", h.name);
    s.on_rollback(async move { release(name) });
    Ok(())
}

async fn br_log_going(l: &BrHoldLog, s: &mut PreDelete<'_>) -> Result<()> {
    let name = format!("{}#del", l.name);
    s.on_rollback(async move { release(name) });
    if l.name.contains("logfail") {
        return Err(BoxError::from("log refuses").into());
    }
    Ok(())
}

fn bh(name: String, pause_ms: i64) -> BrHold {
    BrHold {
        id: None,
        name,
        pause_ms,
    }
}

db_test!(async fn on_rollback_nested_savepoints_bulk_and_cascades(db) {
    db.create_tables::<(BrHold, BrHoldLog)>().await.unwrap();
    let p = format!("{:?}-nested-", db.backend());
    let n = |s: &str| format!("{p}{s}");

    // Nested savepoints: inner released into outer, outer rolled back.
    let mut tx = db.begin().await.unwrap();
    let r: std::result::Result<(), Error> = tx
        .savepoint(async |tx: &mut Tx| {
            bh(n("o1"), 0).save(&mut *tx).await?;
            tx.savepoint(async |tx: &mut Tx| {
                bh(n("i1"), 0).save(tx).await?;
                Ok::<_, Error>(())
            })
            .await?;
            Err(Error::Config("undo outer".into()))
        })
        .await;
    assert!(r.is_err());
    let after_sp = released(&p);
    bh(n("kept"), 0).save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(after_sp, HashMap::from([(n("o1"), 1), (n("i1"), 1)]));
    assert_eq!(released(&p), after_sp, "nothing more after the commit");

    // Bulk save in a caller's transaction, the third row's receiver fails.
    let mut tx = db.begin().await.unwrap();
    let mut rows = vec![bh(n("b1"), 0), bh(n("b2"), 0), bh(n("b3fail"), 0)];
    assert!(BrHold::bulk_save(&mut tx, &mut rows).await.is_err());
    let after_bulk = released(&p);
    assert_eq!(after_bulk.get(&n("b1")), Some(&1), "{after_bulk:?}");
    assert_eq!(after_bulk.get(&n("b2")), Some(&1), "{after_bulk:?}");
    assert_eq!(after_bulk.get(&n("b3fail")), Some(&1), "{after_bulk:?}");
    assert!(rows.iter().all(|r| r.id.is_none()), "keys cleared");
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(released(&p), after_bulk);

    // A cascade: the hold's child refuses its pre_delete; the hold's own work and its
    // child's run once, the hold stays.
    let mut h = bh(n("c-logfail-x"), 0);
    h.save(&db).await.unwrap();
    let before = released(&p);
    assert!(h.delete(&db).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = released(&p);
    // Children's pre_delete run first (as Django's collector sorts them): the log refuses
    // before the hold's own pre_delete is sent.
    assert_eq!(after.get(&n("c-logfail-x#log#del")), Some(&1), "{after:?}");
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(count(&db, "br_hold").await, 2);

    // bulk_delete of two holds in a transaction that then commits: nothing runs.
    let mut all = BrHold::all(&db).await.unwrap();
    all.retain(|h| !h.name.contains("logfail"));
    assert_eq!(all.len(), 1);
    let mut tx = db.begin().await.unwrap();
    BrHold::bulk_delete(&mut tx, &mut all).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(released(&p), after, "a committed delete ran after-rollback work");
});

// Hammer: many tasks save, bulk save, delete and run transactions at once, some failing,
// some cancelled at random points. Invariants: a name is released at most once, and never
// when its row committed.
db_test!(async fn on_rollback_under_concurrency_and_cancellation(db) {
    db.create_tables::<(BrHold, BrHoldLog)>().await.unwrap();
    let p = format!("{:?}-hammer-", db.backend());
    // A process-wide runtime receiver of this model, connected while the others run, and one
    // for every model inside a scope.
    // (The three backends' runs of this test may overlap: each one's process-wide receiver
    // sees the others' saves too, and keeps to its own.)
    let mine = p.clone();
    let connected = connect_post_save::<BrHold, _>(
        &format!("br_hammer_{:?}", db.backend()),
        async move |h: &BrHold, s: &mut PostSave<'_>| {
            if h.name.starts_with(&mine) {
                let name = format!("{}#rt", h.name);
                s.on_rollback(async move { release(name) });
            }
            Ok(())
        },
    );
    assert!(connected);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let db = db.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(isolate_receivers(async move {
            connect_any_post_save("br_any", async |_: &Instance<'_>, _: &mut PostSave<'_>| Ok(()));
            for i in 0..12u64 {
                let seed = t * 1000 + i;
                let pause = ((seed * 7) % 5) as i64 * 4; // 0..16 ms
                let timeout = Duration::from_millis((seed * 13) % 23);
                let fail = seed % 5 == 0;
                let name = |k: &str| format!("{p}{t}-{i}-{k}{}", if fail { "-fail" } else { "" });
                match i % 4 {
                    0 => {
                        let mut h = bh(name("save"), pause);
                        let _ = tokio::time::timeout(timeout, h.save(&db)).await;
                    }
                    1 => {
                        let mut rows = vec![bh(name("bulk1"), pause), bh(name("bulk2"), 0)];
                        let _ = tokio::time::timeout(timeout, BrHold::bulk_save(&db, &mut rows)).await;
                    }
                    2 => {
                        let n1 = name("tx1");
                        let n2 = name("tx2");
                        let _ = tokio::time::timeout(timeout, db.transaction(async |tx: &mut Tx| {
                            let _ = bh(n1.clone(), pause).save(&mut *tx).await;
                            bh(n2.clone(), 0).save(tx).await?;
                            Ok::<_, Error>(())
                        }))
                        .await;
                    }
                    _ => {
                        let mut tx = match db.begin().await { Ok(tx) => tx, Err(_) => continue };
                        let n1 = name("inner1");
                        let cancelled = tokio::time::timeout(timeout, bh(n1, pause).save(&mut tx)).await.is_err();
                        let _ = cancelled;
                        let _ = bh(format!("{p}{t}-{i}-inner2"), 0).save(&mut tx).await;
                        let _ = tokio::time::timeout(timeout, tx.commit()).await;
                    }
                }
            }
        })));
    }
    for t in tasks {
        t.await.unwrap();
    }
    signals_core::disconnect::<BrHold>(SignalKind::PostSave, &format!("br_hammer_{:?}", db.backend()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rel = released(&p);
    let rows: Vec<String> = BrHold::all(&db).await.unwrap().into_iter().map(|h| h.name).collect();
    let mut problems = Vec::new();
    for (name, times) in &rel {
        if *times > 1 {
            problems.push(format!("{name} released {times} times"));
        }
        let base = name.trim_end_matches("#rt");
        if rows.iter().any(|r| r == base) {
            problems.push(format!("{name} released but its row committed"));
        }
    }
    // Work scheduled whose row did not commit, never released (outcome-unknown commits aside).
    let scheduled: Vec<String> = SCHEDULED.lock().unwrap().iter().filter(|n| n.starts_with(&p)).cloned().collect();
    let mut lost = Vec::new();
    for name in &scheduled {
        if !rows.contains(name) && !rel.contains_key(name) {
            lost.push(name.clone());
        }
    }
    lost.sort();
    lost.dedup();
    let unreleased = lost.len();
    eprintln!("{:?}: scheduled {} lost {lost:?}", db.backend(), scheduled.len());
    eprintln!("{:?}: {} released, {} rows, {} neither", db.backend(), rel.len(), rows.len(), unreleased);
    assert!(problems.is_empty(), "{:?}: {problems:#?}", db.backend());
});

// ---------------------------------------------------------------------------------------
// take_on_commit with savepoints.
// ---------------------------------------------------------------------------------------

db_test!(async fn take_on_commit_skips_rolled_back_savepoints(db) {
    let mut tx = db.begin().await.unwrap();
    tx.on_commit(async { record("outer") });
    let r: std::result::Result<(), Error> = tx
        .savepoint(async |tx: &mut Tx| {
            tx.on_commit(async { record("rolled back") });
            Err(Error::Config("no".into()))
        })
        .await;
    assert!(r.is_err());
    let _: () = tx
        .savepoint(async |tx: &mut Tx| {
            tx.on_commit(async { record("released") });
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let work = tx.take_on_commit();
    tx.rollback().await.unwrap();
    assert!(work.run().await.is_empty());
    assert_eq!(take_events(), ["outer", "released"]);
});

// ---------------------------------------------------------------------------------------
// Capturing async closures for every signal kind.
// ---------------------------------------------------------------------------------------

static BR_SIG: signals_core::Signal<i64> = signals_core::Signal::new("br_sig");

db_test!(async fn capturing_closures_for_every_kind(db) {
    db.create_tables::<(BrHold, BrHoldLog)>().await.unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    isolate_receivers(async {
        let l = log.clone();
        signals_core::connect_pre_save::<BrHold, _>("c_pre", async move |h: &mut BrHold, s: &mut PreSave<'_>| {
            h.name = h.name.trim().to_owned();
            let n = BrHoldLog::query().count(s.tx()).await?;
            l.lock().unwrap().push(format!("pre_save {} logs={n}", h.name));
            Ok(())
        });
        let l = log.clone();
        signals_core::connect_pre_delete::<BrHold, _>("c_pred", async move |h: &BrHold, s: &mut PreDelete<'_>| {
            let n = BrHoldLog::query().count(s.tx()).await?;
            l.lock().unwrap().push(format!("pre_delete {} logs={n}", h.name));
            Ok(())
        });
        let l = log.clone();
        signals_core::connect_post_delete::<BrHold, _>("c_postd", async move |h: &BrHold, s: &mut PostDelete<'_>| {
            let n = BrHoldLog::query().count(s.tx()).await?;
            let l2 = l.clone();
            let name = h.name.clone();
            s.on_commit(async move { l2.lock().unwrap().push(format!("committed delete {name}")) });
            l.lock().unwrap().push(format!("post_delete {} logs={n}", h.name));
            Ok(())
        });
        let l = log.clone();
        signals_core::connect_any_pre_delete("c_any_pred", async move |i: &Instance<'_>, _: &mut PreDelete<'_>| {
            l.lock().unwrap().push(format!("any pre_delete {}", i.model()));
            Ok(())
        });
        let l = log.clone();
        signals_core::connect_any_post_delete("c_any_postd", async move |i: &Instance<'_>, _: &mut PostDelete<'_>| {
            l.lock().unwrap().push(format!("any post_delete {}", i.model()));
            Ok(())
        });
        let l = log.clone();
        BR_SIG.connect("c_sig", async move |v: &i64| {
            l.lock().unwrap().push(format!("sig {v}"));
            if *v < 0 {
                return Err(BoxError::from("negative").into());
            }
            Ok(())
        });
        let mut h = bh("  spaced  ".into(), 0);
        h.save(&db).await.unwrap();
        assert_eq!(h.name, "spaced");
        h.delete(&db).await.unwrap();
        assert_eq!(BR_SIG.send(&3).await.unwrap(), 1);
        let robust = BR_SIG.send_robust(&-1).await;
        assert!(robust[0].1.is_err());
    })
    .await;
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "pre_save spaced logs=0",
            "any pre_delete BrHoldLog",
            "pre_delete spaced logs=1",
            "any pre_delete BrHold",
            "any post_delete BrHoldLog",
            "post_delete spaced logs=0",
            "any post_delete BrHold",
            "committed delete spaced",
            "sig 3",
            "sig -1",
        ],
        "{:?}",
        db.backend()
    );
});

// ---------------------------------------------------------------------------------------
// Migrate signals.
// ---------------------------------------------------------------------------------------

fn br_migrator(version: i64) -> signals_core::sqlx::migrate::Migrator {
    use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
    use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
    let all = vec![
        Migration::new(
            1,
            "a".into(),
            MigrationType::Simple,
            AssertSqlSafe("CREATE TABLE br_m1 (id BIGINT PRIMARY KEY)").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "b".into(),
            MigrationType::Simple,
            AssertSqlSafe("CREATE TABLE br_m2 (id BIGINT PRIMARY KEY)").into_sql_str(),
            false,
        ),
    ];
    Migrator::with_migrations(all.into_iter().filter(|m| m.version <= version).collect())
}

db_test!(async fn a_failing_post_migrate_keeps_the_migrations_applied(db) {
    use signals_core::migrate::{self, Migrating, POST_MIGRATE};
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    isolate_receivers(async {
        POST_MIGRATE.connect("br_fail_once", async move |m: &Migrating| {
            let v: Vec<i64> = m.migrations.iter().map(|m| m.version).collect();
            s.lock().unwrap().push(format!("post {v:?}"));
            // Uses the database in the receiver.
            m.db.execute_unprepared("SELECT 1").await?;
            if !v.is_empty() {
                return Err(BoxError::from("post_migrate refuses").into());
            }
            Ok(())
        });
        let first = migrate::run(&db, &br_migrator(2)).await;
        let second = migrate::run(&db, &br_migrator(2)).await;
        eprintln!("{:?}: first {:?}, second {:?}, seen {:?}", db.backend(), first.as_ref().err().map(|e| e.to_string()), second.as_ref().err().map(|e| e.to_string()), seen.lock().unwrap());
        assert!(first.is_err());
        // Concurrent runs on the same Db, with a receiver using the db.
        let (m1, m2) = (br_migrator(2), br_migrator(2));
        let (a, b) = tokio::join!(migrate::run(&db, &m1), migrate::run(&db, &m2));
        a.unwrap();
        b.unwrap();
    })
    .await;
});
