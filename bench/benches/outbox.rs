//! The outbox relay against a hand-written one, and commit-to-worker latency.
//!
//! `cargo bench -p signals-bench --bench outbox -- [--only postgres] [--rounds 5] [--events 10000] [--concurrency 8]`
//!
//! Throughput: each round commits `--events` durable events (untimed), then times
//! `Relay::run_once` until they are all published and marked; then the same with a
//! hand-written relay (one `SELECT .. LIMIT 500`, pipelined JetStream publishes with
//! `Nats-Msg-Id`, one `UPDATE .. IN`, no partitions), alternating, on the local NATS. The
//! ratio is the median of per-round ratios (ours / hand-written time).
//!
//! Then one worker's rate on the rounds' backlog. Latency: a relay and a worker in this
//! process; 200 single saves, one at a time, each timed from the save's return (its commit) to
//! its durable receiver starting on the worker; once with the relay woken by this process's
//! commits, once as a relay in another process (NOTIFY on PostgreSQL, else the poll).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use signals_bench::{arg, each_backend, median};
use signals_core::durable::Delivery;
use signals_core::sqlx::{self, Row as _};
use signals_core::{Db, Model, PoolRef};
use signals_outbox::async_nats::{self, HeaderMap, jetstream};
use signals_outbox::{Config, Relay, Worker};
use signals_tests::outbox::install;

#[derive(Model, Clone, Serialize, Deserialize)]
#[model(table = "bench_ping")]
#[on_commit(pong, durable)]
struct Ping {
    id: Option<i64>,
}

fn arrivals() -> &'static Mutex<Vec<(i64, Instant)>> {
    static A: OnceLock<Mutex<Vec<(i64, Instant)>>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(Vec::new()))
}

async fn pong(ping: Ping, _: &mut Delivery<'_>) -> signals_core::Result<()> {
    let now = Instant::now();
    arrivals()
        .lock()
        .expect("arrivals")
        .push((ping.id.unwrap_or_default(), now));
    Ok(())
}

/// `$body` once per backend, `$p` bound to the pool.
macro_rules! on_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db.pool() {
            PoolRef::Postgres($p) => $body,
            PoolRef::MySql($p) => $body,
            PoolRef::Sqlite($p) => $body,
            _ => unreachable!("three backends"),
        }
    };
}

async fn commit_events(db: &Db, n: usize) {
    signals_tests::outbox::commit_orders(db, n, "order").await;
}

async fn ours(relay: &Relay, n: usize) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        done += relay.run_once().await.expect("relay round");
    }
    start.elapsed()
}

/// The hand-written relay: what a careful user writes without partitions or claims.
async fn hand_written(db: &Db, js: &jetstream::Context, prefix: &str, n: usize) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let select = "SELECT id, event_id, model, receiver, payload, event FROM signals_outbox WHERE state = 0 ORDER BY id LIMIT 500";
        type R = (i64, String, String, String, String, String);
        let rows: Vec<R> = on_pool!(db, |p| sqlx::query(select)
            .fetch_all(p)
            .await
            .expect("select")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect());
        let mut acks = Vec::with_capacity(rows.len());
        for (_, event_id, model, receiver, payload, event) in &rows {
            // The same headers as the relay's, so the worker can run these too.
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", event_id.as_str());
            headers.insert("Signals-Model", model.as_str());
            headers.insert("Signals-Receiver", receiver.as_str());
            headers.insert("Signals-Event", event.as_str());
            acks.push(
                js.publish_with_headers(
                    format!("{prefix}.{model}.{receiver}"),
                    headers,
                    payload.clone().into(),
                )
                .await
                .expect("publish"),
            );
        }
        for ack in acks {
            ack.await.expect("ack");
        }
        let ids: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let update = sqlx::AssertSqlSafe(format!(
            "UPDATE signals_outbox SET state = 1 WHERE id IN ({})",
            ids.join(", ")
        ));
        on_pool!(db, |p| {
            sqlx::query(update).execute(p).await.expect("update");
        });
        done += rows.len();
    }
    start.elapsed()
}

