//! Queries across relations (issue 29, items 1 and 2): conditions through references in both
//! directions, several hops and many-to-many links (`EXISTS`), orderings through references
//! (joins), the referenced row read with each row (`select_related`) and related rows read for
//! a list (`prefetch`, `prefetch_linked`): the same rows on every backend, checked against
//! what plain Rust over the same data gives.

use std::collections::BTreeSet;

use signals_core::{Db, Filter, Model};
use signals_tests::{db_test, scalar};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_author")]
struct Author {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_post", many_to_many(tags: Tag, through = PostTag))]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    #[model(foreign_key = Author, on_delete = set_null)]
    editor_id: Option<i64>,
    #[model(max_length = 100)]
    title: String,
    published: bool,
    views: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_tag")]
struct Tag {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_post_tag", unique_together(post_id, tag_id))]
struct PostTag {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = Tag, on_delete = cascade)]
    tag_id: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_comment")]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(max_length = 100)]
    body: String,
}

/// A tree: a reference to its own model.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rel_category")]
struct Category {
    id: Option<i64>,
    #[model(foreign_key = Category, on_delete = cascade)]
    parent_id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

/// The blog every test reads, in memory as it is in the database.
struct Blog {
    authors: Vec<Author>,
    posts: Vec<Post>,
    tags: Vec<Tag>,
    links: Vec<(i64, i64)>,
    comments: Vec<Comment>,
}

async fn blog(db: &Db) -> Blog {
    db.create_tables::<(Author, Post, Tag, PostTag, Comment, Category)>()
        .await
        .unwrap();
    let mut authors: Vec<Author> = ["ada", "bob", "cy", "dee"]
        .iter()
        .map(|n| Author {
            id: None,
            name: (*n).into(),
        })
        .collect();
    Author::bulk_save(db, &mut authors).await.unwrap();
    // author, editor, title, published, views
    let rows: &[(i64, Option<i64>, &str, bool, i64)] = &[
        (1, None, "Engines", true, 30),
        (1, Some(2), "Notes", false, 5),
        (2, Some(1), "Gardens", true, 12),
        (2, None, "Ferns", true, 12),
        (3, Some(3), "Draft", false, 0),
        (1, Some(4), "Looms", true, 44),
    ];
    let mut posts: Vec<Post> = rows
        .iter()
        .map(|(author_id, editor_id, title, published, views)| Post {
            id: None,
            author_id: *author_id,
            editor_id: *editor_id,
            title: (*title).into(),
            published: *published,
            views: *views,
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
    let links = vec![(1, 1), (1, 2), (2, 1), (3, 3), (4, 3), (6, 1), (6, 3)];
    for (post, tag) in &links {
        let post = Post::get(db, *post).await.unwrap().unwrap();
        post.tags().add(db, [*tag]).await.unwrap();
    }
    let mut comments: Vec<Comment> = [
        (1, "great"),
        (1, "more please"),
        (3, "lovely"),
        (5, "typo"),
        (6, "great looms"),
    ]
    .iter()
    .map(|(post_id, body)| Comment {
        id: None,
        post_id: *post_id,
        body: (*body).into(),
    })
    .collect();
    Comment::bulk_save(db, &mut comments).await.unwrap();
    Blog {
        authors,
        posts,
        tags,
        links,
        comments,
    }
}

impl Blog {
    fn author(&self, id: i64) -> &Author {
        self.authors.iter().find(|a| a.id == Some(id)).unwrap()
    }
    fn post(&self, id: i64) -> &Post {
        self.posts.iter().find(|p| p.id == Some(id)).unwrap()
    }
    fn tag(&self, id: i64) -> &Tag {
        self.tags.iter().find(|t| t.id == Some(id)).unwrap()
    }
}

fn ids<M: Model<Key = i64>>(rows: &[M]) -> Vec<i64> {
    rows.iter().map(|r| r.__key().copied().unwrap()).collect()
}

fn sorted(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    ids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

db_test!(async fn forward_conditions_match_what_the_referenced_rows_say(db) {
    let blog = blog(&db).await;
    // One hop: posts by ada.
    let got = Post::query().filter(Post::AUTHOR_ID.matches(Author::NAME.eq("ada"))).all(&db).await.unwrap();
    let want: Vec<i64> = blog.posts.iter().filter(|p| blog.author(p.author_id).name == "ada").map(|p| p.id.unwrap()).collect();
    assert_eq!(ids(&got), want);
    // A nullable reference: a NULL editor matches nothing, and its negation matches it.
    let edited_by_ada = Post::EDITOR_ID.matches(Author::NAME.eq("ada"));
    let got = Post::query().filter(edited_by_ada).all(&db).await.unwrap();
    assert_eq!(ids(&got), [3]);
    let got = Post::query().filter(!Post::EDITOR_ID.matches(Author::NAME.eq("ada"))).all(&db).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 4, 5, 6], "NULL editors are not edited by ada");
    // Two hops: comments on posts by bob.
    let got = Comment::query()
        .filter(Comment::POST_ID.matches(Post::AUTHOR_ID.matches(Author::NAME.eq("bob"))))
        .all(&db)
        .await
        .unwrap();
    let want: Vec<i64> = blog.comments.iter().filter(|c| blog.author(blog.post(c.post_id).author_id).name == "bob").map(|c| c.id.unwrap()).collect();
    assert_eq!(ids(&got), want);
    // Mixed with the row's own columns, under `|` and `!`.
    let got = Post::query()
        .filter(Post::VIEWS.gt(20) | Post::AUTHOR_ID.matches(Author::NAME.eq("cy")))
        .filter(!Post::AUTHOR_ID.matches(Author::NAME.eq("bob")))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(ids(&got), [1, 5, 6]);
    assert_eq!(
        Post::query().filter(Post::AUTHOR_ID.matches(Author::NAME.eq("nobody"))).count(&db).await.unwrap(),
        0
    );
});

db_test!(async fn reverse_conditions_give_each_row_once(db) {
    let blog = blog(&db).await;
    // Authors with a published post: ada has three, once.
    let got = Author::query().filter(Post::AUTHOR_ID.any(Post::PUBLISHED.eq(true))).all(&db).await.unwrap();
    let want = sorted(blog.posts.iter().filter(|p| p.published).map(|p| p.author_id));
    assert_eq!(ids(&got), want);
    // Authors without any post, and without an edit.
    let got = Author::query().filter(!Post::AUTHOR_ID.is_referenced()).all(&db).await.unwrap();
    assert_eq!(ids(&got), [4]);
    let got = Author::query().filter(!Post::EDITOR_ID.is_referenced()).all(&db).await.unwrap();
    let editors = sorted(blog.posts.iter().filter_map(|p| p.editor_id));
    let want: Vec<i64> = (1..=4).filter(|i| !editors.contains(i)).collect();
    assert_eq!(ids(&got), want);
    // `NOT EXISTS` keeps NULL references out of the way: authors who edited no unpublished post.
    let got = Author::query().filter(!Post::EDITOR_ID.any(Post::PUBLISHED.eq(false))).all(&db).await.unwrap();
    assert_eq!(ids(&got), [1, 4]);
    // Two hops back: authors with a comment containing "great" on one of their posts.
    let got = Author::query()
        .filter(Post::AUTHOR_ID.any(Comment::POST_ID.any(Comment::BODY.contains("great"))))
        .all(&db)
        .await
        .unwrap();
    let want = sorted(blog.comments.iter().filter(|c| c.body.contains("great")).map(|c| blog.post(c.post_id).author_id));
    assert_eq!(ids(&got), want);
    // Forward and back: authors who wrote a post that bob edited.
    let got = Author::query()
        .filter(Post::AUTHOR_ID.any(Post::EDITOR_ID.matches(Author::NAME.eq("bob"))))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(ids(&got), [1]);
});

db_test!(async fn many_to_many_conditions_from_both_sides(db) {
    let blog = blog(&db).await;
    for tag in ["rust", "garden", "sql", "none"] {
        let got = Post::query().filter(Filter::linked::<PostTag, _>(Tag::NAME.eq(tag))).all(&db).await.unwrap();
        let want = sorted(blog.links.iter().filter(|(_, t)| blog.tag(*t).name == tag).map(|(p, _)| *p));
        assert_eq!(ids(&got), want, "posts tagged {tag}");
    }
    // Posts tagged both rust and garden; posts with no tag.
    let both = Filter::linked::<PostTag, _>(Tag::NAME.eq("rust")) & Filter::linked::<PostTag, _>(Tag::NAME.eq("garden"));
    assert_eq!(ids(&Post::query().filter(both).all(&db).await.unwrap()), [6]);
    let untagged = !Filter::<Post>::linked::<PostTag, Tag>(Tag::NAME.ne(""));
    assert_eq!(ids(&Post::query().filter(untagged).all(&db).await.unwrap()), [5]);
    // From the tags' side, through a condition on the post's author.
    let got = Tag::query()
        .filter(Filter::linked::<PostTag, _>(Post::AUTHOR_ID.matches(Author::NAME.eq("bob"))))
        .all(&db)
        .await
        .unwrap();
    let want = sorted(blog.links.iter().filter(|(p, _)| blog.author(blog.post(*p).author_id).name == "bob").map(|(_, t)| *t));
    assert_eq!(ids(&got), want);
    // The through model's own columns reach the same rows.
    let got = Post::query()
        .filter(PostTag::POST_ID.any(PostTag::TAG_ID.matches(Tag::NAME.eq("sql"))))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(ids(&got), [1]);
});

db_test!(async fn orderings_through_references_page_like_rust_sorts(db) {
    let blog = blog(&db).await;
    // By the author's name, then the post's title: every page as plain Rust pages.
    let mut want: Vec<&Post> = blog.posts.iter().collect();
    want.sort_by(|a, b| (&blog.author(a.author_id).name, &a.title).cmp(&(&blog.author(b.author_id).name, &b.title)));
    let want: Vec<i64> = want.iter().map(|p| p.id.unwrap()).collect();
    for (offset, limit) in [(0, 2), (2, 2), (4, 2), (0, 10)] {
        let page = Post::query()
            .order_by(Post::AUTHOR_ID.by(Author::NAME.asc_binary()))
            .order_by(Post::TITLE.asc_binary())
            .limit(limit)
            .offset(offset)
            .all(&db)
            .await
            .unwrap();
        let end = (offset + limit).min(want.len() as u64) as usize;
        assert_eq!(ids(&page), want[offset as usize..end], "page at {offset}");
    }
    // A nullable reference: NULLs first going up, on every backend with the binary orderings.
    let got = Post::query()
        .order_by(Post::EDITOR_ID.by(Author::NAME.desc_binary()))
        .order_by(Post::ID.asc())
        .all(&db)
        .await
        .unwrap();
    // dee(6), cy(5), bob(2), ada(3), then the NULLs (1, 4).
    assert_eq!(ids(&got), [6, 5, 2, 3, 1, 4]);
    // Two hops: comments by their post's author's name, and a count of a window so ordered.
    let got = Comment::query()
        .order_by(Comment::POST_ID.by(Post::AUTHOR_ID.by(Author::NAME.desc())))
        .order_by(Comment::ID.asc())
        .all(&db)
        .await
        .unwrap();
    assert_eq!(ids(&got), [4, 3, 1, 2, 5]);
    let counted = Comment::query()
        .order_by(Comment::POST_ID.by(Post::AUTHOR_ID.by(Author::NAME.desc())))
        .limit(3)
        .count(&db)
        .await
        .unwrap();
    assert_eq!(counted, 3);
    // A condition and an ordering on columns both tables have (`id`): each names its own.
    let got = Post::query()
        .filter(Post::ID.gt(2))
        .order_by(Post::AUTHOR_ID.by(Author::ID.desc()))
        .order_by(Post::ID.desc())
        .all(&db)
        .await
        .unwrap();
    assert_eq!(ids(&got), [5, 4, 3, 6]);
});

db_test!(async fn select_related_reads_each_row_with_its_parent(db) {
    let blog = blog(&db).await;
    let rows = Post::query()
        .filter(Post::VIEWS.ge(5))
        .order_by(Post::AUTHOR_ID.by(Author::NAME.desc()))
        .order_by(Post::ID.asc())
        .select_related(Post::AUTHOR_ID)
        .all(&db)
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|(p, a)| (p.id.unwrap(), a.name.clone())).collect();
    assert_eq!(got, [(3, "bob".into()), (4, "bob".into()), (1, "ada".into()), (2, "ada".into()), (6, "ada".into())]);
    for (post, author) in &rows {
        assert_eq!(post, blog.post(post.id.unwrap()), "the row whole");
        assert_eq!(author, blog.author(post.author_id), "the parent whole");
    }
    // A nullable reference gives an Option.
    let rows = Post::query().select_related(Post::EDITOR_ID).all(&db).await.unwrap();
    let got: Vec<Option<String>> = rows.iter().map(|(_, e)| e.as_ref().map(|e| e.name.clone())).collect();
    let want: Vec<Option<String>> = blog.posts.iter().map(|p| p.editor_id.map(|e| blog.author(e).name.clone())).collect();
    assert_eq!(got, want);
    let first = Post::query().filter(Post::TITLE.eq("Looms")).select_related(Post::EDITOR_ID).first(&db).await.unwrap().unwrap();
    assert_eq!(first.1.map(|a| a.name), Some("dee".to_owned()));
    // A tree: each category with its parent.
    let mut root = Category { id: None, parent_id: None, name: "root".into() };
    root.save(&db).await.unwrap();
    let mut leaf = Category { id: None, parent_id: root.id, name: "leaf".into() };
    leaf.save(&db).await.unwrap();
    let rows = Category::query().select_related(Category::PARENT_ID).all(&db).await.unwrap();
    let got: Vec<(String, Option<String>)> = rows.into_iter().map(|(c, p)| (c.name, p.map(|p| p.name))).collect();
    assert_eq!(got, [("root".into(), None), ("leaf".into(), Some("root".into()))]);
    let children = Category::query().filter(Category::PARENT_ID.matches(Category::NAME.eq("root"))).all(&db).await.unwrap();
    assert_eq!(ids(&children), [leaf.id.unwrap()]);
    let parents = Category::query().filter(Category::PARENT_ID.any(Category::NAME.eq("leaf"))).all(&db).await.unwrap();
    assert_eq!(ids(&parents), [root.id.unwrap()]);
});

db_test!(async fn prefetch_groups_the_related_rows_of_a_list(db) {
    let blog = blog(&db).await;
    let authors = Author::query().order_by(Author::NAME.desc()).prefetch(Post::AUTHOR_ID).all(&db).await.unwrap();
    for (author, posts) in &authors {
        let want: Vec<i64> = blog.posts.iter().filter(|p| p.author_id == author.id.unwrap()).map(|p| p.id.unwrap()).collect();
        assert_eq!(ids(posts), want, "{}", author.name);
    }
    assert_eq!(authors.iter().map(|(a, _)| a.name.as_str()).collect::<Vec<_>>(), ["dee", "cy", "bob", "ada"]);
    // Through a nullable reference.
    let editors = Author::query().prefetch(Post::EDITOR_ID).all(&db).await.unwrap();
    for (author, posts) in &editors {
        let want: Vec<i64> = blog.posts.iter().filter(|p| p.editor_id == author.id).map(|p| p.id.unwrap()).collect();
        assert_eq!(ids(posts), want);
    }
    // Many-to-many, from both sides.
    let posts = Post::query().prefetch_linked::<PostTag, Tag>().all(&db).await.unwrap();
    for (post, tags) in &posts {
        let want: Vec<i64> = sorted(blog.links.iter().filter(|(p, _)| Some(*p) == post.id).map(|(_, t)| *t));
        assert_eq!(ids(tags), want, "{}", post.title);
    }
    let tags = Tag::query().prefetch_linked::<PostTag, Post>().all(&db).await.unwrap();
    for (tag, posts) in &tags {
        let want: Vec<i64> = sorted(blog.links.iter().filter(|(_, t)| Some(*t) == tag.id).map(|(p, _)| *p));
        assert_eq!(ids(posts), want, "{}", tag.name);
    }
    // An empty list reads nothing more.
    let none = Author::query().filter(Author::NAME.eq("nobody")).prefetch(Post::AUTHOR_ID).all(&db).await.unwrap();
    assert!(none.is_empty());
});

db_test!(async fn prefetch_of_more_rows_than_a_chunk(db) {
    db.create_tables::<(Author, Post, Tag, PostTag, Comment, Category)>().await.unwrap();
    let n = signals_core::MAX_CHUNK_ROWS as i64 + 7;
    let mut authors: Vec<Author> = (0..n).map(|i| Author { id: None, name: format!("a{i:05}") }).collect();
    Author::bulk_save(&db, &mut authors).await.unwrap();
    let mut posts: Vec<Post> = (1..=n)
        .filter(|i| i % 3 != 0)
        .map(|i| Post { id: None, author_id: i, editor_id: None, title: format!("t{i}"), published: true, views: i })
        .collect();
    Post::bulk_save(&db, &mut posts).await.unwrap();
    let authors = Author::query().prefetch(Post::AUTHOR_ID).all(&db).await.unwrap();
    assert_eq!(authors.len() as i64, n);
    for (author, posts) in &authors {
        let id = author.id.unwrap();
        let want: Vec<i64> = if id % 3 == 0 { vec![] } else { vec![id] };
        assert_eq!(posts.iter().map(|p| p.views).collect::<Vec<_>>(), want);
    }
});

db_test!(async fn updates_and_deletes_through_relations(db) {
    let blog = blog(&db).await;
    let bumped = Post::query()
        .filter(Filter::linked::<PostTag, _>(Tag::NAME.eq("garden")))
        .update(&db, Post::VIEWS.add(100))
        .await
        .unwrap();
    let gardens = blog.links.iter().filter(|(_, t)| *t == 3).count() as u64;
    assert_eq!(bumped, gardens);
    let deleted = Comment::query()
        .filter(Comment::POST_ID.matches(Post::AUTHOR_ID.matches(Author::NAME.eq("ada"))))
        .delete(&db)
        .await
        .unwrap();
    assert_eq!(deleted.total(), 3);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM rel_comment").await, 2);
    // Inside a transaction, locking the rows of the query's own table (PostgreSQL cannot lock
    // the nullable side of an outer join).
    let mut tx = db.begin().await.unwrap();
    let locked = Post::query()
        .order_by(Post::EDITOR_ID.by(Author::NAME.asc()))
        .for_update()
        .select_related(Post::EDITOR_ID)
        .all(&mut tx)
        .await
        .unwrap();
    assert_eq!(locked.len(), blog.posts.len());
    tx.commit().await.unwrap();
});
