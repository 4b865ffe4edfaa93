//! Delete: cascade in Django's signal order, restrict, set_null, errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Profile, User};
use signals_core::{
    Error, ErrorKind, Model, OnDelete, PostDelete, PreDelete, Result, relations_to,
};
use signals_tests::{count, create_tables, db_test, exec, record, take_events};

const SCHEMA: &str = "
CREATE TABLE album (
    id {pk},
    profile_id {bigint} NOT NULL,
    name {text} NOT NULL,
    CONSTRAINT album_profile_fk FOREIGN KEY (profile_id) REFERENCES account_profile (id)
);
CREATE TABLE comment (
    id {pk},
    author_id {bigint},
    body {text} NOT NULL,
    CONSTRAINT comment_author_fk FOREIGN KEY (author_id) REFERENCES account_user (id)
);
CREATE TABLE blog_post (
    id {pk},
    author_id {bigint} NOT NULL,
    title {text} NOT NULL,
    CONSTRAINT blog_post_author_fk FOREIGN KEY (author_id) REFERENCES account_user (id)
)";

async fn setup(db: &signals_core::Db) {
    common::setup(db).await;
    create_tables(db, SCHEMA).await;
}

/// A grandchild of User through Profile, with its own delete receivers.
#[derive(Debug, Clone, Model)]
#[pre_delete(album_pre_delete)]
#[post_delete(album_post_delete)]
struct Album {
    id: Option<i64>,
    #[model(foreign_key = Profile, on_delete = cascade)]
    profile_id: i64,
    name: String,
}

async fn album_pre_delete(album: &Album, signal: &mut PreDelete<'_>) -> Result<()> {
    record(format!(
        "pre_delete Album {} origin={}",
        album.name,
        signal.origin()
    ));
    Ok(())
}

async fn album_post_delete(album: &Album, signal: &mut PostDelete<'_>) -> Result<()> {
    record(format!(
        "post_delete Album {} origin={}",
        album.name,
        signal.origin()
    ));
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Model)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = User, on_delete = set_null)]
    author_id: Option<i64>,
    body: String,
}

async fn user_with_profile(db: &signals_core::Db, name: &str) -> (User, Profile) {
    let mut user = User::new(name);
    user.save(db).await.unwrap();
    let profile = Profile::for_user(db, &user).await.unwrap().unwrap();
    take_events();
    (user, profile)
}

db_test!(async fn cascade_deletes_children_in_django_order(db) {
    setup(&db).await;
    let (mut user, profile) = user_with_profile(&db, "johndoe").await;
    let (_other, _) = user_with_profile(&db, "janedoe").await;
    for name in ["a", "b"] {
        Album { id: None, profile_id: profile.id.unwrap(), name: name.into() }.save(&db).await.unwrap();
    }
    take_events();

    let deleted = user.delete(&db).await.unwrap();
    assert_eq!(
        take_events(),
        [
            "pre_delete Album a origin=User",
            "pre_delete Album b origin=User",
            "pre_delete Profile origin=User",
            "pre_delete User origin=User",
            "post_delete Album a origin=User",
            "post_delete Album b origin=User",
            "post_delete Profile origin=User",
            "post_delete User origin=User",
        ]
    );
    assert_eq!(deleted.total(), 4);
    assert_eq!(deleted.per_model(), [("Album", 2), ("Profile", 1), ("User", 1)]);
    assert_eq!(user.id, None, "the key is cleared, as Django does");
    assert_eq!(count(&db, "album").await, 0);
    assert_eq!(count(&db, "account_profile").await, 1, "janedoe's profile stays");
    assert_eq!(count(&db, "account_user").await, 1);
});

db_test!(async fn deleting_a_child_alone_leaves_the_parent(db) {
    setup(&db).await;
    let (user, mut profile) = user_with_profile(&db, "johndoe").await;
    profile.delete(&db).await.unwrap();
    assert_eq!(take_events(), ["pre_delete Profile origin=Profile", "post_delete Profile origin=Profile"]);
    assert!(User::get(&db, user.id.unwrap()).await.unwrap().is_some());
    assert_eq!(count(&db, "account_profile").await, 0);
});

