//! Many-to-many relations and `m2m_changed` on every backend: only the keys that really change
//! are reported, from either side, on deletes of either end too; a pre receiver can refuse.

use signals_core::{
    BoxError, ErrorKind, M2mAction, M2mChange, M2mChanged, Model, PostSave, Result,
};
use signals_tests::{db_test, exec, record, take_events};

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

// Item 2 of the third reliability round: many-to-many changes under concurrency, from both
// sides at once, each link's history read back from a log its receivers write in the change's
// own transaction.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "doc")]
#[model(many_to_many(labels: Label, through = DocLabel, related_name = docs))]
#[model(many_to_many(marks: Label, through = DocMark, related_name = marked_docs))]
struct Doc {
    id: Option<i64>,
    title: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "label")]
struct Label {
    id: Option<i64>,
    name: String,
}

/// A through model without a unique constraint: only the crate's locking keeps a link single.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "doc_label")]
#[m2m_changed(log_label)]
struct DocLabel {
    id: Option<i64>,
    #[model(foreign_key = Doc, on_delete = cascade)]
    doc_id: i64,
    #[model(foreign_key = Label, on_delete = cascade)]
    label_id: i64,
}

/// The same with `unique_together`, where a stale read shows as a unique violation.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "doc_mark", unique_together(doc_id, label_id))]
#[m2m_changed(log_mark)]
struct DocMark {
    id: Option<i64>,
    #[model(foreign_key = Doc, on_delete = cascade)]
    doc_id: i64,
    #[model(foreign_key = Label, on_delete = cascade)]
    label_id: i64,
}

/// One reported change of a link, in the order the changes committed (changes of one link run
/// one after the other, each holding its document's row until it commits).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "link_log")]
struct LinkLog {
    id: Option<i64>,
    through: String,
    doc_id: i64,
    label_id: i64,
    added: bool,
}

async fn log_links(
    through: &str,
    change: &M2mChange<'_, Doc, Label>,
    signal: &mut M2mChanged<'_>,
) -> Result<()> {
    let added = match change.action() {
        M2mAction::PostAdd => true,
        M2mAction::PostRemove | M2mAction::PostClear => false,
        _ => return Ok(()),
    };
    let mut rows: Vec<LinkLog> = change
        .pairs()
        .into_iter()
        .map(|(doc_id, label_id)| LinkLog {
            id: None,
            through: through.into(),
            doc_id,
            label_id,
            added,
        })
        .collect();
    LinkLog::bulk_save(signal.tx(), &mut rows).await?;
    Ok(())
}

async fn log_label(change: &M2mChange<'_, Doc, Label>, signal: &mut M2mChanged<'_>) -> Result<()> {
    log_links("label", change, signal).await
}

async fn log_mark(change: &M2mChange<'_, Doc, Label>, signal: &mut M2mChanged<'_>) -> Result<()> {
    log_links("mark", change, signal).await
}

/// A tiny deterministic generator (xorshift), one per task.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn some(&mut self, keys: &[i64]) -> Vec<i64> {
        keys.iter().copied().filter(|_| self.roll(2) == 0).collect()
    }
}

async fn library(db: &signals_core::Db) -> (Vec<Doc>, Vec<Label>) {
    db.create_tables::<(Doc, Label, DocLabel, DocMark, LinkLog)>()
        .await
        .unwrap();
    let mut docs = Vec::new();
    let mut labels = Vec::new();
    for i in 0..3 {
        let mut doc = Doc {
            id: None,
            title: format!("doc{i}"),
        };
        doc.save(db).await.unwrap();
        docs.push(doc);
        let mut label = Label {
            id: None,
            name: format!("label{i}"),
        };
        label.save(db).await.unwrap();
        labels.push(label);
    }
    (docs, labels)
}

