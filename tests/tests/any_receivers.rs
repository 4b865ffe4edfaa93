//! Receivers connected to every model: a type-erased view with old values, the same
//! transaction, after the model's own receivers, muted and recorded as the others; an audit
//! log of every change is one receiver. All three backends share this process's registry.
#![allow(clippy::unwrap_used)]

use signals_core::Backend;
use signals_core::{
    Instance, Model, PostSave, PreDelete, Result, SaveOptions, SignalKind, connect_any_post_save,
    connect_any_pre_delete, mute_receiver, record_signals,
};
use signals_tests::{create_tables, record, take_events};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tag")]
struct Tag {
    id: Option<i64>,
    name: String,
    uses: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "post")]
#[post_save(own)]
struct Post {
    id: Option<i64>,
    title: String,
    published: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "comment")]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
}

/// The audit log the receiver keeps.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "audit")]
struct Audit {
    id: Option<i64>,
    model: String,
    object: String,
    changes: serde_json::Value,
}

async fn own(post: &Post, _: &mut PostSave<'_>) -> Result<()> {
    record(format!("own {}", post.title));
    Ok(())
}

async fn audit(instance: &Instance<'_>, signal: &mut PostSave<'_>) -> Result<()> {
    let changes: serde_json::Map<String, serde_json::Value> = instance
        .changes()
        .into_iter()
        .map(|c| (c.field.to_owned(), serde_json::json!([c.old, c.new])))
        .collect();
    record(format!(
        "audit {} {}",
        instance.model(),
        serde_json::Value::Object(changes.clone())
    ));
    // The typed instance is there too.
    if let Some(tag) = instance.downcast::<Tag>() {
        assert_eq!(instance.field("uses"), Some(serde_json::json!(tag.uses)));
        assert_eq!(instance.fields().len(), 3);
    }
    if instance.field("title") == Some(serde_json::json!("fail")) {
        return Err(signals_core::BoxError::from("refused").into());
    }
    // Saved quietly: the audit row itself sends no signal, so it is not audited in turn.
    Audit {
        id: None,
        model: instance.model().to_owned(),
        object: instance.key().to_string(),
        changes: serde_json::Value::Object(changes),
    }
    .save_with(signal.tx(), SaveOptions::new().quietly())
    .await?;
    Ok(())
}

async fn before_delete(instance: &Instance<'_>, signal: &mut PreDelete<'_>) -> Result<()> {
    record(format!(
        "delete {} {} (origin {})",
        instance.model(),
        instance.key(),
        signal.origin()
    ));
    Ok(())
}

fn connect() {
    // Once per process; the three backends' tests share it.
    connect_any_post_save("audit", audit);
    connect_any_pre_delete("before_delete", before_delete);
}

const SCHEMA: &str = "
CREATE TABLE tag (id {pk}, name {text} NOT NULL, uses {bigint} NOT NULL);
CREATE TABLE post (id {pk}, title {text} NOT NULL, published {date});
CREATE TABLE comment (id {pk}, post_id {bigint} NOT NULL);
CREATE TABLE audit (id {pk}, model {text} NOT NULL, object {text} NOT NULL, changes {text} NOT NULL)";

/// The backends one after another: muting is process-wide, and this test mutes `audit` for
/// `Tag` for a while, which would hide another backend's audits running at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_audits_every_model() {
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        signals_tests::run(
            backend,
            "one_receiver_audits_every_model",
            audits_every_model,
        )
        .await;
    }
}

async fn audits_every_model(db: signals_core::Db) {
    connect();
    create_tables(
        &db,
        &SCHEMA.replace(
            "changes {text}",
            if db.backend() == signals_core::Backend::Postgres {
                "changes JSONB"
            } else {
                "changes {text}"
            },
        ),
    )
    .await;

    // A model with no receivers of its own is audited, old -> new, the creation included.
    let mut tag = Tag {
        id: None,
        name: "rust".into(),
        uses: 0,
    };
    tag.save(&db).await.unwrap();
    assert_eq!(
        take_events(),
        [r#"audit Tag {"id":[null,1],"name":[null,"rust"],"uses":[null,0]}"#]
    );
    tag.uses = 3;
    tag.save(&db).await.unwrap();
    assert_eq!(take_events(), [r#"audit Tag {"uses":[0,3]}"#]);
    // update_fields: only what was written.
    tag.name = "Rust".into();
    tag.uses = 4;
    tag.save_with(&db, SaveOptions::new().update_fields(Tag::NAME))
        .await
        .unwrap();
    assert_eq!(take_events(), [r#"audit Tag {"name":["rust","Rust"]}"#]);

    // After the model's own receivers.
    let mut post = Post {
        id: None,
        title: "Hello".into(),
        published: None,
    };
    post.save(&db).await.unwrap();
    let events = take_events();
    assert_eq!(events[0], "own Hello");
    assert!(events[1].starts_with("audit Post"), "{events:?}");
    post.published = chrono::NaiveDate::from_ymd_opt(2026, 12, 3);
    post.save(&db).await.unwrap();
    assert_eq!(
        take_events()[1],
        r#"audit Post {"published":[null,"2026-12-03"]}"#
    );

    // The audit rows are in the saves' transactions.
    let rows = Audit::query()
        .order_by(Audit::ID.asc())
        .all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        (rows[0].model.as_str(), rows[0].object.as_str()),
        ("Tag", "1")
    );
    assert_eq!(
        rows[4].changes,
        serde_json::json!({"published": [null, "2026-12-03"]})
    );

    // A failing receiver for every model fails the save as any receiver does: nothing is left.
    post.title = "fail".into();
    post.save(&db).await.unwrap_err();
    take_events();
    assert_eq!(
        Post::get(&db, post.id.unwrap())
            .await
            .unwrap()
            .unwrap()
            .title,
        "Hello"
    );
    assert_eq!(Audit::query().count(&db).await.unwrap(), 5);

    // Muted for one model, it does not run for it; recorded as any signal.
    {
        let _quiet = mute_receiver::<Tag>("audit");
        tag.uses = 10;
        tag.save(&db).await.unwrap();
        assert!(take_events().is_empty());
    }
    let (_, fired) = record_signals(async {
        tag.uses = 11;
        tag.save(&db).await.unwrap();
    })
    .await;
    assert!(
        fired
            .iter()
            .any(|f| f.model == "Tag" && f.signal == SignalKind::PostSave),
        "{fired:?}"
    );
    take_events();

    // Deletes: every row of a cascade, with its origin.
    post.title = "Hello".into();
    Comment {
        id: None,
        post_id: post.id.unwrap(),
    }
    .save(&db)
    .await
    .unwrap();
    take_events();
    post.delete(&db).await.unwrap();
    let mut events = take_events();
    events.sort();
    assert_eq!(
        events,
        [
            "delete Comment 1 (origin Post)",
            "delete Post 1 (origin Post)"
        ]
    );
    assert!(signals_core::any_receivers(SignalKind::PostSave).contains(&"audit"));
}