db_test!(async fn restrict_refuses_and_deletes_nothing(db) {
    setup(&db).await;
    let (mut user, _) = user_with_profile(&db, "johndoe").await;
    let mut post = blog::Post { id: None, author_id: user.id.unwrap(), title: "hello".into() };
    post.save(&db).await.unwrap();

    let err = user.delete(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Restricted);
    assert!(matches!(err, Error::Restricted { related: "Post", field: "author_id", count: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("delete them first"), "{err}");
    assert!(take_events().is_empty(), "no signal was sent");
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
    assert!(user.id.is_some());

    post.delete(&db).await.unwrap();
    user.delete(&db).await.unwrap();
    assert_eq!(count(&db, "account_user").await, 0);
});

db_test!(async fn set_null_clears_references_and_keeps_rows(db) {
    setup(&db).await;
    let (mut user, _) = user_with_profile(&db, "johndoe").await;
    let mut comment = Comment { id: None, author_id: user.id, body: "first!".into() };
    comment.save(&db).await.unwrap();
    user.delete(&db).await.unwrap();
    let kept = Comment::get(&db, comment.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(kept.author_id, None);
    assert_eq!(kept.body, "first!");
});

db_test!(async fn delete_errors_for_unsaved_and_missing_rows(db) {
    setup(&db).await;
    let mut unsaved = User::new("nobody");
    let err = unsaved.delete(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSaved);
    assert!(err.to_string().contains("never saved"), "{err}");

    let (mut user, _) = user_with_profile(&db, "johndoe").await;
    let (mut gone, _) = user_with_profile(&db, "gone").await;
    let id = gone.id.unwrap();
    exec(&db, &format!("DELETE FROM account_profile WHERE user_id = {id}")).await;
    exec(&db, &format!("DELETE FROM account_user WHERE id = {id}")).await;
    let err = gone.delete(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(count(&db, "account_user").await, 1);
    user.delete(&db).await.unwrap();
});

db_test!(async fn delete_inside_a_transaction_rolls_back_with_it(db) {
    setup(&db).await;
    let (mut user, _) = user_with_profile(&db, "johndoe").await;
    let mut tx = db.begin().await.unwrap();
    user.delete(&mut tx).await.unwrap();
    assert_eq!(User::all(&mut tx).await.unwrap().len(), 0);
    tx.rollback().await.unwrap();
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
});

#[test]
fn relations_are_found_from_any_module() {
    let rels = relations_to::<User>();
    let found: Vec<_> = rels
        .iter()
        .map(|r| (r.child, r.field, r.on_delete))
        .collect();
    assert_eq!(
        found,
        [
            ("Comment", "author_id", OnDelete::SetNull),
            ("Post", "author_id", OnDelete::Restrict),
            ("Profile", "user_id", OnDelete::Cascade),
        ]
    );
}

/// Declared after its parent and in another module: still found by `User`'s delete.
mod blog {
    use super::User;
    use signals_core::Model;

    #[derive(Debug, Clone, Model)]
    #[model(table = "blog_post")]
    pub(crate) struct Post {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = User, on_delete = restrict)]
        pub(crate) author_id: i64,
        pub(crate) title: String,
    }
}

// Django's `DeletionTests.test_relational_post_delete_signals_happen_before_parent_object`,
// ported: a cascaded child's `post_delete` runs while its parent's row still exists, so a
// receiver can read the parent (counters, audit, notifications).

#[derive(Debug, Clone, Model)]
#[model(table = "del_r")]
struct R {
    id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "del_s")]
#[post_delete(log_post_delete)]
struct S {
    id: Option<i64>,
    #[model(foreign_key = R, on_delete = cascade)]
    r_id: i64,
}

/// A grandchild, so the order holds level by level.
#[derive(Debug, Clone, Model)]
#[model(table = "del_t")]
#[post_delete(log_t_post_delete)]
struct T {
    id: Option<i64>,
    #[model(foreign_key = S, on_delete = cascade)]
    s_id: i64,
}

async fn log_post_delete(s: &S, signal: &mut PostDelete<'_>) -> Result<()> {
    let parent = R::get(signal.tx(), s.r_id).await?;
    let own_row = S::get(signal.tx(), s.id.unwrap()).await?;
    record(format!(
        "post_delete S {}: parent {}, own row {}",
        s.id.unwrap(),
        if parent.is_some() { "present" } else { "gone" },
        if own_row.is_some() { "present" } else { "gone" },
    ));
    Ok(())
}

async fn log_t_post_delete(t: &T, signal: &mut PostDelete<'_>) -> Result<()> {
    let parent = S::get(signal.tx(), t.s_id).await?;
    record(format!(
        "post_delete T: parent S {}",
        if parent.is_some() { "present" } else { "gone" }
    ));
    Ok(())
}

db_test!(async fn relational_post_delete_signals_happen_before_parent_object(db) {
    create_tables(&db, "
        CREATE TABLE del_r (id {pk});
        CREATE TABLE del_s (id {pk}, r_id {bigint} NOT NULL,
            CONSTRAINT del_s_r_fk FOREIGN KEY (r_id) REFERENCES del_r (id));
        CREATE TABLE del_t (id {pk}, s_id {bigint} NOT NULL,
            CONSTRAINT del_t_s_fk FOREIGN KEY (s_id) REFERENCES del_s (id))").await;
    let mut r = R { id: None };
    r.save(&db).await.unwrap();
    let mut s = S { id: None, r_id: r.id.unwrap() };
    s.save(&db).await.unwrap();
    T { id: None, s_id: s.id.unwrap() }.save(&db).await.unwrap();

    let deleted = r.delete(&db).await.unwrap();
    assert_eq!(deleted.per_model(), [("T", 1), ("S", 1), ("R", 1)]);
    assert_eq!(
        take_events(),
        [
            "post_delete T: parent S present".to_owned(),
            format!("post_delete S {}: parent present, own row gone", s.id.unwrap()),
        ]
    );
    assert_eq!(count(&db, "del_r").await + count(&db, "del_s").await + count(&db, "del_t").await, 0);
});