async fn until(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// 200 single saves, one at a time, each from its commit to its receiver starting, in ms, with
/// `relay` and `worker` running.
async fn latency(db: &Db, relay: &Relay, worker: &Worker) -> Vec<f64> {
    // Keys start again in each database: forget the last one's arrivals.
    arrivals().lock().expect("arrivals").clear();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let r = {
        let (relay, u) = (relay.clone(), until(stopped.clone()));
        tokio::spawn(async move { relay.run(u).await })
    };
    let w = {
        let (worker, u) = (worker.clone(), until(stopped.clone()));
        tokio::spawn(async move { worker.run(u).await })
    };
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let mut ping = Ping { id: None };
        ping.save(db).await.expect("save");
        let committed = Instant::now();
        let key = ping.id.unwrap_or_default();
        let arrived = loop {
            let found = arrivals()
                .lock()
                .expect("arrivals")
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, t)| *t);
            if let Some(t) = found {
                break t;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(arrived.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    r.await.expect("relay task").expect("relay");
    w.await.expect("worker task").expect("worker");
    latencies
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    format!("{:.1} / {:.1} / {:.1} ms", pct(0.5), pct(0.9), pct(0.99))
}

/// Three workers' rate on `n` events already published (relayed untimed first), with
/// `config` (ordered per instance or not).
async fn three_workers(db: &Db, js: &jetstream::Context, config: &Config, n: usize) -> f64 {
    commit_events(db, n).await;
    let relay = Relay::new(db.clone(), js.clone(), config.clone())
        .await
        .expect("relay");
    ours(&relay, n).await;
    let target = signals_outbox::stats(db).await.expect("stats").handled as usize + n;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let worker = Worker::new(db.clone(), js.clone(), config.clone())
            .await
            .expect("worker");
        let u = until(stopped.clone());
        tasks.push(tokio::spawn(async move { worker.run(u).await }));
    }
    while (signals_outbox::stats(db).await.expect("stats").handled as usize) < target {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("worker task").expect("worker");
    }
    rate
}

#[tokio::main]
async fn main() {
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(5);
    let events: usize = arg("--events")
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000);
    let concurrency: usize = arg("--concurrency")
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into());
    println!(
        "relay: {events} events per round, {rounds} rounds, NATS at {nats}; the worker handles {concurrency} at once"
    );
    println!(
        "| backend | relay events/s | hand-written events/s | ratio (median) | one worker events/s | commit→worker p50 / p90 / p99, relay woken in-process | the same, relay in another process |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    each_backend("bench_outbox", async |label, db| {
        if label == "sqlite-memory" {
            return;
        }
        install(db).await;
        signals_core::schema::Schema::new()
            .model::<Ping>()
            .create(db)
            .await
            .expect("ping table");
        let client = async_nats::connect(nats.as_str()).await.expect("NATS");
        let js = jetstream::new(client);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let config = Config::default()
            .stream(format!("B{id}"))
            .subject_prefix(format!("b{id}"))
            .consumer(format!("c{id}"));
        let relay = Relay::new(db.clone(), js.clone(), config.clone())
            .await
            .expect("relay");
        let (mut ours_t, mut theirs_t, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            commit_events(db, events).await;
            let a = ours(&relay, events).await.as_secs_f64();
            commit_events(db, events).await;
            let b = hand_written(db, &js, &format!("b{id}"), events)
                .await
                .as_secs_f64();
            ours_t.push(events as f64 / a);
            theirs_t.push(events as f64 / b);
            ratios.push(a / b);
        }

        // The backlog of the throughput rounds (their receivers write a row each), handled
        // by one worker: its rate.
        let worker = Worker::new(
            db.clone(),
            js.clone(),
            config.clone().concurrency(concurrency),
        )
        .await
        .expect("worker");
        let backlog = 2 * rounds * events;
        let start = Instant::now();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let w = {
            let (worker, u) = (worker.clone(), until(stopped.clone()));
            tokio::spawn(async move { worker.run(u).await })
        };
        while (signals_outbox::stats(db).await.expect("stats").handled as usize) < backlog {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let worker_rate = backlog as f64 / start.elapsed().as_secs_f64();
        let _ = stop.send(true);
        w.await.expect("worker task").expect("worker");

        // Latency, with the relay woken by this process's commits, then as a relay in another
        // process would be (PostgreSQL's NOTIFY, elsewhere the 100 ms poll).
        let local = latency(db, &relay, &worker).await;
        let other = Relay::new(
            db.clone(),
            js.clone(),
            config.clone().__without_local_wakeups(),
        )
        .await
        .expect("relay");
        let remote = latency(db, &other, &worker).await;
        let _ = js.delete_stream(format!("B{id}")).await;

        // Three workers, each instance's events in commit order, against three unordered
        // workers (one delivery at a time each, the default), on streams of their own.
        let (mut ordered, mut unordered) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for (is_ordered, rates) in [(true, &mut ordered), (false, &mut unordered)] {
                let id = format!("{id}{round}{}", u8::from(is_ordered));
                let config = Config::default()
                    .stream(format!("B{id}"))
                    .subject_prefix(format!("b{id}"))
                    .consumer(format!("c{id}"))
                    .ordered_per_instance(is_ordered);
                rates.push(three_workers(db, &js, &config, events / 2).await);
                let _ = js.delete_stream(format!("B{id}")).await;
            }
        }
        eprintln!(
            "{label}: three workers, {} events a round: ordered per instance {:.0} events/s, unordered {:.0} events/s (medians of {rounds})",
            events / 2,
            median(&ordered),
            median(&unordered)
        );
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {} |",
            median(&ours_t),
            median(&theirs_t),
            median(&ratios),
            worker_rate,
            percentiles(local),
            percentiles(remote),
        );
    })
    .await;
}
