//! The cascade compiled once (9f41a8c) and queries' SQL written from borrowed parts
//! (962362a), attacked by a reviewer with a fresh context: deep and wide cascades, cycles, diamonds, self references,
//! mixed `on_delete`, restrict deep in the tree, many-to-many links, failing and panicking
//! receivers, cancellation at every await point, and queries across relations.
//!
//! With `CP_TREE=<name>` each probe also writes a transcript (events, errors, counts,
//! recorded signals) to `$TMPDIR/cp_out/<name>/<probe>_<backend>.txt`: run it on two trees
//! and diff them. Built before and after the change, 26 of 28 transcripts were byte-identical
//! (the other two, cancellation counts, vary with timing).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use signals_core::{
    BoxError, Committed, Db, Error, M2mChange, M2mChanged, Model, PostDelete, PostDeleteBatch,
    PreDelete, PreDeleteBatch, Result, SignalKind, record_signals,
};
use signals_tests::{cancel_at, count, create_tables, db_test, record, scalar, take_events};

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Model)]
#[model(table = "cp_root")]
#[pre_delete(root_pre)]
#[post_delete(root_post)]
struct CpRoot {
    id: Option<i64>,
    name: String,
}

/// Batched receivers: sent per chunk.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_kid")]
#[pre_delete(kid_pre, batch)]
#[post_delete(kid_post, batch)]
struct CpKid {
    id: Option<i64>,
    #[model(foreign_key = CpRoot, on_delete = cascade)]
    root_id: i64,
    name: String,
}

