//! Hostile probes of the new query features: case-insensitive lookups and orders, raw SQL,
//! get_or_create / update_or_create, streams and locks. Each probe collects every mismatch
//! and fails once with all of them.

use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use signals_core::{Backend, Db, Model};
use signals_tests::{db_test, scalar};

fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn report(fails: Vec<String>) {
    assert!(
        fails.is_empty(),
        "{} failure(s):\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_word")]
struct Word {
    id: Option<i64>,
    #[model(max_length = 255)]
    text: String,
    #[model(max_length = 255)]
    note: Option<String>,
}

fn hostile_words(backend: Backend) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = vec![
        ("%".into(), None),
        ("_".into(), Some("x".into())),
        ("!".into(), Some("!".into())),
        ("!!".into(), None),
        ("a!b".into(), Some("A!B".into())),
        ("a!%b".into(), Some("%".into())),
        ("a!_b".into(), Some("_".into())),
        ("a%b".into(), None),
        ("aXb".into(), Some("AxB".into())),
        ("\\".into(), Some("\\\\".into())),
        ("\\%".into(), None),
        ("\\_".into(), Some("".into())),
        ("a\\b".into(), Some("a\\\\b".into())),
        ("'".into(), Some("''".into())),
        ("it's".into(), Some("IT'S".into())),
        ("\"q\"".into(), None),
        ("😀Rust".into(), Some("😀rust".into())),
        ("rust😀".into(), None),
        ("".into(), Some("".into())),
        (" ".into(), Some(" ".into())),
        ("a ".into(), Some("A".into())),
        ("A".into(), Some("a ".into())),
        ("ß".into(), Some("SS".into())),
        ("Ǳ".into(), Some("ǳ".into())),
        ("[a]".into(), Some("^$.*".into())),
        ("x".repeat(250), Some("X".repeat(250))),
    ];
    if backend != Backend::Postgres {
        v.push(("a\0b".into(), Some("A\0B".into())));
        v.push(("\0".into(), None));
    }
    v
}

