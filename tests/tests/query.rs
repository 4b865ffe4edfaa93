//! Typed queries on every backend: each condition, and/or/not, ordering, limit and offset,
//! first, count, exists, inside a transaction too.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use signals_core::{Db, Model, Query};
use signals_tests::{create_tables, db_test};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "q_post")]
struct Post {
    id: Option<i64>,
    title: String,
    status: String,
    views: i64,
    published: Option<NaiveDate>,
}

const SCHEMA: &str =
    "CREATE TABLE q_post (id {pk}, title {text} NOT NULL, status {varchar} NOT NULL,
    views {bigint} NOT NULL, published {date})";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

async fn seed(db: &Db) {
    create_tables(db, SCHEMA).await;
    let rows = [
        ("a", "draft", 5, None),
        ("b", "published", 40, Some(day(1))),
        ("c", "published", 12, Some(day(3))),
        ("d", "archived", 40, Some(day(2))),
        ("e", "published", 3, Some(day(5))),
        ("f", "draft", 77, None),
    ];
    for (title, status, views, published) in rows {
        Post {
            id: None,
            title: title.into(),
            status: status.into(),
            views,
            published,
        }
        .save(db)
        .await
        .unwrap();
    }
}

async fn titles(db: &Db, query: Query<Post>) -> Vec<String> {
    query
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect()
}

db_test!(async fn every_condition(db) {
    seed(&db).await;
    let q = Post::query;
    assert_eq!(titles(&db, q().filter(Post::STATUS.eq("draft"))).await, ["a", "f"]);
    assert_eq!(titles(&db, q().filter(Post::STATUS.ne("published"))).await, ["a", "d", "f"]);
    assert_eq!(titles(&db, q().filter(Post::VIEWS.lt(12))).await, ["a", "e"]);
    assert_eq!(titles(&db, q().filter(Post::VIEWS.le(12))).await, ["a", "c", "e"]);
    assert_eq!(titles(&db, q().filter(Post::VIEWS.gt(40))).await, ["f"]);
    assert_eq!(titles(&db, q().filter(Post::VIEWS.ge(40))).await, ["b", "d", "f"]);
    assert_eq!(titles(&db, q().filter(Post::TITLE.in_(["e", "a", "zz"]))).await, ["a", "e"]);
    assert!(titles(&db, q().filter(Post::TITLE.in_(Vec::<String>::new()))).await.is_empty());
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.is_null())).await, ["a", "f"]);
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.eq(None))).await, ["a", "f"]);
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.is_not_null())).await, ["b", "c", "d", "e"]);
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.ne(None))).await, ["b", "c", "d", "e"]);
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.gt(day(2)))).await, ["c", "e"]);
    assert_eq!(titles(&db, q().filter(Post::PUBLISHED.eq(day(2)))).await, ["d"]);
    // Values are bound, never written into the SQL.
    assert!(titles(&db, q().filter(Post::TITLE.eq("x' OR '1'='1"))).await.is_empty());
});

db_test!(async fn and_or_not(db) {
    seed(&db).await;
    let q = Post::query;
    let published_popular = Post::STATUS.eq("published") & Post::VIEWS.gt(10);
    assert_eq!(titles(&db, q().filter(published_popular)).await, ["b", "c"]);
    // Two filters must both match.
    assert_eq!(
        titles(&db, q().filter(Post::STATUS.eq("published")).filter(Post::VIEWS.gt(10))).await,
        ["b", "c"]
    );
    let either = Post::STATUS.eq("archived") | Post::VIEWS.lt(5);
    assert_eq!(titles(&db, q().filter(either)).await, ["d", "e"]);
    assert_eq!(titles(&db, q().filter(!Post::STATUS.eq("published"))).await, ["a", "d", "f"]);
    let nested = (Post::STATUS.eq("draft") | Post::STATUS.eq("archived")) & !Post::VIEWS.ge(70);
    assert_eq!(titles(&db, q().filter(nested)).await, ["a", "d"]);
});

db_test!(async fn order_limit_offset_first_count_exists(db) {
    seed(&db).await;
    let by_views = || Post::query().order_by(Post::VIEWS.desc()).order_by(Post::TITLE.asc());
    assert_eq!(titles(&db, by_views()).await, ["f", "b", "d", "c", "a", "e"]);
    assert_eq!(titles(&db, by_views().limit(2)).await, ["f", "b"]);
    assert_eq!(titles(&db, by_views().limit(2).offset(2)).await, ["d", "c"]);
    assert_eq!(titles(&db, by_views().offset(4)).await, ["a", "e"]);
    assert_eq!(by_views().first(&db).await.unwrap().unwrap().title, "f");
    assert_eq!(Post::query().filter(Post::VIEWS.gt(1000)).first(&db).await.unwrap(), None);
    assert_eq!(Post::query().count(&db).await.unwrap(), 6);
    assert_eq!(Post::query().filter(Post::STATUS.eq("published")).count(&db).await.unwrap(), 3);
    assert_eq!(by_views().offset(4).count(&db).await.unwrap(), 2, "count honours the window");
    assert_eq!(by_views().limit(3).count(&db).await.unwrap(), 3);
    assert!(Post::query().filter(Post::VIEWS.eq(77)).exists(&db).await.unwrap());
    assert!(!Post::query().filter(Post::VIEWS.eq(78)).exists(&db).await.unwrap());
    // Without an ordering, rows come in key order.
    assert_eq!(titles(&db, Post::query()).await, ["a", "b", "c", "d", "e", "f"]);
});

db_test!(async fn queries_inside_a_transaction_see_its_writes(db) {
    seed(&db).await;
    let mut tx = db.begin().await.unwrap();
    Post { id: None, title: "g".into(), status: "draft".into(), views: 1, published: None }
        .save(&mut tx)
        .await
        .unwrap();
    let drafts = Post::query().filter(Post::STATUS.eq("draft"));
    assert_eq!(drafts.count(&mut tx).await.unwrap(), 3);
    let last = Post::query().order_by(Post::ID.desc()).first(&mut tx).await.unwrap();
    assert_eq!(last.unwrap().title, "g");
    tx.rollback().await.unwrap();
    assert_eq!(Post::query().filter(Post::STATUS.eq("draft")).count(&db).await.unwrap(), 2);
});
