//! `get_or_create` and `update_or_create` (issue 29, item 5): the right row, the right
//! `created` flag and the right signals, also when 16 tasks race on one key, and inside a
//! caller's transaction whose snapshot predates the row (MariaDB's REPEATABLE READ).

use std::sync::Arc;

use signals_core::{Db, ErrorKind, Model, PostSave};
use signals_tests::{another_pool, db_test, scalar};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "oc_tag")]
#[post_save(log_save)]
struct Tag {
    id: Option<i64>,
    #[model(unique, max_length = 50)]
    name: String,
    uses: i64,
}

/// One row per save, written in the save's transaction: what the signals said.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "oc_log")]
struct Log {
    id: Option<i64>,
    name: String,
    created: bool,
    uses: i64,
}

async fn log_save(tag: &Tag, signal: &mut PostSave<'_>) -> signals_core::Result<()> {
    let created = signal.created();
    Log {
        id: None,
        name: tag.name.clone(),
        created,
        uses: tag.uses,
    }
    .save(signal.tx())
    .await?;
    Ok(())
}

fn rust() -> Tag {
    Tag {
        id: None,
        name: "rust".into(),
        uses: 0,
    }
}

db_test!(async fn sixteen_racing_get_or_create_make_one_row_and_one_created(db) {
    db.create_tables::<(Tag, Log)>().await.unwrap();
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for i in 0..16 {
        // Half through the test's pool, half through pools of their own, as processes.
        let pool = if i % 2 == 0 { Arc::clone(&db) } else { Arc::new(another_pool(&db).await) };
        tasks.push(tokio::spawn(async move {
            let res = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&*pool, rust).await;
            res.map(|(tag, created)| (tag.id, created))
        }));
    }
    let mut created = 0;
    let mut ids = Vec::new();
    for task in tasks {
        let (id, made) = task.await.unwrap().unwrap();
        created += usize::from(made);
        ids.push(id);
    }
    assert_eq!(created, 1, "{}", db.backend());
    ids.dedup();
    assert_eq!(ids.len(), 1, "every task got the one row: {ids:?}");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_tag").await, 1);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_log").await, 1, "one save, one post_save");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_log WHERE created = TRUE").await, 1);
});

db_test!(async fn sixteen_racing_update_or_create_lose_no_update(db) {
    db.create_tables::<(Tag, Log)>().await.unwrap();
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let pool = if i % 2 == 0 { Arc::clone(&db) } else { Arc::new(another_pool(&db).await) };
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let res = Tag::query()
                    .filter(Tag::NAME.eq("rust"))
                    .update_or_create(&*pool, rust, |t| t.uses += 1)
                    .await;
                match res {
                    // A deadlock between two first inserts is the server's to break: retry.
                    Err(e) if e.is_retryable() && attempts < 20 => continue,
                    other => return other.map(|(_, created)| created),
                }
            }
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(created, 1, "{}", db.backend());
    let tag = Tag::query().first(&*db).await.unwrap().unwrap();
    assert_eq!(tag.uses, 16, "no update lost");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_log").await, 16, "one post_save per save");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_log WHERE created = TRUE").await, 1);
    assert_eq!(scalar(&db, "SELECT MAX(uses) FROM oc_log").await, 16);
});

db_test!(async fn get_or_create_in_a_transaction_sees_a_row_committed_after_it_began(db) {
    db.create_tables::<(Tag, Log)>().await.unwrap();
    if db.backend() == signals_core::Backend::Sqlite {
        // A SQLite write transaction holds the whole database: no other writer commits
        // while it is open.
        return;
    }
    let other = another_pool(&db).await;
    let mut tx = db.begin().await.unwrap();
    // The transaction reads first: on MariaDB its snapshot is taken now.
    assert_eq!(Tag::query().count(&mut tx).await.unwrap(), 0);
    let (theirs, created) = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&other, rust).await.unwrap();
    assert!(created);
    let (found, created) = Tag::query()
        .filter(Tag::NAME.eq("rust"))
        .get_or_create(&mut tx, rust)
        .await
        .unwrap();
    assert_eq!((found.id, created), (theirs.id, false), "{}", db.backend());
    // The transaction is still usable, and commits.
    Tag { id: None, name: "go".into(), uses: 0 }.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    other.close().await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_log WHERE created = TRUE").await, scalar(&db, "SELECT COUNT(*) FROM oc_tag").await);
});

db_test!(async fn a_create_that_fails_otherwise_is_reported_and_undone(db) {
    db.create_tables::<(Tag, Log)>().await.unwrap();
    // `make` builds a row the query does not find, which collides with another: the error is
    // the caller's, nothing is written, and a transaction stays usable.
    Tag { id: None, name: "taken".into(), uses: 0 }.save(&db).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let err = Tag::query()
        .filter(Tag::NAME.eq("free"))
        .get_or_create(&mut tx, || Tag { id: None, name: "taken".into(), uses: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    Tag { id: None, name: "free".into(), uses: 0 }.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM oc_tag").await, 2);
    let _: &Db = &db;
});