/// One random change of the links of `through` ("label" or "mark"), from a random side; the
/// links it reports changed, as `(doc, label, added)`.
async fn random_change(
    db: &signals_core::Db,
    dice: &mut Dice,
    through: &str,
    docs: &[Doc],
    labels: &[Label],
) -> Result<Vec<(i64, i64, bool)>> {
    let doc_keys: Vec<i64> = docs.iter().map(|d| d.id.unwrap()).collect();
    let label_keys: Vec<i64> = labels.iter().map(|l| l.id.unwrap()).collect();
    let op = dice.roll(4);
    let mut out = Vec::new();
    // One change through `$handle`, its keys made `(doc, label)` links by `$link`.
    macro_rules! change {
        ($handle:expr, $keys:expr, $link:expr) => {{
            let (handle, keys, link) = ($handle, $keys, $link);
            match op {
                0 => out.extend(
                    handle
                        .add(db, keys)
                        .await?
                        .into_iter()
                        .map(|k| link(k, true)),
                ),
                1 => out.extend(
                    handle
                        .remove(db, keys)
                        .await?
                        .into_iter()
                        .map(|k| link(k, false)),
                ),
                2 => {
                    let set = handle.set(db, keys).await?;
                    out.extend(set.removed.into_iter().map(|k| link(k, false)));
                    out.extend(set.added.into_iter().map(|k| link(k, true)));
                }
                _ => out.extend(handle.clear(db).await?.into_iter().map(|k| link(k, false))),
            }
        }};
    }
    if dice.roll(2) == 0 {
        let doc = &docs[dice.roll(docs.len())];
        let d = doc.id.unwrap();
        let keys = dice.some(&label_keys);
        let link = |l: i64, added: bool| (d, l, added);
        if through == "label" {
            change!(doc.labels(), keys, link)
        } else {
            change!(doc.marks(), keys, link)
        }
    } else {
        let label = &labels[dice.roll(labels.len())];
        let l = label.id.unwrap();
        let keys = dice.some(&doc_keys);
        let link = |d: i64, added: bool| (d, l, added);
        if through == "label" {
            change!(label.docs(), keys, link)
        } else {
            change!(label.marked_docs(), keys, link)
        }
    }
    Ok(out)
}

db_test!(async fn mixed_changes_from_both_sides_keep_each_links_history(db) {
    let (docs, labels) = library(&db).await;
    const TASKS: u64 = 8;
    const CALLS: usize = 36; // 288 calls in all
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (db, docs, labels) = (db.clone(), docs.clone(), labels.clone());
        tasks.push(tokio::spawn(async move {
            let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
            let mut reported = Vec::new();
            for call in 0..CALLS {
                let through = if call % 2 == 0 { "label" } else { "mark" };
                match random_change(&db, &mut dice, through, &docs, &labels).await {
                    Ok(changes) => reported.extend(changes.into_iter().map(|c| (through, c))),
                    Err(err) => panic!("task {t} call {call} ({through}): {err}"),
                }
            }
            reported
        }));
    }
    let mut reported = Vec::new();
    for task in tasks {
        reported.extend(task.await.unwrap());
    }
    let log = LinkLog::query().order_by(LinkLog::ID.asc()).all(&db).await.unwrap();
    for through in ["label", "mark"] {
        let rows: Vec<(i64, i64)> = if through == "label" {
            DocLabel::all(&db).await.unwrap().into_iter().map(|r| (r.doc_id, r.label_id)).collect()
        } else {
            DocMark::all(&db).await.unwrap().into_iter().map(|r| (r.doc_id, r.label_id)).collect()
        };
        for doc in &docs {
            for label in &labels {
                let link = (doc.id.unwrap(), label.id.unwrap());
                let history: Vec<bool> = log
                    .iter()
                    .filter(|e| e.through == through && (e.doc_id, e.label_id) == link)
                    .map(|e| e.added)
                    .collect();
                let alternates = history.iter().enumerate().all(|(i, added)| *added == (i % 2 == 0));
                assert!(alternates, "{through} {link:?}: history {history:?}");
                let rows_of_link = rows.iter().filter(|r| **r == link).count();
                assert!(rows_of_link <= 1, "{through} {link:?}: {rows_of_link} rows");
                let linked = history.last() == Some(&true);
                assert_eq!(rows_of_link == 1, linked, "{through} {link:?}: rows against history {history:?}");
                let net: i64 = reported
                    .iter()
                    .filter(|(t, (d, l, _))| *t == through && (*d, *l) == link)
                    .map(|(_, (_, _, added))| if *added { 1 } else { -1 })
                    .sum();
                assert_eq!(net, i64::from(linked), "{through} {link:?}: the calls' returns net to the rows");
            }
        }
    }
    assert!(log.len() > 50, "the calls changed links ({} changes)", log.len());
});

