//! The small Django blog of the "models for real applications" issue, ported with no raw SQL
//! and run on all three databases: Author, Post (a status enum, a slug set in `pre_save`, a
//! decimal price, JSON metadata), Comment, and an audit log and a post counter kept by
//! receivers. Its tables come from the models and are checked against them.

use chrono::{DateTime, TimeZone as _, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use signals_core::{
    Executor, FieldType, Json, Model, PostDelete, PostSave, PreSave, Result, SaveOptions,
};
use signals_tests::db_test;

#[derive(Debug, Clone, Copy, PartialEq, Eq, FieldType)]
#[field(rename_all = "lowercase")]
enum Status {
    Draft,
    Published,
    Archived,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct PostMeta {
    tags: Vec<String>,
    reading_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "blog_author")]
struct Author {
    id: Option<i64>,
    #[model(unique, max_length = 100)]
    name: String,
    /// Kept by `count_post` and `uncount_post`, never by hand.
    post_count: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "blog_post")]
#[pre_save(slugify)]
#[post_save(count_post, audit_post)]
#[post_delete(uncount_post)]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    #[model(max_length = 200)]
    title: String,
    #[model(unique, max_length = 200)]
    slug: String,
    status: Status,
    published_at: Option<DateTime<Utc>>,
    #[model(max_digits = 8, decimal_places = 2)]
    price: Decimal,
    metadata: Json<PostMeta>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "blog_comment")]
#[post_save(audit_comment)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "blog_audit")]
struct Audit {
    id: Option<i64>,
    #[model(max_length = 50)]
    model: String,
    object_id: i64,
    #[model(max_length = 20)]
    action: String,
    detail: serde_json::Value,
}

/// Django's `slugify`, in the `pre_save` receiver: the slug follows the title.
async fn slugify(post: &mut Post, _: &mut PreSave<'_>) -> Result<()> {
    let mut slug = String::new();
    for word in post
        .title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_lowercase());
    }
    post.slug = slug;
    Ok(())
}

/// The author's counter, raised in the database (no stale copy can undo it).
async fn count_post(post: &Post, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() {
        Author::query()
            .filter(Author::ID.eq(post.author_id))
            .update(signal.tx(), Author::POST_COUNT.add(1))
            .await?;
    }
    Ok(())
}

async fn uncount_post(post: &Post, signal: &mut PostDelete<'_>) -> Result<()> {
    Author::query()
        .filter(Author::ID.eq(post.author_id))
        .update(signal.tx(), Author::POST_COUNT.add(-1))
        .await?;
    Ok(())
}

async fn audit<'e>(
    ex: impl Executor<'e>,
    model: &str,
    id: i64,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    Audit {
        id: None,
        model: model.into(),
        object_id: id,
        action: action.into(),
        detail,
    }
    .save(ex)
    .await?;
    Ok(())
}

async fn audit_post(post: &Post, signal: &mut PostSave<'_>) -> Result<()> {
    let action = if signal.created() {
        "created"
    } else {
        "changed"
    };
    let detail = serde_json::json!({"status": post.status.to_stored(), "slug": post.slug});
    audit(
        signal.tx(),
        "Post",
        post.id.unwrap_or_default(),
        action,
        detail,
    )
    .await
}

async fn audit_comment(comment: &Comment, signal: &mut PostSave<'_>) -> Result<()> {
    let detail =
        serde_json::json!({"post": comment.post_id, "length": comment.body.chars().count()});
    audit(
        signal.tx(),
        "Comment",
        comment.id.unwrap_or_default(),
        "created",
        detail,
    )
    .await
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 9, 0, 0).unwrap()
}

fn post(author: &Author, title: &str, status: Status, day: Option<u32>, price: &str) -> Post {
    Post {
        id: None,
        author_id: author.id.unwrap(),
        title: title.into(),
        slug: String::new(),
        status,
        published_at: day.map(at),
        price: price.parse().unwrap(),
        metadata: Json(PostMeta {
            tags: vec!["rust".into()],
            reading_minutes: 3,
        }),
    }
}

