//! The README's durable-receiver example, as written there.

#[tokio::test]
async fn the_readme_example_runs() -> signals_outbox::Result<()> {
    use signals_core::durable::Delivery;
    use signals_core::{Db, Model};

    #[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
    #[on_commit(send_welcome, durable)]
    struct Member {
        id: Option<i64>,
        name: String,
    }

    #[derive(Model)]
    struct Note {
        id: Option<i64>,
        text: String,
    }

    async fn send_welcome(member: Member, delivery: &mut Delivery<'_>) -> signals_core::Result<()> {
        let mut note = Note {
            id: None,
            text: format!("welcome, {}", member.name),
        };
        note.save(delivery.tx()).await?; // commits with the inbox record: once
        Ok(())
    }

    let db = Db::connect("sqlite::memory:").await?;
    db.create_tables::<(Member, Note)>().await?;
    signals_outbox::install(&db).await?; // outbox, partitions, inbox, dead letters

    Member {
        id: None,
        name: "Ada".into(),
    }
    .save(&db)
    .await?;
    // No broker: run the receivers in this process (`spawn(db, None, ..)` keeps one running).
    signals_outbox::Embedded::new(db.clone(), signals_outbox::Config::default())?
        .drain()
        .await?;
    assert_eq!(Note::all(&db).await?[0].text, "welcome, Ada");
    Ok(())
}