// A transaction that read before another connection linked a document finds the link there
// when it adds it: no change, no error, one row (MariaDB's REPEATABLE READ showed the old
// snapshot: a unique violation, or without the constraint a second row and a false PostAdd).
db_test!(async fn an_add_after_another_connection_linked_finds_the_link(db) {
    if db.backend() == signals_core::Backend::Sqlite {
        return; // a write transaction excludes every other writer: nothing commits between
    }
    let (docs, labels) = library(&db).await;
    let (doc, label) = (&docs[0], &labels[0]);
    for forward in [true, false] {
        for through in ["label", "mark"] {
            let mut tx = db.begin().await.unwrap();
            assert_eq!(Doc::query().count(&mut tx).await.unwrap(), 3); // a read: a snapshot
            assert_eq!(DocLabel::query().count(&mut tx).await.unwrap(), 0);
            assert_eq!(DocMark::query().count(&mut tx).await.unwrap(), 0);
            // Another connection links them and commits.
            let linked = if through == "label" {
                doc.labels().add(&db, [label.id.unwrap()]).await.unwrap()
            } else {
                doc.marks().add(&db, [label.id.unwrap()]).await.unwrap()
            };
            assert_eq!(linked.len(), 1);
            let again = match (forward, through) {
                (true, "label") => doc.labels().add(&mut tx, [label.id.unwrap()]).await,
                (true, _) => doc.marks().add(&mut tx, [label.id.unwrap()]).await,
                (false, "label") => label.docs().add(&mut tx, [doc.id.unwrap()]).await,
                (false, _) => label.marked_docs().add(&mut tx, [doc.id.unwrap()]).await,
            };
            assert_eq!(again.unwrap(), Vec::<i64>::new(), "{through} forward={forward}: no change");
            tx.commit().await.unwrap();
            let rows = if through == "label" {
                DocLabel::query().count(&db).await.unwrap()
            } else {
                DocMark::query().count(&db).await.unwrap()
            };
            assert_eq!(rows, 1, "{through} forward={forward}");
            let adds = LinkLog::query()
                .filter(LinkLog::THROUGH.eq(through) & LinkLog::ADDED.eq(true))
                .count(&db)
                .await
                .unwrap();
            assert_eq!(adds, 1, "{through} forward={forward}: one PostAdd");
            doc.labels().clear(&db).await.unwrap();
            doc.marks().clear(&db).await.unwrap();
            exec(&db, "DELETE FROM link_log").await;
        }
    }
});

