//! Durable receivers (`signals-outbox`): the embedded runner, and relays and workers through
//! NATS JetStream killed with SIGKILL, a broker stopped mid-stream, a poison event; on
//! SQLite, PostgreSQL and MySQL.
//!
//! The broker tests use the NATS server at `SIGNALS_TEST_NATS_URL` (default
//! `127.0.0.1:4222`) with streams of their own, deleted afterwards, except the one that stops
//! its broker: it runs a private `nats-server` (`SIGNALS_TEST_NATS_SERVER`, default
//! `/usr/sbin/nats-server`). Without a broker they skip, except under `CI`, where they fail.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use signals_core::{Backend, Db, Model, Tx};
use signals_outbox::async_nats::{self, jetstream};
use signals_outbox::{Config, Embedded, Relay, Worker, stats};
use signals_tests::outbox::{OutboxEffect, OutboxOrder, install};
use signals_tests::{eventually, servers_required, with_scratch};
use tokio_util::sync::CancellationToken;

/// Runs `$body` with a fresh database (outbox installed) on each backend.
macro_rules! outbox_test {
    ($name:ident, |$url:ident, $db:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn body($url: String, $db: Db) $body

            signals_tests::each_backend!(@tests |backend| {
                run(backend, stringify!($name), body)
            });
        }
    };
}

async fn run(backend: Backend, test: &str, body: impl AsyncFnOnce(String, Db)) {
    with_scratch(backend, test, async |url: String| {
        let db = Db::connect(&url).await.expect("connect");
        install(&db).await;
        body(url, db.clone()).await;
        db.close().await;
    })
    .await;
}

fn quick(config: Config) -> Config {
    config
        .poll(Duration::from_millis(20))
        .lease(Duration::from_secs(1))
        .ack_wait(Duration::from_secs(2))
        .max_attempts(3)
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

async fn effects(db: &Db) -> Vec<OutboxEffect> {
    OutboxEffect::all(db).await.expect("effects")
}

/// Every effect's event handled once: no event id twice.
fn assert_once(effects: &[OutboxEffect]) {
    let mut seen = HashMap::new();
    for e in effects {
        *seen.entry(e.event_id.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events handled more than once: {twice:?}");
}

async fn orders(db: &Db, n: usize, note: &str) -> Vec<OutboxOrder> {
    signals_tests::outbox::commit_orders(db, n, note).await
}

/// Saves `n` orders in a transaction that rolls back: they must never be handled.
async fn rolled_back(db: &Db, n: usize) {
    let mut tx = db.begin().await.expect("begin");
    let mut rows: Vec<OutboxOrder> = (0..n)
        .map(|_| OutboxOrder {
            id: None,
            note: "rolled back".into(),
        })
        .collect();
    OutboxOrder::bulk_save(&mut tx, &mut rows)
        .await
        .expect("bulk save");
    tx.rollback().await.expect("rollback");
}

async fn wait_for(
    db: &Db,
    what: &str,
    limit: Duration,
    done: impl Fn(signals_outbox::Stats) -> bool,
) {
    eventually(what, limit, async || {
        let s = stats(db).await.expect("stats");
        if done(s) { Ok(()) } else { Err(s) }
    })
    .await
}

outbox_test!(embedded_runs_each_committed_event_once, |_url, db| {
    let kept = orders(&db, 10, "kept").await;
    rolled_back(&db, 5).await;
    // A savepoint rolled back takes its events with it; the rest of the transaction commits.
    let mut tx = db.begin().await.expect("begin");
    let mut updated = kept[0].clone();
    updated.note = "updated".into();
    updated.save(&mut tx).await.expect("update");
    let undone = tx
        .savepoint(async |tx: &mut Tx| {
            OutboxOrder {
                id: None,
                note: "rolled back".into(),
            }
            .save(tx)
            .await?;
            Err::<(), _>(signals_core::Error::Config("undo".into()))
        })
        .await;
    assert!(undone.is_err());
    let mut gone = kept[1].clone();
    gone.delete(&mut tx).await.expect("delete");
    tx.commit().await.expect("commit");
    assert_eq!(stats(&db).await.expect("stats").pending, 12);

    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    assert_eq!(runner.drain().await.expect("drain"), 12);
    let done = effects(&db).await;
    assert_eq!(done.len(), 12);
    assert_once(&done);
    let kinds: Vec<&str> = done.iter().map(|e| e.committed.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "created").count(), 10);
    assert_eq!(kinds.iter().filter(|k| **k == "updated").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "deleted").count(), 1);
    let orders: HashSet<i64> = kept.iter().filter_map(|o| o.id).collect();
    assert!(
        done.iter().all(|e| orders.contains(&e.order_id)),
        "only committed orders"
    );
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 12, 0));

    // Delivered again (as after a crash between a handling and its record): the inbox
    // recognises every event, and nothing runs twice.
    db.execute_unprepared("UPDATE signals_outbox SET state = 0")
        .await
        .expect("reset");
    assert_eq!(runner.drain().await.expect("drain"), 12);
    assert_eq!(effects(&db).await.len(), 12);
    assert_eq!(stats(&db).await.expect("stats").pending, 0);
});

