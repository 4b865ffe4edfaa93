//! `save_with`: update_fields, raw and quiet saves, with Django's rules.

use signals_core::{ErrorKind, FieldSet, Model, PostSave, PreSave, Result, SaveOptions};
use signals_tests::{count, create_tables, db_test, record, take_events};

#[derive(Debug, Clone, PartialEq, Model)]
#[pre_save(stamp)]
#[post_save(report)]
struct Article {
    id: Option<i64>,
    title: String,
    body: String,
    revision: i64,
}

/// Records what it sees, and bumps the revision on every save.
async fn stamp(article: &mut Article, signal: &mut PreSave<'_>) -> Result<()> {
    record(format!(
        "pre_save fields={:?} raw={}",
        signal.update_fields(),
        signal.raw()
    ));
    article.revision += 1;
    Ok(())
}

async fn report(_: &Article, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!(
        "post_save created={} fields={:?} raw={}",
        signal.created(),
        signal.update_fields(),
        signal.raw()
    ));
    Ok(())
}

const SCHEMA: &str = "CREATE TABLE article (id {pk}, title {text} NOT NULL, body {text} NOT NULL, revision {bigint} NOT NULL)";

fn article() -> Article {
    Article {
        id: None,
        title: "t".into(),
        body: "b".into(),
        revision: 0,
    }
}

db_test!(async fn update_fields_writes_only_those_columns(db) {
    create_tables(&db, SCHEMA).await;
    let mut a = article();
    a.save(&db).await.unwrap();
    take_events();

    a.title = "new title".into();
    a.body = "new body".into();
    let saved = a.save_with(&db, SaveOptions::new().update_fields(Article::TITLE)).await.unwrap();
    assert!(!saved.created());
    assert_eq!(
        take_events(),
        [
            r#"pre_save fields=Some(["title"]) raw=false"#,
            r#"post_save created=false fields=Some(["title"]) raw=false"#,
        ]
    );
    let row = Article::get(&db, a.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(row.title, "new title");
    assert_eq!(row.body, "b", "outside the set: not written");
    // The pre_save receiver bumped `revision`, outside the set: the instance has it, the row not.
    assert_eq!((a.revision, row.revision), (2, 1));

    a.save_with(&db, SaveOptions::new().update_fields(Article::BODY | Article::REVISION)).await.unwrap();
    let row = Article::get(&db, a.id.unwrap()).await.unwrap().unwrap();
    assert_eq!((row.body.as_str(), row.revision), ("new body", 3));
});

db_test!(async fn empty_update_fields_saves_nothing_and_sends_nothing(db) {
    create_tables(&db, SCHEMA).await;
    let mut a = article();
    a.save(&db).await.unwrap();
    take_events();
    a.title = "unsaved".into();
    let saved = a.save_with(&db, SaveOptions::new().update_fields(FieldSet::empty())).await.unwrap();
    assert!(!saved.created());
    assert!(take_events().is_empty());
    assert_eq!(Article::get(&db, a.id.unwrap()).await.unwrap().unwrap().title, "t");
    // Even for an unsaved instance: nothing to do, nothing done.
    let mut fresh = article();
    fresh.save_with(&db, SaveOptions::new().update_fields(FieldSet::empty())).await.unwrap();
    assert_eq!(fresh.id, None);
    assert_eq!(count(&db, "article").await, 1);
});

db_test!(async fn update_fields_never_inserts(db) {
    create_tables(&db, SCHEMA).await;
    let err = article()
        .save_with(&db, SaveOptions::new().update_fields(Article::TITLE))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSaved, "{err}");
    let mut ghost = Article { id: Some(777), ..article() };
    let err = ghost.save_with(&db, SaveOptions::new().update_fields(Article::TITLE)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(count(&db, "article").await, 0);
    take_events();
});

db_test!(async fn raw_saves_tell_the_receivers(db) {
    create_tables(&db, SCHEMA).await;
    let mut a = article();
    assert!(a.save_with(&db, SaveOptions::new().raw()).await.unwrap().created());
    assert_eq!(
        take_events(),
        ["pre_save fields=None raw=true", "post_save created=true fields=None raw=true"]
    );
});

db_test!(async fn quiet_saves_send_no_signal(db) {
    create_tables(&db, SCHEMA).await;
    let mut a = article();
    assert!(a.save_with(&db, SaveOptions::new().quietly()).await.unwrap().created());
    a.title = "quiet update".into();
    assert!(!a.save_with(&db, SaveOptions::new().quietly()).await.unwrap().created());
    assert!(take_events().is_empty());
    assert_eq!(a.revision, 0, "pre_save did not run");
    assert_eq!(Article::get(&db, a.id.unwrap()).await.unwrap().unwrap().title, "quiet update");
});