// The race PostgreSQL lost: a reverse-side clear reads the links, waits for a document's lock,
// and meanwhile another document is linked and then unlinked by a change still open. The
// clear acts only on the links of the rows it locked, so the unlink is reported once, by the
// change that made it.
db_test!(async fn a_link_made_while_a_reverse_clear_waits_is_left_to_its_own_change(db) {
    if db.backend() == signals_core::Backend::Sqlite {
        return; // a write transaction excludes every other writer
    }
    let (docs, labels) = library(&db).await;
    let (d1, d2, label) = (docs[0].clone(), docs[1].clone(), labels[0].clone());
    let l = label.id.unwrap();
    d1.labels().add(&db, [l]).await.unwrap();
    // X holds d1's row: the clear below reads the links, then waits for it.
    let mut x = db.begin().await.unwrap();
    Doc::get_for_update(&mut x, d1.id.unwrap()).await.unwrap().unwrap();
    let clear = {
        let (db, label) = (db.clone(), label.clone());
        tokio::spawn(async move { label.docs().clear(&db).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Meanwhile d2 is linked (committed), then unlinked by Y, which stays open.
    assert_eq!(d2.labels().add(&db, [l]).await.unwrap(), [l]);
    let mut y = db.begin().await.unwrap();
    assert_eq!(d2.labels().remove(&mut y, [l]).await.unwrap(), [l]);
    x.rollback().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    y.commit().await.unwrap();
    let cleared = clear.await.unwrap().unwrap();
    assert_eq!(cleared, [d1.id.unwrap()], "the clear removed what it had locked");
    let removals = LinkLog::query()
        .filter(LinkLog::DOC_ID.eq(d2.id.unwrap()) & LinkLog::ADDED.eq(false))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(removals, 1, "d2's unlink reported once");
    assert_eq!(DocLabel::query().count(&db).await.unwrap(), 0);
});

// A change of a link racing a delete of either end: the delete takes the locks a change
// takes (the first side's row for update; the second side's row for update, then the first
// side's rows of its links), so the link is reported changed once, by whichever ran first.
db_test!(async fn changes_racing_deletes_of_either_end_report_each_link_once(db) {
    let (docs, labels) = library(&db).await;
    let history = |d: i64, l: i64| {
        let db = db.clone();
        async move {
            LinkLog::query()
                .filter(LinkLog::THROUGH.eq("mark") & LinkLog::DOC_ID.eq(d) & LinkLog::LABEL_ID.eq(l))
                .order_by(LinkLog::ID.asc())
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.added)
                .collect::<Vec<bool>>()
        }
    };
    let mut problems = Vec::new();
    for round in 0..60 {
        let mut d = Doc { id: None, title: format!("race{round}") };
        d.save(&db).await.unwrap();
        let mut l = Label { id: None, name: format!("race{round}") };
        l.save(&db).await.unwrap();
        let (dk, lk) = (d.id.unwrap(), l.id.unwrap());
        let case = round % 3;
        if case < 2 {
            d.marks().add(&db, [lk]).await.unwrap();
        }
        let (change, delete) = match case {
            // A forward remove racing a delete of the label.
            0 => {
                let change = {
                    let (db, d) = (db.clone(), d.clone());
                    tokio::spawn(async move { d.marks().remove(&db, [lk]).await.map(drop) })
                };
                let delete = {
                    let (db, mut l) = (db.clone(), l.clone());
                    tokio::spawn(async move { l.delete(&db).await.map(drop) })
                };
                (change, delete)
            }
            // A reverse clear racing a delete of the document.
            1 => {
                let change = {
                    let (db, l) = (db.clone(), l.clone());
                    tokio::spawn(async move { l.marked_docs().clear(&db).await.map(drop) })
                };
                let delete = {
                    let (db, mut d) = (db.clone(), d.clone());
                    tokio::spawn(async move { d.delete(&db).await.map(drop) })
                };
                (change, delete)
            }
            // A forward add racing a delete of the label: the add finds it gone, or the delete
            // removes (and reports) the link the add made.
            _ => {
                let change = {
                    let (db, d) = (db.clone(), d.clone());
                    tokio::spawn(async move { d.marks().add(&db, [lk]).await.map(drop) })
                };
                let delete = {
                    let (db, mut l) = (db.clone(), l.clone());
                    tokio::spawn(async move { l.delete(&db).await.map(drop) })
                };
                (change, delete)
            }
        };
        let changed = change.await.unwrap();
        let deleted = delete.await.unwrap();
        let h = history(dk, lk).await;
        let rows = DocMark::query()
            .filter(DocMark::DOC_ID.eq(dk) & DocMark::LABEL_ID.eq(lk))
            .count(&db)
            .await
            .unwrap();
        let alternates = h.iter().enumerate().all(|(i, added)| *added == (i % 2 == 0));
        let consistent = alternates && (h.last() == Some(&true)) == (rows == 1) && rows == 0;
        let change_ok = match (&changed, case) {
            (Ok(()), _) => true,
            // The add of a link to a label deleted meanwhile: refused by the reference.
            (Err(e), 2) => {
                matches!(e.kind(), signals_core::ErrorKind::ForeignKeyViolation | signals_core::ErrorKind::NotFound)
            }
            // The other side's row deleted first.
            (Err(e), _) => e.kind() == signals_core::ErrorKind::NotFound,
        };
        if !consistent || !change_ok || deleted.is_err() {
            problems.push(format!(
                "round {round} case {case}: change {:?}, delete {:?}, history {h:?}, rows {rows}",
                changed.map_err(|e| e.to_string()),
                deleted.map_err(|e| e.to_string())
            ));
        }
    }
    assert!(problems.is_empty(), "{} of 60 rounds wrong: {:#?}", problems.len(), &problems[..problems.len().min(3)]);
    drop((docs, labels));
});