outbox_test!(embedded_dead_letters_a_poison_event, |_url, db| {
    orders(&db, 1, "poison").await;
    orders(&db, 5, "fine").await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    eventually("dead-lettered", Duration::from_secs(30), async || {
        runner.drain().await.expect("drain");
        let s = stats(&db).await.expect("stats");
        if s.dead > 0 { Ok(()) } else { Err(s) }
    })
    .await;
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 5, 1));
    assert_eq!(effects(&db).await.len(), 5);
    let dead = dead_letters(&db).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].0.contains("poison"),
        "the last error is kept: {dead:?}"
    );
    assert_eq!(dead[0].1, 3, "three attempts");
});

/// Drains until `done` holds (retries wait for their backoff).
async fn drain_until(
    runner: &Embedded,
    db: &Db,
    what: &str,
    done: impl Fn(signals_outbox::Stats) -> bool,
) {
    eventually(what, Duration::from_secs(30), async || {
        runner.drain().await.expect("drain");
        let s = stats(db).await.expect("stats");
        if done(s) { Ok(()) } else { Err(s) }
    })
    .await
}

/// A token no other test uses (the `sick:<token>` fixture's).
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `n` orders noted `v0`, then each saved as `v1` to `v{versions}`, the saves of different
/// orders interleaved, each in a transaction of its own.
async fn interleaved_versions(db: &Db, n: usize, versions: usize) {
    let mut all = orders(db, n, "v0").await;
    for v in 1..=versions {
        for order in &mut all {
            order.note = format!("v{v}");
            order.save(db).await.expect("update");
        }
    }
}

/// `(error, attempts)` of each dead letter.
async fn dead_letters(db: &Db) -> Vec<(String, i64)> {
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("SELECT error, attempts FROM signals_dead_letter");
    sql.fetch_all(db).await.expect("dead letters")
}

// ---- the broker ----