/// No receivers, nothing below: the fast delete.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_fast")]
struct CpFast {
    id: Option<i64>,
    #[model(foreign_key = CpRoot, on_delete = cascade)]
    root_id: i64,
    tag: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_null")]
struct CpNull {
    id: Option<i64>,
    #[model(foreign_key = CpRoot, on_delete = set_null)]
    root_id: Option<i64>,
    tag: String,
}

/// Per-row receivers, and after-commit ones.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_grand")]
#[pre_delete(grand_pre)]
#[post_delete(grand_post)]
#[on_commit(grand_committed)]
struct CpGrand {
    id: Option<i64>,
    #[model(foreign_key = CpKid, on_delete = cascade)]
    kid_id: i64,
    name: String,
}

/// Refuses its grand's delete, deep in the tree.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_guard")]
struct CpGuard {
    id: Option<i64>,
    #[model(foreign_key = CpGrand, on_delete = restrict)]
    grand_id: i64,
}

// A cycle through nullable references.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_cyc_a")]
#[post_delete(cyca_post)]
struct CpCycA {
    id: Option<i64>,
    #[model(foreign_key = CpCycB, on_delete = cascade)]
    b_id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_cyc_b")]
#[post_delete(cycb_post)]
struct CpCycB {
    id: Option<i64>,
    #[model(foreign_key = CpCycA, on_delete = cascade)]
    a_id: Option<i64>,
}

/// A self reference.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_node")]
#[pre_delete(node_pre)]
#[post_delete(node_post)]
struct CpNode {
    id: Option<i64>,
    #[model(foreign_key = CpNode, on_delete = cascade)]
    parent_id: Option<i64>,
    name: String,
}

// A diamond: D -> L, D -> R, L & R -> Bottom.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_d")]
#[post_delete(d_post)]
struct CpD {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_l")]
#[post_delete(l_post)]
struct CpL {
    id: Option<i64>,
    #[model(foreign_key = CpD, on_delete = cascade)]
    d_id: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_r")]
#[post_delete(r_post)]
struct CpR {
    id: Option<i64>,
    #[model(foreign_key = CpD, on_delete = cascade)]
    d_id: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_bottom")]
#[pre_delete(bottom_pre)]
#[post_delete(bottom_post, batch)]
struct CpBottom {
    id: Option<i64>,
    #[model(foreign_key = CpL, on_delete = cascade)]
    l_id: i64,
    #[model(foreign_key = CpR, on_delete = cascade)]
    r_id: i64,
}

// Many-to-many below a cascade.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_author")]
#[post_delete(author_post)]
struct CpAuthor {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_post", many_to_many(tags: CpTag, through = CpPostTag))]
#[pre_delete(post_pre)]
#[post_delete(post_post)]
struct CpPost {
    id: Option<i64>,
    #[model(foreign_key = CpAuthor, on_delete = cascade)]
    author_id: i64,
    title: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_tag")]
struct CpTag {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_post_tag", unique_together(post_id, tag_id))]
#[m2m_changed(cp_tags_changed)]
#[post_delete(post_tag_post)]
struct CpPostTag {
    id: Option<i64>,
    #[model(foreign_key = CpPost, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = CpTag, on_delete = cascade)]
    tag_id: i64,
}

const SCHEMA: &str = "
CREATE TABLE cp_root (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_kid (id {pk}, root_id {bigint} NOT NULL, name {varchar} NOT NULL);
CREATE TABLE cp_fast (id {pk}, root_id {bigint} NOT NULL, tag {varchar} NOT NULL);
CREATE TABLE cp_null (id {pk}, root_id {bigint}, tag {varchar} NOT NULL);
CREATE TABLE cp_grand (id {pk}, kid_id {bigint} NOT NULL, name {varchar} NOT NULL);
CREATE TABLE cp_guard (id {pk}, grand_id {bigint} NOT NULL);
CREATE TABLE cp_cyc_a (id {pk}, b_id {bigint});
CREATE TABLE cp_cyc_b (id {pk}, a_id {bigint});
CREATE TABLE cp_node (id {pk}, parent_id {bigint}, name {varchar} NOT NULL);
CREATE TABLE cp_d (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_l (id {pk}, d_id {bigint} NOT NULL);
CREATE TABLE cp_r (id {pk}, d_id {bigint} NOT NULL);
CREATE TABLE cp_bottom (id {pk}, l_id {bigint} NOT NULL, r_id {bigint} NOT NULL);
CREATE TABLE cp_author (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_post (id {pk}, author_id {bigint} NOT NULL, title {varchar} NOT NULL);
CREATE TABLE cp_tag (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_post_tag (id {pk}, post_id {bigint} NOT NULL, tag_id {bigint} NOT NULL)";

// ---------------------------------------------------------------------------------------
// Receivers
// ---------------------------------------------------------------------------------------

fn fail_or_panic(what: &str, name: &str) -> Result<()> {
    if name.contains("panic") {
        panic!("{what} panics for {name}");
    }
    if name.contains("boom") {
        return Err(BoxError::from(format!("{what} refuses {name}")).into());
    }
    Ok(())
}

/// An await point of the receiver's own (a timer), for cancellation between rows and chunks
/// on every backend, SQLite included.
async fn maybe_slow(name: &str) {
    if name.contains("slow") {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn root_pre(r: &CpRoot, s: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre root {} from {}", r.id.unwrap(), s.origin()));
    Ok(())
}
async fn root_post(r: &CpRoot, s: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post root {} from {}", r.id.unwrap(), s.origin()));
    Ok(())
}
fn span(ids: Vec<i64>) -> String {
    format!(
        "n={} first={:?} last={:?}",
        ids.len(),
        ids.first(),
        ids.last()
    )
}
async fn kid_pre(rows: &[CpKid], s: &mut PreDeleteBatch<'_>) -> Result<()> {
    record(format!(
        "pre kids {} from {}",
        span(rows.iter().map(|r| r.id.unwrap()).collect()),
        s.origin()
    ));
    maybe_slow(&rows[0].name).await;
    for r in rows {
        fail_or_panic("kid_pre", &r.name)?;
    }
    Ok(())
}
async fn kid_post(rows: &[CpKid], s: &mut PostDeleteBatch<'_>) -> Result<()> {
    record(format!(
        "post kids {} from {}",
        span(rows.iter().map(|r| r.id.unwrap()).collect()),
        s.origin()
    ));
    maybe_slow(&rows[0].name).await;
    Ok(())
}
async fn grand_pre(g: &CpGrand, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre grand {}", g.id.unwrap()));
    maybe_slow(&g.name).await;
    Ok(())
}
async fn grand_post(g: &CpGrand, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post grand {}", g.id.unwrap()));
    maybe_slow(&g.name).await;
    fail_or_panic("grand_post", &g.name)
}
async fn grand_committed(g: CpGrand, what: Committed) -> Result<()> {
    record(format!(
        "committed grand {} {what:?} {}",
        g.id.unwrap(),
        g.name
    ));
    Ok(())
}
async fn cyca_post(a: &CpCycA, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post cyca {}", a.id.unwrap()));
    Ok(())
}
async fn cycb_post(b: &CpCycB, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post cycb {}", b.id.unwrap()));
    Ok(())
}
async fn node_pre(n: &CpNode, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre node {}", n.id.unwrap()));
    fail_or_panic("node_pre", &n.name)
}
async fn node_post(n: &CpNode, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post node {}", n.id.unwrap()));
    Ok(())
}
async fn d_post(d: &CpD, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post d {}", d.id.unwrap()));
    Ok(())
}
async fn l_post(l: &CpL, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post l {}", l.id.unwrap()));
    Ok(())
}
async fn r_post(r: &CpR, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post r {}", r.id.unwrap()));
    Ok(())
}
async fn bottom_pre(b: &CpBottom, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre bottom {}", b.id.unwrap()));
    Ok(())
}
async fn bottom_post(rows: &[CpBottom], _: &mut PostDeleteBatch<'_>) -> Result<()> {
    record(format!(
        "post bottoms {:?}",
        rows.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>()
    ));
    Ok(())
}
async fn author_post(a: &CpAuthor, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post author {}", a.id.unwrap()));
    Ok(())
}
async fn post_pre(p: &CpPost, s: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre post {} from {}", p.id.unwrap(), s.origin()));
    maybe_slow(&p.title).await;
    fail_or_panic("post_pre", &p.title)
}
async fn post_post(p: &CpPost, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post post {}", p.id.unwrap()));
    maybe_slow(&p.title).await;
    Ok(())
}
async fn post_tag_post(pt: &CpPostTag, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post post_tag {}", pt.id.unwrap()));
    Ok(())
}
async fn cp_tags_changed(
    change: &M2mChange<'_, CpPost, CpTag>,
    _: &mut M2mChanged<'_>,
) -> Result<()> {
    let mut pairs = change.pairs();
    pairs.sort();
    record(format!(
        "m2m {:?} reverse={} {pairs:?}",
        change.action(),
        change.reverse()
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Writes the transcript when `CP_TREE` names the tree under test (to compare two trees'
/// transcripts line by line); nothing otherwise.
fn dump(db: &Db, probe: &str, lines: &[String]) {
    let Ok(tree) = std::env::var("CP_TREE") else {
        return;
    };
    let dir = std::env::temp_dir().join("cp_out").join(tree);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{probe}_{:?}.txt", db.backend())),
        lines.join("\n"),
    )
    .unwrap();
}

fn fired_lines(fired: &[signals_core::Fired]) -> Vec<String> {
    fired
        .iter()
        .map(|f| {
            format!(
                "fired {} {:?} {} {:?}",
                f.model, f.signal, f.key, f.receivers
            )
        })
        .collect()
}

/// A root named `tag` with `kids` kids (named `tag-k<i>`, or with `boom`/`panic` where
/// `special` says), a grand per kid (`tag-g<i>`), a fast child and a set-null child.
async fn tree(
    db: &Db,
    tag: &str,
    kids: usize,
    kid_name: impl Fn(usize) -> String,
    grand_name: impl Fn(usize) -> String,
) -> CpRoot {
    let mut root = CpRoot {
        id: None,
        name: tag.into(),
    };
    root.save(db).await.unwrap();
    let r = root.id.unwrap();
    let mut ks: Vec<CpKid> = (0..kids)
        .map(|i| CpKid {
            id: None,
            root_id: r,
            name: kid_name(i),
        })
        .collect();
    if !ks.is_empty() {
        CpKid::bulk_save(db, &mut ks).await.unwrap();
    }
    let mut gs: Vec<CpGrand> = ks
        .iter()
        .enumerate()
        .map(|(i, k)| CpGrand {
            id: None,
            kid_id: k.id.unwrap(),
            name: grand_name(i),
        })
        .collect();
    if !gs.is_empty() {
        CpGrand::bulk_save(db, &mut gs).await.unwrap();
    }
    CpFast {
        id: None,
        root_id: r,
        tag: tag.into(),
    }
    .save(db)
    .await
    .unwrap();
    CpNull {
        id: None,
        root_id: Some(r),
        tag: tag.into(),
    }
    .save(db)
    .await
    .unwrap();
    take_events();
    root
}

/// One snapshot of the tree of `tag`: (root, kids, grands, fast, not nulled).
async fn snapshot(db: &Db, tag: &str) -> i64 {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM cp_root WHERE name = '{tag}') * 100000000 \
         + (SELECT COUNT(*) FROM cp_kid WHERE name LIKE '{tag}-k%') * 1000000 \
         + (SELECT COUNT(*) FROM cp_grand WHERE name LIKE '{tag}-g%') * 1000 \
         + (SELECT COUNT(*) FROM cp_fast WHERE tag = '{tag}') * 10 \
         + (SELECT COUNT(*) FROM cp_null WHERE tag = '{tag}' AND root_id IS NOT NULL)"
    );
    scalar(db, &sql).await
}

/// `per_model` by model name (its own order is the order of deletion).
fn sorted(per_model: &[(&'static str, u64)]) -> Vec<(&'static str, u64)> {
    let mut v = per_model.to_vec();
    v.sort_unstable();
    v
}

fn pos(events: &[String], e: &str) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("no `{e}` in {events:#?}"))
}

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

db_test!(async fn cp_mixed_tree_order_and_counts(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let mut r1 = tree(&db, "a", 2, |i| format!("a-k{i}"), |i| format!("a-g{i}")).await;
    let mut others = vec![
        tree(&db, "b", 2, |i| format!("b-k{i}"), |i| format!("b-g{i}")).await,
        tree(&db, "c", 3, |i| format!("c-k{i}"), |i| format!("c-g{i}")).await,
    ];
    let _d = tree(&db, "d", 1, |i| format!("d-k{i}"), |i| format!("d-g{i}")).await;

    // One delete.
    let (res, fired) = record_signals(r1.delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("delete: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpFast", 1), ("CpGrand", 2), ("CpKid", 2), ("CpRoot", 1)]);
    // Django's order: every pre_delete first; post_delete children before parents; after
    // commit last.
    let last_pre = ev.iter().rposition(|e| e.starts_with("pre ")).unwrap();
    let first_post = ev.iter().position(|e| e.starts_with("post ")).unwrap();
    assert!(last_pre < first_post, "{ev:#?}");
    assert!(pos(&ev, "post grand 1") < pos(&ev, "post kids n=2 first=Some(1) last=Some(2) from CpRoot"), "{ev:#?}");
    assert!(pos(&ev, "post grand 2") < pos(&ev, "post root 1 from CpRoot"), "{ev:#?}");
    let first_commit = ev.iter().position(|e| e.starts_with("committed")).unwrap();
    assert!(first_commit > ev.iter().rposition(|e| e.starts_with("post ")).unwrap(), "{ev:#?}");
    assert_eq!(ev.iter().filter(|e| e.starts_with("committed grand")).count(), 2, "{ev:#?}");
    assert_eq!(snapshot(&db, "a").await, 0);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM cp_null WHERE root_id IS NULL").await, 1);
    // Each row recorded once per signal.
    for kind in [SignalKind::PreDelete, SignalKind::PostDelete] {
        let n = fired.iter().filter(|f| f.signal == kind).count();
        assert_eq!(n, 1 + 2 + 2, "{kind:?} recorded for the root, kids and grands: {fired:#?}");
    }

    // A bulk delete of two roots.
    let (res, fired) = record_signals(CpRoot::bulk_delete(&db, &mut others)).await;
    let deleted = res.unwrap();
    out.push(format!("bulk: {:?}", deleted.per_model()));
    out.extend(take_events());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpFast", 2), ("CpGrand", 5), ("CpKid", 5), ("CpRoot", 2)]);
    assert!(others.iter().all(|r| r.id.is_none()));

    // A query delete.
    let (res, fired) = record_signals(CpRoot::query().filter(CpRoot::NAME.eq("d")).delete(&db)).await;
    let deleted = res.unwrap();
    out.push(format!("query: {:?}", deleted.per_model()));
    out.extend(take_events());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpFast", 1), ("CpGrand", 1), ("CpKid", 1), ("CpRoot", 1)]);
    for t in ["cp_root", "cp_kid", "cp_grand", "cp_fast"] {
        assert_eq!(count(&db, t).await, 0, "{t}");
    }
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM cp_null WHERE root_id IS NULL").await, 4);
    dump(&db, "mixed_tree", &out);
});

db_test!(async fn cp_wide_cascade_past_max_chunk_rows(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let n = signals_core::MAX_CHUNK_ROWS * 2 + 500;
    let mut root = tree(&db, "w", n, |i| format!("w-k{i}"), |i| format!("w-g{i}")).await;
    let (res, fired) = record_signals(root.delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("delete: {:?}", deleted.per_model()));
    let kid_events: Vec<&String> = ev.iter().filter(|e| e.contains("kids")).collect();
    out.extend(kid_events.iter().map(|s| s.to_string()));
    assert_eq!(
        kid_events,
        [
            "pre kids n=1000 first=Some(1) last=Some(1000) from CpRoot",
            "pre kids n=1000 first=Some(1001) last=Some(2000) from CpRoot",
            "pre kids n=500 first=Some(2001) last=Some(2500) from CpRoot",
            "post kids n=1000 first=Some(1) last=Some(1000) from CpRoot",
            "post kids n=1000 first=Some(1001) last=Some(2000) from CpRoot",
            "post kids n=500 first=Some(2001) last=Some(2500) from CpRoot",
        ],
        "batch receivers once per chunk of at most MAX_CHUNK_ROWS"
    );
    assert_eq!(ev.iter().filter(|e| e.starts_with("post grand")).count(), n);
    assert_eq!(ev.iter().filter(|e| e.starts_with("committed grand")).count(), n);
    // Every kid recorded once per signal, with the batch receiver.
    let kid_pre: Vec<_> = fired.iter().filter(|f| f.model == "CpKid" && f.signal == SignalKind::PreDelete).collect();
    assert_eq!(kid_pre.len(), n);
    assert!(kid_pre.iter().all(|f| f.receivers == ["kid_pre"]), "{:?}", kid_pre.iter().find(|f| f.receivers != ["kid_pre"]));
    let mut keys: Vec<i64> = kid_pre.iter().map(|f| f.key.as_i64().unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert_eq!(sorted(deleted.per_model()), [("CpFast", 1), ("CpGrand", n as u64), ("CpKid", n as u64), ("CpRoot", 1)]);
    assert_eq!(count(&db, "cp_kid").await, 0);

    // A kid past the second chunk refuses: the cascade's error is unwrapped (not a row of the
    // caller's), nothing is deleted.
    let mut root = tree(&db, "x", n, |i| if i == 1500 { "x-k-boom".into() } else { format!("x-k{i}") }, |i| format!("x-g{i}")).await;
    let before = snapshot(&db, "x").await;
    let err = root.delete(&db).await.unwrap_err();
    out.push(format!("cascaded kid refuses: {err:?}"));
    out.extend(take_events());
    assert!(!matches!(err, Error::Bulk { .. }), "a cascaded row's error is unwrapped: {err:?}");
    assert!(err.to_string().contains("x-k-boom"), "{err}");
    assert_eq!(snapshot(&db, "x").await, before, "nothing half deleted");
    assert!(root.id.is_some());

    // The same kids deleted by the caller: the batch's rows (the second chunk) are named.
    let mut kids = CpKid::query().filter(CpKid::ROOT_ID.eq(root.id.unwrap())).order_by(CpKid::ID.asc()).all(&db).await.unwrap();
    let err = CpKid::bulk_delete(&db, &mut kids).await.unwrap_err();
    out.push(format!("bulk kids refuse: {err:?}"));
    out.extend(take_events());
    assert!(matches!(err, Error::Bulk { row: None, rows: ref r, .. } if *r == (1000..2000)), "{err:?}");
    assert_eq!(snapshot(&db, "x").await, before);
    assert!(kids.iter().all(|k| k.id.is_some()));

    // A grand (per row, post_delete) refuses at row 2100 of a bulk delete of the grands.
    let mut grands = CpGrand::query().filter(CpGrand::NAME.starts_with("x-g")).order_by(CpGrand::ID.asc()).all(&db).await.unwrap();
    grands[2100].name = "x-g-boom".into();
    grands[2100].save(&db).await.unwrap();
    take_events();
    let err = CpGrand::bulk_delete(&db, &mut grands).await.unwrap_err();
    out.push(format!("bulk grands refuse: {err:?}"));
    take_events();
    assert!(matches!(err, Error::Bulk { row: Some(2100), key: Some(ref k), .. } if *k == format!("{}", grands[2100].id.unwrap())), "{err:?}");
    assert_eq!(count(&db, "cp_grand").await, n as i64);
    dump(&db, "wide", &out);
});

db_test!(async fn cp_cycles_self_references_and_diamonds(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();

    // A -> B -> A.
    let mut a = CpCycA { id: None, b_id: None };
    a.save(&db).await.unwrap();
    let mut b = CpCycB { id: None, a_id: a.id };
    b.save(&db).await.unwrap();
    a.b_id = b.id;
    a.save(&db).await.unwrap();
    let mut a2 = CpCycA { id: None, b_id: b.id };
    a2.save(&db).await.unwrap();
    let (res, fired) = record_signals(a.delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("cycle: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpCycA", 2), ("CpCycB", 1)]);
    assert_eq!(ev.iter().filter(|e| *e == "post cyca 1").count(), 1, "{ev:?}");
    assert_eq!(ev.iter().filter(|e| *e == "post cycb 1").count(), 1, "{ev:?}");
    assert!(pos(&ev, "post cyca 2") < pos(&ev, "post cycb 1"), "{ev:?}");
    assert!(pos(&ev, "post cycb 1") < pos(&ev, "post cyca 1"), "{ev:?}");
    assert_eq!(count(&db, "cp_cyc_a").await + count(&db, "cp_cyc_b").await, 0);

    // A self-referencing chain 60 deep, with a loop at its end (two nodes each other's
    // parent), and a branch.
    let mut top = CpNode { id: None, parent_id: None, name: "n0".into() };
    top.save(&db).await.unwrap();
    let mut parent = top.id;
    for i in 1..60 {
        let mut n = CpNode { id: None, parent_id: parent, name: format!("n{i}") };
        n.save(&db).await.unwrap();
        parent = n.id;
    }
    CpNode { id: None, parent_id: top.id, name: "branch".into() }.save(&db).await.unwrap();
    // The top's parent: the last node (a loop of 60).
    top.parent_id = parent;
    top.save(&db).await.unwrap();
    let mut other = CpNode { id: None, parent_id: None, name: "other".into() };
    other.save(&db).await.unwrap();
    take_events();
    let (res, fired) = record_signals(top.delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("nodes: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpNode", 61)]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("pre node")).count(), 61);
    assert_eq!(ev.iter().filter(|e| e.starts_with("post node")).count(), 61);
    // Deeper first.
    assert!(pos(&ev, "post node 60") < pos(&ev, "post node 59"), "{ev:?}");
    assert!(pos(&ev, "post node 2") < pos(&ev, "post node 1"), "{ev:?}");
    assert_eq!(count(&db, "cp_node").await, 1);

    // A node deep in a chain refuses in pre_delete: nothing deleted.
    let mut top = CpNode { id: None, parent_id: None, name: "t".into() };
    top.save(&db).await.unwrap();
    let mut parent = top.id;
    for i in 1..20 {
        let name = if i == 17 { "boom17".into() } else { format!("t{i}") };
        let mut n = CpNode { id: None, parent_id: parent, name };
        n.save(&db).await.unwrap();
        parent = n.id;
    }
    take_events();
    let err = top.delete(&db).await.unwrap_err();
    out.push(format!("deep refusal: {err:?}"));
    out.extend(take_events());
    assert!(!matches!(err, Error::Bulk { .. }), "{err:?}");
    assert!(err.to_string().contains("boom17"), "{err}");
    assert_eq!(count(&db, "cp_node").await, 21);
    // Query delete of the same tree and of the `other` node: the nodes are roots of the
    // query and cascaded rows at once (each deleted once).
    let err = CpNode::query().delete(&db).await.unwrap_err();
    out.push(format!("query refusal: {err:?}"));
    out.extend(take_events());
    assert_eq!(count(&db, "cp_node").await, 21);
    CpNode::query().filter(CpNode::NAME.eq("boom17")).update(&db, CpNode::NAME.set("t17".to_string())).await.unwrap();
    let (res, fired) = record_signals(CpNode::query().delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("query nodes: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpNode", 21)]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("post node")).count(), 21, "{ev:?}");
    assert_eq!(fired.iter().filter(|f| f.signal == SignalKind::PostDelete).count(), 21);

    // A diamond: the bottom reached through L and through R, deleted once.
    let mut d = CpD { id: None, name: "d".into() };
    d.save(&db).await.unwrap();
    let mut ls: Vec<CpL> = (0..3).map(|_| CpL { id: None, d_id: d.id.unwrap() }).collect();
    CpL::bulk_save(&db, &mut ls).await.unwrap();
    let mut rs: Vec<CpR> = (0..3).map(|_| CpR { id: None, d_id: d.id.unwrap() }).collect();
    CpR::bulk_save(&db, &mut rs).await.unwrap();
    let mut bottoms = Vec::new();
    for l in &ls {
        for r in &rs {
            bottoms.push(CpBottom { id: None, l_id: l.id.unwrap(), r_id: r.id.unwrap() });
        }
    }
    CpBottom::bulk_save(&db, &mut bottoms).await.unwrap();
    take_events();
    let (res, fired) = record_signals(d.delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("diamond: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpBottom", 9), ("CpD", 1), ("CpL", 3), ("CpR", 3)]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("pre bottom")).count(), 9, "{ev:?}");
    let posted: usize = ev
        .iter()
        .filter(|e| e.starts_with("post bottoms"))
        .map(|e| e.matches(',').count() + 1)
        .sum();
    assert_eq!(posted, 9, "{ev:?}");
    assert_eq!(fired.iter().filter(|f| f.model == "CpBottom" && f.signal == SignalKind::PostDelete).count(), 9);
    dump(&db, "cycles", &out);
});

db_test!(async fn cp_restrict_deep_in_the_tree(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let mut root = tree(&db, "r", 3, |i| format!("r-k{i}"), |i| format!("r-g{i}")).await;
    let guarded = CpGrand::query().filter(CpGrand::NAME.eq("r-g2")).first(&db).await.unwrap().unwrap();
    CpGuard { id: None, grand_id: guarded.id.unwrap() }.save(&db).await.unwrap();
    CpGuard { id: None, grand_id: guarded.id.unwrap() }.save(&db).await.unwrap();
    let before = snapshot(&db, "r").await;
    let (res, fired) = record_signals(root.delete(&db)).await;
    let err = res.unwrap_err();
    out.push(format!("delete: {err:?}"));
    out.extend(take_events());
    out.extend(fired_lines(&fired));
    match &err {
        Error::Restricted { model, key, related, field, count } => {
            assert_eq!((*model, key.as_str(), *related, *field, *count), ("CpGrand", guarded.id.unwrap().to_string().as_str(), "CpGuard", "grand_id", 2));
        }
        other => panic!("not Restricted: {other:?}"),
    }
    assert!(fired.is_empty(), "no signal sent before a restrict: {fired:?}");
    assert_eq!(snapshot(&db, "r").await, before);
    assert!(root.id.is_some());
    let mut roots = vec![root.clone()];
    let err = CpRoot::bulk_delete(&db, &mut roots).await.unwrap_err();
    out.push(format!("bulk: {err:?}"));
    let restricted = |e: &Error| matches!(e, Error::Restricted { .. });
    assert!(restricted(&err) || matches!(&err, Error::Bulk { source, .. } if restricted(source)), "{err:?}");
    let err = CpRoot::query().delete(&db).await.unwrap_err();
    out.push(format!("query: {err:?}"));
    assert!(matches!(err, Error::Restricted { .. }), "{err:?}");
    assert_eq!(snapshot(&db, "r").await, before);
    dump(&db, "restrict", &out);
});

db_test!(async fn cp_many_to_many_below_a_cascade(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let mut authors: Vec<CpAuthor> = ["a1", "a2", "a3"].iter().map(|n| CpAuthor { id: None, name: (*n).into() }).collect();
    CpAuthor::bulk_save(&db, &mut authors).await.unwrap();
    let mut tags: Vec<CpTag> = ["t1", "t2"].iter().map(|n| CpTag { id: None, name: (*n).into() }).collect();
    CpTag::bulk_save(&db, &mut tags).await.unwrap();
    // a1: p1 (t1, t2), p2 (no links), p3 (t2); a2: p4 "boom" (t1); a3: p5 (t1).
    let spec: &[(usize, &str, &[i64])] = &[(0, "p1", &[1, 2]), (0, "p2", &[]), (0, "p3", &[2]), (1, "p4 boom", &[1]), (2, "p5", &[1])];
    for (a, title, links) in spec {
        let mut p = CpPost { id: None, author_id: authors[*a].id.unwrap(), title: (*title).into() };
        p.save(&db).await.unwrap();
        if !links.is_empty() {
            p.tags().add(&db, links.iter().copied()).await.unwrap();
        }
    }
    take_events();
    let (res, fired) = record_signals(authors[0].delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("a1: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpAuthor", 1), ("CpPost", 3), ("CpPostTag", 3)]);
    // Per row: each post's pre_delete then its PreRemove; post_delete then PostRemove.
    assert!(pos(&ev, "pre post 1 from CpAuthor") < pos(&ev, "m2m PreRemove reverse=false [(1, 1), (1, 2)]"), "{ev:#?}");
    assert!(pos(&ev, "m2m PreRemove reverse=false [(1, 1), (1, 2)]") < pos(&ev, "pre post 2 from CpAuthor"), "{ev:#?}");
    assert!(pos(&ev, "post post 1") < pos(&ev, "m2m PostRemove reverse=false [(1, 1), (1, 2)]"), "{ev:#?}");
    assert!(pos(&ev, "m2m PostRemove reverse=false [(3, 2)]") < pos(&ev, "post author 1"), "{ev:#?}");
    assert!(pos(&ev, "post post_tag 1") < pos(&ev, "post post 1"), "{ev:#?}");
    assert_eq!(ev.iter().filter(|e| e.starts_with("m2m")).count(), 4, "{ev:#?}");
    assert_eq!(fired.iter().filter(|f| f.signal == SignalKind::M2mChanged).count(), 4, "{fired:#?}");

    // A cascaded post refuses: unwrapped, nothing deleted.
    let links_before = count(&db, "cp_post_tag").await;
    let err = authors[1].delete(&db).await.unwrap_err();
    out.push(format!("a2: {err:?}"));
    out.extend(take_events());
    assert!(!matches!(err, Error::Bulk { .. }), "{err:?}");
    assert_eq!(count(&db, "cp_post_tag").await, links_before);
    assert_eq!(count(&db, "cp_post").await, 2);

    // The caller's posts, with links, the second refusing: named by index and key.
    let mut posts = CpPost::query().order_by(CpPost::ID.desc()).all(&db).await.unwrap();
    let err = CpPost::bulk_delete(&db, &mut posts).await.unwrap_err();
    out.push(format!("bulk posts: {err:?}"));
    out.extend(take_events());
    assert!(matches!(err, Error::Bulk { row: Some(1), key: Some(ref k), .. } if k == "4"), "{err:?}");
    assert_eq!(count(&db, "cp_post").await, 2);
    // A query delete of them: unwrapped.
    let err = CpPost::query().order_by(CpPost::ID.desc()).delete(&db).await.unwrap_err();
    out.push(format!("query posts: {err:?}"));
    out.extend(take_events());
    assert!(!matches!(err, Error::Bulk { .. }), "{err:?}");
    assert_eq!(count(&db, "cp_post").await, 2);
    // Deleting a tag (the other side of the links): PreRemove/PostRemove, reversed.
    let (res, fired) = record_signals(tags[0].delete(&db)).await;
    out.push(format!("tag: {:?}", res.map(|d| d.per_model().to_vec())));
    out.extend(take_events());
    out.extend(fired_lines(&fired));
    dump(&db, "m2m", &out);
});

db_test!(async fn cp_panicking_receivers_roll_back(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let mut root = tree(&db, "p", 4, |i| format!("p-k{i}"), |i| if i == 2 { "p-g-panic".into() } else { format!("p-g{i}") }).await;
    let before = snapshot(&db, "p").await;
    let res = AssertUnwindSafe(root.delete(&db)).catch_unwind().await;
    out.push(format!("delete panicked: {}", res.is_err()));
    take_events();
    assert!(res.is_err(), "the receiver's panic reaches the caller");
    assert_eq!(snapshot(&db, "p").await, before, "rolled back");
    let mut roots = vec![root.clone()];
    let res = AssertUnwindSafe(CpRoot::bulk_delete(&db, &mut roots)).catch_unwind().await;
    assert!(res.is_err());
    let res = AssertUnwindSafe(CpRoot::query().delete(&db)).catch_unwind().await;
    assert!(res.is_err());
    take_events();
    assert_eq!(snapshot(&db, "p").await, before, "rolled back");
    // The pool still works: the same delete once the receiver no longer panics.
    CpGrand::query().filter(CpGrand::NAME.eq("p-g-panic")).update(&db, CpGrand::NAME.set("p-g2".to_string())).await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(60), root.delete(&db)).await.expect("hung after a panic").unwrap();
    out.push(format!("after: {:?}", deleted.per_model()));
    assert_eq!(snapshot(&db, "p").await, 0);
    dump(&db, "panic", &out);
});

/// Runs `op(waits, tag)` cancelled at its n-th await point for n = 0, 1, ... until it
/// finishes; after each, the tree of `tag` is whole or wholly deleted.
async fn cancel_everywhere<F, Fut>(db: &Db, what: &str, kids: usize, mut op: F) -> usize
where
    F: FnMut(usize, String, Vec<CpRoot>) -> Fut,
    // Whether the operation finished, and whether the first root's key was cleared (`None`
    // where the operation is given no instances).
    Fut: std::future::Future<Output = (bool, Option<bool>)>,
{
    let guard = Duration::from_secs(60);
    for waits in 0..600 {
        let tag = format!("{what}{waits}");
        let tag2 = format!("{what}{waits}z");
        let r1 = tree(
            db,
            &tag,
            kids,
            |i| format!("{tag}-k{i}"),
            |i| format!("{tag}-g{i}"),
        )
        .await;
        let r2 = tree(
            db,
            &tag2,
            1,
            |i| format!("{tag2}-k{i}"),
            |i| format!("{tag2}-g{i}"),
        )
        .await;
        let whole = snapshot(db, &tag).await;
        let (finished, cleared) = tokio::time::timeout(guard, op(waits, tag.clone(), vec![r1, r2]))
            .await
            .unwrap_or_else(|_| panic!("{what} cancelled at {waits}: hung"));
        let events = take_events();
        let mut snap = tokio::time::timeout(guard, snapshot(db, &tag))
            .await
            .unwrap_or_else(|_| panic!("{what} cancelled at {waits}: pool hung"));
        // Cancelled while its COMMIT was under way, the delete cleared the keys and the COMMIT
        // finishes on its own: another connection sees it a moment later.
        let started = std::time::Instant::now();
        while cleared == Some(true) && snap == whole && started.elapsed() < guard {
            tokio::time::sleep(Duration::from_millis(10)).await;
            snap = snapshot(db, &tag).await;
        }
        assert!(
            snap == whole || snap == 0,
            "{what} cancelled at await point {waits}: half applied ({snap}, whole {whole})"
        );
        // The caller's instance agrees with the rows: its key is cleared exactly when its row
        // is gone.
        if let Some(cleared) = cleared {
            assert_eq!(
                cleared,
                snap == 0,
                "{what} cancelled at await point {waits}: key cleared {cleared}, rows {snap} (whole {whole})"
            );
        }
        if snap == whole {
            let ran: Vec<_> = events
                .iter()
                .filter(|e| e.starts_with("committed") && e.contains(&format!(" {tag}-g")))
                .collect();
            assert!(
                ran.is_empty(),
                "{what} cancelled at {waits}, rolled back, yet after-commit receivers ran: {ran:?}"
            );
        }
        if finished {
            assert_eq!(snap, 0, "{what} finished");
            return waits;
        }
    }
    panic!("{what} still waiting after 600 await points");
}

db_test!(async fn cp_cancelled_deletes_leave_nothing_half_deleted(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    let n = cancel_everywhere(&db, "one", 3, |waits, _tag, mut roots| {
        let db = db.clone();
        async move {
            let finished = cancel_at(waits, roots[0].delete(&db)).await.map(|r| r.unwrap()).is_some();
            (finished, Some(roots[0].id.is_none()))
        }
    })
    .await;
    out.push(format!("delete: {n} await points"));
    let n = cancel_everywhere(&db, "bulk", 3, |waits, _tag, mut roots| {
        let db = db.clone();
        async move {
            let finished = cancel_at(waits, CpRoot::bulk_delete(&db, &mut roots)).await.map(|r| r.unwrap()).is_some();
            // Both roots go together (the second is another tree).
            assert_eq!(roots[0].id.is_none(), roots[1].id.is_none(), "bulk_delete cleared one key of two");
            (finished, Some(roots[0].id.is_none()))
        }
    })
    .await;
    out.push(format!("bulk_delete: {n} await points"));
    let n = cancel_everywhere(&db, "query", 3, |waits, tag, _roots| {
        let db = db.clone();
        async move {
            let q = CpRoot::query().filter(CpRoot::NAME.eq(tag));
            (cancel_at(waits, q.delete(&db)).await.map(|r| r.unwrap()).is_some(), None)
        }
    })
    .await;
    out.push(format!("query delete: {n} await points"));
    // Within a caller's transaction: the cancelled delete is undone alone.
    let n = cancel_everywhere(&db, "intx", 2, |waits, tag, mut roots| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let finished = cancel_at(waits, roots[0].delete(&mut tx)).await.map(|r| r.unwrap()).is_some();
            let cleared = roots[0].id.is_none();
            match CpRoot::query().filter(CpRoot::NAME.eq(&tag)).count(&mut tx).await {
                Ok(left) => {
                    // The transaction goes on from where the delete left it: undone whole
                    // (the key stays), or done whole, a cancelled RELEASE completed (the key
                    // is cleared); the commit keeps that.
                    assert_eq!(
                        left,
                        if cleared { 0 } else { 1 },
                        "delete in a transaction, cancelled at await point {waits} (finished: {finished})"
                    );
                    tx.commit().await.unwrap();
                }
                Err(e) => {
                    // A MySQL statement cut in the middle gives the transaction up whole: the
                    // row stays, and so does the key.
                    assert!(!cleared, "transaction given up after cancel at {waits}, key cleared: {e}");
                }
            }
            (finished, Some(cleared))
        }
    })
    .await;
    out.push(format!("delete in a transaction: {n} await points"));
    // Receivers with await points of their own: cancelled between rows and chunks of the
    // cascade's sending, on every backend.
    let n = cancel_everywhere(&db, "slowone", 3, |waits, _tag, mut roots| {
        let db = db.clone();
        async move {
            let finished = cancel_at(waits, roots[0].delete(&db)).await.map(|r| r.unwrap()).is_some();
            (finished, Some(roots[0].id.is_none()))
        }
    })
    .await;
    out.push(format!("slow delete: {n} await points"));
    assert!(n >= 4, "a receiver's timer is an await point: {n}");
    let n = cancel_everywhere(&db, "slowbulk", 2, |waits, _tag, mut roots| {
        let db = db.clone();
        async move {
            let finished = cancel_at(waits, CpRoot::bulk_delete(&db, &mut roots)).await.map(|r| r.unwrap()).is_some();
            // Both roots go together (the second is another tree).
            assert_eq!(roots[0].id.is_none(), roots[1].id.is_none(), "bulk_delete cleared one key of two");
            (finished, Some(roots[0].id.is_none()))
        }
    })
    .await;
    out.push(format!("slow bulk_delete: {n} await points"));
    let n = cancel_everywhere(&db, "slowquery", 2, |waits, tag, _roots| {
        let db = db.clone();
        async move {
            let q = CpRoot::query().filter(CpRoot::NAME.starts_with(tag));
            (cancel_at(waits, q.delete(&db)).await.map(|r| r.unwrap()).is_some(), None)
        }
    })
    .await;
    out.push(format!("slow query delete: {n} await points"));
    dump(&db, "cancel", &out);
});

db_test!(async fn cp_queries_across_relations_and_query_delete(db) {
    create_tables(&db, SCHEMA).await;
    let mut out = Vec::new();
    for (tag, kids) in [("q3", 3), ("q1", 1), ("q2", 2)] {
        tree(&db, tag, kids, |i| format!("{tag}-k{i}"), |i| format!("{tag}-g{i}")).await;
    }
    let q = || CpGrand::query().order_by(CpGrand::KID_ID.by(CpKid::ROOT_ID.by(CpRoot::NAME.desc()))).order_by(CpGrand::ID.asc());
    let names: Vec<String> = q().limit(4).offset(1).all(&db).await.unwrap().into_iter().map(|g| g.name).collect();
    out.push(format!("ordered window: {names:?}"));
    assert_eq!(names, ["q3-g1", "q3-g2", "q2-g0", "q2-g1"]);
    assert_eq!(q().offset(2).count(&db).await.unwrap(), 4);
    assert!(q().offset(5).exists(&db).await.unwrap());
    assert!(!q().offset(6).exists(&db).await.unwrap());
    let rows = CpGrand::query().order_by(CpGrand::KID_ID.by(CpKid::NAME.asc())).select_related(CpGrand::KID_ID).all(&db).await.unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|(g, k)| (g.name.clone(), k.name.clone())).collect();
    out.push(format!("select_related: {got:?}"));
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|(g, k)| g.replace("-g", "-k") == *k), "{got:?}");
    // A query delete ordered across two relations, windowed: read locked (FOR UPDATE OF on
    // PostgreSQL), then the cascade.
    let (res, fired) = record_signals(q().limit(2).delete(&db)).await;
    let deleted = res.unwrap();
    out.push(format!("windowed query delete: {:?}", deleted.per_model()));
    out.extend(take_events());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpGrand", 2)]);
    let left: Vec<String> = CpGrand::query().order_by(CpGrand::ID.asc()).all(&db).await.unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(left, ["q3-g2", "q1-g0", "q2-g0", "q2-g1"]);
    // Kids ordered by their root's name, deleted through the cascade to the grands.
    let deleted = CpKid::query().filter(CpKid::NAME.starts_with("q2")).order_by(CpKid::ROOT_ID.by(CpRoot::NAME.asc())).order_by(CpKid::ID.asc()).delete(&db).await.unwrap();
    out.push(format!("kids: {:?}", deleted.per_model()));
    out.extend(take_events());
    assert_eq!(sorted(deleted.per_model()), [("CpGrand", 2), ("CpKid", 2)]);
    dump(&db, "queries", &out);
});

/// One snapshot of an author named `tag`: (author, posts, links of its posts).
async fn author_snapshot(db: &Db, tag: &str) -> i64 {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM cp_author WHERE name = '{tag}') * 1000000 \
         + (SELECT COUNT(*) FROM cp_post WHERE title LIKE '{tag}-p%') * 1000 \
         + (SELECT COUNT(*) FROM cp_post_tag WHERE post_id IN \
             (SELECT id FROM cp_post WHERE title LIKE '{tag}-p%'))"
    );
    scalar(db, &sql).await
}