db_test!(async fn the_blog_runs_on_every_database(db) {
    // Tables from the models, then checked against them, as the app would at start-up.
    db.create_tables::<(Audit, Comment, Post, Author)>().await.unwrap();
    db.check_schema::<(Author, Post, Comment, Audit)>().await.unwrap();

    let mut ada = Author { id: None, name: "Ada".into(), post_count: 0 };
    ada.save(&db).await.unwrap();
    let mut bob = Author { id: None, name: "Bob".into(), post_count: 0 };
    bob.save(&db).await.unwrap();

    // Eight posts by Ada, published on days 1..=8, plus drafts and one by Bob.
    let mut posts = Vec::new();
    for day in 1..=8 {
        let mut p = post(&ada, &format!("Notes, part {day}!"), Status::Published, Some(day), "4.99");
        p.save(&db).await.unwrap();
        posts.push(p);
    }
    let mut draft = post(&ada, "Work in progress", Status::Draft, None, "0");
    draft.save(&db).await.unwrap();
    let mut bobs = post(&bob, "Bob's first post", Status::Published, Some(20), "12.50");
    bobs.save(&db).await.unwrap();
    assert_eq!(posts[2].slug, "notes-part-3", "the pre_save receiver set the slug");

    // A stale copy does not undo the receivers' counter: refresh, or update in the database.
    assert_eq!(ada.post_count, 0, "the copy in memory is stale");
    ada.refresh(&db).await.unwrap();
    assert_eq!(ada.post_count, 9);

    // "The latest five published posts before the 20th", in the database.
    let latest = Post::query()
        .filter(Post::STATUS.eq(Status::Published))
        .filter(Post::PUBLISHED_AT.lt(at(20)))
        .order_by(Post::PUBLISHED_AT.desc())
        .limit(5)
        .all(&db)
        .await
        .unwrap();
    let days: Vec<_> = latest.iter().map(|p| p.published_at.unwrap()).collect();
    assert_eq!(days, [at(8), at(7), at(6), at(5), at(4)]);
    assert_eq!(latest[0], posts[7]);

    // Comments, counted per post and across the reference to the author.
    for (i, body) in ["First!", "Nice 🦀", "Thanks"].iter().enumerate() {
        Comment { id: None, post_id: posts[i % 2].id.unwrap(), body: (*body).into() }.save(&db).await.unwrap();
    }
    Comment { id: None, post_id: bobs.id.unwrap(), body: "Hi Bob".into() }.save(&db).await.unwrap();
    assert_eq!(Comment::query().filter(Comment::POST_ID.eq(posts[0].id.unwrap())).count(&db).await.unwrap(), 2);
    let on_adas = Comment::query()
        .filter(Comment::POST_ID.in_query(Post::query().filter(Post::AUTHOR_ID.eq(ada.id.unwrap()))))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(on_adas, 3);

    // Decimal and JSON in queries and round trips.
    let pricey = Post::query().filter(Post::PRICE.gt("5".parse::<Decimal>().unwrap())).all(&db).await.unwrap();
    assert_eq!(pricey, [bobs.clone()]);
    assert_eq!(pricey[0].price.to_string(), "12.50");
    // Ordered by value, not as text (SQLite stores decimals as exact text).
    let by_price = Post::query().order_by(Post::PRICE.desc()).order_by(Post::ID.asc()).first(&db).await.unwrap();
    assert_eq!(by_price, Some(bobs.clone()));
    assert_eq!(
        Post::query().filter(Post::PRICE.eq("4.990".parse::<Decimal>().unwrap())).count(&db).await.unwrap(),
        8,
        "equal as numbers, whatever the scale"
    );
    assert_eq!(pricey[0].metadata.0.tags, ["rust"]);
    assert!(Post::query().filter(Post::SLUG.starts_with("notes-part-1")).exists(&db).await.unwrap());

    // Archive the old posts in one statement, sending no signals (Django's `update()`).
    let archived = Post::query()
        .filter(Post::PUBLISHED_AT.le(at(2)))
        .update(&db, Post::STATUS.set(Status::Archived))
        .await
        .unwrap();
    assert_eq!(archived, 2);
    assert_eq!(Post::query().filter(Post::STATUS.eq(Status::Archived)).count(&db).await.unwrap(), 2);

    // A change through save: the audit records it; update_fields saves only the title
    // (pre_save still runs, but the slug is not written).
    let mut third = posts[2].clone();
    third.title = "Renamed".into();
    third.save_with(&db, SaveOptions::new().update_fields(Post::TITLE)).await.unwrap();
    let stored = Post::get(&db, third.id.unwrap()).await.unwrap().unwrap();
    assert_eq!((stored.title.as_str(), stored.slug.as_str()), ("Renamed", "notes-part-3"));

    // Deleting the archived posts deletes their comments and lowers the counter, in one
    // transaction, with their receivers.
    let deleted = Post::query().filter(Post::STATUS.eq(Status::Archived)).delete(&db).await.unwrap();
    assert_eq!(deleted.total(), 2 + 3, "two posts and the three comments on them");
    ada.refresh(&db).await.unwrap();
    assert_eq!(ada.post_count, 7);
    assert_eq!(Comment::query().count(&db).await.unwrap(), 1, "Bob's");

    // The audit log, kept by receivers, read with typed queries.
    let audits = Audit::query().filter(Audit::MODEL.eq("Post".to_owned())).order_by(Audit::ID.asc()).all(&db).await.unwrap();
    assert_eq!(audits.len(), 10 + 1, "ten creations and the rename");
    assert_eq!(audits[0].detail, serde_json::json!({"status": "published", "slug": "notes-part-1"}));
    assert_eq!(audits.last().unwrap().action, "changed");
    let comment_audits = Audit::query().filter(Audit::MODEL.eq("Comment".to_owned())).count(&db).await.unwrap();
    assert_eq!(comment_audits, 4);

    // A failing save leaves nothing behind: a duplicate slug rolls back its receivers' work.
    let before = Audit::query().count(&db).await.unwrap();
    let err = post(&bob, "Bob's first post", Status::Draft, None, "1").save(&db).await.unwrap_err();
    assert_eq!(err.kind(), signals_core::ErrorKind::UniqueViolation, "{err}");
    assert_eq!(Audit::query().count(&db).await.unwrap(), before);
    bob.refresh(&db).await.unwrap();
    assert_eq!(bob.post_count, 1);

    // Deleting an author cascades to the posts and comments, with every receiver.
    let bob_id = bob.id.unwrap();
    bob.delete(&db).await.unwrap();
    assert_eq!(Post::query().filter(Post::AUTHOR_ID.eq(bob_id)).count(&db).await.unwrap(), 0);
    assert_eq!(Comment::query().count(&db).await.unwrap(), 0);
});