fn nats_url() -> String {
    std::env::var("SIGNALS_TEST_NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

/// A stream, subject prefix and consumer of this test's own, deleted when dropped.
struct Names {
    config: Config,
    stream: String,
    prefix: String,
    consumer: String,
    url: String,
}

impl Names {
    /// `None` (the test skips) when the broker cannot be reached and servers are optional.
    async fn new(url: &str) -> Option<(Names, jetstream::Context)> {
        let client = match async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .connect(url)
            .await
        {
            Ok(c) => c,
            Err(e) if !servers_required() => {
                eprintln!("SKIPPED: no NATS at {url} ({e}); set CI=true to make this a failure");
                return None;
            }
            Err(e) => panic!("NATS required (CI is set) but {url} failed: {e}"),
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (stream, prefix, consumer) = (format!("T{id}"), format!("t{id}"), format!("c{id}"));
        let config = quick(Config::default())
            .stream(&stream)
            .subject_prefix(&prefix)
            .consumer(&consumer);
        Some((
            Names {
                config,
                stream,
                prefix,
                consumer,
                url: url.into(),
            },
            jetstream::new(client),
        ))
    }

    fn child(&self, role: &str, db_url: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-child"));
        cmd.args([
            role,
            db_url,
            &self.url,
            &self.stream,
            &self.prefix,
            &self.consumer,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        cmd
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(url).await {
                    let _ = jetstream::new(client).delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

/// Kills with SIGKILL and reaps.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A small xorshift generator for kill times; the seed is printed for a rerun.
struct Dice(u64);
impl Dice {
    fn new() -> Dice {
        let seed = std::env::var("OUTBOX_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("kill times from OUTBOX_SEED={seed}");
        Dice(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

outbox_test!(
    relay_killed_with_sigkill_loses_and_repeats_nothing,
    |url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        signals_tests::outbox::assert_registered();
        orders(&db, 10_000, "kept").await;
        rolled_back(&db, 100).await;
        // Two workers, four deliveries at once each.
        let worker = Worker::new(db.clone(), js.clone(), names.config.clone().concurrency(4))
            .await
            .expect("worker");
        let stop = CancellationToken::new();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (worker, stopped) = (worker.clone(), stop.clone().cancelled_owned());
                tokio::spawn(async move { worker.run(stopped).await })
            })
            .collect();
        let mut dice = Dice::new();
        let mut kills = 0;
        // Each round starts a relay and kills it mid-stream, until none is left to relay.
        eventually(
            "the relays finished",
            Duration::from_secs(240),
            async || {
                let s = stats(&db).await.expect("stats");
                if s.pending == 0 {
                    return Ok(());
                }
                // On SQLite the next relay waits for the killed one's lease on its partitions:
                // a short lease spends the rounds relaying (and killing) rather than waiting.
                let mut relay = names
                    .child("relay", &url)
                    .env("OUTBOX_LEASE_MS", "300")
                    .spawn()
                    .expect("relay process");
                tokio::time::sleep(Duration::from_millis(50 + dice.below(700))).await;
                kill(&mut relay);
                kills += 1;
                Err(s)
            },
        )
        .await;
        eprintln!("{kills} relays killed");
        assert!(kills >= 2, "the relay was killed mid-stream at least once");
        wait_for(&db, "every event handled", Duration::from_secs(240), |s| {
            s.handled >= 10_000
        })
        .await;
        stop.cancel();
        for w in workers {
            w.await.expect("worker task").expect("worker");
        }
        let done = effects(&db).await;
        assert_eq!(
            done.len(),
            10_000,
            "every committed event handled, none from the rollback"
        );
        assert_once(&done);
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.handled, s.dead), (0, 10_000, 0));
    }
);

outbox_test!(
    three_workers_one_killed_mid_event_and_a_poison_event,
    |url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        let marker = std::env::temp_dir().join(format!("outbox-slow-{}", names.consumer));
        orders(&db, 1, "slow").await;
        orders(&db, 1, "poison").await;
        orders(&db, 10_000, "kept").await;
        let relay = Relay::new(db.clone(), js.clone(), names.config.clone())
            .await
            .expect("relay");
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        let relay_task = tokio::spawn(async move { relay.run(stopped).await });
        let mut workers: Vec<Child> = (0..3)
            .map(|_| {
                names
                    .child("worker", &url)
                    .env("OUTBOX_SLOW_MARKER", &marker)
                    .spawn()
                    .expect("worker")
            })
            .collect();
        // The worker that took the slow event says so; kill it in the middle of it.
        let pid = eventually(
            "a worker took the slow event",
            Duration::from_secs(60),
            async || {
                let text = std::fs::read_to_string(&marker).map_err(|e| e.to_string())?;
                text.trim().parse::<u32>().map_err(|e| e.to_string())
            },
        )
        .await;
        let victim = workers
            .iter()
            .position(|w| w.id() == pid)
            .expect("the slow worker is ours");
        kill(&mut workers[victim]);
        wait_for(
            &db,
            "every event handled or dead",
            Duration::from_secs(300),
            |s| s.handled >= 10_001 && s.dead >= 1,
        )
        .await;
        for w in &mut workers {
            kill(w);
        }
        stop.cancel();
        relay_task.await.expect("relay task").expect("relay");
        let _ = std::fs::remove_file(&marker);
        let done = effects(&db).await;
        assert_eq!(
            done.len(),
            10_001,
            "the slow event redelivered and handled, once"
        );
        assert_once(&done);
        let s = stats(&db).await.expect("stats");
        assert_eq!(
            (s.pending, s.published, s.handled, s.dead),
            (0, 10_001, 10_001, 1)
        );
        let dead = dead_letters(&db).await;
        assert!(dead[0].0.contains("poison") && dead[0].1 == 3, "{dead:?}");
    }
);

// ---- a private broker, stopped for ten seconds ----

struct Broker {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Broker {
    fn binary() -> String {
        std::env::var("SIGNALS_TEST_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into())
    }

    /// `None` (skip) without the binary, unless servers are required.
    fn start() -> Option<Broker> {
        if !std::path::Path::new(&Self::binary()).exists() {
            assert!(
                !servers_required(),
                "nats-server required (CI is set) but {} is missing",
                Self::binary()
            );
            eprintln!("SKIPPED: no {}", Self::binary());
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("outbox-broker-{}", uuid::Uuid::new_v4().simple()));
        let mut broker = Broker {
            child: None,
            port,
            dir,
        };
        broker.up();
        Some(broker)
    }

    fn up(&mut self) {
        let child = Command::new(Self::binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

outbox_test!(broker_stopped_for_ten_seconds_loses_nothing, |_url, db| {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let config = quick(Config::default());
    let running = signals_outbox::spawn(db.clone(), Some(&broker.url()), config)
        .await
        .expect("spawn");
    let producer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..1_500 {
                OutboxOrder {
                    id: None,
                    note: format!("n{i}"),
                }
                .save(&db)
                .await
                .expect("save");
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.down();
    let stopped_at = stats(&db).await.expect("stats");
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.up();
    producer.await.expect("producer");
    wait_for(
        &db,
        "the backlog delivered",
        Duration::from_secs(120),
        |s| s.handled >= 1_500,
    )
    .await;
    running.stop().await.expect("stop");
    assert!(
        stopped_at.handled < 1_500,
        "the broker stopped mid-stream: {stopped_at:?}"
    );
    let done = effects(&db).await;
    assert_eq!(done.len(), 1_500);
    assert_once(&done);
});

outbox_test!(
    a_missing_outbox_fails_the_save_and_writes_nothing,
    |_url, db| {
        // A database whose outbox was never installed: the save must fail whole, and say why.
        db.execute_unprepared("DROP TABLE signals_outbox")
            .await
            .expect("drop");
        let mut order = OutboxOrder {
            id: None,
            note: "lost?".into(),
        };
        let err = order.save(&db).await.expect_err("no outbox table");
        assert!(err.to_string().contains("signals_outbox::install"), "{err}");
        assert_eq!(order.id, None, "the key of a rolled-back insert is cleared");
        assert!(
            OutboxOrder::all(&db).await.expect("usable").is_empty(),
            "no order without its event"
        );
        signals_outbox::install(&db).await.expect("install");
        order.save(&db).await.expect("saves once the outbox exists");
        assert_eq!(stats(&db).await.expect("stats").pending, 1);
    }
);

outbox_test!(events_no_receiver_can_run_are_dead_lettered, |_url, db| {
    // A receiver removed from the program, and an instance that no longer reads as the model.
    for (id, receiver, payload) in [
        (
            "00000000-0000-4000-8000-000000000001",
            "gone",
            r#"{"id":1,"note":"x"}"#,
        ),
        (
            "00000000-0000-4000-8000-000000000002",
            "record_order",
            r#"{"renamed":true}"#,
        ),
    ] {
        db.execute_unprepared(&format!(
            "INSERT INTO signals_outbox (event_id, model, receiver, instance_key, part, event, payload, created_at) \
             VALUES ('{id}', 'OutboxOrder', '{receiver}', 'Some(1)', 0, 'created', '{payload}', 0)"
        ))
        .await
        .expect("insert");
    }
    orders(&db, 2, "fine").await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    eventually("dead-lettered", Duration::from_secs(30), async || {
        runner.drain().await.expect("drain");
        let s = stats(&db).await.expect("stats");
        if s.dead >= 2 { Ok(()) } else { Err(s) }
    })
    .await;
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 2, 2));
    let mut errors: Vec<String> = dead_letters(&db).await.into_iter().map(|d| d.0).collect();
    errors.sort();
    assert!(
        errors[0].contains("cannot read column `payload` of `OutboxOrder`"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("no durable receiver `gone` of `OutboxOrder`"),
        "{errors:?}"
    );
});

outbox_test!(purge_keeps_pending_events_and_dead_letters, |_url, db| {
    orders(&db, 3, "fine").await;
    orders(&db, 1, "poison").await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    while stats(&db).await.expect("stats").dead == 0 {
        runner.drain().await.expect("drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    orders(&db, 2, "later").await;
    assert_eq!(
        signals_outbox::purge(&db, Duration::from_secs(3600))
            .await
            .expect("purge")
            .outbox,
        0,
        "nothing that old"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let purged = signals_outbox::purge(&db, Duration::ZERO)
        .await
        .expect("purge");
    assert_eq!((purged.outbox, purged.inbox), (3, 3));
    let s = stats(&db).await.expect("stats");
    assert_eq!(
        (s.pending, s.handled, s.dead),
        (2, 0, 1),
        "pending events and dead letters stay"
    );
    assert_eq!(runner.drain().await.expect("drain"), 2);
});

outbox_test!(
    two_relays_side_by_side_keep_each_instance_in_order,
    |_url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        // 40 orders, each created then updated 10 times, the updates of different orders
        // interleaved in separate transactions.
        interleaved_versions(&db, 40, 10).await;
        // Both relays exist before either publishes; small rounds, so they overlap.
        let mut relays = Vec::new();
        for i in 0..2 {
            let config = names
                .config
                .clone()
                .claim(8)
                .batch(10)
                .name(format!("relay-{i}"));
            relays.push(
                Relay::new(db.clone(), js.clone(), config)
                    .await
                    .expect("relay"),
            );
        }
        let relays: Vec<_> = relays
            .into_iter()
            .map(|relay| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut rounds = 0;
                    while stats(&db).await.expect("stats").pending > 0 {
                        if relay.run_once().await.expect("round") > 0 {
                            rounds += 1;
                        }
                    }
                    rounds
                })
            })
            .collect();
        let mut busy = 0;
        for r in relays {
            if r.await.expect("relay task") > 0 {
                busy += 1;
            }
        }
        assert_eq!(busy, 2, "both relays published");
        // Read the stream back in its order.
        let stream = js.get_stream(&names.stream).await.expect("stream");
        let reader = stream
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .expect("reader");
        let mut last: HashMap<i64, i64> = HashMap::new();
        let mut read = 0;
        while read < 440 {
            let mut batch = reader
                .fetch()
                .max_messages(500)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .expect("fetch");
            use futures_util::StreamExt as _;
            let mut got = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.expect("message");
                let order: OutboxOrder = serde_json::from_slice(&msg.payload).expect("an order");
                let v: i64 = order.note.trim_start_matches('v').parse().expect("version");
                let key = order.id.expect("key");
                if let Some(prev) = last.insert(key, v) {
                    assert!(v > prev, "order {key}: version {v} published after {prev}");
                }
                got += 1;
            }
            assert!(got > 0, "the stream has {read} of 440 events");
            read += got;
        }
        assert_eq!(read, 440);
        assert!(last.values().all(|v| *v == 10));
    }
);

outbox_test!(commits_of_other_processes_wake_the_relay, |_url, db| {
    let Some((names, js)) = Names::new(&nats_url()).await else {
        return;
    };
    // A relay deaf to this process's commits, as one running elsewhere: on PostgreSQL the
    // commit's NOTIFY wakes it (its poll is 30 s), on the others its poll does.
    let poll = if db.backend() == Backend::Postgres {
        Duration::from_secs(30)
    } else {
        Duration::from_millis(200)
    };
    let config = names.config.clone().poll(poll).__without_local_wakeups();
    let relay = Relay::new(db.clone(), js.clone(), config)
        .await
        .expect("relay");
    let stop = CancellationToken::new();
    let stopped = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move { relay.run(stopped).await });
    // Its first round found nothing: it is waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    orders(&db, 1, "wake up").await;
    wait_for(&db, "the event published", Duration::from_secs(5), |s| {
        s.published == 1
    })
    .await;
    stop.cancel();
    task.await.expect("relay task").expect("relay");
});

// Item 3 of the third reliability round: an event the broker refuses (a 2 MiB instance, over
// NATS' 1 MiB `max_payload`) and outbox rows changed by hand (an unknown kind, no model) are
// dead-lettered with the reason; the events after them flow, each handled once.
outbox_test!(
    events_the_broker_refuses_are_dead_lettered_and_the_rest_flow,
    |_url, db| {
        let Some((names, _js)) = Names::new(&nats_url()).await else {
            return;
        };
        let big = OutboxOrder {
            id: None,
            note: "x".repeat(2 << 20),
        };
        let mut big = big;
        big.save(&db).await.expect("a large instance saves");
        let corrupt = orders(&db, 2, "hand-edited").await;
        let set = |column: &str, value: &str, order: &OutboxOrder| {
            format!(
                "UPDATE signals_outbox SET {column} = '{value}' WHERE instance_key = 'Some({})'",
                order.id.expect("saved")
            )
        };
        db.execute_unprepared(&set("event", "bogus", &corrupt[0]))
            .await
            .expect("corrupt");
        db.execute_unprepared(&set("model", "", &corrupt[1]))
            .await
            .expect("corrupt");
        // A line break where a header carries the value: NATS headers are lines.
        let broken = orders(&db, 1, "hand-edited").await.remove(0);
        let line_break = match db.backend() {
            Backend::Sqlite => "'record_order' || char(10) || 'x'",
            Backend::Postgres => "'record_order' || chr(10) || 'x'",
            _ => "CONCAT('record_order', CHAR(10), 'x')",
        };
        db.execute_unprepared(&format!(
            "UPDATE signals_outbox SET receiver = {line_break} WHERE instance_key = 'Some({})'",
            broken.id.expect("saved")
        ))
        .await
        .expect("corrupt");
        let after = orders(&db, 5, "after").await;
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), names.config.clone())
            .await
            .expect("relay and worker");
        wait_for(
            &db,
            "refused events dead-lettered, the rest handled",
            Duration::from_secs(30),
            |s| s.dead == 4 && s.handled == 5 && s.pending == 0,
        )
        .await;
        running.stop().await.expect("stopped cleanly");
        let handled = effects(&db).await;
        assert_once(&handled);
        let ids: HashSet<i64> = handled.iter().map(|e| e.order_id).collect();
        assert_eq!(ids, after.iter().map(|o| o.id.expect("saved")).collect());
        let dead = dead_letters(&db).await;
        let reasons: Vec<&str> = dead.iter().map(|(e, _)| e.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("max payload")),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.contains("`bogus`")), "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("names no model")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("control character")),
            "{reasons:?}"
        );
    }
);

// The worker refuses a kind it does not know rather than run it as another (a message of
// another publisher, or of a relay of an older version).
outbox_test!(
    a_worker_dead_letters_an_event_of_an_unknown_kind,
    |_url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        signals_outbox::ensure_stream(&js, &names.config)
            .await
            .expect("stream");
        let order = orders(&db, 1, "odd").await.remove(0);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Signals-Model", "OutboxOrder");
        headers.insert("Signals-Receiver", "record_order");
        headers.insert("Signals-Event", "renamed");
        let payload = format!(r#"{{"id":{},"note":"odd"}}"#, order.id.expect("saved"));
        js.send_publish(
            names.config.subject("OutboxOrder", "record_order"),
            jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .headers(headers)
                .message_id("00000000-0000-0000-0000-00000000cafe"),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
        let worker = Worker::new(db.clone(), js.clone(), names.config.clone())
            .await
            .expect("worker");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        wait_for(
            &db,
            "the odd event dead-lettered",
            Duration::from_secs(20),
            |s| s.dead == 1,
        )
        .await;
        let _ = stop.send(());
        task.await.expect("worker task").expect("worker");
        assert!(effects(&db).await.is_empty(), "not run as an update");
        let dead = dead_letters(&db).await;
        assert!(dead[0].0.contains("`renamed`"), "{dead:?}");
    }
);

// Item 12: the stream keeps events for the configured retention, and an event delivered
// again after `purge` made the inbox forget it (a consumer made anew starts from the first
// message) is dead-lettered as such, never run a second time.
outbox_test!(
    a_replay_older_than_the_inbox_memory_is_not_run_again,
    |_url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        let config = names.config.clone().retention(Duration::from_secs(3600));
        orders(&db, 5, "once").await;
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), config.clone())
            .await
            .expect("relay and worker");
        wait_for(&db, "handled", Duration::from_secs(20), |s| s.handled == 5).await;
        running.stop().await.expect("stopped");
        let stream = js.get_stream(&names.stream).await.expect("stream");
        assert_eq!(
            stream.cached_info().config.max_age,
            Duration::from_secs(3600)
        );

        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let purged = signals_outbox::purge(&db, Duration::from_secs(1))
            .await
            .expect("purge");
        assert_eq!(purged.inbox, 5);
        // An operator resets the consumer: the new one starts from the stream's first message.
        js.get_stream(&names.stream)
            .await
            .expect("stream")
            .delete_consumer(&names.consumer)
            .await
            .expect("delete consumer");
        let worker = Worker::new(db.clone(), js.clone(), config.clone())
            .await
            .expect("worker");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        wait_for(&db, "replays refused", Duration::from_secs(20), |s| {
            s.dead == 5
        })
        .await;
        let _ = stop.send(());
        task.await.expect("worker task").expect("worker");
        let handled = effects(&db).await;
        assert_eq!(handled.len(), 5, "each effect once: {handled:?}");
        let dead = dead_letters(&db).await;
        assert!(
            dead.iter().all(|(e, _)| e.contains("inbox's horizon")),
            "{dead:?}"
        );
        // A new event still runs.
        orders(&db, 1, "new").await;
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), config)
            .await
            .expect("again");
        wait_for(&db, "the new one handled", Duration::from_secs(20), |s| {
            s.handled == 1
        })
        .await;
        running.stop().await.expect("stopped");
        assert_eq!(effects(&db).await.len(), 6);
    }
);