db_test!(async fn cp_cancelled_cascade_through_many_to_many(db) {
    create_tables(&db, SCHEMA).await;
    let mut tags: Vec<CpTag> = ["t1", "t2"].iter().map(|n| CpTag { id: None, name: (*n).into() }).collect();
    CpTag::bulk_save(&db, &mut tags).await.unwrap();
    let guard = Duration::from_secs(60);
    for (what, slow) in [("m", ""), ("ms", "slow")] {
        let mut finished_at = None;
        for waits in 0..600 {
            let tag = format!("{what}{waits}");
            let mut author = CpAuthor { id: None, name: tag.clone() };
            author.save(&db).await.unwrap();
            for i in 0..3 {
                let mut p = CpPost { id: None, author_id: author.id.unwrap(), title: format!("{tag}-p{i}{slow}") };
                p.save(&db).await.unwrap();
                if i != 1 {
                    p.tags().add(&db, [1, 2]).await.unwrap();
                }
            }
            take_events();
            let whole = author_snapshot(&db, &tag).await;
            assert_eq!(whole, 1_000_000 + 3_000 + 4);
            let finished = tokio::time::timeout(guard, cancel_at(waits, author.delete(&db)))
                .await
                .unwrap_or_else(|_| panic!("{what} cancelled at {waits}: hung"))
                .map(|r| r.unwrap())
                .is_some();
            let events = take_events();
            let snap = author_snapshot(&db, &tag).await;
            assert!(snap == whole || snap == 0, "{what} cancelled at {waits}: half applied ({snap}, whole {whole}) after {events:?}");
            if finished {
                assert_eq!(snap, 0);
                let removes = events.iter().filter(|e| e.starts_with("m2m PostRemove")).count();
                assert_eq!(removes, 2, "{events:?}");
                finished_at = Some(waits);
                break;
            }
        }
        let n = finished_at.expect("finished");
        if slow == "slow" {
            assert!(n >= 3, "slow receivers wait: {n}");
        }
    }
    // A panic in a cascaded post's pre_delete, after the first post's PreRemove was sent.
    let mut author = CpAuthor { id: None, name: "pa".into() };
    author.save(&db).await.unwrap();
    for i in 0..3 {
        let title = if i == 2 { "pa-p2-panic".to_string() } else { format!("pa-p{i}") };
        let mut p = CpPost { id: None, author_id: author.id.unwrap(), title };
        p.save(&db).await.unwrap();
        p.tags().add(&db, [1]).await.unwrap();
    }
    let whole = author_snapshot(&db, "pa").await;
    let res = AssertUnwindSafe(author.delete(&db)).catch_unwind().await;
    assert!(res.is_err());
    take_events();
    assert_eq!(author_snapshot(&db, "pa").await, whole);
});

