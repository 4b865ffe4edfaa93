//! Receivers conditioned on field changes, and typed old values, on every backend.
// Clippy reads `status` in two `changed(..)` lists as a repeated attribute argument.
#![allow(clippy::duplicated_attributes)]

use signals_core::{
    Committed, ErrorKind, FieldType, Model, PostSave, PreSave, Result, SaveOptions,
};
use signals_tests::{create_tables, db_test, record, take_events};

#[derive(Debug, Clone, Copy, PartialEq, FieldType)]
#[field(rename_all = "lowercase")]
enum Status {
    Draft,
    Published,
    Archived,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "post")]
#[pre_save(retitled, changed(title))]
#[post_save(status_moved, changed(status))]
#[post_save(either, changed(title, status))]
#[post_save(every_save)]
#[on_commit(committed_status, changed(status))]
struct Post {
    id: Option<i64>,
    title: String,
    status: Status,
    views: i64,
}

async fn retitled(post: &mut Post, signal: &mut PreSave<'_>) -> Result<()> {
    let was = signal.was(Post::TITLE).cloned();
    record(format!("pre title {was:?} -> {}", post.title));
    assert!(signal.changed(post, Post::TITLE));
    Ok(())
}

async fn status_moved(post: &Post, signal: &mut PostSave<'_>) -> Result<()> {
    assert!(signal.changed(Post::STATUS));
    record(format!(
        "status {:?} -> {:?}",
        signal.was(Post::STATUS),
        post.status
    ));
    if post.title == "fail" {
        return Err(signals_core::BoxError::from("refused").into());
    }
    Ok(())
}

async fn either(_: &Post, _: &mut PostSave<'_>) -> Result<()> {
    record("either");
    Ok(())
}

async fn every_save(post: &Post, signal: &mut PostSave<'_>) -> Result<()> {
    let old = signal.old::<Post>().map(|p| p.views);
    record(format!("save views {old:?} -> {}", post.views));
    Ok(())
}

async fn committed_status(post: Post, what: Committed) -> Result<()> {
    record(format!("committed {:?} {what:?}", post.status));
    Ok(())
}

const SCHEMA: &str = "CREATE TABLE post (id {pk}, title {text} NOT NULL, status {varchar} NOT NULL, views {bigint} NOT NULL)";

fn draft(title: &str) -> Post {
    Post {
        id: None,
        title: title.into(),
        status: Status::Draft,
        views: 0,
    }
}

db_test!(async fn receivers_fire_only_for_their_fields(db) {
    create_tables(&db, SCHEMA).await;
    // A creation is a change of every field; old values are `None`.
    let mut post = draft("Hello");
    post.save(&db).await.unwrap();
    assert_eq!(
        take_events(),
        [
            "pre title None -> Hello",
            "status None -> Draft",
            "either",
            "save views None -> 0",
            "committed Draft Saved { created: true }",
        ]
    );
    // Nothing the receivers watch changed.
    post.views = 5;
    post.save(&db).await.unwrap();
    assert_eq!(take_events(), ["save views Some(0) -> 5"]);
    // Only the title.
    post.title = "Hello, world".into();
    post.save(&db).await.unwrap();
    assert_eq!(take_events(), ["pre title Some(\"Hello\") -> Hello, world", "either", "save views Some(5) -> 5"]);
    // Only the status.
    post.status = Status::Published;
    post.save(&db).await.unwrap();
    assert_eq!(
        take_events(),
        [
            "status Some(Draft) -> Published",
            "either",
            "save views Some(5) -> 5",
            "committed Published Saved { created: false }",
        ]
    );
    // The same value again is no change.
    post.save(&db).await.unwrap();
    assert_eq!(take_events(), ["save views Some(5) -> 5"]);
});

db_test!(async fn the_baseline_is_the_database_not_the_copy_in_memory(db) {
    create_tables(&db, SCHEMA).await;
    let mut post = draft("a");
    post.save(&db).await.unwrap();
    // Another copy publishes it; this stale copy still says Draft.
    let mut other = Post::get(&db, post.id.unwrap()).await.unwrap().unwrap();
    other.status = Status::Published;
    other.save(&db).await.unwrap();
    take_events();
    // Saving the stale copy writes Draft over Published: a change, against the database.
    post.views = 1;
    post.save(&db).await.unwrap();
    let events = take_events();
    assert!(events.contains(&"status Some(Published) -> Draft".to_owned()), "{events:?}");
});

