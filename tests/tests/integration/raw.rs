//! Plain SQL into models in one line on every backend (issue 29, item 7): `?` placeholders
//! (numbered for PostgreSQL), quoted `?` left alone, the rows through `post_load`, in a
//! transaction too, and a count mismatch refused before anything runs.

use signals_core::{ErrorKind, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "rw_post")]
#[post_load(trim_title)]
struct Post {
    id: Option<i64>,
    #[model(max_length = 100)]
    title: String,
    views: i64,
}

fn trim_title(post: &mut Post) -> signals_core::Result<()> {
    post.title = post.title.trim().to_owned();
    Ok(())
}

db_test!(async fn raw_sql_reads_models_on_every_backend(db) {
    db.create_tables::<Post>().await.unwrap();
    for (title, views) in [(" a ", 5), ("b?", 50), ("?", 70), ("it's", 7)] {
        Post { id: None, title: title.into(), views }.save(&db).await.unwrap();
    }
    let popular = Post::raw("SELECT * FROM rw_post WHERE views > ? AND title <> '?' ORDER BY id")
        .bind(10_i64)
        .all(&db)
        .await
        .unwrap();
    let titles: Vec<&str> = popular.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["b?"], "{}", db.backend());
    let first = Post::raw("SELECT id, title, views FROM rw_post WHERE title = ? -- a comment with ?\n")
        .bind(" a ".to_owned())
        .first(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.title, "a", "post_load ran");
    let mut tx = db.begin().await.unwrap();
    Post { id: None, title: "new".into(), views: 1 }.save(&mut tx).await.unwrap();
    let seen = Post::raw("SELECT * FROM rw_post WHERE views < ? AND title IN (?, ?) ORDER BY id")
        .bind(10_i64)
        .bind("new".to_owned())
        .bind("it's".to_owned())
        .all(&mut tx)
        .await
        .unwrap();
    assert_eq!(seen.len(), 2, "the transaction's own row too");
    tx.rollback().await.unwrap();
    let err = Post::raw("SELECT * FROM rw_post WHERE views > ?").all(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("1 placeholder(s) and 0 bound value(s)"), "{err}");
    // A column missing from the select list is an error naming it, and the pool stays usable.
    let err = Post::raw("SELECT id, title FROM rw_post").all(&db).await.unwrap_err();
    assert!(err.to_string().contains("views"), "{err}");
    assert_eq!(Post::raw("SELECT * FROM rw_post").all(&db).await.unwrap().len(), 4);
});