// Keys other than i64 below a cascade: a String key with many-to-many links, an i32 key.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_shelf")]
struct CpShelf {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_book", many_to_many(labels: CpLabel, through = CpBookLabel))]
#[pre_delete(book_pre)]
#[post_delete(book_post, batch)]
struct CpBook {
    #[model(primary_key)]
    isbn: String,
    #[model(foreign_key = CpShelf, on_delete = cascade)]
    shelf_id: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_label")]
struct CpLabel {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_book_label", unique_together(book_isbn, label_id))]
#[m2m_changed(book_labels_changed)]
struct CpBookLabel {
    id: Option<i64>,
    #[model(foreign_key = CpBook, on_delete = cascade)]
    book_isbn: String,
    #[model(foreign_key = CpLabel, on_delete = cascade)]
    label_id: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_bin")]
#[post_delete(bin_post)]
struct CpBin {
    #[model(primary_key)]
    pk: Option<i32>,
    #[model(foreign_key = CpShelf, on_delete = cascade)]
    shelf_id: i64,
}

/// Below an i32 key.
#[derive(Debug, Clone, Model)]
#[model(table = "cp_bin_item")]
#[post_delete(bin_item_post)]
struct CpBinItem {
    id: Option<i64>,
    #[model(foreign_key = CpBin, on_delete = cascade)]
    bin_pk: i32,
}

async fn book_pre(b: &CpBook, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre book {}", b.isbn));
    Ok(())
}
async fn book_post(rows: &[CpBook], _: &mut PostDeleteBatch<'_>) -> Result<()> {
    record(format!(
        "post books {:?}",
        rows.iter().map(|b| b.isbn.clone()).collect::<Vec<_>>()
    ));
    Ok(())
}
async fn book_labels_changed(
    change: &M2mChange<'_, CpBook, CpLabel>,
    _: &mut M2mChanged<'_>,
) -> Result<()> {
    let mut pairs = change.pairs();
    pairs.sort();
    record(format!(
        "m2m {:?} reverse={} {pairs:?}",
        change.action(),
        change.reverse()
    ));
    Ok(())
}
async fn bin_post(b: &CpBin, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post bin {}", b.pk.unwrap()));
    Ok(())
}
async fn bin_item_post(b: &CpBinItem, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post bin item {} of {}", b.id.unwrap(), b.bin_pk));
    Ok(())
}

db_test!(async fn cp_cascade_through_string_and_i32_keys(db) {
    create_tables(&db, "
CREATE TABLE cp_shelf (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_book (isbn {varchar} PRIMARY KEY, shelf_id {bigint} NOT NULL);
CREATE TABLE cp_label (id {pk}, name {varchar} NOT NULL);
CREATE TABLE cp_book_label (id {pk}, book_isbn {varchar} NOT NULL, label_id {bigint} NOT NULL);
CREATE TABLE cp_bin (pk {pk}, shelf_id {bigint} NOT NULL);
CREATE TABLE cp_bin_item (id {pk}, bin_pk {bigint} NOT NULL)").await;
    let mut out = Vec::new();
    let mut shelves: Vec<CpShelf> = ["s1", "s2"].iter().map(|n| CpShelf { id: None, name: (*n).into() }).collect();
    CpShelf::bulk_save(&db, &mut shelves).await.unwrap();
    let mut labels: Vec<CpLabel> = ["l1", "l2"].iter().map(|n| CpLabel { id: None, name: (*n).into() }).collect();
    CpLabel::bulk_save(&db, &mut labels).await.unwrap();
    for (isbn, shelf, links) in [("b-1", 1, vec![1, 2]), ("b-2", 1, vec![]), ("b-3", 1, vec![2]), ("b-4", 2, vec![1])] {
        let mut b = CpBook { isbn: isbn.into(), shelf_id: shelf };
        b.save(&db).await.unwrap();
        if !links.is_empty() {
            b.labels().add(&db, links).await.unwrap();
        }
    }
    for shelf in [1, 1, 2] {
        let mut bin = CpBin { pk: None, shelf_id: shelf };
        bin.save(&db).await.unwrap();
        CpBinItem { id: None, bin_pk: bin.pk.unwrap() }.save(&db).await.unwrap();
    }
    take_events();
    let (res, fired) = record_signals(shelves[0].delete(&db)).await;
    let deleted = res.unwrap();
    let ev = take_events();
    out.push(format!("shelf: {:?}", deleted.per_model()));
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired));
    assert_eq!(sorted(deleted.per_model()), [("CpBin", 2), ("CpBinItem", 2), ("CpBook", 3), ("CpBookLabel", 3), ("CpShelf", 1)]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("m2m PreRemove")).count(), 2, "{ev:#?}");
    assert_eq!(ev.iter().filter(|e| e.starts_with("m2m PostRemove")).count(), 2, "{ev:#?}");
    assert!(ev.contains(&r#"m2m PostRemove reverse=false [("b-1", 1), ("b-1", 2)]"#.to_string()), "{ev:#?}");
    assert!(pos(&ev, "post bin item 1 of 1") < pos(&ev, "post bin 1"), "{ev:#?}");
    // Per row (the books have links), the batch receiver gets batches of one.
    assert_eq!(ev.iter().filter(|e| e.starts_with("post books")).count(), 3, "{ev:#?}");
    assert_eq!(count(&db, "cp_book").await, 1);
    assert_eq!(count(&db, "cp_book_label").await, 1);
    assert_eq!(count(&db, "cp_bin_item").await, 1);
    // The other shelf by a query delete; the labels' other side by bulk_delete.
    let deleted = CpShelf::query().delete(&db).await.unwrap();
    out.push(format!("query: {:?}", deleted.per_model()));
    out.extend(take_events());
    assert_eq!(count(&db, "cp_book").await + count(&db, "cp_bin").await + count(&db, "cp_bin_item").await + count(&db, "cp_book_label").await, 0);
    dump(&db, "keys", &out);
});

// Muting inside a cascade (models of this probe alone; muting is process-wide, so it runs on
// SQLite only, while the other backends' runs of it do nothing).
#[derive(Debug, Clone, Model)]
#[model(table = "cp_house")]
#[post_delete(house_post)]
struct CpHouse {
    id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "cp_room")]
#[pre_delete(room_pre, batch)]
#[pre_delete(room_pre_each)]
#[post_delete(room_post)]
struct CpRoom {
    id: Option<i64>,
    #[model(foreign_key = CpHouse, on_delete = cascade)]
    house_id: i64,
}

async fn house_post(h: &CpHouse, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post house {}", h.id.unwrap()));
    Ok(())
}
async fn room_pre(rows: &[CpRoom], _: &mut PreDeleteBatch<'_>) -> Result<()> {
    record(format!("pre rooms {}", rows.len()));
    Ok(())
}
async fn room_pre_each(r: &CpRoom, _: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre room {}", r.id.unwrap()));
    Ok(())
}
async fn room_post(r: &CpRoom, _: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post room {}", r.id.unwrap()));
    Ok(())
}

db_test!(async fn cp_muted_receivers_in_a_cascade(db) {
    if db.backend() != signals_core::Backend::Sqlite {
        return;
    }
    exec_ddl(&db).await;
    let mut out = Vec::new();
    let mut houses: Vec<CpHouse> = (0..3).map(|_| CpHouse { id: None }).collect();
    CpHouse::bulk_save(&db, &mut houses).await.unwrap();
    for h in &houses {
        let mut rooms: Vec<CpRoom> = (0..1200).map(|_| CpRoom { id: None, house_id: h.id.unwrap() }).collect();
        CpRoom::bulk_save(&db, &mut rooms).await.unwrap();
    }
    take_events();
    // One receiver muted.
    let (res, fired) = record_signals(async {
        let _m = signals_core::mute_receiver::<CpRoom>("room_pre_each");
        houses[0].delete(&db).await
    })
    .await;
    res.unwrap();
    let ev = take_events();
    out.push("one muted".into());
    out.extend(ev.iter().filter(|e| !e.starts_with("post room")).cloned());
    let pre: Vec<_> = fired.iter().filter(|f| f.model == "CpRoom" && f.signal == SignalKind::PreDelete).collect();
    assert_eq!(pre.len(), 1200);
    assert!(pre.iter().all(|f| f.receivers == ["room_pre"]), "{:?}", pre[0]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("pre room ")).count(), 0);
    assert_eq!(ev.iter().filter(|e| e.starts_with("pre rooms")).cloned().collect::<Vec<_>>(), ["pre rooms 1000", "pre rooms 200"]);
    assert_eq!(ev.iter().filter(|e| e.starts_with("post room")).count(), 1200);
    // The whole model muted: recorded with no receivers, none called.
    let (res, fired) = record_signals(async {
        let _m = signals_core::mute::<CpRoom>();
        CpHouse::bulk_delete(&db, &mut houses[1..]).await
    })
    .await;
    res.unwrap();
    let ev = take_events();
    out.push("model muted".into());
    out.extend(ev.iter().cloned());
    out.extend(fired_lines(&fired).into_iter().filter(|l| !l.contains("CpRoom")));
    let rooms: Vec<_> = fired.iter().filter(|f| f.model == "CpRoom").collect();
    out.push(format!("room signals recorded: {}", rooms.len()));
    assert!(rooms.iter().all(|f| f.receivers.is_empty()));
    assert!(ev.iter().all(|e| !e.contains("room")), "{ev:?}");
    assert_eq!(count(&db, "cp_room").await, 0);
    dump(&db, "muted", &out);
});

async fn exec_ddl(db: &Db) {
    create_tables(db, "CREATE TABLE cp_house (id {pk}); CREATE TABLE cp_room (id {pk}, house_id {bigint} NOT NULL)").await;
}
