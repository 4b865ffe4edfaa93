//! Many-to-many relations and `m2m_changed` on every backend: only the keys that really change
//! are reported, from either side, on deletes of either end too; a pre receiver can refuse.
#![allow(clippy::unwrap_used)]

use signals_core::{
    BoxError, ErrorKind, M2mAction, M2mChange, M2mChanged, Model, PostSave, Result,
};
use signals_tests::{db_test, record, take_events};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "author")]
struct Author {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "post")]
#[model(many_to_many(tags: Tag, through = PostTag, related_name = posts))]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    title: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tag")]
struct Tag {
    id: Option<i64>,
    name: String,
}

/// The through model, with a column of its own and a receiver of its own.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "post_tag", unique_together(post_id, tag_id))]
#[m2m_changed(tags_changed)]
#[post_save(through_saved)]
struct PostTag {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = Tag, on_delete = cascade)]
    tag_id: i64,
    note: Option<String>,
}

async fn tags_changed(change: &M2mChange<'_, Post, Tag>, _: &mut M2mChanged<'_>) -> Result<()> {
    let mut pairs = change.pairs();
    pairs.sort();
    let side = if change.reverse() {
        "reverse"
    } else {
        "forward"
    };
    record(format!(
        "{:?} {side} {} {pairs:?}",
        change.action(),
        change.model()
    ));
    if change.action() == M2mAction::PreAdd
        && let Some((post, _)) = change.forward()
        && post.title == "locked"
    {
        return Err(BoxError::from("this post's tags are locked").into());
    }
    Ok(())
}

async fn through_saved(row: &PostTag, _: &mut PostSave<'_>) -> Result<()> {
    record(format!("through saved {} {}", row.post_id, row.tag_id));
    Ok(())
}

struct Blog {
    ada: Author,
    post: Post,
    tags: Vec<Tag>,
}

async fn blog(db: &signals_core::Db) -> Blog {
    db.create_tables::<(Author, Post, Tag, PostTag)>()
        .await
        .unwrap();
    let mut ada = Author {
        id: None,
        name: "Ada".into(),
    };
    ada.save(db).await.unwrap();
    let mut post = Post {
        id: None,
        author_id: ada.id.unwrap(),
        title: "Hello".into(),
    };
    post.save(db).await.unwrap();
    let mut tags = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let mut tag = Tag {
            id: None,
            name: name.into(),
        };
        tag.save(db).await.unwrap();
        tags.push(tag);
    }
    take_events();
    Blog { ada, post, tags }
}