/// A durable model whose fields are the crate's own types, `Serialize + Deserialize` with no
/// helper of the user's (issue 30, item 8): decimals as exact strings, UUIDs, dates, times,
/// JSON, an `Option`.
#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "payload_order")]
#[on_commit(record_payload, durable)]
struct PayloadOrder {
    id: Option<i64>,
    #[model(max_digits = 12, decimal_places = 2)]
    total: rust_decimal::Decimal,
    reference: uuid::Uuid,
    placed: chrono::NaiveDate,
    at: chrono::DateTime<chrono::Utc>,
    attrs: serde_json::Value,
    note: Option<String>,
}

/// What the durable receiver was given, as JSON.
#[derive(Debug, Model)]
#[model(table = "payload_seen")]
struct PayloadSeen {
    id: Option<i64>,
    #[model(max_length = 2000)]
    body: String,
}

async fn record_payload(
    order: PayloadOrder,
    delivery: &mut signals_core::durable::Delivery<'_>,
) -> signals_core::Result<()> {
    let body = serde_json::to_string(&order).map_err(|e| signals_core::Error::Other(e.into()))?;
    PayloadSeen { id: None, body }.save(delivery.tx()).await?;
    Ok(())
}

outbox_test!(
    payloads_of_the_crates_own_field_types_arrive_whole,
    |_url, db| {
        db.create_tables::<(PayloadOrder, PayloadSeen)>()
            .await
            .expect("payload test");
        let mut order = PayloadOrder {
            id: None,
            total: "1234567890.12".parse().expect("payload test"),
            reference: uuid::Uuid::new_v4(),
            placed: chrono::NaiveDate::from_ymd_opt(2026, 12, 5).expect("payload test"),
            at: chrono::DateTime::from_timestamp(1_780_000_000, 123_456_000).expect("payload test"),
            attrs: serde_json::json!({"gift": true, "lines": [1, 2.5, "x"]}),
            note: None,
        };
        order.save(&db).await.expect("payload test");
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        assert_eq!(runner.drain().await.expect("payload test"), 1);
        let seen = PayloadSeen::all(&db).await.expect("payload test");
        assert_eq!(seen.len(), 1);
        let arrived: PayloadOrder = serde_json::from_str(&seen[0].body).expect("payload test");
        assert_eq!(arrived, order, "{}", seen[0].body);
        assert!(
            seen[0].body.contains(r#""total":"1234567890.12""#),
            "a decimal as its exact text: {}",
            seen[0].body
        );
    }
);

#[path = "outbox/operate.rs"]
mod operate;

#[path = "outbox/observe.rs"]
mod observe;

#[path = "outbox/breaker.rs"]
mod breaker;