db_test!(async fn update_fields_limit_what_can_change_and_raw_is_told(db) {
    create_tables(&db, SCHEMA).await;
    let mut post = draft("a");
    post.save(&db).await.unwrap();
    take_events();
    // The status differs in memory but is not saved: not a change.
    post.status = Status::Archived;
    post.views = 2;
    post.save_with(&db, SaveOptions::new().update_fields(Post::VIEWS)).await.unwrap();
    assert_eq!(take_events(), ["save views Some(0) -> 2"]);
    assert_eq!(Post::get(&db, post.id.unwrap()).await.unwrap().unwrap().status, Status::Draft);
    // Saved: a change.
    post.save_with(&db, SaveOptions::new().update_fields(Post::STATUS | Post::VIEWS)).await.unwrap();
    let events = take_events();
    assert!(events.contains(&"status Some(Draft) -> Archived".to_owned()), "{events:?}");
    // A raw save runs the conditioned receivers alike.
    post.status = Status::Draft;
    post.save_with(&db, SaveOptions::new().raw()).await.unwrap();
    let events = take_events();
    assert!(events.contains(&"status Some(Archived) -> Draft".to_owned()), "{events:?}");
});

db_test!(async fn two_saves_in_one_transaction_each_compare_with_the_one_before(db) {
    create_tables(&db, SCHEMA).await;
    let mut post = draft("a");
    post.save(&db).await.unwrap();
    take_events();

    let mut tx = db.begin().await.unwrap();
    post.status = Status::Published;
    post.save(&mut tx).await.unwrap();
    post.status = Status::Archived;
    post.save(&mut tx).await.unwrap();
    let inside = take_events();
    assert!(inside.contains(&"status Some(Draft) -> Published".to_owned()), "{inside:?}");
    assert!(inside.contains(&"status Some(Published) -> Archived".to_owned()), "{inside:?}");
    tx.commit().await.unwrap();
    // `#[on_commit(.., changed(status))]`: once, the state at commit against the state before
    // the transaction (Draft -> Archived).
    let after: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("committed")).collect();
    assert_eq!(after, ["committed Archived Saved { created: false }"]);

    // There and back in one transaction: no change at commit.
    let mut tx = db.begin().await.unwrap();
    post.status = Status::Draft;
    post.save(&mut tx).await.unwrap();
    post.status = Status::Archived;
    post.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let after: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("committed")).collect();
    assert!(after.is_empty(), "{after:?}");

    // A save rolled back with its savepoint does not count: only the committed one does.
    let mut tx = db.begin().await.unwrap();
    post.status = Status::Published;
    let sp = tx.savepoint(async |tx: &mut signals_core::Tx| {
        post.save(tx).await?;
        Err::<(), _>(signals_core::Error::from(signals_core::BoxError::from("undo")))
    });
    assert!(sp.await.is_err());
    post.status = Status::Archived;
    post.views = 9;
    post.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let after: Vec<String> = take_events().into_iter().filter(|e| e.starts_with("committed")).collect();
    assert!(after.is_empty(), "Archived before and after: {after:?}");
});

db_test!(async fn rolled_back_saves_leave_the_old_values_and_run_no_on_commit(db) {
    create_tables(&db, SCHEMA).await;
    let mut post = draft("keep");
    post.save(&db).await.unwrap();
    take_events();
    post.title = "fail".into();
    post.status = Status::Published;
    let err = post.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    let events = take_events();
    assert!(!events.iter().any(|e| e.starts_with("committed")), "{events:?}");
    // The next save compares with what the database still holds.
    post.title = "ok".into();
    post.save(&db).await.unwrap();
    let events = take_events();
    assert!(events.contains(&"status Some(Draft) -> Published".to_owned()), "{events:?}");
    assert!(events.contains(&"pre title Some(\"keep\") -> ok".to_owned()), "{events:?}");
});

// Concurrent saves of one row: each sees the row as the other left it, never the same
// baseline twice (the row is read with a lock in the save's own transaction).

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "counter")]
#[post_save(seen, changed(value))]
struct Counter {
    id: Option<i64>,
    value: i64,
}

async fn seen(counter: &Counter, signal: &mut PostSave<'_>) -> Result<()> {
    let was = *signal.was(Counter::VALUE).unwrap_or(&-1);
    record(format!("{was}->{}", counter.value));
    Ok(())
}

db_test!(async fn concurrent_saves_of_one_row_each_see_the_one_before(db) {
    create_tables(&db, "CREATE TABLE counter (id {pk}, value {bigint} NOT NULL)").await;
    let mut counter = Counter { id: None, value: 0 };
    counter.save(&db).await.unwrap();
    take_events();
    let id = counter.id.unwrap();
    let tasks: Vec<_> = (1..=6)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(signals_tests::with_events(async move {
                let mut mine = Counter { id: Some(id), value: n };
                mine.save(&db).await.unwrap();
                take_events()
            }))
        })
        .collect();
    let mut transitions = Vec::new();
    for task in tasks {
        transitions.extend(task.await.unwrap());
    }
    // Six transitions that chain: every value is left once and entered once.
    assert_eq!(transitions.len(), 6, "{transitions:?}");
    let pairs: Vec<(i64, i64)> = transitions
        .iter()
        .map(|t| {
            let (a, b) = t.split_once("->").unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    let mut from: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let mut to: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    from.sort_unstable();
    to.sort_unstable();
    let last = Counter::get(&db, id).await.unwrap().unwrap().value;
    let mut expected_from: Vec<i64> = (0..=6).filter(|v| *v != last).collect();
    expected_from.sort_unstable();
    assert_eq!(from, expected_from, "{transitions:?}");
    assert_eq!(to, (1..=6).collect::<Vec<_>>(), "{transitions:?}");
});

