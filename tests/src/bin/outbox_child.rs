//! A relay or a worker of the outbox fixture, as a process of its own, for `tests/outbox.rs`
//! to kill with SIGKILL: `outbox-child relay|worker <database-url> <nats-url> <stream>
//! <subject-prefix> <consumer> [ordered]`. It runs until killed.

use std::time::Duration;

use signals_outbox::{Config, Relay, Worker};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, ordered) = match args.split_last() {
        Some((last, rest)) if last == "ordered" => (rest, true),
        _ => (args.as_slice(), false),
    };
    let [role, db_url, nats_url, stream, prefix, consumer] = args else {
        eprintln!(
            "usage: outbox-child relay|worker <database-url> <nats-url> <stream> <subject-prefix> <consumer> [ordered]"
        );
        std::process::exit(2);
    };
    signals_tests::outbox::assert_registered();
    let config = Config::default()
        .stream(stream)
        .subject_prefix(prefix)
        .consumer(consumer)
        .poll(Duration::from_millis(20))
        .lease(lease())
        .ack_wait(Duration::from_secs(2))
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .ordered_per_instance(ordered);
    let db = signals_core::Db::connect(db_url).await.expect("database");
    let nats = signals_outbox::async_nats::connect(nats_url.as_str())
        .await
        .expect("NATS");
    let js = signals_outbox::async_nats::jetstream::new(nats);
    let forever = std::future::pending::<()>();
    let res = match role.as_str() {
        "relay" => {
            let relay = Relay::new(db, js, config).await.expect("relay");
            relay.run(forever).await
        }
        "worker" => {
            let worker = Worker::new(db, js, config).await.expect("worker");
            worker.run(forever).await
        }
        other => {
            eprintln!("unknown role `{other}`: relay or worker");
            std::process::exit(2);
        }
    };
    if let Err(err) = res {
        eprintln!("outbox-child {role}: {err}");
        std::process::exit(1);
    }
}

/// The SQLite lease on partitions (`OUTBOX_LEASE_MS`, default 1 s): how long the runner that
/// takes over from one killed waits.
fn lease() -> Duration {
    let ms = std::env::var("OUTBOX_LEASE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}
