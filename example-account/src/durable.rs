//! Running the app's durable receiver (`send_welcome`): in-process with no broker, or through
//! NATS JetStream with `relay` and `worker` processes.

use signals_core::Db;
use signals_outbox::{Config, Embedded, Relay, Running, Worker};

use crate::Error;

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
        "running durable receivers from JetStream stream {stream} ({stream}-workers); Ctrl-C stops"
    );
    worker.run(ctrl_c()).await?;
    Ok(())
}