fn needles() -> Vec<String> {
    let mut n: Vec<String> = [
        "%", "_", "!", "!!", "!%", "!_", "a!b", "A!B", "a!%b", "a%b", "a_b", "\\", "\\%", "\\_",
        "\\\\", "a\\b", "'", "''", "IT'S", "\"", "😀", "😀RUST", "", " ", "a ", "A", "ß", "ss",
        "ǳ", "[a]", "^", ".*", "\0", "a\0b", "A\0", "\0B",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    n.push("X".repeat(250));
    n.push("x".repeat(251));
    n.push("x".repeat(2000));
    n
}

db_test!(async fn qb_lookups_hostile(db) {
    db.create_tables::<Word>().await.unwrap();
    let backend = db.backend();
    let words = hostile_words(backend);
    for (text, note) in &words {
        Word { id: None, text: text.clone(), note: note.clone() }.save(&db).await.unwrap();
    }
    let mut fails = Vec::new();
    for needle in needles() {
        let n = fold(&needle);
        type Oracle = Box<dyn Fn(&str, &str) -> bool>;
        let ops: Vec<(&str, Oracle)> = vec![
            ("iexact", Box::new(|w: &str, n: &str| fold(w) == n)),
            ("icontains", Box::new(|w: &str, n: &str| fold(w).contains(n))),
            ("istartswith", Box::new(|w: &str, n: &str| fold(w).starts_with(n))),
            ("iendswith", Box::new(|w: &str, n: &str| fold(w).ends_with(n))),
        ];
        for (name, oracle) in ops {
            let mk_t = |s: &str| match name {
                "iexact" => Word::TEXT.iexact(s),
                "icontains" => Word::TEXT.icontains(s),
                "istartswith" => Word::TEXT.istartswith(s),
                _ => Word::TEXT.iendswith(s),
            };
            let mk_n = |s: &str| match name {
                "iexact" => Word::NOTE.iexact(s),
                "icontains" => Word::NOTE.icontains(s),
                "istartswith" => Word::NOTE.istartswith(s),
                _ => Word::NOTE.iendswith(s),
            };
            // text matches, on the non-null column
            let want: Vec<String> = {
                let mut w: Vec<String> = words.iter().filter(|(t, _)| oracle(t, &n)).map(|(t, _)| t.clone()).collect();
                w.sort();
                w
            };
            match Word::query().filter(mk_t(&needle)).all(&db).await {
                Ok(rows) => {
                    let mut got: Vec<String> = rows.into_iter().map(|w| w.text).collect();
                    got.sort();
                    if got != want {
                        fails.push(format!("{backend} {name}({needle:?}) on text: got {got:?} want {want:?}"));
                    }
                }
                Err(e) => fails.push(format!("{backend} {name}({needle:?}) on text: error {e}")),
            }
            // negation on the nullable column: SQL three-valued logic, NULL excluded both ways
            let want_not: Vec<String> = {
                let mut w: Vec<String> = words
                    .iter()
                    .filter(|(_, note)| note.as_deref().is_some_and(|x| !oracle(x, &n)))
                    .map(|(t, _)| t.clone())
                    .collect();
                w.sort();
                w
            };
            match Word::query().filter(!mk_n(&needle)).all(&db).await {
                Ok(rows) => {
                    let mut got: Vec<String> = rows.into_iter().map(|w| w.text).collect();
                    got.sort();
                    if got != want_not {
                        fails.push(format!("{backend} !{name}({needle:?}) on note: got {got:?} want {want_not:?}"));
                    }
                }
                Err(e) => fails.push(format!("{backend} !{name}({needle:?}) on note: error {e}")),
            }
            // | and & combos with NULLs
            let want_or: Vec<String> = {
                let mut w: Vec<String> = words
                    .iter()
                    .filter(|(t, note)| oracle(t, &n) || note.as_deref().is_some_and(|x| oracle(x, &n)))
                    .map(|(t, _)| t.clone())
                    .collect();
                w.sort();
                w
            };
            match Word::query().filter(mk_t(&needle) | mk_n(&needle)).all(&db).await {
                Ok(rows) => {
                    let mut got: Vec<String> = rows.into_iter().map(|w| w.text).collect();
                    got.sort();
                    if got != want_or {
                        fails.push(format!("{backend} {name}({needle:?}) text|note: got {got:?} want {want_or:?}"));
                    }
                }
                Err(e) => fails.push(format!("{backend} {name}({needle:?}) text|note: error {e}")),
            }
            let want_and_not: Vec<String> = {
                let mut w: Vec<String> = words
                    .iter()
                    // NOT(t AND n): true if either is definitely false
                    .filter(|(t, note)| !oracle(t, &n) || note.as_deref().is_some_and(|x| !oracle(x, &n)))
                    .map(|(t, _)| t.clone())
                    .collect();
                w.sort();
                w
            };
            match Word::query().filter(!(mk_t(&needle) & mk_n(&needle))).all(&db).await {
                Ok(rows) => {
                    let mut got: Vec<String> = rows.into_iter().map(|w| w.text).collect();
                    got.sort();
                    if got != want_and_not {
                        fails.push(format!("{backend} !({name}({needle:?}) text&note): got {got:?} want {want_and_not:?}"));
                    }
                }
                Err(e) => fails.push(format!("{backend} !({name}({needle:?}) text&note): error {e}")),
            }
        }
    }
    // Orders: every text once, by code points.
    let mut all: Vec<String> = words.iter().map(|(t, _)| t.clone()).collect();
    all.sort();
    let got: Vec<String> = Word::query().order_by(Word::TEXT.asc_binary()).all(&db).await.unwrap().into_iter().map(|w| w.text).collect();
    if got != all {
        fails.push(format!("{backend} asc_binary: got {got:?} want {all:?}"));
    }
    let mut want = all.clone();
    want.sort_by(|a, b| fold(a).cmp(&fold(b)).then(a.cmp(b)));
    let got: Vec<String> = Word::query().order_by(Word::TEXT.asc_ignoring_case()).all(&db).await.unwrap().into_iter().map(|w| w.text).collect();
    if got != want {
        fails.push(format!("{backend} asc_ignoring_case: got {got:?} want {want:?}"));
    }
    report(fails);
});

db_test!(async fn qb_order_nulls(db) {
    db.create_tables::<Word>().await.unwrap();
    let backend = db.backend();
    for (t, n) in [("1", Some("b")), ("2", None), ("3", Some("A")), ("4", None), ("5", Some("a"))] {
        Word { id: None, text: t.into(), note: n.map(Into::into) }.save(&db).await.unwrap();
    }
    let mut fails = Vec::new();
    let ids = |rows: Vec<Word>| rows.into_iter().map(|w| w.text).collect::<Vec<_>>().join(",");
    let plain_asc = ids(Word::query().order_by(Word::NOTE.asc()).order_by(Word::TEXT.asc()).all(&db).await.unwrap());
    let ci_asc = ids(Word::query().order_by(Word::NOTE.asc_ignoring_case()).order_by(Word::TEXT.asc()).all(&db).await.unwrap());
    let ci_desc = ids(Word::query().order_by(Word::NOTE.desc_ignoring_case()).order_by(Word::TEXT.asc()).all(&db).await.unwrap());
    let bin_asc = ids(Word::query().order_by(Word::NOTE.asc_binary()).order_by(Word::TEXT.asc()).all(&db).await.unwrap());
    let bin_desc = ids(Word::query().order_by(Word::NOTE.desc_binary()).order_by(Word::TEXT.asc()).all(&db).await.unwrap());
    // SQLite / MySQL put NULL first ascending; the orderings meant to be the same on all
    // three do so on PostgreSQL too. Plain `asc()` follows each database (PostgreSQL puts
    // NULLs last), as documented.
    let plain_want = if backend == Backend::Postgres { "3,5,1,2,4" } else { "2,4,3,5,1" };
    for (what, got, want) in [
        ("asc", plain_asc, plain_want),
        ("asc_ignoring_case", ci_asc, "2,4,3,5,1"),
        ("desc_ignoring_case", ci_desc, "1,5,3,2,4"),
        ("asc_binary", bin_asc, "2,4,3,5,1"),
        ("desc_binary", bin_desc, "1,5,3,2,4"),
    ] {
        if got != want {
            fails.push(format!("{backend} order by note {what}: got {got} want {want} (sqlite/mysql order)"));
        }
    }
    report(fails);
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_post")]
struct Post {
    id: Option<i64>,
    #[model(max_length = 100)]
    title: String,
    views: i64,
}

async fn raw_count(db: &Db, sql: &str, binds: &[i64]) -> Result<usize, String> {
    let mut raw = Post::raw(sql);
    for b in binds {
        raw = raw.bind(*b);
    }
    raw.all(db)
        .await
        .map(|v| v.len())
        .map_err(|e| e.to_string())
}

db_test!(async fn qb_raw_quoting(db) {
    db.create_tables::<Post>().await.unwrap();
    let backend = db.backend();
    for (title, views) in [("a", 5), ("b?", 50), ("?", 70), ("it's ?", 7)] {
        Post { id: None, title: title.into(), views }.save(&db).await.unwrap();
    }
    let mut fails = Vec::new();
    let mut case = async |what: &str, sql: &str, binds: &[i64], want: usize| {
        match raw_count(&db, sql, binds).await {
            Ok(n) if n == want => {}
            Ok(n) => fails.push(format!("{backend} {what}: {sql:?} got {n} rows, want {want}")),
            Err(e) => fails.push(format!("{backend} {what}: {sql:?} error {e}")),
        }
    };
    case("comment at end, no newline", "SELECT * FROM qb_post WHERE views > ? -- trailing ?", &[10], 2).await;
    case("block comment at end unterminated?", "SELECT * FROM qb_post WHERE views > ? /* ? */", &[10], 2).await;
    case("doubled quote", "SELECT * FROM qb_post WHERE title <> 'it''s ?' AND views > ?", &[1], 3).await;
    case("question in double-quoted ident alias", "SELECT id AS \"x?\", id, title, views FROM qb_post WHERE views > ?", &[10], 2).await;
    match backend {
        Backend::Postgres => {
            case("dollar quoted", "SELECT * FROM qb_post WHERE title <> $$?$$ AND views > ?", &[10], 1).await;
            case("tagged dollar quoted", "SELECT * FROM qb_post WHERE title <> $t$it's ?$t$ AND views > ?", &[1], 3).await;
            case("E-string backslash quote", "SELECT * FROM qb_post WHERE title <> E'it\\'s ?' AND views > ?", &[1], 3).await;
            case("nested block comment", "SELECT * FROM qb_post /* a /* b */ ? */ WHERE views > ?", &[10], 2).await;
            case("?? jsonb operator", "SELECT * FROM qb_post WHERE '{\"a\":1}'::jsonb ?? 'a' AND views > ?", &[10], 2).await;
            case("?? inside quotes stays", "SELECT * FROM qb_post WHERE title <> '??' AND views > ?", &[10], 2).await;
        }
        Backend::MySql => {
            case("backslash-escaped quote", "SELECT * FROM qb_post WHERE title <> 'it\\'s ?' AND views > ?", &[1], 3).await;
            case("hash comment", "SELECT * FROM qb_post WHERE views > ? # ?\n", &[10], 2).await;
            case("backslash in double quoted string", "SELECT * FROM qb_post WHERE title <> \"it\\\"s ?\" AND views > ?", &[1], 4).await;
        }
        _ => {
            case("?? on sqlite", "SELECT * FROM qb_post WHERE title <> '??' AND views > ?", &[10], 2).await;
            case("bracket ident", "SELECT id, [title?] AS title, views FROM (SELECT id, title AS [title?], views FROM qb_post) WHERE views > ?", &[10], 2).await;
        }
    }
    // too many / too few binds: an error, before anything runs
    if raw_count(&db, "SELECT * FROM qb_post WHERE views > ?", &[1, 2]).await.is_ok() {
        fails.push(format!("{backend} too many binds accepted"));
    }
    if raw_count(&db, "SELECT * FROM qb_post WHERE views > ? AND views < ?", &[1]).await.is_ok() {
        fails.push(format!("{backend} too few binds accepted"));
    }
    // wrong types: text bound to an integer comparison; the pool stays usable.
    let r = Post::raw("SELECT * FROM qb_post WHERE views > ?").bind("ten".to_owned()).all(&db).await;
    let _ = r; // any outcome, but no panic / poisoned pool
    let r = Post::raw("SELECT id, views AS title, title AS views FROM qb_post").all(&db).await;
    if r.is_ok() && backend == Backend::Postgres {
        fails.push(format!("{backend} swapped column types accepted: {r:?}"));
    }
    if Post::query().count(&db).await.unwrap() != 4 {
        fails.push(format!("{backend} pool unusable after wrong types"));
    }
    report(fails);
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_tag")]
struct Tag {
    id: Option<i64>,
    #[model(unique, max_length = 50)]
    name: String,
    uses: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_free")]
struct Free {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
    uses: i64,
}

db_test!(async fn qb_get_or_create_mismatch(db) {
    db.create_tables::<(Tag, Free)>().await.unwrap();
    let backend = db.backend();
    let mut fails = Vec::new();
    let other = || Tag { id: None, name: "other".into(), uses: 0 };
    let r1 = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&db, other).await;
    let r2 = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&db, other).await;
    match (&r1, &r2) {
        (Ok((_, true)), Err(e)) => {
            eprintln!("{backend} make-mismatch 2nd call: {e} kind {:?}", e.kind());
        }
        _ => fails.push(format!("{backend} make mismatch: r1 {r1:?} r2 {r2:?}")),
    }
    // inside a transaction: the error must leave the transaction usable
    let mut tx = db.begin().await.unwrap();
    let r3 = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&mut tx, other).await;
    if r3.is_ok() {
        fails.push(format!("{backend} mismatch in tx ok: {r3:?}"));
    }
    if let Err(e) = (Tag { id: None, name: "after".into(), uses: 0 }).save(&mut tx).await {
        fails.push(format!("{backend} tx unusable after failed get_or_create: {e}"));
    }
    if let Err(e) = tx.commit().await {
        fails.push(format!("{backend} commit after failed get_or_create: {e}"));
    }
    let r4 = Tag::query().filter(Tag::NAME.eq("rust")).update_or_create(&db, other, |t| t.uses += 1).await;
    if r4.is_ok() {
        fails.push(format!("{backend} update_or_create mismatch ok: {r4:?}"));
    }
    // A filter matching none of a made row's values, no unique: one row per call (documented).
    for _ in 0..3 {
        Free::query().filter(Free::NAME.eq("x")).get_or_create(&db, || Free { id: None, name: "x".into(), uses: 0 }).await.unwrap();
    }
    let n = scalar(&db, "SELECT COUNT(*) FROM qb_free").await;
    if n != 1 {
        fails.push(format!("{backend} no-unique sequential get_or_create made {n} rows"));
    }
    // update changing the looked-up key, so the next lookup misses
    let (t, c) = Tag::query().filter(Tag::NAME.eq("k")).update_or_create(&db, || Tag { id: None, name: "k".into(), uses: 0 }, |t| t.name = "k2".into()).await.unwrap();
    eprintln!("{backend} update renaming key: {t:?} {c}");
    // empty-string and hostile-text keys
    for name in ["", "%", "it's", "😀", "K"] {
        let mk = || Tag { id: None, name: name.into(), uses: 0 };
        let a = Tag::query().filter(Tag::NAME.eq(name)).get_or_create(&db, mk).await;
        let b = Tag::query().filter(Tag::NAME.eq(name)).get_or_create(&db, mk).await;
        match (&a, &b) {
            (Ok((x, true)), Ok((y, false))) if x.id == y.id => {}
            _ => fails.push(format!("{backend} get_or_create({name:?}): {a:?} / {b:?}")),
        }
    }
    // iexact lookup with a case-insensitive MySQL unique column: "k" vs "K" both created above
    report(fails);
});

db_test!(async fn qb_or_create_cancelled_in_tx(db) {
    db.create_tables::<Tag>().await.unwrap();
    let backend = db.backend();
    if backend == Backend::MySql {
        // A MySQL statement cancelled midway gives its transaction up, by design (the
        // transaction says so: `ErrorKind::Transaction`); nothing to reuse.
        return;
    }
    let mut fails = Vec::new();
    let mk = |n: &'static str| move || Tag { id: None, name: n.into(), uses: 0 };
    for micros in [1_u64, 10, 50, 100, 200, 500, 1_000, 2_000, 5_000, 20_000] {
        // get_or_create
        let mut tx = db.begin().await.unwrap();
        Tag { id: None, name: format!("keep{micros}"), uses: 0 }.save(&mut tx).await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_micros(micros),
            Tag::query().filter(Tag::NAME.eq("g")).get_or_create(&mut tx, mk("g")),
        )
        .await;
        let timed_out = r.is_err();
        let r2 = Tag::query().filter(Tag::NAME.eq("g")).get_or_create(&mut tx, mk("g")).await;
        match &r2 {
            Ok(_) => {}
            Err(e) => fails.push(format!("{backend} {micros}us goc reuse (timed_out {timed_out}): {e}")),
        }
        let r3 = Tag::query().filter(Tag::NAME.eq("u")).update_or_create(&mut tx, mk("u"), |t| t.uses += 1);
        let r3 = tokio::time::timeout(Duration::from_micros(micros), r3).await;
        let u_timed_out = r3.is_err();
        let after = Tag::query().filter(Tag::NAME.eq("u")).update_or_create(&mut tx, mk("u"), |t| t.uses += 1).await;
        if let Err(e) = &after {
            fails.push(format!("{backend} {micros}us uoc reuse (timed_out {u_timed_out}): {e}"));
        }
        match tx.rollback().await {
            Ok(()) => {}
            Err(e) => fails.push(format!("{backend} {micros}us rollback: {e}")),
        }
        let n = Tag::query().count(&db).await;
        if n.as_ref().ok() != Some(&0) {
            fails.push(format!("{backend} {micros}us rows after rollback: {n:?}"));
        }
        // and committed: exactly the rows asked for, uses counted once per finished call
        let mut tx = db.begin().await.unwrap();
        let r = tokio::time::timeout(
            Duration::from_micros(micros),
            Tag::query().filter(Tag::NAME.eq("u")).update_or_create(&mut tx, mk("u"), |t| t.uses += 1),
        )
        .await;
        let done = matches!(r, Ok(Ok(_)));
        let after = Tag::query().filter(Tag::NAME.eq("u")).update_or_create(&mut tx, mk("u"), |t| t.uses += 1).await;
        if let Err(e) = tx.commit().await {
            fails.push(format!("{backend} {micros}us commit: {e}"));
        }
        let rows = Tag::query().all(&db).await.unwrap();
        // A call cancelled while its savepoint's RELEASE was on the wire is completed by the
        // transaction's next use (savepoint.rs): timed out, it may have taken effect.
        let allowed: &[i64] = if done { &[2] } else { &[1, 2] };
        if rows.len() != 1 || !allowed.contains(&rows[0].uses) {
            fails.push(format!("{backend} {micros}us committed: {rows:?} (first call done {done}, second {after:?})"));
        }
        Tag::query().delete(&db).await.unwrap();
    }
    // on the pool, cancelled: the pool stays usable
    for micros in [1_u64, 50, 200, 1_000, 5_000] {
        let _ = tokio::time::timeout(
            Duration::from_micros(micros),
            Tag::query().filter(Tag::NAME.eq("p")).update_or_create(&db, mk("p"), |t| t.uses += 1),
        )
        .await;
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            Tag::query().filter(Tag::NAME.eq("p")).update_or_create(&db, mk("p"), |t| t.uses += 1),
        )
        .await;
        if !matches!(r, Ok(Ok(_))) {
            fails.push(format!("{backend} pool {micros}us uoc after cancel: {r:?}"));
        }
    }
    report(fails);
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_skey")]
struct SKey {
    #[model(primary_key, max_length = 100)]
    code: String,
    n: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb_ukey")]
struct UKey {
    id: uuid::Uuid,
    n: i64,
}

db_test!(async fn qb_stream_keys(db) {
    db.create_tables::<(SKey, UKey)>().await.unwrap();
    let backend = db.backend();
    let mut fails = Vec::new();
    let codes = ["a", "B", "b ", "c", "C1", "é", "E", "z", "Z9", "😀", "_", "%", "!", "10", "9", "-"];
    for (i, c) in codes.iter().enumerate() {
        if let Err(e) = (SKey { code: (*c).into(), n: i as i64 }).save(&db).await {
            fails.push(format!("{backend} save {c:?}: {e}"));
        }
    }
    let all = SKey::query().all(&db).await.unwrap();
    for chunk in [0_u64, 1, 2, 3, 100] {
        let got: Result<Vec<SKey>, _> = SKey::query().stream(&db, chunk).try_collect().await;
        match got {
            Ok(got) => {
                let mut a: Vec<String> = got.iter().map(|s| s.code.clone()).collect();
                let mut b: Vec<String> = all.iter().map(|s| s.code.clone()).collect();
                let n = a.len();
                a.sort();
                a.dedup();
                b.sort();
                if a != b || n != b.len() {
                    fails.push(format!("{backend} string-key stream chunk {chunk}: {n} rows, distinct {a:?} vs {b:?}"));
                }
            }
            Err(e) => fails.push(format!("{backend} string-key stream chunk {chunk}: {e}")),
        }
    }
    // with an OR filter and a NOT: the key condition must not bind to only one side
    let got: Vec<SKey> = SKey::query().filter(SKey::N.eq(0) | SKey::N.eq(1) | SKey::N.eq(2)).stream(&db, 1).try_collect().await.unwrap();
    if got.len() != 3 {
        fails.push(format!("{backend} OR-filter stream chunk 1: {} rows", got.len()));
    }
    let got: Vec<SKey> = SKey::query().filter(!SKey::N.gt(2)).stream(&db, 1).try_collect().await.unwrap();
    if got.len() != 3 {
        fails.push(format!("{backend} NOT-filter stream chunk 1: {} rows", got.len()));
    }
    // uuid keys
    let mut uk: Vec<UKey> = (0..50).map(|i| UKey { id: uuid::Uuid::new_v4(), n: i }).collect();
    uk.push(UKey { id: uuid::Uuid::nil(), n: 99 });
    uk.push(UKey { id: uuid::Uuid::max(), n: 100 });
    for u in &mut uk {
        u.save(&db).await.unwrap();
    }
    for chunk in [1_u64, 7, 52, 53] {
        let got: Result<Vec<UKey>, _> = UKey::query().stream(&db, chunk).try_collect().await;
        match got {
            Ok(got) => {
                let mut ids: Vec<_> = got.iter().map(|u| u.id).collect();
                let n = ids.len();
                ids.sort();
                ids.dedup();
                if n != 52 || ids.len() != 52 {
                    fails.push(format!("{backend} uuid stream chunk {chunk}: {n} rows ({} distinct)", ids.len()));
                }
            }
            Err(e) => fails.push(format!("{backend} uuid stream chunk {chunk}: {e}")),
        }
    }
    // deleting rows while streaming: the current row and the next ones
    {
        let mut s = std::pin::pin!(UKey::query().stream(&db, 5));
        let mut seen = Vec::new();
        while let Some(u) = s.try_next().await.unwrap() {
            UKey::query().filter(UKey::ID.eq(u.id)).delete(&db).await.unwrap();
            seen.push(u.id);
        }
        let mut d = seen.clone();
        d.sort();
        d.dedup();
        if seen.len() != 52 || d.len() != 52 {
            fails.push(format!("{backend} delete-current while streaming: {} seen, {} distinct", seen.len(), d.len()));
        }
    }
    report(fails);
});

db_test!(async fn qb_stream_cancel(db) {
    db.create_tables::<UKey>().await.unwrap();
    let backend = db.backend();
    let mut fails = Vec::new();
    let mut uk: Vec<UKey> = (0..2000).map(|i| UKey { id: uuid::Uuid::new_v4(), n: i }).collect();
    UKey::bulk_save(&db, &mut uk).await.unwrap();
    for micros in [1_u64, 20, 100, 500, 2_000, 10_000] {
        let _ = tokio::time::timeout(Duration::from_micros(micros), async {
            let mut s = std::pin::pin!(UKey::query().stream(&db, 300));
            while let Some(_u) = s.next().await {}
        })
        .await;
        let r = tokio::time::timeout(Duration::from_secs(10), UKey::query().count(&db)).await;
        if !matches!(r, Ok(Ok(2000))) {
            fails.push(format!("{backend} pool after cancelled stream {micros}us: {r:?}"));
        }
        // in a transaction (on MySQL a statement cancelled midway gives the transaction up,
        // by design: there the transaction says so, and a new one works)
        let mut tx = db.begin().await.unwrap();
        let cancelled = tokio::time::timeout(Duration::from_micros(micros), async {
            let mut s = std::pin::pin!(UKey::query().stream(&mut tx, 300));
            while let Some(_u) = s.next().await {}
        })
        .await
        .is_err();
        if backend == Backend::MySql && cancelled {
            let r = UKey::query().count(&mut tx).await;
            if let Err(e) = &r
                && e.kind() == signals_core::ErrorKind::Transaction
            {
                drop(tx);
                continue;
            }
            if let Ok(n) = r
                && n != 2000
            {
                fails.push(format!("{backend} tx after cancelled stream {micros}us: {n}"));
            }
            tx.rollback().await.unwrap();
            continue;
        }
        let r = tokio::time::timeout(Duration::from_secs(10), UKey::query().count(&mut tx)).await;
        if !matches!(r, Ok(Ok(2000))) {
            fails.push(format!("{backend} tx after cancelled stream {micros}us: {r:?}"));
        }
        let w = (UKey { id: uuid::Uuid::new_v4(), n: -1 }).save(&mut tx).await;
        if let Err(e) = w {
            fails.push(format!("{backend} tx write after cancelled stream {micros}us: {e}"));
        }
        tx.rollback().await.unwrap();
    }
    // a write through the pool after everything
    if let Err(e) = (UKey { id: uuid::Uuid::new_v4(), n: -2 }).save(&db).await {
        fails.push(format!("{backend} pool write at end: {e}"));
    }
    report(fails);
});

db_test!(async fn qb_locks(db) {
    db.create_tables::<Tag>().await.unwrap();
    let backend = db.backend();
    let mut fails = Vec::new();
    Tag { id: None, name: "a".into(), uses: 0 }.save(&db).await.unwrap();
    Tag { id: None, name: "b".into(), uses: 0 }.save(&db).await.unwrap();
    // outside a transaction
    for (what, q) in [
        ("for_update", Tag::query().for_update()),
        ("skip_locked", Tag::query().skip_locked()),
        ("nowait", Tag::query().nowait()),
    ] {
        if let Err(e) = q.all(&db).await {
            fails.push(format!("{backend} {what} on pool: {e}"));
        }
    }
    // inside transactions, with other query shapes
    let mut tx = db.begin().await.unwrap();
    for (what, q) in [
        ("for_update", Tag::query().for_update()),
        ("skip_locked", Tag::query().skip_locked().limit(1)),
        ("nowait", Tag::query().nowait().order_by(Tag::NAME.asc_ignoring_case())),
        ("for_update+offset", Tag::query().for_update().offset(1)),
    ] {
        if let Err(e) = q.all(&mut tx).await {
            fails.push(format!("{backend} {what} in tx: {e}"));
        }
    }
    for (what, r) in [
        ("count", Tag::query().for_update().count(&mut tx).await.map(|_| ())),
        ("exists", Tag::query().skip_locked().exists(&mut tx).await.map(|_| ())),
    ] {
        if let Err(e) = r {
            fails.push(format!("{backend} {what} with lock in tx: {e}"));
        }
    }
    let s: Result<Vec<Tag>, _> = Tag::query().skip_locked().stream(&mut tx, 1).try_collect().await;
    if let Err(e) = s {
        fails.push(format!("{backend} stream with skip_locked in tx: {e}"));
    }
    let g = Tag::query().filter(Tag::NAME.eq("c")).nowait().get_or_create(&mut tx, || Tag { id: None, name: "c".into(), uses: 0 }).await;
    if let Err(e) = g {
        fails.push(format!("{backend} get_or_create nowait in tx: {e}"));
    }
    tx.commit().await.unwrap();
    report(fails);
});

db_test!(async fn qb_more(db) {
    db.create_tables::<(Post, Word)>().await.unwrap();
    let backend = db.backend();
    let mut fails = Vec::new();
    for (title, views) in [("a", 5), ("b?", 50), ("it's", 7)] {
        Post { id: None, title: title.into(), views }.save(&db).await.unwrap();
    }
    // columns in another order than the model's
    let r = Post::raw("SELECT views, title, id FROM qb_post WHERE views > ?").bind(1_i64).all(&db).await;
    let want = Post::query().filter(Post::VIEWS.gt(1)).all(&db).await.unwrap();
    if r.as_ref().ok() != Some(&want) {
        fails.push(format!("{backend} raw with reordered select list: {r:?}, want {want:?}"));
    }
    // a quoted string whose quote is escaped with a backslash (MySQL) / E'' (PostgreSQL)
    let sql = match backend {
        Backend::MySql => Some("SELECT * FROM qb_post WHERE title <> 'it\\'s' AND views > ?"),
        Backend::Postgres => Some("SELECT * FROM qb_post WHERE title <> E'it\\'s' AND views > ?"),
        _ => None,
    };
    if let Some(sql) = sql {
        let r = Post::raw(sql).bind(1_i64).all(&db).await;
        if r.as_ref().map(|v| v.len()).ok() != Some(2) {
            fails.push(format!("{backend} raw {sql:?}: {r:?}"));
        }
    }
    // case-sensitive starts_with / ends_with negated on an empty string (SQLite substr of x'')
    Word { id: None, text: "".into(), note: Some("".into()) }.save(&db).await.unwrap();
    Word { id: None, text: "b".into(), note: Some("b".into()) }.save(&db).await.unwrap();
    for (what, f) in [
        ("!starts_with", !Word::TEXT.starts_with("a")),
        ("!ends_with", !Word::TEXT.ends_with("a")),
        ("!istartswith", !Word::TEXT.istartswith("a")),
        ("!iendswith", !Word::TEXT.iendswith("a")),
        ("!contains", !Word::TEXT.contains("a")),
        ("!iexact", !Word::TEXT.iexact("a")),
    ] {
        let n = Word::query().filter(f).count(&db).await.unwrap();
        if n != 2 {
            fails.push(format!("{backend} {what}(\"a\") over [\"\", \"b\"]: {n} rows, want 2"));
        }
    }
    // raw first() over many rows without LIMIT, then the pool
    let mut many: Vec<Post> = (0..3000).map(|i| Post { id: None, title: format!("t{i}"), views: i }).collect();
    Post::bulk_save(&db, &mut many).await.unwrap();
    let f = Post::raw("SELECT * FROM qb_post ORDER BY id").first(&db).await;
    if !matches!(f, Ok(Some(_))) {
        fails.push(format!("{backend} raw first: {f:?}"));
    }
    let n = Post::query().count(&db).await;
    if n.as_ref().ok() != Some(&3003) {
        fails.push(format!("{backend} count after raw first: {n:?}"));
    }
    // stream + locks outside and inside transactions
    for (what, q) in [("for_update", Post::query().for_update()), ("nowait", Post::query().nowait())] {
        let mut tx = db.begin().await.unwrap();
        let s: Result<Vec<Post>, _> = q.stream(&mut tx, 1000).try_collect().await;
        if let Err(e) = s {
            fails.push(format!("{backend} stream {what} in tx: {e}"));
        }
        tx.rollback().await.unwrap();
    }
    report(fails);
});
