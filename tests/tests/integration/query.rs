//! Typed queries on every backend: each condition, and/or/not, ordering, limit and offset,
//! first, count, exists, inside a transaction too.

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

db_test!(async fn text_conditions_are_case_sensitive_and_literal(db) {
    create_tables(&db, SCHEMA).await;
    for title in ["Rust 100% safe", "rust_notes", "trusty [draft]", "a*b?c"] {
        Post { id: None, title: title.into(), status: "x".into(), views: 0, published: None }
            .save(&db)
            .await
            .unwrap();
    }
    let q = Post::query;
    assert_eq!(titles(&db, q().filter(Post::TITLE.contains("ust"))).await, ["Rust 100% safe", "rust_notes", "trusty [draft]"]);
    assert_eq!(titles(&db, q().filter(Post::TITLE.starts_with("rust"))).await, ["rust_notes"], "case matters");
    assert_eq!(titles(&db, q().filter(Post::TITLE.starts_with("Rust"))).await, ["Rust 100% safe"]);
    assert_eq!(titles(&db, q().filter(Post::TITLE.contains("0%"))).await, ["Rust 100% safe"], "% is literal");
    assert!(titles(&db, q().filter(Post::TITLE.contains("100_"))).await.is_empty(), "_ is literal");
    assert_eq!(titles(&db, q().filter(Post::TITLE.contains("t_n"))).await, ["rust_notes"]);
    assert_eq!(titles(&db, q().filter(Post::TITLE.ends_with("[draft]"))).await, ["trusty [draft]"]);
    assert_eq!(titles(&db, q().filter(Post::TITLE.contains("*b?"))).await, ["a*b?c"], "glob characters are literal");
    assert!(titles(&db, q().filter(Post::TITLE.contains("a?b"))).await.is_empty());
});

db_test!(async fn update_is_atomic_and_sends_no_signal(db) {
    seed(&db).await;
    let published = || Post::query().filter(Post::STATUS.eq("published"));
    let (matched, fired) = signals_core::record_signals(published().update(&db, Post::VIEWS.add(1))).await;
    assert_eq!(matched.unwrap(), 3);
    assert!(fired.is_empty(), "no signal, as Django's update()");
    assert_eq!(titles(&db, Post::query().filter(Post::VIEWS.eq(41))).await, ["b"]);
    // Concurrent increments lose nothing: the database adds.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    Post::query().filter(Post::TITLE.eq("a")).update(&db, Post::VIEWS.add(1)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(Post::query().filter(Post::TITLE.eq("a")).first(&db).await.unwrap().unwrap().views, 45);
    // Several assignments; set and subtract.
    let n = Post::query()
        .filter(Post::TITLE.eq("f"))
        .update(&db, Post::STATUS.set("archived") & Post::VIEWS.add(-7) & Post::PUBLISHED.set(None))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let f = Post::query().filter(Post::TITLE.eq("f")).first(&db).await.unwrap().unwrap();
    assert_eq!((f.status.as_str(), f.views, f.published), ("archived", 70, None));
    // An ordered or limited update is refused before anything is sent.
    let err = Post::query().limit(1).update(&db, Post::VIEWS.add(1)).await.unwrap_err();
    assert_eq!(err.kind(), signals_core::ErrorKind::Usage, "{err}");
});

#[derive(Debug, Clone, Model)]
#[model(table = "q_comment")]
#[pre_delete(comment_going)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    body: String,
}

async fn comment_going(
    c: &Comment,
    signal: &mut signals_core::PreDelete<'_>,
) -> signals_core::Result<()> {
    if c.body == "refuse" {
        return Err(signals_core::BoxError::from("this comment stays").into());
    }
    signals_tests::record(format!(
        "pre_delete comment {} origin={}",
        c.body,
        signal.origin()
    ));
    Ok(())
}

async fn with_comments(db: &Db) {
    seed(db).await;
    create_tables(
        db,
        "CREATE TABLE q_comment (id {pk}, post_id {bigint} NOT NULL, body {text} NOT NULL,
        CONSTRAINT q_comment_post_fk FOREIGN KEY (post_id) REFERENCES q_post (id))",
    )
    .await;
    for (post, body) in [(2, "on b"), (2, "more on b"), (3, "on c"), (6, "on f")] {
        Comment {
            id: None,
            post_id: post,
            body: body.into(),
        }
        .save(db)
        .await
        .unwrap();
    }
}