// Issue 27, item 6: a change is what the database would store. `Utc::now()` has nanoseconds
// the servers drop, a decimal column has declared places: re-saving what was saved reports
// no change, for typed `changed(..)` receivers and `Instance::changes()` alike.
#[derive(Debug, Clone, Model)]
#[model(table = "stamp")]
#[post_save(moved, changed(at))]
#[post_save(repriced, changed(price))]
#[post_save(rescaled, changed(ratio, small))]
#[on_commit(committed_move, changed(at, price))]
struct Stamp {
    id: Option<i64>,
    at: chrono::DateTime<chrono::Utc>,
    #[model(max_digits = 10, decimal_places = 2)]
    price: rust_decimal::Decimal,
    ratio: f64,
    small: f32,
}

async fn moved(stamp: &Stamp, signal: &mut PostSave<'_>) -> Result<()> {
    assert!(signal.changed(Stamp::AT));
    record(format!("moved {}", stamp.at.timestamp_subsec_micros()));
    Ok(())
}

async fn repriced(stamp: &Stamp, signal: &mut PostSave<'_>) -> Result<()> {
    assert!(signal.changed(Stamp::PRICE));
    record(format!("repriced {}", stamp.price));
    Ok(())
}

async fn rescaled(_: &Stamp, _: &mut PostSave<'_>) -> Result<()> {
    record("rescaled");
    Ok(())
}

async fn committed_move(_: Stamp, _: Committed) -> Result<()> {
    record("committed");
    Ok(())
}

db_test!(async fn a_change_is_what_the_database_would_store(db) {
    use chrono::{TimeZone, Timelike};
    use signals_core::{Instance, connect_any_post_save, isolate_receivers};
    db.create_tables::<Stamp>().await.unwrap();
    let at = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap().with_nanosecond(123_456_789).unwrap();
    let mut stamp = Stamp { id: None, at, price: "12.5".parse().unwrap(), ratio: 0.1, small: 0.1, };
    stamp.save(&db).await.unwrap();
    assert_eq!(take_events(), ["moved 123456", "repriced 12.5", "rescaled", "committed"]);

    isolate_receivers(async {
        connect_any_post_save("changes", async |instance: &Instance<'_>, _: &mut PostSave<'_>| {
            for c in instance.changes() {
                record(format!("change {} {} -> {}", c.field, c.old, c.new));
            }
            Ok(())
        });
        // The same instance again, with its nanoseconds and its `12.5`: nothing changed.
        stamp.save(&db).await.unwrap();
        assert_eq!(take_events(), Vec::<String>::new());
        // Loaded and saved: nothing either.
        let mut loaded = Stamp::get(&db, stamp.id.unwrap()).await.unwrap().unwrap();
        loaded.save(&db).await.unwrap();
        assert_eq!(take_events(), Vec::<String>::new());
        // Below what is stored: a nanosecond, a third decimal place that rounds away.
        stamp.at = at.with_nanosecond(123_456_999).unwrap();
        stamp.price = "12.504".parse().unwrap();
        stamp.save(&db).await.unwrap();
        assert_eq!(take_events(), Vec::<String>::new());
        // What is stored changes: a microsecond, a cent, a float's last bit.
        stamp.at = at.with_nanosecond(123_457_000).unwrap();
        stamp.price = "12.51".parse().unwrap();
        stamp.ratio = 0.1 + f64::EPSILON;
        stamp.save(&db).await.unwrap();
        let events = take_events();
        assert_eq!(&events[..3], ["moved 123457", "repriced 12.51", "rescaled"], "{events:?}");
        let changes: Vec<&str> = events[3..].iter().map(String::as_str).collect();
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert!(changes[0].starts_with("change at \"2026-12-04T10:00:00.123456Z\" -> \"2026-12-04T10:00:00.123457Z\""), "{changes:?}");
        assert_eq!(changes[1], "change price \"12.50\" -> \"12.51\"");
        assert_eq!(changes[2], format!("change ratio 0.1 -> {}", 0.1 + f64::EPSILON));
        assert_eq!(changes[3], "committed");
    })
    .await;
});
