//! Hostile probes of the query features of issue 29 (relations, orderings through
//! references, select_related / prefetch, aggregates, JSON lookups, bulk_upsert). Each probe
//! collects every mismatch and fails once with all of them; the comment above each says what
//! is expected and why.

use std::sync::Arc;

use futures_util::TryStreamExt as _;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use signals_core::{Db, ErrorKind, Filter, Json, Model, PostSave};
use signals_tests::{another_pool, db_test, scalar};

fn report(fails: Vec<String>) {
    assert!(
        fails.is_empty(),
        "{} failure(s):\n{}",
        fails.len(),
        fails.join("\n")
    );
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_author")]
struct Author {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
    // Same column name as Post's: orderings and conditions must name their own.
    views: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_post", many_to_many(tags: Tag, through = PostTag))]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    #[model(foreign_key = Author, on_delete = set_null)]
    editor_id: Option<i64>,
    #[model(max_length = 100)]
    name: String,
    views: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_tag")]
struct Tag {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_post_tag", unique_together(post_id, tag_id))]
struct PostTag {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = Tag, on_delete = cascade)]
    tag_id: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_comment")]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(max_length = 100)]
    body: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_category")]
struct Category {
    id: Option<i64>,
    #[model(foreign_key = Category, on_delete = cascade)]
    parent_id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

/// ada(1) bob(2) cy(3) dee(4); posts 1..=6; tags rust(1) sql(2) garden(3).
async fn blog(db: &Db) {
    db.create_tables::<(Author, Post, Tag, PostTag, Comment, Category)>()
        .await
        .unwrap();
    let mut authors: Vec<Author> = [("ada", 7), ("bob", 3), ("cy", 9), ("dee", 1)]
        .iter()
        .map(|(n, v)| Author {
            id: None,
            name: (*n).into(),
            views: *v,
        })
        .collect();
    Author::bulk_save(db, &mut authors).await.unwrap();
    let rows: &[(i64, Option<i64>, &str, i64)] = &[
        (1, None, "Engines", 30),
        (1, Some(2), "Notes", 5),
        (2, Some(1), "Gardens", 12),
        (2, None, "Ferns", 12),
        (3, Some(3), "Draft", 0),
        (1, Some(4), "Looms", 44),
    ];
    let mut posts: Vec<Post> = rows
        .iter()
        .map(|(a, e, t, v)| Post {
            id: None,
            author_id: *a,
            editor_id: *e,
            name: (*t).into(),
            views: *v,
        })
        .collect();
    Post::bulk_save(db, &mut posts).await.unwrap();
    let mut tags: Vec<Tag> = ["rust", "sql", "garden"]
        .iter()
        .map(|n| Tag {
            id: None,
            name: (*n).into(),
        })
        .collect();
    Tag::bulk_save(db, &mut tags).await.unwrap();
    for (post, tag) in [(1, 1), (1, 2), (2, 1), (3, 3), (4, 3), (6, 1), (6, 3)] {
        let post = Post::get(db, post).await.unwrap().unwrap();
        post.tags().add(db, [tag]).await.unwrap();
    }
    let mut comments: Vec<Comment> = [
        (1, "great"),
        (1, "more"),
        (3, "lovely"),
        (5, "typo"),
        (6, "great looms"),
    ]
    .iter()
    .map(|(p, b)| Comment {
        id: None,
        post_id: *p,
        body: (*b).into(),
    })
    .collect();
    Comment::bulk_save(db, &mut comments).await.unwrap();
}

fn ids<M: Model<Key = i64>>(rows: &[M]) -> Vec<i64> {
    rows.iter().map(|r| r.__key().copied().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------
// 1. Conditions across relations
// ---------------------------------------------------------------------------------------

// Passing probe: deep nesting, negations, `|`, m2m, self references, count/exists/stream,
// update and delete through relations all agree with what the data says.
db_test!(async fn qb2_relations_mixed_hold(db) {
    blog(&db).await;
    let mut fails = Vec::new();
    let b = db.backend();
    // Comments on posts tagged garden whose author has a post edited by ada.
    let f = || {
        Comment::POST_ID.matches(
            Filter::linked::<PostTag, _>(Tag::NAME.eq("garden"))
                & Post::AUTHOR_ID.matches(Post::AUTHOR_ID.any(Post::EDITOR_ID.matches(Author::NAME.eq("ada")))),
        )
    };
    let got = ids(&Comment::query().filter(f()).all(&db).await.unwrap());
    if got != [3] {
        fails.push(format!("{b} deep: {got:?}"));
    }
    let got = ids(&Comment::query().filter(!f()).all(&db).await.unwrap());
    if got != [1, 2, 4, 5] {
        fails.push(format!("{b} !deep: {got:?}"));
    }
    // Authors with no untagged post and some post (ada: posts 1,2,6 all tagged; bob 3,4 tagged; cy 5 untagged).
    let untagged = || !Filter::<Post>::linked::<PostTag, Tag>(Tag::ID.gt(0));
    let got = ids(&Author::query().filter(Post::AUTHOR_ID.is_referenced() & !Post::AUTHOR_ID.any(untagged())).all(&db).await.unwrap());
    if got != [1, 2] {
        fails.push(format!("{b} no untagged: {got:?}"));
    }
    // count / exists / stream through a relation.
    let q = || Post::query().filter(Post::EDITOR_ID.matches(Author::NAME.ne("ada")) | Post::AUTHOR_ID.matches(Author::VIEWS.gt(8)));
    let n = q().count(&db).await.unwrap();
    // editors bob/cy/dee: posts 2, 5, 6; author cy (views 9): post 5.
    if n != 3 {
        fails.push(format!("{b} count: {n}"));
    }
    if !q().exists(&db).await.unwrap() {
        fails.push(format!("{b} exists false"));
    }
    let streamed: Vec<Post> = q().stream(&db, 1).try_collect().await.unwrap();
    if ids(&streamed) != [2, 5, 6] && ids(&streamed) != ids(&q().all(&db).await.unwrap()) {
        fails.push(format!("{b} stream {:?} vs all {:?}", ids(&streamed), ids(&q().all(&db).await.unwrap())));
    }
    // in_query mixed with EXISTS, same column name `views` on both sides.
    let sub = Post::query().filter(Post::VIEWS.gt(10) & Post::AUTHOR_ID.matches(Author::VIEWS.lt(5))).select(Post::AUTHOR_ID);
    let got = ids(&Author::query().filter(Author::ID.in_query(sub)).all(&db).await.unwrap());
    if got != [2] {
        fails.push(format!("{b} in_query: {got:?}"));
    }
    // Self reference, three levels.
    let mut root = Category { id: None, parent_id: None, name: "root".into() };
    root.save(&db).await.unwrap();
    let mut mid = Category { id: None, parent_id: root.id, name: "mid".into() };
    mid.save(&db).await.unwrap();
    let mut leaf = Category { id: None, parent_id: mid.id, name: "leaf".into() };
    leaf.save(&db).await.unwrap();
    let got = ids(&Category::query().filter(Category::PARENT_ID.matches(Category::PARENT_ID.matches(Category::NAME.eq("root")))).all(&db).await.unwrap());
    if got != [leaf.id.unwrap()] {
        fails.push(format!("{b} grandchild: {got:?}"));
    }
    let got = ids(&Category::query().filter(Category::PARENT_ID.any(Category::PARENT_ID.any(Category::NAME.eq("leaf")))).all(&db).await.unwrap());
    if got != [root.id.unwrap()] {
        fails.push(format!("{b} grandparent: {got:?}"));
    }
    let got = ids(&Category::query().filter(!Category::PARENT_ID.matches(Category::NAME.ne("zzz"))).all(&db).await.unwrap());
    if got != [root.id.unwrap()] {
        fails.push(format!("{b} NULL parent under !: {got:?}"));
    }
    // Update and delete through relations.
    let n = Post::query().filter(Comment::POST_ID.any(Comment::BODY.contains("great"))).update(&db, Post::VIEWS.add(1)).await.unwrap();
    if n != 2 {
        fails.push(format!("{b} update through reverse: {n}"));
    }
    let d = Tag::query().filter(!Filter::linked::<PostTag, _>(Post::AUTHOR_ID.matches(Author::NAME.eq("bob")))).delete(&db).await.unwrap();
    if d.total() < 2 {
        fails.push(format!("{b} delete through m2m: {}", d.total()));
    }
    report(fails);
});

// `Author::ID.in_query(Post::query().select(Post::EDITOR_ID))` negated: "authors who edit
// no post". Expected (plain Rust over the data): the authors whose id is no post's
// editor_id. Posts 1 and 4 have a NULL editor, and `NOT (id IN (SELECT editor_id ...))` is
// NULL for every author when the subquery yields a NULL: the query returns no rows at all
// (the SQL NOT IN trap). Django filters NULLs out of such subqueries.
db_test!(async fn qb2_not_in_query_of_a_nullable_reference(db) {
    blog(&db).await;
    let mut e = Post { id: None, author_id: 1, editor_id: None, name: "x".into(), views: 0 };
    e.save(&db).await.unwrap();
    // Editors are 2, 1, 3, 4: make one author who edits nothing.
    let mut eve = Author { id: None, name: "eve".into(), views: 0 };
    eve.save(&db).await.unwrap();
    let editors = Post::query().select(Post::EDITOR_ID);
    let got = ids(&Author::query().filter(!Author::ID.in_query(editors)).all(&db).await.unwrap());
    assert_eq!(got, [eve.id.unwrap()], "authors who edit no post, on {}", db.backend());
});

// An update whose condition reads the updated table itself (a self reference, and a
// reverse condition that comes back to `Post`). Expected: the matched rows are updated on
// every backend (MySQL refuses `UPDATE t ... WHERE .. IN (SELECT .. FROM t)`, error 1093;
// MariaDB accepts it since 10.3.2).
db_test!(async fn qb2_update_condition_reading_its_own_table(db) {
    blog(&db).await;
    let mut fails = Vec::new();
    let b = db.backend();
    let mut root = Category { id: None, parent_id: None, name: "root".into() };
    root.save(&db).await.unwrap();
    let mut kid = Category { id: None, parent_id: root.id, name: "kid".into() };
    kid.save(&db).await.unwrap();
    match Category::query().filter(Category::PARENT_ID.matches(Category::NAME.eq("root"))).update(&db, Category::NAME.set("child")).await {
        Ok(1) => {}
        other => fails.push(format!("{b} self-reference update: {other:?}")),
    }
    // Posts by an author who has another post with more than 40 views.
    match Post::query()
        .filter(Post::AUTHOR_ID.matches(Post::AUTHOR_ID.any(Post::VIEWS.gt(40))))
        .update(&db, Post::VIEWS.add(1000))
        .await
    {
        Ok(3) => {}
        other => fails.push(format!("{b} update via own table: {other:?}")),
    }
    match Category::query().filter(Category::PARENT_ID.any(Category::NAME.eq("child"))).delete(&db).await {
        Ok(d) if d.total() == 2 => {}
        other => fails.push(format!("{b} self-reference delete (cascade to kid): {other:?}")),
    }
    assert_eq!(Post::query().count(&db).await.unwrap(), 6, "the pool stays usable");
    report(fails);
});

// ---------------------------------------------------------------------------------------
// 2. Orderings through references, select_related, prefetch
// ---------------------------------------------------------------------------------------

// Passing probe: nested `by` on a self reference with windows and counts, select_related on
// a self reference, same column names, for_update in a transaction, prefetch of children.
db_test!(async fn qb2_orderings_and_related_hold(db) {
    blog(&db).await;
    let mut fails = Vec::new();
    let b = db.backend();
    let mut cats = Vec::new();
    // (name, parent index)
    for (name, parent) in [("r2", None), ("r1", None), ("b", Some(0)), ("a", Some(1)), ("z", Some(2)), ("y", Some(3)), ("x", Some(2))] {
        let parent_id = parent.map(|p: usize| cats.iter().map(|c: &Category| c.id.unwrap()).nth(p).unwrap());
        let mut c = Category { id: None, parent_id, name: name.into() };
        c.save(&db).await.unwrap();
        cats.push(c);
    }
    // By grandparent name (NULL first), then own name.
    let q = || Category::query()
        .order_by(Category::PARENT_ID.by(Category::PARENT_ID.by(Category::NAME.asc_binary())))
        .order_by(Category::NAME.asc_binary());
    let all: Vec<String> = q().all(&db).await.unwrap().into_iter().map(|c| c.name).collect();
    // grandparents: r2,r1,b,a -> None; z,x -> r2; y -> r1
    let want = ["a", "b", "r1", "r2", "y", "x", "z"];
    if all != want {
        fails.push(format!("{b} nested by: {all:?}"));
    }
    for (off, lim) in [(0u64, 3u64), (3, 3), (6, 3), (7, 1)] {
        let page: Vec<String> = q().limit(lim).offset(off).all(&db).await.unwrap().into_iter().map(|c| c.name).collect();
        let end = ((off + lim) as usize).min(want.len());
        if page != want[(off as usize).min(want.len())..end] {
            fails.push(format!("{b} page {off},{lim}: {page:?}"));
        }
        let n = q().limit(lim).offset(off).count(&db).await.unwrap();
        if n as usize != end - (off as usize).min(want.len()) {
            fails.push(format!("{b} count page {off},{lim}: {n}"));
        }
    }
    let rows = q().select_related(Category::PARENT_ID).all(&db).await.unwrap();
    let got: Vec<(String, Option<String>)> = rows.into_iter().map(|(c, p)| (c.name, p.map(|p| p.name))).collect();
    if got[0] != ("a".into(), Some("r1".into())) || got[3] != ("r2".into(), None) {
        fails.push(format!("{b} select_related self: {got:?}"));
    }
    // Same column `views` on both: order by the author's views, then the post's.
    let got = ids(&Post::query().order_by(Post::AUTHOR_ID.by(Author::VIEWS.desc())).order_by(Post::VIEWS.asc()).order_by(Post::ID.asc()).all(&db).await.unwrap());
    if got != [5, 2, 1, 6, 3, 4] {
        // (3 and 4 tie on both orderings: ordered by id last.)
        fails.push(format!("{b} same column names: {got:?}"));
    }
    // for_update with an ordering through a reference, a window and select_related.
    let mut tx = db.begin().await.unwrap();
    match Post::query()
        .order_by(Post::AUTHOR_ID.by(Author::NAME.desc()))
        .order_by(Post::ID.asc())
        .limit(2)
        .for_update()
        .select_related(Post::AUTHOR_ID)
        .all(&mut tx)
        .await
    {
        Ok(rows) => {
            let got: Vec<(i64, String)> = rows.into_iter().map(|(p, a)| (p.id.unwrap(), a.name)).collect();
            if got != [(5, "cy".to_owned()), (3, "bob".to_owned())] {
                fails.push(format!("{b} for_update window: {got:?}"));
            }
        }
        Err(e) => fails.push(format!("{b} for_update window: {e}")),
    }
    tx.commit().await.unwrap();
    // Plain and grouped values ordered through / filtered by a reference.
    let got: Vec<(String, i64)> = Post::query()
        .order_by(Post::AUTHOR_ID.by(Author::NAME.desc()))
        .order_by(Post::ID.asc())
        .offset(1)
        .limit(3)
        .values((Post::NAME, Post::VIEWS))
        .all(&db)
        .await
        .unwrap();
    if got != [("Gardens".to_owned(), 12), ("Ferns".to_owned(), 12), ("Engines".to_owned(), 30)] {
        fails.push(format!("{b} values through by: {got:?}"));
    }
    let got: Vec<(i64, Option<i64>, i64)> = Post::query()
        .filter(Post::AUTHOR_ID.matches(Author::VIEWS.gt(2)))
        .order_by(Post::VIEWS.sum().desc())
        .values((Post::AUTHOR_ID, Post::VIEWS.sum(), Post::EDITOR_ID.count()))
        .all(&db)
        .await
        .unwrap();
    if got != [(1, Some(79), 2), (2, Some(24), 1), (3, Some(0), 1)] {
        fails.push(format!("{b} grouped through matches: {got:?}"));
    }
    // Prefetch children through the self reference.
    let with_kids = Category::query().order_by(Category::NAME.asc_binary()).prefetch(Category::PARENT_ID).all(&db).await.unwrap();
    let got: Vec<(String, Vec<String>)> = with_kids.into_iter().map(|(c, k)| (c.name, k.into_iter().map(|k| k.name).collect())).collect();
    let r2 = got.iter().find(|(n, _)| n == "r2").unwrap();
    if r2.1 != ["b"] {
        fails.push(format!("{b} prefetch self: {got:?}"));
    }
    let b_kids = &got.iter().find(|(n, _)| n == "b").unwrap().1;
    if b_kids != &["z", "x"] {
        fails.push(format!("{b} prefetch self, key order: {b_kids:?}"));
    }
    // prefetch_linked on a filtered, windowed list.
    let posts = Post::query().filter(Post::VIEWS.gt(4)).order_by(Post::VIEWS.desc()).limit(2).prefetch_linked::<PostTag, Tag>().all(&db).await.unwrap();
    let got: Vec<(i64, Vec<i64>)> = posts.iter().map(|(p, t)| (p.id.unwrap(), ids(t))).collect();
    if got != [(6, vec![1, 3]), (1, vec![1, 2])] {
        fails.push(format!("{b} prefetch_linked window: {got:?}"));
    }
    report(fails);
});

// `exists` and `first` of a query with `limit(0)`: the query returns no rows, so `exists`
// must be false and `first` None (Django: `qs[:0].exists()` is False). Both replace the
// caller's limit with 1.
db_test!(async fn qb2_limit_zero_exists_and_first(db) {
    blog(&db).await;
    let mut fails = Vec::new();
    let b = db.backend();
    let q = || Post::query().filter(Post::AUTHOR_ID.matches(Author::NAME.eq("ada"))).limit(0);
    assert_eq!(q().all(&db).await.unwrap().len(), 0);
    assert_eq!(q().count(&db).await.unwrap(), 0);
    let e = q().exists(&db).await.unwrap();
    if e {
        fails.push(format!("{b} limit(0).exists() = true"));
    }
    let f = q().first(&db).await.unwrap();
    if f.is_some() {
        fails.push(format!("{b} limit(0).first() = {f:?}"));
    }
    let f = Post::query().limit(0).select_related(Post::AUTHOR_ID).first(&db).await.unwrap();
    if f.is_some() {
        fails.push(format!("{b} limit(0).select_related.first() = Some"));
    }
    report(fails);
});

// An aggregate over a window ordered through a reference: the two posts whose authors' names
// come first (ada's Engines 30 and Notes 5 by id) sum to 35.
db_test!(async fn qb2_aggregate_over_window_ordered_through_reference(db) {
    blog(&db).await;
    let got = Post::query()
        .order_by(Post::AUTHOR_ID.by(Author::NAME.asc()))
        .order_by(Post::ID.asc())
        .limit(2)
        .aggregate(&db, (Post::VIEWS.sum(), Post::ID.count()))
        .await;
    assert_eq!(got.unwrap(), (Some(35), 2), "{}", db.backend());
    let got = Post::query()
        .filter(Post::EDITOR_ID.matches(Author::VIEWS.gt(2)))
        .order_by(Post::EDITOR_ID.by(Author::VIEWS.desc()))
        .offset(1)
        .aggregate(&db, Post::VIEWS.max())
        .await
        .unwrap();
    // editors with views>2: post 2 (bob 3), 3 (ada 7), 5 (cy 9): by editor views desc 5,3,2 -> skip 5 -> max(12, 5)
    assert_eq!(got, Some(12));
});

// ---------------------------------------------------------------------------------------
// 4. Aggregates
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_num")]
struct Num {
    id: Option<i64>,
    #[model(max_length = 20)]
    label: String,
    big: i64,
    small: i8,
    unsigned: u32,
    single: f32,
    #[model(max_digits = 12, decimal_places = 2)]
    money: Decimal,
    maybe: Option<i16>,
}

fn num(label: &str, big: i64, single: f32, money: &str) -> Num {
    Num {
        id: None,
        label: label.into(),
        big,
        small: -128,
        unsigned: u32::MAX,
        single,
        money: dec(money),
        maybe: None,
    }
}

// Passing probe: empty tables, NULL-only columns, small and unsigned types at their limits.
db_test!(async fn qb2_aggregate_types_hold(db) {
    db.create_tables::<Num>().await.unwrap();
    let mut fails = Vec::new();
    let b = db.backend();
    let empty = Num::query().aggregate(&db, (Num::BIG.sum(), Num::SMALL.min(), Num::UNSIGNED.max(), Num::MONEY.sum(), Num::MAYBE.avg(), Num::ID.count(), Num::LABEL.count_distinct())).await.unwrap();
    if empty != (None, None, None, None, None, 0, 0) {
        fails.push(format!("{b} empty: {empty:?}"));
    }
    let mut rows = vec![num("a", 1, 1.5, "0.01"), num("b", 2, 2.5, "99999999.99"), num("c", 3, 0.25, "-5.50")];
    Num::bulk_save(&db, &mut rows).await.unwrap();
    let got = Num::query().aggregate(&db, (Num::SMALL.sum(), Num::SMALL.min(), Num::UNSIGNED.sum(), Num::UNSIGNED.max(), Num::MAYBE.sum(), Num::MAYBE.max(), Num::MAYBE.count())).await;
    match got {
        Ok(v) if v == (Some(-384), Some(-128), Some(3 * i64::from(u32::MAX)), Some(u32::MAX), None, None, 0) => {}
        other => fails.push(format!("{b} small/unsigned/null: {other:?}")),
    }
    let got = Num::query().aggregate(&db, (Num::MONEY.sum(), Num::MONEY.min(), Num::SINGLE.max())).await;
    match got {
        Ok(v) if v == (Some(dec("99999994.50")), Some(dec("-5.50")), Some(2.5f32)) => {}
        other => fails.push(format!("{b} decimal/f32: {other:?}")),
    }
    // A window past the end: aggregates over no rows.
    let got = Num::query().order_by(Num::BIG.asc()).offset(10).aggregate(&db, (Num::BIG.sum(), Num::ID.count())).await.unwrap();
    if got != (None, 0) {
        fails.push(format!("{b} window past end: {got:?}"));
    }
    let got: Vec<(String, Option<i64>)> = Num::query().order_by(Num::BIG.sum().desc()).values((Num::LABEL, Num::BIG.sum())).all(&db).await.unwrap();
    if got != [("c".into(), Some(3)), ("b".into(), Some(2)), ("a".into(), Some(1))] {
        fails.push(format!("{b} grouped order: {got:?}"));
    }
    report(fails);
});

// Sums of integers are `i64`; a sum past `i64` must be an error on every backend (PostgreSQL
// says "bigint out of range", SQLite "integer overflow"), never a wrong number.
db_test!(async fn qb2_integer_sum_overflow(db) {
    db.create_tables::<Num>().await.unwrap();
    Num::bulk_save(&db, &mut [num("a", i64::MAX, 0.0, "0"), num("b", i64::MAX, 0.0, "0")]).await.unwrap();
    let got = Num::query().aggregate(&db, Num::BIG.sum()).await;
    assert!(got.is_err(), "{}: the sum of two i64::MAX came back as {got:?}", db.backend());
    let got: signals_core::Result<Vec<(String, Option<i64>)>> = Num::query().values((Num::LABEL, Num::BIG.sum())).all(&db).await;
    assert!(got.is_ok(), "per-group sums fit: {got:?}");
    assert_eq!(Num::query().count(&db).await.unwrap(), 2, "the pool stays usable");
});

// "Sums of floats are f64": 16777216 + 1 + 1 as f32 values is 16777218 in f64. PostgreSQL's
// `SUM(real)` adds in REAL (f32) and gives 16777216 before the CAST to DOUBLE PRECISION.
db_test!(async fn qb2_f32_sum_is_summed_as_f64(db) {
    db.create_tables::<Num>().await.unwrap();
    Num::bulk_save(&db, &mut [num("a", 0, 16_777_216.0, "0"), num("b", 0, 1.0, "0"), num("c", 0, 1.0, "0")]).await.unwrap();
    let got = Num::query().aggregate(&db, Num::SINGLE.sum()).await.unwrap();
    assert_eq!(got, Some(16_777_218.0), "{}", db.backend());
});

// Decimal sums on SQLite go through REAL and `printf('%.15g')`: the doc promises them exact
// when the values and the sum have no more than 15 significant digits. 1000000.01 - 1000000.00
// is 0.01; through REAL it is 0.009999999976716936, which '%.15g' writes as
// 0.00999999997671694.
db_test!(async fn qb2_decimal_sum_with_cancellation(db) {
    db.create_tables::<Num>().await.unwrap();
    Num::bulk_save(&db, &mut [num("a", 0, 0.0, "1000000.01"), num("b", 0, 0.0, "-1000000.00")]).await.unwrap();
    let got = Num::query().aggregate(&db, Num::MONEY.sum()).await.unwrap();
    if db.backend() == signals_core::Backend::Sqlite {
        // Documented: SQLite sums decimals as REAL, and values that nearly cancel show its
        // error (`Aggregate`'s docs, the README).
        let error = (got.unwrap() - dec("0.01")).abs();
        assert!(error < dec("0.000000001"), "{got:?}");
    } else {
        assert_eq!(got, Some(dec("0.01")), "{}", db.backend());
    }
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_wide")]
struct Wide {
    id: Option<i64>,
    #[model(max_digits = 18, decimal_places = 0)]
    amount: Decimal,
}

// A decimal with 18 digits: on SQLite extremes and sums come back "rounded to 15 significant
// digits" (the doc). Expected: a value, not an error. `printf('%.15g')` writes
// 1.23456789012346e+17, which a Decimal does not parse.
db_test!(async fn qb2_decimal_extremes_past_15_digits(db) {
    db.create_tables::<Wide>().await.unwrap();
    Wide::bulk_save(&db, &mut [Wide { id: None, amount: dec("123456789012345678") }]).await.unwrap();
    let got = Wide::query().aggregate(&db, (Wide::AMOUNT.max(), Wide::AMOUNT.sum())).await;
    match got {
        Ok((Some(max), Some(sum))) => {
            let exact = dec("123456789012345678");
            let tolerance = dec("10000");
            assert!((max - exact).abs() < tolerance && (sum - exact).abs() < tolerance, "{max} {sum}");
        }
        other => panic!("{}: {other:?}", db.backend()),
    }
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_word")]
struct Word {
    id: Option<i64>,
    #[model(max_length = 20)]
    text: String,
    n: i64,
}

// Grouping, distinct counts and extremes of text: "a", "a " and "A" are three values in Rust,
// SQLite and PostgreSQL, and so are "a" and "a\t". The crate's MySQL tables use utf8mb4_bin,
// which on MariaDB is PAD SPACE: "a" = "a ", so GROUP BY / COUNT(DISTINCT) / DISTINCT merge
// them and MAX("a", "a\t") is "a" ("a" compares as "a " > "a\t").
db_test!(async fn qb2_text_groups_are_exact(db) {
    db.create_tables::<Word>().await.unwrap();
    let mut fails = Vec::new();
    let b = db.backend();
    let mut words: Vec<Word> = [("a", 1), ("a ", 2), ("A", 4), ("a", 8)].iter().map(|(t, n)| Word { id: None, text: (*t).into(), n: *n }).collect();
    Word::bulk_save(&db, &mut words).await.unwrap();
    let mut got: Vec<(String, Option<i64>)> = Word::query().values((Word::TEXT, Word::N.sum())).all(&db).await.unwrap();
    got.sort();
    let want: Vec<(String, Option<i64>)> = vec![("A".into(), Some(4)), ("a".into(), Some(9)), ("a ".into(), Some(2))];
    if got != want {
        fails.push(format!("{b} group by text: {got:?}"));
    }
    let n = Word::query().aggregate(&db, Word::TEXT.count_distinct()).await.unwrap();
    if n != 3 {
        fails.push(format!("{b} count_distinct: {n}"));
    }
    let mut got: Vec<String> = Word::query().values(Word::TEXT).distinct().all(&db).await.unwrap();
    got.sort();
    if got != ["A", "a", "a "] {
        fails.push(format!("{b} distinct: {got:?}"));
    }
    Word { id: None, text: "a\t".into(), n: 0 }.save(&db).await.unwrap();
    // Chosen by `n`: MySQL's `=` and `IN` on text follow its `PAD SPACE` collation.
    let max = Word::query().filter(Word::N.in_([0, 1])).aggregate(&db, Word::TEXT.max()).await.unwrap();
    if max.as_deref() != Some("a\t") {
        fails.push(format!("{b} max(a, a\\t): {max:?}"));
    }
    report(fails);
});

// Orderings by an aggregate where nothing groups: `all()` of whole rows (or `annotate`)
// ordered by `SUM(views)`. The query must be refused (ErrorKind::Usage), as the crate refuses
// other selections no backend runs as meant. SQLite and MariaDB collapse the table into one
// row; PostgreSQL fails with a server error.
db_test!(async fn qb2_ordering_by_aggregate_without_grouping(db) {
    blog(&db).await;
    let mut fails = Vec::new();
    let b = db.backend();
    match Post::query().order_by(Post::VIEWS.sum().desc()).all(&db).await {
        Err(e) if e.kind() == ErrorKind::Usage => {}
        Ok(rows) => fails.push(format!("{b} all() ordered by SUM: Ok with {} rows (of 6)", rows.len())),
        Err(e) => fails.push(format!("{b} all() ordered by SUM: {:?} {e}", e.kind())),
    }
    match Author::query().order_by(Post::AUTHOR_ID.related_count().desc()).order_by(Author::VIEWS.max().asc()).annotate(Post::AUTHOR_ID.related_count()).all(&db).await {
        Err(e) if e.kind() == ErrorKind::Usage => {}
        Ok(rows) => fails.push(format!("{b} annotate ordered by MAX: Ok with {} rows (of 4)", rows.len())),
        Err(e) => fails.push(format!("{b} annotate ordered by MAX: {:?} {e}", e.kind())),
    }
    match Post::query().order_by(Post::VIEWS.sum().desc()).values(Post::NAME).all(&db).await {
        Err(e) if e.kind() == ErrorKind::Usage => {}
        Ok(rows) => fails.push(format!("{b} values(column) ordered by SUM: Ok with {} rows (of 6)", rows.len())),
        Err(e) => fails.push(format!("{b} values(column) ordered by SUM: {:?} {e}", e.kind())),
    }
    assert_eq!(Post::query().count(&db).await.unwrap(), 6, "the pool stays usable");
    report(fails);
});

// A related count selected with a grouping column and an aggregate: `values((Author::NAME,
// Post::AUTHOR_ID.related_count(), Author::ID.count()))`. The related count is per row, so the
// selection is either refused (Usage) or gives (name, posts, 1) per author everywhere.
// PostgreSQL fails: the correlated subquery uses `id`, which is not grouped.
db_test!(async fn qb2_related_count_beside_a_grouping(db) {
    blog(&db).await;
    let got: signals_core::Result<Vec<(String, i64, i64)>> = Author::query()
        .order_by(Author::NAME.asc())
        .values((Author::NAME, Post::AUTHOR_ID.related_count(), Author::ID.count()))
        .all(&db)
        .await;
    match got {
        Ok(rows) => assert_eq!(rows, [("ada".into(), 3, 1), ("bob".into(), 2, 1), ("cy".into(), 1, 1), ("dee".into(), 0, 1)], "{}", db.backend()),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Usage, "{}: {e}", db.backend()),
    }
});

// ---------------------------------------------------------------------------------------
// 5. JSON lookups
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_product")]
struct Product {
    id: Option<i64>,
    attrs: Value,
    extra: Option<Json<Value>>,
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(*k))
}

async fn products(db: &Db, values: Vec<Value>) -> Vec<Product> {
    db.create_tables::<Product>().await.unwrap();
    let mut rows: Vec<Product> = values
        .into_iter()
        .map(|attrs| Product {
            id: None,
            extra: Some(Json(attrs.clone())),
            attrs,
        })
        .collect();
    Product::bulk_save(db, &mut rows).await.unwrap();
    rows
}

fn pids(rows: &[Product]) -> Vec<i64> {
    rows.iter().map(|p| p.id.unwrap()).collect()
}

// Keys with characters that mean something in JSON paths or SQL, found as plain keys.
db_test!(async fn qb2_json_odd_keys(db) {
    // Keys MariaDB's paths cannot spell ("-1", "-", "\t", "\n") are refused on every backend.
    let keys = ["", "$", ".", "a.b", "[0]", "*", "**", "a'b", "ключ", "😀", "a b", "$.x", "0", "@", "?", "a-b", " x", "1a"];
    for key in ["-1", "-", "\t", "\n", "a\u{7f}"] {
        let err = Product::query().filter(Product::ATTRS.key(key).exists()).all(&db).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{key:?}: {err}");
    }
    let mut doc = serde_json::Map::new();
    for (i, k) in keys.iter().enumerate() {
        doc.insert((*k).to_owned(), json!(format!("v{i}")));
    }
    let rows = products(&db, vec![Value::Object(doc), json!({"x": 1}), json!(["v0"]), json!({"": {"": "deep"}})]).await;
    let mut fails = Vec::new();
    let b = db.backend();
    for (i, k) in keys.iter().enumerate() {
        let want: Vec<i64> = rows.iter().filter(|p| at(&p.attrs, &[k]) == Some(&json!(format!("v{i}")))).map(|p| p.id.unwrap()).collect();
        match Product::query().filter(Product::ATTRS.key(*k).eq(format!("v{i}"))).all(&db).await {
            Ok(got) if pids(&got) == want => {}
            Ok(got) => fails.push(format!("{b} key {k:?} eq: {:?} want {want:?}", pids(&got))),
            Err(e) => fails.push(format!("{b} key {k:?} eq: error {e}")),
        }
        let want: Vec<i64> = rows.iter().filter(|p| at(&p.attrs, &[k]).is_some()).map(|p| p.id.unwrap()).collect();
        match Product::query().filter(Product::EXTRA.key(*k).exists()).all(&db).await {
            Ok(got) if pids(&got) == want => {}
            Ok(got) => fails.push(format!("{b} key {k:?} exists: {:?} want {want:?}", pids(&got))),
            Err(e) => fails.push(format!("{b} key {k:?} exists: error {e}")),
        }
    }
    match Product::query().filter(Product::ATTRS.key("").key("").eq("deep")).all(&db).await {
        Ok(got) if pids(&got) == [4] => {}
        other => fails.push(format!("{b} empty.empty: {other:?}")),
    }
    assert_eq!(Product::query().count(&db).await.unwrap(), 4, "the pool stays usable");
    report(fails);
});

// Numbers: compared "as 64-bit floats" (the doc), so `eq(9007199254740993_i64)` (2^53 + 1,
// which is 2^53 as f64) matches the stored 9007199254740993 and 9007199254740992 alike.
// SQLite compares the stored integer exactly with the REAL bound and finds neither
// (9007199254740993 != 9007199254740992.0), PostgreSQL and MariaDB cast to DOUBLE and find
// both: the backends disagree on the very value stored.
db_test!(async fn qb2_json_big_integers(db) {
    let rows = products(&db, vec![json!({"n": 9_007_199_254_740_993_i64}), json!({"n": 9_007_199_254_740_992_i64}), json!({"n": i64::MAX}), json!({"n": u64::MAX})]).await;
    let mut fails = Vec::new();
    let b = db.backend();
    let all = pids(&rows);
    let got = pids(&Product::query().filter(Product::ATTRS.key("n").eq(9_007_199_254_740_993_i64)).all(&db).await.unwrap());
    if got != all[..2] {
        fails.push(format!("{b} eq(2^53+1): {got:?} want {:?}", &all[..2]));
    }
    let got = pids(&Product::query().filter(Product::ATTRS.key("n").ge(9_007_199_254_740_993_i64 as f64)).all(&db).await.unwrap());
    if got != all {
        fails.push(format!("{b} ge(2^53): {got:?} want {all:?}"));
    }
    let got = pids(&Product::query().filter(Product::ATTRS.key("n").eq(i64::MAX)).all(&db).await.unwrap());
    // i64::MAX as f64 is 2^63; u64::MAX as f64 is 2^64.
    if got != all[2..3] {
        fails.push(format!("{b} eq(i64::MAX): {got:?} want {:?}", &all[2..3]));
    }
    report(fails);
});

// NaN and infinities: no number is `<`, `>` or `=` NaN, in Rust and in SQL's IEEE sense; a
// NaN bound must give no rows (or a clear Usage/InvalidValue error), never every row.
// PostgreSQL orders NaN above every number, so `lt(NaN)` matches all numbers there.
db_test!(async fn qb2_json_nan_and_infinity(db) {
    products(&db, vec![json!({"n": 1}), json!({"n": -1e300}), json!({"n": "x"})]).await;
    let mut fails = Vec::new();
    let b = db.backend();
    for (name, filter, want) in [
        ("lt(NaN)", Product::ATTRS.key("n").lt(f64::NAN), 0usize),
        ("gt(NaN)", Product::ATTRS.key("n").gt(f64::NAN), 0),
        ("eq(NaN)", Product::ATTRS.key("n").eq(f64::NAN), 0),
        ("lt(inf)", Product::ATTRS.key("n").lt(f64::INFINITY), 2),
        ("gt(-inf)", Product::ATTRS.key("n").gt(f64::NEG_INFINITY), 2),
    ] {
        match Product::query().filter(filter).all(&db).await {
            Ok(rows) if rows.len() == want => {}
            Err(e) if want == 0 && matches!(e.kind(), ErrorKind::Usage | ErrorKind::InvalidValue) => {}
            Ok(rows) => fails.push(format!("{b} {name}: {} rows, want {want}", rows.len())),
            Err(e) => fails.push(format!("{b} {name}: {:?} {e}", e.kind())),
        }
    }
    assert_eq!(Product::query().count(&db).await.unwrap(), 3, "the pool stays usable");
    report(fails);
});

// Text with NUL: no stored JSON string holds a NUL on PostgreSQL (jsonb refuses \u0000), so
// `eq("a\0b")` is simply false there, and its negation true, as the crate does for columns
// (`Column::eq` with a NUL text on PostgreSQL). Expected: no error.
db_test!(async fn qb2_json_text_with_nul(db) {
    let rows = products(&db, vec![json!({"s": "ab"}), json!({"s": "a"})]).await;
    let mut fails = Vec::new();
    let b = db.backend();
    match Product::query().filter(Product::ATTRS.key("s").eq("a\0b")).all(&db).await {
        Ok(got) if got.is_empty() => {}
        other => fails.push(format!("{b} eq(a\\0b): {other:?}")),
    }
    match Product::query().filter(!Product::ATTRS.key("s").eq("a\0b")).all(&db).await {
        Ok(got) if pids(&got) == pids(&rows) => {}
        other => fails.push(format!("{b} !eq(a\\0b): {other:?}")),
    }
    assert_eq!(Product::query().count(&db).await.unwrap(), 2, "the pool stays usable");
    report(fails);
});

// Passing probe: arrays at the key, deep paths, control characters and quotes in values,
// booleans vs numbers, JSON null vs missing, NULL column.
db_test!(async fn qb2_json_shapes_hold(db) {
    let mut deep = json!("bottom");
    let path: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in path.iter().rev() {
        deep = json!({ k.clone(): deep });
    }
    let values = vec![
        json!({"tags": ["red"], "arr": [1, 2], "s": "line\nbreak\t\"q\" \\ back", "b": true, "z": null}),
        json!({"tags": "red", "arr": {"0": 1}, "s": "it's", "b": 1, "n": 2.5}),
        deep.clone(),
        json!({"n": 3, "s": "ré", "e": ""}),
    ];
    let rows = products(&db, values).await;
    let mut fails = Vec::new();
    let b = db.backend();
    let p = |i: usize| rows[i].id.unwrap();
    type Case = (&'static str, Filter<Product>, Vec<i64>);
    let mut deep_key = Product::ATTRS.key("k0");
    for k in &path[1..] {
        deep_key = deep_key.key(k.clone());
    }
    let cases: Vec<Case> = vec![
        ("tags eq red", Product::ATTRS.key("tags").eq("red"), vec![p(1)]),
        ("tags exists", Product::ATTRS.key("tags").exists(), vec![p(0), p(1)]),
        ("arr.0 exists", Product::ATTRS.key("arr").key("0").exists(), vec![p(1)]),
        ("arr.0 = 1", Product::ATTRS.key("arr").key("0").eq(1), vec![p(1)]),
        ("s ctrl", Product::ATTRS.key("s").eq("line\nbreak\t\"q\" \\ back"), vec![p(0)]),
        ("s it's", Product::ATTRS.key("s").eq("it's"), vec![p(1)]),
        ("s ré", Product::ATTRS.key("s").eq("ré"), vec![p(3)]),
        ("e empty", Product::ATTRS.key("e").eq(""), vec![p(3)]),
        ("b true", Product::ATTRS.key("b").eq(true), vec![p(0)]),
        ("b = 1", Product::ATTRS.key("b").eq(1), vec![p(1)]),
        ("z null", Product::ATTRS.key("z").is_null(), vec![p(0)]),
        ("z exists", Product::ATTRS.key("z").exists(), vec![p(0)]),
        ("n le 2.5", Product::ATTRS.key("n").le(2.5), vec![p(1)]),
        ("n ge 2.5", Product::ATTRS.key("n").ge(2.5f32), vec![p(1), p(3)]),
        ("n = 3.0", Product::ATTRS.key("n").eq(3.0), vec![p(3)]),
        ("deep", deep_key.eq("bottom"), vec![p(2)]),
    ];
    for (name, filter, want) in cases {
        match Product::query().filter(filter).all(&db).await {
            Ok(got) if pids(&got) == want => {}
            Ok(got) => fails.push(format!("{b} {name}: {:?} want {want:?}", pids(&got))),
            Err(e) => fails.push(format!("{b} {name}: error {e}")),
        }
    }
    Product { id: None, attrs: json!({}), extra: None }.save(&db).await.unwrap();
    let n = Product::query().filter(!Product::EXTRA.key("n").gt(0)).count(&db).await.unwrap();
    if n != 3 {
        fails.push(format!("{b} !extra.n>0 incl NULL column: {n}"));
    }
    report(fails);
});

// The same JSON lookups under MariaDB's NO_BACKSLASH_ESCAPES and ANSI modes.
db_test!(async fn qb2_json_in_sql_modes(db) {
    let rows = products(&db, vec![json!({"s": "a\\b", "q": "it's \"x\"", "k'ey": 1}), json!({"s": "ab", "q": "x"})]).await;
    let Some(moded) = signals_tests::mysql_pool_running(&db, &[signals_tests::STRICT_MODES]).await else { return };
    let mut fails = Vec::new();
    for (name, filter, want) in [
        ("backslash", Product::ATTRS.key("s").eq("a\\b"), vec![rows[0].id.unwrap()]),
        ("quotes", Product::ATTRS.key("q").eq("it's \"x\""), vec![rows[0].id.unwrap()]),
        ("quote key", Product::ATTRS.key("k'ey").eq(1), vec![rows[0].id.unwrap()]),
        ("not backslash", !Product::ATTRS.key("s").eq("a\\b"), vec![rows[1].id.unwrap()]),
        ("bool", Product::ATTRS.key("q").exists() & !Product::ATTRS.key("q").eq(true), vec![rows[0].id.unwrap(), rows[1].id.unwrap()]),
    ] {
        let mut tx = moded.begin().await.unwrap();
        match Product::query().filter(filter).all(&mut tx).await {
            Ok(got) if pids(&got) == want => {}
            other => fails.push(format!("{name}: {other:?}")),
        }
        tx.rollback().await.unwrap();
    }
    moded.close().await;
    report(fails);
});

// ---------------------------------------------------------------------------------------
// 6. bulk_upsert
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_stock", unique_together(shop, sku))]
#[post_save(log_save)]
struct Stock {
    id: Option<i64>,
    #[model(max_length = 20)]
    shop: String,
    #[model(max_length = 20)]
    sku: Option<String>,
    units: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_log")]
struct Log {
    id: Option<i64>,
    #[model(max_length = 20)]
    sku: String,
    created: bool,
}

async fn log_save(stock: &Stock, signal: &mut PostSave<'_>) -> signals_core::Result<()> {
    if stock.units < 0 {
        return Err(signals_core::Error::Other("negative units".into()));
    }
    let created = signal.created();
    Log {
        id: None,
        sku: stock.sku.clone().unwrap_or_default(),
        created,
    }
    .save(signal.tx())
    .await?;
    Ok(())
}

fn stock(sku: Option<&str>, units: i64) -> Stock {
    Stock {
        id: None,
        shop: "n".into(),
        sku: sku.map(Into::into),
        units,
    }
}

// Passing probe: NULLs in unique values are never matched (inserted each time), a failing
// receiver undoes everything and clears the keys it gave, racing tasks with NULL-valued and
// keyed rows mixed.
db_test!(async fn qb2_upsert_nulls_failures_races(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    let mut fails = Vec::new();
    let b = db.backend();
    let mut base = [stock(Some("a"), 1)];
    Stock::bulk_save(&db, &mut base).await.unwrap();
    let mut rows = [stock(None, 1), stock(None, 2), stock(Some("a"), 5)];
    let saved = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await.unwrap();
    if saved.created() != [true, true, false] || rows[2].id != base[0].id {
        fails.push(format!("{b} nulls: {:?} {rows:?}", saved.created()));
    }
    // A receiver fails on the third row: nothing stays, the keys given are taken back.
    let before = Stock::query().count(&db).await.unwrap();
    let logs = Log::query().count(&db).await.unwrap();
    let mut rows = [stock(Some("a"), 6), stock(Some("new"), 1), stock(Some("bad"), -1)];
    let err = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await;
    if err.is_ok() || rows.iter().any(|r| r.id.is_some()) {
        fails.push(format!("{b} failing receiver: {err:?} {rows:?}"));
    }
    if Stock::query().count(&db).await.unwrap() != before || Log::query().count(&db).await.unwrap() != logs {
        fails.push(format!("{b} failing receiver left rows"));
    }
    if Stock::get(&db, base[0].id.unwrap()).await.unwrap().unwrap().units != 5 {
        fails.push(format!("{b} failing receiver left the update"));
    }
    // Racing: 16 tasks, half on another pool, each upserting the same two values plus a NULL.
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for i in 0..16_i64 {
        let pool = if i % 2 == 0 { Arc::clone(&db) } else { Arc::new(another_pool(&db).await) };
        tasks.push(tokio::spawn(async move {
            let mut rows = vec![stock(Some("r1"), i), stock(None, i), stock(Some("r2"), i)];
            if i % 3 == 0 {
                rows.reverse();
            }
            let saved = Stock::bulk_upsert(&*pool, &mut rows, Stock::SHOP | Stock::SKU).await?;
            Ok::<_, signals_core::Error>((saved.created().to_vec(), rows))
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok((flags, rows)) => {
                created += flags.iter().zip(&rows).filter(|(c, r)| **c && r.sku.is_some()).count();
            }
            Err(e) => fails.push(format!("{b} race: {e}")),
        }
    }
    if created != 2 {
        fails.push(format!("{b} race created: {created}"));
    }
    let n = scalar(&db, "SELECT COUNT(*) FROM qb2_stock WHERE sku IN ('r1', 'r2')").await;
    if n != 2 {
        fails.push(format!("{b} race rows: {n}"));
    }
    report(fails);
});

// A row with a key and a row without one whose unique values are those of the keyed row's
// stored row: the keyless one is matched to that row, so both instances end up claiming the
// same key and one save overwrites the other (the keyed row's new sku is lost, both
// `created` are false). Expected: refused (Usage: "rows 0 and 1 .. one row cannot be both"),
// as two keyless rows with the same values are, or two distinct rows.
db_test!(async fn qb2_upsert_keyed_and_keyless_same_row(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    let mut base = [stock(Some("a"), 1)];
    Stock::bulk_save(&db, &mut base).await.unwrap();
    let mut rows = [Stock { id: base[0].id, ..stock(Some("b"), 2) }, stock(Some("a"), 3)];
    let res = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await;
    match res {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Usage, "{e}"),
        Ok(saved) => {
            let stored: Vec<(Option<String>, i64)> = Stock::all(&db).await.unwrap().into_iter().map(|s| (s.sku, s.units)).collect();
            assert_ne!(rows[0].id, rows[1].id, "two instances claim one row: {rows:?}, created {:?}, stored {stored:?}", saved.created());
        }
    }
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qb2_reading")]
struct Reading {
    id: Option<i64>,
    #[model(unique)]
    level: f64,
    note: i64,
}

// Unique f64 values: "values compare exactly, as Rust compares them", and in Rust
// -0.0 == 0.0; so does every database's `=` and unique index. Upserting -0.0 over a stored
// 0.0 must update that row (created false). The match compares JSON texts ("-0.0" vs "0.0"),
// finds nothing, inserts, hits the unique index five times and fails.
db_test!(async fn qb2_upsert_negative_zero(db) {
    db.create_tables::<Reading>().await.unwrap();
    Reading::bulk_save(&db, &mut [Reading { id: None, level: 0.0, note: 1 }]).await.unwrap();
    let mut rows = [Reading { id: None, level: -0.0, note: 2 }];
    let mut fails = Vec::new();
    let b = db.backend();
    match Reading::bulk_upsert(&db, &mut rows, Reading::LEVEL).await {
        Ok(saved) if saved.created() == [false] => {}
        other => fails.push(format!("{b} -0.0 over 0.0: {other:?}")),
    }
    if Reading::query().count(&db).await.unwrap() != 1 {
        fails.push(format!("{b} -0.0 over 0.0 made a second row"));
    }
    // And two rows 0.0 and -0.0 in one call are the same value (Rust's ==): refused as such.
    let mut rows = [Reading { id: None, level: 0.0, note: 3 }, Reading { id: None, level: -0.0, note: 4 }];
    match Reading::bulk_upsert(&db, &mut rows, Reading::LEVEL).await {
        Err(e) if e.kind() == ErrorKind::Usage => {}
        other => fails.push(format!("{b} 0.0 and -0.0 in one call: {other:?}")),
    }
    report(fails);
});

// Cancellation at every await point inside a caller's transaction, then the transaction
// rolled back: keys must not name rows that are not there (rows inserted in the rolled-back
// transaction).
db_test!(async fn qb2_upsert_cancelled_in_tx(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    Stock::bulk_save(&db, &mut [stock(Some("old"), 1)]).await.unwrap();
    let mut fails = Vec::new();
    let b = db.backend();
    for waits in 0..200 {
        let mut tx = db.begin().await.unwrap();
        let mut rows = [stock(Some("old"), 2), stock(Some(&format!("n{waits}")), 3)];
        let done = signals_tests::cancel_at(waits, Stock::bulk_upsert(&mut tx, &mut rows, Stock::SHOP | Stock::SKU)).await;
        // The transaction stays usable after a cancelled savepoint, or says why not.
        let usable = Stock::query().count(&mut tx).await;
        let _ = tx.rollback().await;
        if let Err(e) = &usable
            && e.kind() != ErrorKind::Transaction
            && e.kind() != ErrorKind::Connection
        {
            fails.push(format!("{b} waits {waits}: tx after cancel: {:?} {e}", e.kind()));
        }
        let n = Stock::query().count(&db).await.unwrap();
        if n != 1 {
            fails.push(format!("{b} waits {waits}: {n} rows after rollback"));
        }
        if done.is_some() {
            break;
        }
    }
    assert_eq!(Stock::query().filter(Stock::SKU.eq(Some("old".to_owned()))).count(&db).await.unwrap(), 1);
    report(fails);
});