db_test!(async fn delete_sends_the_signals_and_cascades_in_one_transaction(db) {
    with_comments(&db).await;
    signals_tests::take_events();
    let deleted = Post::query().filter(Post::VIEWS.ge(40)).delete(&db).await.unwrap();
    assert_eq!(deleted.total(), 6, "b, d, f and their three comments");
    assert_eq!(deleted.per_model().iter().map(|(_, n)| n).sum::<u64>(), 6);
    let mut events = signals_tests::take_events();
    events.sort();
    assert_eq!(events, ["pre_delete comment more on b origin=Post", "pre_delete comment on b origin=Post", "pre_delete comment on f origin=Post"]);
    assert_eq!(titles(&db, Post::query()).await, ["a", "c", "e"]);
    assert_eq!(Comment::query().count(&db).await.unwrap(), 1);

    // A failing receiver undoes the whole delete.
    Comment { id: None, post_id: 1, body: "refuse".into() }.save(&db).await.unwrap();
    let res = Post::query().delete(&db).await;
    assert!(res.is_err());
    assert_eq!(Post::query().count(&db).await.unwrap(), 3, "nothing deleted");
    assert_eq!(Comment::query().count(&db).await.unwrap(), 2);
});

db_test!(async fn filters_across_a_reference(db) {
    with_comments(&db).await;
    let on_published = Comment::POST_ID.in_query(Post::query().filter(Post::STATUS.eq("published")));
    let bodies: Vec<String> = Comment::query()
        .filter(on_published)
        .order_by(Comment::BODY.asc())
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.body)
        .collect();
    assert_eq!(bodies, ["more on b", "on b", "on c"]);
    let none = Comment::POST_ID.in_query(Post::query().filter(Post::VIEWS.gt(1000)));
    assert_eq!(Comment::query().filter(none).count(&db).await.unwrap(), 0);
    let all = Comment::POST_ID.in_query(Post::query());
    assert_eq!(Comment::query().filter(all).count(&db).await.unwrap(), 4);
    let err = Comment::query()
        .filter(Comment::POST_ID.in_query(Post::query().limit(1)))
        .count(&db)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), signals_core::ErrorKind::Usage, "{err}");
});

// Items 7 and 11 of the third reliability round: text conditions give the same rows on every
// backend whatever the text holds (`%`, `_`, `\`, `!`, NUL), and under MariaDB's
// `NO_BACKSLASH_ESCAPES` and `ANSI` modes too; a filtered delete removes exactly those rows.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "q_note")]
struct Note {
    id: Option<i64>,
    body: String,
}

/// Notes, NUL included where the backend can store it (PostgreSQL text cannot).
fn note_bodies(db: &Db) -> Vec<&'static str> {
    let mut bodies = vec![
        "100%", "50% off", "a_b", "a\\b", "plain", "x!y", "ab", "a%b",
    ];
    if db.backend() != signals_core::Backend::Postgres {
        bodies.push("a\0b");
    }
    bodies
}