db_test!(async fn only_real_changes_are_reported(db) {
    let Blog { post, .. } = blog(&db).await;
    let tags = post.tags();
    assert_eq!(tags.add(&db, [1, 2]).await.unwrap(), [1, 2]);
    assert_eq!(take_events(), ["PreAdd forward Tag [(1, 1), (1, 2)]", "PostAdd forward Tag [(1, 1), (1, 2)]"]);
    // 2 is there already: only 3 is added, and reported.
    assert_eq!(tags.add(&db, [2, 3, 3]).await.unwrap(), [3]);
    assert_eq!(take_events(), ["PreAdd forward Tag [(1, 3)]", "PostAdd forward Tag [(1, 3)]"]);
    // Nothing new: nothing sent.
    assert!(tags.add(&db, [1, 2]).await.unwrap().is_empty());
    assert!(take_events().is_empty());
    // 4 was never linked: only 3 is removed, and reported (Django reports 4 too).
    assert_eq!(tags.remove(&db, [3, 4]).await.unwrap(), [3]);
    assert_eq!(take_events(), ["PreRemove forward Tag [(1, 3)]", "PostRemove forward Tag [(1, 3)]"]);
    assert!(tags.remove(&db, [4]).await.unwrap().is_empty());
    assert!(take_events().is_empty());
    assert_eq!(tags.keys(&db).await.unwrap(), [1, 2]);
    assert_eq!(tags.all(&db).await.unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(tags.query().filter(Tag::NAME.eq("b")).count(&db).await.unwrap(), 1);

    // set: remove what is not wanted, then add what is missing.
    let set = tags.set(&db, [2, 4]).await.unwrap();
    assert_eq!((set.added, set.removed), (vec![4], vec![1]));
    assert_eq!(
        take_events(),
        [
            "PreRemove forward Tag [(1, 1)]",
            "PostRemove forward Tag [(1, 1)]",
            "PreAdd forward Tag [(1, 4)]",
            "PostAdd forward Tag [(1, 4)]",
        ]
    );
    // clear: what was linked.
    assert_eq!(tags.clear(&db).await.unwrap(), [2, 4]);
    assert_eq!(take_events(), ["PreClear forward Tag [(1, 2), (1, 4)]", "PostClear forward Tag [(1, 2), (1, 4)]"]);
    assert!(tags.clear(&db).await.unwrap().is_empty());
    assert!(take_events().is_empty());
    assert_eq!(PostTag::query().count(&db).await.unwrap(), 0);
});

db_test!(async fn the_reverse_side_reports_reverse(db) {
    let Blog { post, ada, tags } = blog(&db).await;
    let mut second = Post { id: None, author_id: ada.id.unwrap(), title: "Second".into() };
    second.save(&db).await.unwrap();
    take_events();
    assert_eq!(tags[0].posts().add(&db, [1, 2]).await.unwrap(), [1, 2]);
    assert_eq!(take_events(), ["PreAdd reverse Post [(1, 1), (2, 1)]", "PostAdd reverse Post [(1, 1), (2, 1)]"]);
    assert_eq!(post.tags().keys(&db).await.unwrap(), [1]);
    assert_eq!(second.tags().keys(&db).await.unwrap(), [1]);
    assert_eq!(tags[0].posts().remove(&db, [2, 9]).await.unwrap(), [2]);
    assert_eq!(take_events(), ["PreRemove reverse Post [(2, 1)]", "PostRemove reverse Post [(2, 1)]"]);
});

db_test!(async fn deleting_either_end_reports_the_links_it_removes(db) {
    let Blog { mut post, mut ada, mut tags } = blog(&db).await;
    post.tags().add(&db, [1, 2, 3]).await.unwrap();
    take_events();
    // A tag: its link to the post, from the tag's side.
    tags[0].delete(&db).await.unwrap();
    assert_eq!(take_events(), ["PreRemove reverse Post [(1, 1)]", "PostRemove reverse Post [(1, 1)]"]);
    // A tag with no link: nothing.
    tags[3].delete(&db).await.unwrap();
    assert!(take_events().is_empty());
    // The post: its remaining links.
    post.delete(&db).await.unwrap();
    assert_eq!(take_events(), ["PreRemove forward Tag [(1, 2), (1, 3)]", "PostRemove forward Tag [(1, 2), (1, 3)]"]);
    assert_eq!(PostTag::query().count(&db).await.unwrap(), 0);

    // Reached by a cascade (the author's delete) and by a bulk delete, alike.
    let mut p = Post { id: None, author_id: ada.id.unwrap(), title: "x".into() };
    p.save(&db).await.unwrap();
    p.tags().add(&db, [2]).await.unwrap();
    take_events();
    ada.delete(&db).await.unwrap();
    assert_eq!(take_events(), ["PreRemove forward Tag [(2, 2)]", "PostRemove forward Tag [(2, 2)]"]);
    let mut bob = Author { id: None, name: "Bob".into() };
    bob.save(&db).await.unwrap();
    let mut q = Post { id: None, author_id: bob.id.unwrap(), title: "y".into() };
    q.save(&db).await.unwrap();
    q.tags().add(&db, [3]).await.unwrap();
    take_events();
    Tag::query().filter(Tag::ID.eq(3)).delete(&db).await.unwrap();
    assert_eq!(take_events(), ["PreRemove reverse Post [(3, 3)]", "PostRemove reverse Post [(3, 3)]"]);
    let _ = &mut tags;
});

db_test!(async fn a_pre_receiver_can_refuse_and_nothing_is_written(db) {
    let Blog { ada, .. } = blog(&db).await;
    let mut locked = Post { id: None, author_id: ada.id.unwrap(), title: "locked".into() };
    locked.save(&db).await.unwrap();
    take_events();
    let err = locked.tags().add(&db, [1, 2]).await.unwrap_err();
    assert!(err.to_string().contains("this post's tags are locked"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(locked.tags().keys(&db).await.unwrap(), Vec::<i64>::new());
    assert_eq!(take_events(), ["PreAdd forward Tag [(2, 1), (2, 2)]"]);
    // Inside a transaction, the refusal leaves the transaction usable.
    let mut tx = db.begin().await.unwrap();
    locked.tags().add(&mut tx, [1]).await.unwrap_err();
    let mut other = Tag { id: None, name: "kept".into() };
    other.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Tag::query().filter(Tag::NAME.eq("kept")).count(&db).await.unwrap(), 1);
    // A key that names no row: the database refuses it, nothing is written.
    let Blog { .. } = Blog { ada: ada.clone(), post: locked.clone(), tags: Vec::new() };
    let mut post = Post { id: None, author_id: ada.id.unwrap(), title: "free".into() };
    post.save(&db).await.unwrap();
    let err = post.tags().add(&db, [1, 999]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    assert_eq!(post.tags().keys(&db).await.unwrap(), Vec::<i64>::new());
    // An unsaved instance has no links.
    let unsaved = Post { id: None, author_id: 1, title: "new".into() };
    assert_eq!(unsaved.tags().add(&db, [1]).await.unwrap_err().kind(), ErrorKind::NotSaved);
});

db_test!(async fn concurrent_adds_of_one_key_make_one_link(db) {
    let Blog { post, .. } = blog(&db).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (db, post) = (db.clone(), post.clone());
            tokio::spawn(signals_tests::with_events(async move {
                post.tags().add(&db, [2]).await.unwrap()
            }))
        })
        .collect();
    let mut added = Vec::new();
    for task in tasks {
        added.extend(task.await.unwrap());
    }
    assert_eq!(added, [2], "one add reports it, the others find it there");
    assert_eq!(PostTag::query().count(&db).await.unwrap(), 1);
});

db_test!(async fn through_rows_saved_directly_run_their_own_receivers(db) {
    let Blog { post, .. } = blog(&db).await;
    // Links made by `add` run no save receiver of the through model (as in Django)...
    post.tags().add(&db, [1]).await.unwrap();
    let events = take_events();
    assert!(!events.iter().any(|e| e.starts_with("through saved")), "{events:?}");
    // ...a through row saved directly runs its own, and no m2m_changed.
    let mut row = PostTag { id: None, post_id: post.id.unwrap(), tag_id: 2, note: Some("by hand".into()) };
    row.save(&db).await.unwrap();
    assert_eq!(take_events(), ["through saved 1 2"]);
    assert_eq!(post.tags().keys(&db).await.unwrap(), [1, 2]);
    // Deleting it sends its own delete signals, no m2m_changed.
    row.delete(&db).await.unwrap();
    assert!(take_events().is_empty());
});

db_test!(async fn keys_come_in_key_order_across_chunks_of_any_size(db) {
    let Blog { post, .. } = blog(&db).await;
    for n in 5..=12 {
        Tag { id: None, name: format!("t{n}") }.save(&db).await.unwrap();
    }
    let wanted: Vec<i64> = (1..=12).rev().collect();
    let added = post.tags().add(&db, wanted.clone()).await.unwrap();
    assert_eq!(added, wanted, "in the order given");
    assert_eq!(post.tags().keys(&db).await.unwrap(), (1..=12).collect::<Vec<_>>(), "numeric order");
    assert_eq!(post.tags().remove(&db, [12, 9, 10]).await.unwrap(), [9, 10, 12]);
});

db_test!(async fn concurrent_adds_of_one_link_from_both_sides_make_one_link(db) {
    let Blog { post, tags, .. } = blog(&db).await;
    for round in 0..5 {
        let tag = tags[round % 4].clone();
        let forward = {
            let (db, post, key) = (db.clone(), post.clone(), tag.id.unwrap());
            tokio::spawn(signals_tests::with_events(async move { post.tags().add(&db, [key]).await.unwrap() }))
        };
        let backward = {
            let (db, tag, key) = (db.clone(), tag.clone(), post.id.unwrap());
            tokio::spawn(signals_tests::with_events(async move { tag.posts().add(&db, [key]).await.unwrap() }))
        };
        let (a, b) = (forward.await.unwrap(), backward.await.unwrap());
        assert_eq!(a.len() + b.len(), 1, "one side adds it, the other finds it: {a:?} {b:?}");
        assert_eq!(PostTag::query().filter(PostTag::TAG_ID.eq(tag.id.unwrap())).count(&db).await.unwrap(), 1);
        post.tags().clear(&db).await.unwrap();
    }
});

db_test!(async fn add_through_saves_rows_with_their_own_receivers(db) {
    let Blog { post, ada, .. } = blog(&db).await;
    post.tags().add(&db, [2]).await.unwrap();
    take_events();
    let row = |tag: i64, note: &str| PostTag {
        id: None,
        post_id: post.id.unwrap(),
        tag_id: tag,
        note: Some(note.into()),
    };
    // Tag 2 is linked already: skipped, neither saved nor reported.
    let added = post.tags().add_through(&db, [row(1, "first"), row(2, "again")]).await.unwrap();
    assert_eq!(added, [1]);
    assert_eq!(
        take_events(),
        ["PreAdd forward Tag [(1, 1)]", "through saved 1 1", "PostAdd forward Tag [(1, 1)]"]
    );
    let notes: Vec<Option<String>> = PostTag::query().order_by(PostTag::TAG_ID.asc()).all(&db).await.unwrap().into_iter().map(|r| r.note).collect();
    assert_eq!(notes, [Some("first".to_owned()), None]);
    // A row of another post: refused whole.
    let mut other = Post { id: None, author_id: ada.id.unwrap(), title: "other".into() };
    other.save(&db).await.unwrap();
    let stray = PostTag { id: None, post_id: other.id.unwrap(), tag_id: 3, note: None };
    let err = post.tags().add_through(&db, [row(3, "ok"), stray]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert_eq!(PostTag::query().count(&db).await.unwrap(), 2);
});

db_test!(async fn a_link_is_unique_in_the_database_too(db) {
    let Blog { post, .. } = blog(&db).await;
    post.tags().add(&db, [1]).await.unwrap();
    // SQL of your own, or a through row saved by hand, cannot duplicate a link.
    let mut twin = PostTag { id: None, post_id: post.id.unwrap(), tag_id: 1, note: None };
    let err = twin.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    assert_eq!(PostTag::query().count(&db).await.unwrap(), 1);
    let ddl = signals_core::schema::Schema::of::<PostTag>().create_sql(db.backend());
    assert!(ddl.contains("UNIQUE (") && ddl.contains("post_id") && ddl.contains("tag_id"), "{ddl}");
});
