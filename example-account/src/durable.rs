//! Running the app's durable receiver (`send_welcome`): in-process with no broker, or through
//! NATS JetStream with `relay` and `worker` processes.

use signals_core::Db;
use signals_outbox::{Config, Embedded, Relay, Running, Worker};

use crate::{Error, printable};

/// Handles what is due in the outbox now, in this process; returns the deliveries made.
pub async fn drain(db: &Db) -> Result<usize, Error> {
    Ok(Embedded::new(db.clone(), Config::default())?
        .drain()
        .await?)
}

/// Starts the in-process runner (the admin site, without a broker).
pub async fn spawn(db: &Db) -> Result<Running, Error> {
    Ok(signals_outbox::spawn(db.clone(), None, Config::default()).await?)
}

/// The error of a runner's stop.
pub fn error(err: signals_outbox::Error) -> Error {
    Error::Durable(err)
}

async fn jetstream(
    nats_url: Option<&str>,
    role: &'static str,
) -> Result<signals_outbox::async_nats::jetstream::Context, Error> {
    let url = nats_url.ok_or(Error::NoBroker(role))?;
    let client = signals_outbox::async_nats::connect(url)
        .await
        .map_err(|e| {
            Error::Durable(signals_outbox::Error::Broker {
                doing: format!("connecting to {url}"),
                source: Box::new(e),
            })
        })?;
    Ok(signals_outbox::async_nats::jetstream::new(client))
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The broker's names for stream `stream`: its subjects are `<stream in lower case>.>`, its
/// workers' consumer `<stream>-workers`.
pub fn config(stream: &str) -> Config {
    Config::default()
        .stream(stream)
        .subject_prefix(stream.to_lowercase())
        .consumer(format!("{stream}-workers"))
        // A welcome note per user: the order between users does not matter.
        .concurrency(4)
}

/// Publishes the outbox to JetStream stream `stream` until Ctrl-C.
pub async fn relay(db: &Db, nats_url: Option<&str>, stream: &str) -> Result<(), Error> {
    let js = jetstream(nats_url, "relay").await?;
    let relay = Relay::new(db.clone(), js, config(stream)).await?;
    eprintln!("relaying the outbox to JetStream stream {stream}; Ctrl-C stops");
    relay.run(ctrl_c()).await?;
    Ok(())
}

/// Runs durable receivers from JetStream stream `stream` until Ctrl-C.
pub async fn worker(db: &Db, nats_url: Option<&str>, stream: &str) -> Result<(), Error> {
    let js = jetstream(nats_url, "worker").await?;
    let worker = Worker::new(db.clone(), js, config(stream)).await?;
    eprintln!(
        "running durable receivers from JetStream stream {stream} ({stream}-workers): {}; Ctrl-C stops",
        signals_outbox::receivers().join(", ")
    );
    worker.run(ctrl_c()).await?;
    Ok(())
}

/// `outbox stats`: the outbox's counts, in all and per receiver.
pub async fn render_stats(db: &Db) -> Result<String, Error> {
    use std::fmt::Write as _;
    let s = signals_outbox::stats(db).await?;
    let mut out = format!(
        "pending {}, published {}, handled {}, dead {}\n",
        s.pending, s.published, s.handled, s.dead
    );
    for r in signals_outbox::receiver_stats(db).await? {
        let _ = writeln!(
            out,
            "  {}.{}: pending {}, handled {}, dead {}",
            printable(&r.model),
            printable(&r.receiver),
            r.pending,
            r.handled,
            r.dead
        );
    }
    Ok(out)
}

/// `outbox dead`: one dead letter per line, oldest first.
pub async fn render_dead(
    db: &Db,
    select: &signals_outbox::dead::Select,
    limit: usize,
) -> Result<String, Error> {
    use std::fmt::Write as _;
    let letters = signals_outbox::dead::list(db, select, limit).await?;
    if letters.is_empty() {
        return Ok("no dead letters\n".into());
    }
    let mut out = String::new();
    for letter in letters {
        // A time written by hand may lie outside what a calendar date can say.
        let failed = letter
            .failed_at
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| {
                chrono::DateTime::from_timestamp(i64::try_from(d.as_secs()).ok()?, d.subsec_nanos())
            })
            .map_or_else(
                || format!("{:?}", letter.failed_at),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            );
        let _ = writeln!(
            out,
            "{} {}.{} ({}, {} attempts, failed {}): {}",
            printable(&letter.event_id),
            printable(&letter.model),
            printable(&letter.receiver),
            printable(&letter.committed),
            letter.attempts,
            failed,
            printable(&letter.error)
        );
    }
    Ok(out)
}
