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

    // "Operating them", as written there.
    use signals_outbox::dead::{self, Select};
    use signals_outbox::{Config, Retry};
    use std::time::Duration;

    // One receiver retried for an hour, the others three times; an error that no retry can
    // mend is dead-lettered at once: `Err(signals_core::durable::Permanent::new(e).into())`.
    let config = Config::default()
        .max_attempts(3)
        .retry(
            "Member",
            "send_welcome",
            Retry::new(12).backoff(Duration::from_secs(1), Duration::from_secs(600)),
        )
        .metric_label("outbox", "accounts");
    let running = signals_outbox::spawn(db.clone(), None, config).await?;

    Member {
        id: None,
        name: "Grace".into(),
    }
    .save(&db)
    .await?;
    // In a test: wait until what committed so far is handled (or dead), no polling.
    signals_outbox::wait_until_handled(&db, Duration::from_secs(10)).await?;
    let per_receiver = signals_outbox::receiver_stats(&db).await?; // pending, handled, dead
    assert_eq!(per_receiver[0].handled, 2);

    // Dead letters: list, replay after a fix (each handled once, even when replays race),
    // discard, purge by age.
    for letter in dead::list(&db, &Select::all().receiver("send_welcome"), 50).await? {
        println!(
            "{} failed {} times: {}",
            letter.event_id, letter.attempts, letter.error
        );
    }
    dead::replay(&db, &Select::all().model("Member")).await?;
    dead::purge(&db, Duration::from_secs(30 * 86_400)).await?;
    running.stop().await?;
    Ok(())
}