async fn text_conditions_hold(db: &Db, mode: &str) {
    use signals_core::Filter;
    create_tables(db, "CREATE TABLE q_note (id {pk}, body {text} NOT NULL)").await;
    let bodies = note_bodies(db);
    for body in &bodies {
        Note {
            id: None,
            body: (*body).into(),
        }
        .save(db)
        .await
        .unwrap();
    }
    let nul = db.backend() != signals_core::Backend::Postgres;
    let expect = |f: fn(&str) -> bool| -> Vec<String> {
        bodies
            .iter()
            .filter(|b| f(b))
            .map(|b| (*b).to_owned())
            .collect()
    };
    let cases: Vec<(&str, Filter<Note>, Vec<String>)> = vec![
        (
            "contains %",
            Note::BODY.contains("%"),
            expect(|b| b.contains('%')),
        ),
        (
            "contains 100%",
            Note::BODY.contains("100%"),
            expect(|b| b.contains("100%")),
        ),
        (
            "contains _",
            Note::BODY.contains("_"),
            expect(|b| b.contains('_')),
        ),
        (
            "contains \\",
            Note::BODY.contains("\\"),
            expect(|b| b.contains('\\')),
        ),
        (
            "contains !",
            Note::BODY.contains("!"),
            expect(|b| b.contains('!')),
        ),
        (
            "starts a",
            Note::BODY.starts_with("a"),
            expect(|b| b.starts_with('a')),
        ),
        (
            "starts a%",
            Note::BODY.starts_with("a%"),
            expect(|b| b.starts_with("a%")),
        ),
        (
            "ends b",
            Note::BODY.ends_with("b"),
            expect(|b| b.ends_with('b')),
        ),
        (
            "ends %",
            Note::BODY.ends_with("%"),
            expect(|b| b.ends_with('%')),
        ),
        (
            "contains NUL",
            Note::BODY.contains("\0"),
            expect(|b| b.contains('\0')),
        ),
        (
            "ends NUL b",
            Note::BODY.ends_with("\0b"),
            expect(|b| b.ends_with("\0b")),
        ),
        (
            "starts a NUL",
            Note::BODY.starts_with("a\0"),
            expect(|b| b.starts_with("a\0")),
        ),
        (
            "not contains %",
            !Note::BODY.contains("%"),
            expect(|b| !b.contains('%')),
        ),
        (
            "not contains NUL",
            !Note::BODY.contains("\0"),
            expect(|b| !b.contains('\0')),
        ),
        (
            "equals a NUL b",
            Note::BODY.eq("a\0b"),
            expect(|b| b == "a\0b"),
        ),
        (
            "differs a NUL b",
            Note::BODY.ne("a\0b"),
            expect(|b| b != "a\0b"),
        ),
        (
            "in",
            Note::BODY.in_(["a\0b", "ab"]),
            expect(|b| b == "a\0b" || b == "ab"),
        ),
        ("contains empty", Note::BODY.contains(""), expect(|_| true)),
        ("ends empty", Note::BODY.ends_with(""), expect(|_| true)),
    ];
    for (what, filter, mut want) in cases {
        let mut got: Vec<String> = Note::query()
            .filter(filter)
            .all(db)
            .await
            .unwrap_or_else(|e| panic!("{mode} {what}: {e}"))
            .into_iter()
            .map(|n| n.body)
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{mode}: {what} on {}", db.backend());
    }
    assert_eq!(nul, bodies.iter().any(|b| b.contains('\0')));
    // A filtered delete removes exactly the rows the filter matches.
    let deleted = Note::query()
        .filter(Note::BODY.contains("%"))
        .delete(db)
        .await
        .unwrap();
    assert_eq!(
        deleted.total() as usize,
        bodies.iter().filter(|b| b.contains('%')).count(),
        "{mode}"
    );
    let left: Vec<String> = Note::all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body)
        .collect();
    assert!(left.iter().all(|b| !b.contains('%')), "{mode}: {left:?}");
    assert_eq!(
        left.len(),
        bodies.iter().filter(|b| !b.contains('%')).count(),
        "{mode}: {left:?}"
    );
    db.execute_unprepared("DROP TABLE q_note").await.unwrap();
}

db_test!(async fn text_conditions_are_the_same_on_every_backend_and_mode(db) {
    text_conditions_hold(&db, "default").await;
    let signals_core::PoolRef::MySql(pool) = db.pool() else { return };
    for mode in ["NO_BACKSLASH_ESCAPES", "ANSI"] {
        let sql = format!("SET SESSION sql_mode = CONCAT(@@sql_mode, ',{mode}')");
        let moded = Db::from(
            signals_core::sqlx::mysql::MySqlPoolOptions::new()
                .after_connect(move |conn, _| {
                    let sql = sql.clone();
                    Box::pin(async move {
                        use signals_core::sqlx::Executor as _;
                        conn.execute(signals_core::sqlx::AssertSqlSafe(sql)).await?;
                        Ok(())
                    })
                })
                .connect_with((*pool.connect_options()).clone())
                .await
                .unwrap(),
        );
        let current: String = signals_core::sqlx::query_scalar("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
            .fetch_one(match moded.pool() {
                signals_core::PoolRef::MySql(p) => p,
                _ => unreachable!(),
            })
            .await
            .unwrap();
        assert!(current.contains(mode) || mode == "ANSI" && current.contains("ANSI_QUOTES"), "{current}");
        text_conditions_hold(&moded, mode).await;
        moded.close().await;
    }
});
