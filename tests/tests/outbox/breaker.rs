//! Hostile probes of the "operate durable receivers" features (issue 30): dead letters
//! replayed while racing each other, a running runner and cancellation; selections of odd
//! ids; retries with absurd backoffs; `wait_until_handled` at its edges; durable
//! `changed(..)` against the non-durable one; `install` racing itself and under MariaDB's
//! ANSI mode; ordered handling with a failing event. Each asserts what a user would expect.

use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use signals_core::durable::Delivery;
use signals_core::{Committed, Sql};
use signals_outbox::Retry;
use signals_outbox::dead::{self, Select};
use signals_tests::outbox::cure;

use super::*;

async fn count(db: &Db, sql: &str) -> i64 {
    let mut q = Sql::new(db.backend());
    q.push(sql);
    let n: Option<(i64,)> = q.fetch_optional(db).await.expect(sql);
    n.map_or(-1, |(n,)| n)
}

/// `n` orders noted `sick:<token>`, dead-lettered by the embedded runner after one attempt.
async fn sick_letters(db: &Db, n: usize) -> String {
    let sick = token();
    orders(db, n, &format!("sick:{sick}")).await;
    let runner =
        Embedded::new(db.clone(), quick(Config::default()).max_attempts(1)).expect("runner");
    drain_until(&runner, db, "all dead", |s| s.dead >= n as u64).await;
    sick
}

/// The outbox and the dead letters agree, event by event: each event is dead (a letter, its
/// row dead) or pending (no letter), never both, never neither, and none is lost.
async fn assert_letters_consistent(db: &Db, n: i64) {
    let rows = count(db, "SELECT COUNT(*) FROM signals_outbox").await;
    assert_eq!(rows, n, "outbox rows");
    let pending_and_dead = count(
        db,
        "SELECT COUNT(*) FROM signals_outbox o WHERE o.state = 0 AND EXISTS \
         (SELECT 1 FROM signals_dead_letter d WHERE d.event_id = o.event_id)",
    )
    .await;
    assert_eq!(pending_and_dead, 0, "an event both pending and dead");
    let dead_without_letter = count(
        db,
        "SELECT COUNT(*) FROM signals_outbox o WHERE o.state = 3 AND NOT EXISTS \
         (SELECT 1 FROM signals_dead_letter d WHERE d.event_id = o.event_id)",
    )
    .await;
    assert_eq!(dead_without_letter, 0, "a dead row lost its letter");
    let letters = count(db, "SELECT COUNT(*) FROM signals_dead_letter").await;
    let pending = count(db, "SELECT COUNT(*) FROM signals_outbox WHERE state = 0").await;
    assert_eq!(
        letters + pending,
        n,
        "letters {letters} + pending {pending}"
    );
}

// ---- replays: races, cancellation, odd selections ----

outbox_test!(breaker_replays_race_a_running_runner, |_url, db| {
    let sick = sick_letters(&db, 60).await;
    cure(&sick);
    let running = signals_outbox::spawn(db.clone(), None, quick(Config::default()))
        .await
        .expect("spawn");
    let races: Vec<_> = (0..6)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let select = if i % 2 == 0 {
                    Select::all()
                } else {
                    Select::all().model("OutboxOrder").receiver("record_order")
                };
                dead::replay(&db, &select).await
            })
        })
        .collect();
    let mut replayed = 0;
    for race in races {
        replayed += race.await.expect("task").expect("replay");
    }
    assert_eq!(replayed, 60, "each letter replayed once in all");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    running.stop().await.expect("stop");
    let done = effects(&db).await;
    assert_once(&done);
    assert_eq!(done.len(), 60);
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.dead), (0, 0));
});

outbox_test!(
    breaker_replays_race_the_event_being_dead_lettered_again,
    |_url, db| {
        // Never cured while the replays run: each replayed event fails at once and is
        // dead-lettered again, while other replays take the letters again.
        let sick = sick_letters(&db, 40).await;
        let running =
            signals_outbox::spawn(db.clone(), None, quick(Config::default()).max_attempts(1))
                .await
                .expect("spawn");
        let races: Vec<_> = (0..3)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    for _ in 0..15 {
                        dead::replay(&db, &Select::all()).await?;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    Ok::<(), signals_outbox::Error>(())
                })
            })
            .collect();
        for race in races {
            race.await.expect("task").expect("replays");
        }
        signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
            .await
            .expect("settled");
        running.stop().await.expect("stop");
        assert_letters_consistent(&db, 40).await;
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM signals_dead_letter").await,
            40
        );
        // Mended: one replay brings every one back, each handled once.
        cure(&sick);
        assert_eq!(dead::replay(&db, &Select::all()).await.expect("replay"), 40);
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        assert_eq!(runner.drain().await.expect("drain"), 40);
        let done = effects(&db).await;
        assert_once(&done);
        assert_eq!(done.len(), 40);
    }
);

outbox_test!(
    breaker_cancelled_replays_lose_and_duplicate_nothing,
    |_url, db| {
        // More than one chunk (500) of letters, so a replay spans transactions.
        let n = 700;
        let sick = sick_letters(&db, n).await;
        let mut dice = 0x9e37_79b9_7f4a_7c15_u64;
        let mut cancelled = 0;
        for round in 0..40 {
            dice ^= dice << 13;
            dice ^= dice >> 7;
            dice ^= dice << 17;
            let cut = Duration::from_micros(dice % 6_000);
            if tokio::time::timeout(cut, dead::replay(&db, &Select::all()))
                .await
                .is_err()
            {
                cancelled += 1;
            }
            assert_letters_consistent(&db, n as i64).await;
            if round % 4 == 3 {
                // Dead again, all of them, as a runner would leave them.
                let now = signals_core::durable::now_millis();
                db.execute_unprepared(&format!(
                    "INSERT INTO signals_dead_letter (event_id, model, receiver, event, payload, \
                 error, attempts, failed_at) SELECT event_id, model, receiver, event, payload, \
                 'again', 1, {now} FROM signals_outbox WHERE state = 0"
                ))
                .await
                .expect("dead again");
                db.execute_unprepared("UPDATE signals_outbox SET state = 3 WHERE state = 0")
                    .await
                    .expect("dead again");
            }
        }
        // (SQLite's kept connection runs a replay within one poll: nothing to cut short there.)
        if db.backend() != signals_core::Backend::Sqlite {
            assert!(cancelled >= 3, "only {cancelled} replays were cut short");
        }
        // The connections the cancelled replays held are usable, their locks gone.
        let replayed =
            tokio::time::timeout(Duration::from_secs(20), dead::replay(&db, &Select::all()))
                .await
                .expect("a replay after cancelled ones does not wait on their locks")
                .expect("replay");
        let pending = count(&db, "SELECT COUNT(*) FROM signals_outbox WHERE state = 0").await;
        assert_eq!(
            pending, n as i64,
            "all pending after the last replay ({replayed})"
        );
        cure(&sick);
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        runner.drain().await.expect("drain");
        let done = effects(&db).await;
        assert_once(&done);
        assert_eq!(done.len(), n);
    }
);

outbox_test!(breaker_selections_of_odd_ids, |_url, db| {
    sick_letters(&db, 3).await;
    let letters = dead::list(&db, &Select::all(), usize::MAX)
        .await
        .expect("list all");
    assert_eq!(letters.len(), 3, "usize::MAX as a limit");
    assert!(
        dead::list(&db, &Select::all(), 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    let real = letters[0].event_id.clone();
    let odd = [
        String::new(),
        "'".into(),
        "' OR '1'='1".into(),
        "%".into(),
        "_".into(),
        "\\".into(),
        "\"; DROP TABLE signals_dead_letter; --".into(),
        "événement-ü-😀".into(),
        "x".repeat(300),
        real.to_uppercase(),
        format!(" {real}"),
        format!("{real}%"),
    ];
    for id in &odd {
        assert!(
            dead::get(&db, id).await.expect("get").is_none(),
            "{id:?} names no letter"
        );
        assert_eq!(
            dead::replay(&db, &Select::event(id.clone()))
                .await
                .expect("replay odd"),
            0,
            "{id:?}"
        );
        assert_eq!(
            dead::discard(&db, &Select::event(id.clone()))
                .await
                .expect("discard odd"),
            0,
            "{id:?}"
        );
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM signals_dead_letter").await,
        3
    );
    // Duplicates and odd ids around a real one: that one, once.
    let mut ids: Vec<String> = odd.to_vec();
    ids.push(real.clone());
    ids.push(real.clone());
    assert_eq!(
        dead::list(&db, &Select::events(ids.clone()), 100)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        dead::replay(&db, &Select::events(ids))
            .await
            .expect("replay"),
        1
    );
    // Combinations that take nothing.
    let now = SystemTime::now();
    let far_past = SystemTime::UNIX_EPOCH - Duration::from_secs(1_000_000_000_000);
    let far_future = now + Duration::from_secs(1_000_000_000_000_000);
    let none = [
        Select::all().failed_before(far_past),
        Select::all().failed_before(SystemTime::UNIX_EPOCH),
        Select::all().failed_after(far_future),
        Select::all().failed_after(now + Duration::from_secs(3600)),
        Select::all()
            .failed_before(far_past)
            .failed_after(far_future),
        Select::all().model("OutboxOrder").receiver("record_ordr"),
        Select::all().model("outboxorder"),
        Select::all().model("OutboxOrder%"),
        Select::all()
            .receiver("record_order")
            .model("OutboxShipment"),
        Select::events(Vec::<String>::new()).model("OutboxOrder"),
    ];
    for select in &none {
        assert!(
            dead::list(&db, select, 100).await.expect("list").is_empty(),
            "{select:?}"
        );
        assert_eq!(
            dead::replay(&db, select).await.expect("replay"),
            0,
            "{select:?}"
        );
    }
    // And those that take the two left.
    let both = [
        Select::all().failed_before(far_future),
        Select::all().failed_after(far_past),
        Select::all().failed_after(SystemTime::UNIX_EPOCH),
        Select::all().model("OutboxOrder").receiver("record_order"),
    ];
    for select in &both {
        assert_eq!(
            dead::list(&db, select, 100).await.expect("list").len(),
            2,
            "{select:?}"
        );
    }
    // A purge by an absurd age takes nothing.
    assert_eq!(dead::purge(&db, Duration::MAX).await.expect("purge"), 0);
    assert_eq!(
        dead::purge(&db, Duration::from_secs(u64::MAX / 2))
            .await
            .expect("purge"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM signals_dead_letter").await,
        2
    );
});

outbox_test!(breaker_a_selection_of_many_event_ids, |_url, db| {
    // An operator replays the ids `outbox dead` listed: tens of thousands of them.
    sick_letters(&db, 2).await;
    let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
    let mut ids: Vec<String> = (0..70_000)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    ids.push(letters[0].event_id.clone());
    let select = Select::events(ids);
    let listed = dead::list(&db, &select, 10)
        .await
        .expect("a list of 70,001 ids");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        dead::replay(&db, &select)
            .await
            .expect("a replay of 70,001 ids"),
        1
    );
});

// ---- dead letters the worker and the relay write ----

outbox_test!(
    breaker_a_discarded_worker_dead_letter_is_settled,
    |_url, db| {
        let Some((names, _js)) = Names::new(&nats_url()).await else {
            return;
        };
        orders(&db, 1, "permanent").await;
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), names.config.clone())
            .await
            .expect("spawn");
        signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
            .await
            .expect("dead-lettered");
        running.stop().await.expect("stop");
        assert_eq!(stats(&db).await.expect("stats").dead, 1);
        // Given up: nothing is left to wait for, nor published and waiting for a worker.
        assert_eq!(
            dead::discard(&db, &Select::all()).await.expect("discard"),
            1
        );
        let waited = signals_outbox::wait_until_handled(&db, Duration::from_secs(2)).await;
        let s = stats(&db).await.expect("stats");
        assert!(
            waited.is_ok(),
            "wait_until_handled after the only event was discarded: {waited:?}; stats {s:?}"
        );
        assert_eq!((s.pending, s.published, s.dead), (0, 0, 0), "{s:?}");
    }
);

outbox_test!(
    breaker_replay_of_a_worker_letter_whose_row_was_purged,
    |_url, db| {
        let Some((names, _js)) = Names::new(&nats_url()).await else {
            return;
        };
        let sick = token();
        let order = orders(&db, 1, &format!("sick:{sick}")).await;
        let config = names.config.clone().max_attempts(1);
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), config.clone())
            .await
            .expect("spawn");
        signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
            .await
            .expect("dead-lettered");
        assert_eq!(stats(&db).await.expect("stats").dead, 1);
        // The worker's letter marks its outbox row dead, so `purge` keeps it with the letter;
        // a row gone all the same (an older version's purge, an operator's DELETE) is written
        // anew by the replay.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let purged = signals_outbox::purge(&db, Duration::ZERO)
            .await
            .expect("purge");
        assert_eq!(purged.outbox, 0, "{purged:?}");
        db.execute_unprepared("DELETE FROM signals_outbox")
            .await
            .expect("the row gone");
        cure(&sick);
        assert_eq!(dead::replay(&db, &Select::all()).await.expect("replay"), 1);
        signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
            .await
            .expect("replayed and handled");
        running.stop().await.expect("stop");
        let done = effects(&db).await;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].order_id, order[0].id.expect("key"));
        assert_eq!(done[0].committed, "created");
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.dead), (0, 0));
    }
);

outbox_test!(breaker_replay_of_a_relay_refused_letter, |_url, db| {
    let Some((names, _js)) = Names::new(&nats_url()).await else {
        return;
    };
    // A row no message header can carry: the relay dead-letters it.
    db.execute_unprepared(
        "INSERT INTO signals_outbox (event_id, model, receiver, instance_key, part, event, payload, created_at) \
         VALUES ('00000000-0000-4000-8000-0000000000cc', 'OutboxOrder', 'record_order', 'Some(7)', 0, 'exploded', '{\"id\":7,\"note\":\"x\"}', 0)",
    )
    .await
    .expect("insert");
    orders(&db, 2, "fine").await;
    let running = signals_outbox::spawn(db.clone(), Some(&names.url), names.config.clone())
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("settled");
    let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].committed, "exploded");
    // Replayed: refused again, dead again, once; nothing else runs.
    assert_eq!(dead::replay(&db, &Select::all()).await.expect("replay"), 1);
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("refused again");
    eventually("dead again", Duration::from_secs(10), async || {
        let n = count(&db, "SELECT COUNT(*) FROM signals_dead_letter").await;
        if n == 1 { Ok(()) } else { Err(n) }
    })
    .await;
    assert_eq!(
        dead::discard(&db, &Select::all()).await.expect("discard"),
        1
    );
    running.stop().await.expect("stop");
    assert_eq!(effects(&db).await.len(), 2);
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 2, 0));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM signals_outbox WHERE state = 3").await,
        0
    );
});

// ---- retries ----

outbox_test!(
    breaker_a_huge_backoff_is_not_an_immediate_retry,
    |_url, db| {
        // "Retry, but not before an operator looks": a backoff no runner will ever reach.
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            orders(&db, 1, "flaky:1").await;
            let config = quick(Config::default()).retry(
                "OutboxOrder",
                "record_order",
                Retry::new(3).backoff(huge, huge),
            );
            let runner = Embedded::new(db.clone(), config).expect("runner");
            runner.drain().await.expect("drain");
            let s = stats(&db).await.expect("stats");
            assert_eq!(
                (s.pending, s.handled, s.dead),
                (1, 0, 0),
                "after one failure with a backoff of {huge:?}, the event waits"
            );
            db.execute_unprepared("DELETE FROM signals_outbox")
                .await
                .expect("reset");
        }
    }
);

outbox_test!(
    breaker_a_backoff_of_i64_max_millis_does_not_panic,
    |_url, db| {
        orders(&db, 1, "flaky:1").await;
        let huge = Duration::from_millis(i64::MAX as u64);
        let config = quick(Config::default()).retry(
            "OutboxOrder",
            "record_order",
            Retry::new(3).backoff(huge, huge),
        );
        let runner = Embedded::new(db.clone(), config).expect("runner");
        let joined = tokio::spawn(async move { runner.drain().await }).await;
        assert!(joined.is_ok(), "the runner panicked: {joined:?}");
        joined.expect("task").expect("drain");
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.handled), (1, 0));
    }
);

outbox_test!(
    breaker_retry_of_one_attempt_and_foreign_names,
    |_url, db| {
        orders(&db, 1, "flaky:1").await;
        orders(&db, 1, "flaky:0").await;
        let config = quick(Config::default()).max_attempts(5).retry(
            "OutboxOrder",
            "record_order",
            Retry::new(1).backoff(Duration::ZERO, Duration::ZERO),
        );
        let runner = Embedded::new(db.clone(), config).expect("runner");
        runner.drain().await.expect("drain");
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.handled, s.dead), (0, 1, 1));
        assert_eq!(
            dead::list(&db, &Select::all(), 10).await.expect("list")[0].attempts,
            1
        );
        // A retry for a receiver of another model, or names split elsewhere, is refused.
        for (model, receiver) in [
            ("OutboxShipment", "record_order"),
            ("OutboxOrder", "record_shipment"),
            ("OutboxOrder.record", "order"),
            ("OutboxOrder", ""),
            ("", "record_order"),
        ] {
            let err = Embedded::new(
                db.clone(),
                Config::default().retry(model, receiver, Retry::new(3)),
            )
            .expect_err("no such receiver");
            assert!(err.to_string().contains("no durable receiver"), "{err}");
        }
    }
);

outbox_test!(
    breaker_outbox_purge_by_an_absurd_age_keeps_everything,
    |_url, db| {
        orders(&db, 3, "fine").await;
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        runner.drain().await.expect("drain");
        for age in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_millis(u64::MAX),
        ] {
            let purged = signals_outbox::purge(&db, age).await.expect("purge");
            assert_eq!(
                (purged.outbox, purged.inbox),
                (0, 0),
                "nothing is older than {age:?}"
            );
        }
        assert_eq!(stats(&db).await.expect("stats").handled, 3);
    }
);

// ---- waiting ----

outbox_test!(breaker_wait_until_handled_at_its_edges, |_url, db| {
    // A zero timeout: at once, either way.
    signals_outbox::wait_until_handled(&db, Duration::ZERO)
        .await
        .expect("nothing committed");
    orders(&db, 2, "fine").await;
    let started = Instant::now();
    let err = signals_outbox::wait_until_handled(&db, Duration::ZERO)
        .await
        .expect_err("nothing ran");
    assert!(
        matches!(err, signals_outbox::Error::NotHandled { events: 2, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    runner.drain().await.expect("drain");
    signals_outbox::wait_until_handled(&db, Duration::ZERO)
        .await
        .expect("all settled");

    // An event that keeps failing, slowly retried, with a runner up: the wait gives up on
    // time, saying one is left, and what committed after the call is not waited for.
    let sick = token();
    orders(&db, 1, &format!("sick:{sick}")).await;
    let config = quick(Config::default()).retry(
        "OutboxOrder",
        "record_order",
        Retry::new(50).backoff(Duration::from_millis(100), Duration::from_millis(300)),
    );
    let running = signals_outbox::spawn(db.clone(), None, config)
        .await
        .expect("spawn");
    let started = Instant::now();
    let err = signals_outbox::wait_until_handled(&db, Duration::from_millis(700))
        .await
        .expect_err("still failing");
    let took = started.elapsed();
    assert!(
        matches!(err, signals_outbox::Error::NotHandled { events: 1, .. }),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Mended: the wait returns once it is handled.
    cure(&sick);
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled once mended");
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 3, 0));
    running.stop().await.expect("stop");
});

outbox_test!(
    breaker_wait_never_returns_before_an_earlier_commit_settles,
    |_url, db| {
        // Many small commits while a runner works; each wait, once returned, must find every
        // event committed before it settled.
        let running = signals_outbox::spawn(db.clone(), None, quick(Config::default()))
            .await
            .expect("spawn");
        for round in 0..15 {
            let committed = orders(&db, 1 + round % 4, "fine").await;
            signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
                .await
                .expect("handled");
            let done: HashSet<i64> = effects(&db).await.iter().map(|e| e.order_id).collect();
            for order in &committed {
                assert!(
                    done.contains(&order.id.expect("key")),
                    "round {round}: order {:?} committed before the wait is not handled",
                    order.id
                );
            }
        }
        running.stop().await.expect("stop");
    }
);

// ---- install ----

/// Drops every table of the outbox, for `install` to make them again.
async fn drop_outbox(db: &Db) {
    for table in [
        "signals_outbox",
        "signals_outbox_part",
        "signals_inbox",
        "signals_dead_letter",
        "signals_outbox_meta",
    ] {
        db.execute_unprepared(&format!("DROP TABLE {table}"))
            .await
            .expect("drop");
    }
}

outbox_test!(
    breaker_installs_racing_on_a_database_without_an_outbox,
    |_url, db| {
        // Five rounds: an install may lose the race on several of its statements in turn
        // (its retries were counted across them, and one in some CI runs ran out).
        for round in 0..5 {
            drop_outbox(&db).await;
            let installs: Vec<_> = (0..8)
                .map(|_| {
                    let db = db.clone();
                    tokio::spawn(async move { signals_outbox::install(&db).await })
                })
                .collect();
            let mut failed = Vec::new();
            for install in installs {
                if let Err(err) = install.await.expect("task") {
                    failed.push(err.to_string());
                }
            }
            assert!(
                failed.is_empty(),
                "round {round}: installs racing failed: {failed:?}"
            );
        }
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM signals_outbox_part").await,
            16
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM signals_outbox_meta").await,
            1
        );
        orders(&db, 2, "fine").await;
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        assert_eq!(runner.drain().await.expect("drain"), 2);
    }
);

outbox_test!(breaker_mariadb_in_ansi_mode, |url, db| {
    if db.backend() != signals_core::Backend::MySql {
        return;
    }
    use signals_core::sqlx::Executor as _;
    use signals_core::sqlx::mysql::MySqlPoolOptions;
    // The session's sql_mode as an ANSI-minded DBA sets it (per session: the server is shared).
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                conn.execute("SET SESSION sql_mode = 'ANSI,NO_BACKSLASH_ESCAPES'")
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .expect("pool");
    let ansi = Db::from(pool);
    drop_outbox(&ansi).await;
    signals_outbox::install(&ansi)
        .await
        .expect("install in ANSI mode");
    signals_outbox::install(&ansi).await.expect("again");
    let sick = token();
    orders(&ansi, 2, &format!("sick:{sick}")).await;
    orders(&ansi, 1, "it's a \"quoted\" back\\slash").await;
    let runner =
        Embedded::new(ansi.clone(), quick(Config::default()).max_attempts(1)).expect("runner");
    drain_until(&runner, &ansi, "dead", |s| s.dead >= 2).await;
    assert_eq!(
        dead::list(&ansi, &Select::all(), 10)
            .await
            .expect("list")
            .len(),
        2
    );
    cure(&sick);
    assert_eq!(
        dead::replay(&ansi, &Select::all()).await.expect("replay"),
        2
    );
    let running = signals_outbox::spawn(ansi.clone(), None, quick(Config::default()))
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&ansi, Duration::from_secs(30))
        .await
        .expect("handled");
    running.stop().await.expect("stop");
    let counts = signals_outbox::receiver_stats(&ansi).await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].handled, counts[0].dead, counts[0].pending),
        (3, 0, 0)
    );
    let mut sql = Sql::new(ansi.backend());
    sql.push("SELECT payload FROM signals_outbox");
    let payloads: Vec<(String,)> = sql.fetch_all(&ansi).await.expect("payloads");
    assert!(
        payloads
            .iter()
            .any(|(p,)| p.contains(r#"it's a \"quoted\" back\\slash"#)),
        "{payloads:?}"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    signals_outbox::purge(&ansi, Duration::ZERO)
        .await
        .expect("purge");
    assert_eq!(
        dead::purge(&ansi, Duration::ZERO)
            .await
            .expect("purge dead"),
        0
    );
    ansi.close().await;
});

// ---- durable changed(..) against the non-durable one ----

/// A parcel with the same `changed(status)` condition on a durable and a non-durable
/// receiver: the durable events must be what the non-durable receiver sees.
// Clippy takes two attributes naming the same `changed(status)` for one written twice.
#[allow(clippy::duplicated_attributes)]
#[derive(Model, Clone, Debug, Serialize, Deserialize)]
#[model(table = "breaker_parcel")]
#[on_commit(parcel_durable, durable, changed(status))]
#[on_commit(parcel_plain, changed(status))]
pub(crate) struct BreakerParcel {
    /// Key.
    pub(crate) id: Option<i64>,
    /// The test it belongs to (statics are shared by the tests of this binary).
    pub(crate) tag: String,
    /// Watched.
    pub(crate) status: String,
    /// Not watched.
    pub(crate) total: i64,
}

static PLAIN: Mutex<Vec<(String, i64, String)>> = Mutex::new(Vec::new());

async fn parcel_plain(parcel: BreakerParcel, committed: Committed) -> signals_core::Result<()> {
    PLAIN.lock().unwrap_or_else(|e| e.into_inner()).push((
        parcel.tag.clone(),
        parcel.id.unwrap_or_default(),
        format!(
            "{}:{}:{}",
            signals_core::durable::committed_name(committed),
            parcel.status,
            parcel.total
        ),
    ));
    Ok(())
}

async fn parcel_durable(
    parcel: BreakerParcel,
    delivery: &mut Delivery<'_>,
) -> signals_core::Result<()> {
    let committed = format!(
        "{}:{}:{}",
        signals_core::durable::committed_name(delivery.committed()),
        parcel.status,
        parcel.total
    );
    OutboxEffect {
        id: None,
        event_id: delivery.event().id.clone(),
        order_id: parcel.id.unwrap_or_default(),
        committed,
    }
    .save(delivery.tx())
    .await?;
    Ok(())
}

fn undo() -> signals_core::Error {
    signals_core::Error::Config("undo".into())
}

outbox_test!(
    breaker_durable_changed_agrees_with_the_plain_one,
    |_url, db| {
        db.create_tables::<BreakerParcel>().await.expect("table");
        let tag = token();
        let parcel = |status: &str, total: i64| BreakerParcel {
            id: None,
            tag: tag.clone(),
            status: status.into(),
            total,
        };

        // 1. Nested savepoints: a change kept, a change back rolled back inside it.
        let mut a = parcel("new", 1);
        a.save(&db).await.expect("a");
        let mut tx = db.begin().await.expect("begin");
        let kept = tx
            .savepoint(async |tx: &mut Tx| {
                let mut p = a.clone();
                p.status = "paid".into();
                p.save(&mut *tx).await?;
                let inner = tx
                    .savepoint(async |tx: &mut Tx| {
                        let mut q = p.clone();
                        q.status = "new".into();
                        q.save(tx).await?;
                        Err::<(), _>(undo())
                    })
                    .await;
                assert!(inner.is_err());
                Ok::<_, signals_core::Error>(p)
            })
            .await
            .expect("outer savepoint");
        tx.commit().await.expect("commit");
        a = kept;

        // 2. A change in a released savepoint, the transaction rolled back: nothing.
        let mut tx = db.begin().await.expect("begin");
        tx.savepoint(async |tx: &mut Tx| {
            let mut p = a.clone();
            p.status = "lost".into();
            p.save(tx).await
        })
        .await
        .expect("savepoint");
        tx.rollback().await.expect("rollback");

        // 3. Changed, then changed back in a released savepoint: nothing.
        let mut tx = db.begin().await.expect("begin");
        let mut p = a.clone();
        p.status = "held".into();
        p.save(&mut tx).await.expect("held");
        tx.savepoint(async |tx: &mut Tx| {
            let mut q = p.clone();
            q.status = "paid".into();
            q.total = 2;
            q.save(tx).await
        })
        .await
        .expect("back");
        tx.commit().await.expect("commit");
        a.total = 2;

        // 4. Changed, then the change back rolled back: the change stands.
        let mut tx = db.begin().await.expect("begin");
        let mut p = a.clone();
        p.status = "shipped".into();
        p.save(&mut tx).await.expect("shipped");
        let back = tx
            .savepoint(async |tx: &mut Tx| {
                let mut q = p.clone();
                q.status = "paid".into();
                q.save(tx).await?;
                Err::<(), _>(undo())
            })
            .await;
        assert!(back.is_err());
        tx.commit().await.expect("commit");
        a = p;

        // 5. Created and changed in one transaction: one event, created, of the last save.
        let mut tx = db.begin().await.expect("begin");
        let mut b = parcel("new", 5);
        b.save(&mut tx).await.expect("b");
        b.status = "paid".into();
        b.save(&mut tx).await.expect("b paid");
        b.status = "new".into();
        b.total = 6;
        b.save(&mut tx).await.expect("b back");
        tx.commit().await.expect("commit");

        // 6. Bulk: the same rows saved twice in one transaction, statuses crossing.
        let mut rows: Vec<BreakerParcel> = (0..4).map(|i| parcel("new", 10 + i)).collect();
        BreakerParcel::bulk_save(&db, &mut rows)
            .await
            .expect("bulk");
        let mut tx = db.begin().await.expect("begin");
        rows[0].status = "paid".into();
        rows[1].status = "paid".into();
        BreakerParcel::bulk_save(&mut tx, &mut rows)
            .await
            .expect("bulk 1");
        rows[1].status = "new".into();
        rows[2].status = "paid".into();
        BreakerParcel::bulk_save(&mut tx, &mut rows)
            .await
            .expect("bulk 2");
        tx.commit().await.expect("commit");

        // 7. A creation rolled back with its savepoint, then made again in the same transaction.
        let mut tx = db.begin().await.expect("begin");
        let gone = tx
            .savepoint(async |tx: &mut Tx| {
                let mut c = parcel("draft", 20);
                c.save(tx).await?;
                Err::<(), _>(undo())
            })
            .await;
        assert!(gone.is_err());
        let mut c = parcel("draft", 21);
        c.save(&mut tx).await.expect("c");
        tx.commit().await.expect("commit");

        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        runner.drain().await.expect("drain");
        let mut durable: Vec<(i64, String)> = effects(&db)
            .await
            .into_iter()
            .map(|e| (e.order_id, e.committed))
            .collect();
        durable.sort();
        let mut plain: Vec<(i64, String)> = PLAIN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(t, ..)| *t == tag)
            .map(|(_, id, c)| (*id, c.clone()))
            .collect();
        plain.sort();
        let a_id = a.id.expect("key");
        let b_id = b.id.expect("key");
        let c_id = c.id.expect("key");
        let r: Vec<i64> = rows.iter().map(|r| r.id.expect("key")).collect();
        let mut want = vec![
            (a_id, "created:new:1".to_owned()),
            (a_id, "updated:paid:1".to_owned()),
            (a_id, "updated:shipped:2".to_owned()),
            (b_id, "created:new:6".to_owned()),
            (c_id, "created:draft:21".to_owned()),
            (r[0], "updated:paid:10".to_owned()),
            (r[2], "updated:paid:12".to_owned()),
        ];
        for (i, id) in r.iter().enumerate() {
            want.push((*id, format!("created:new:{}", 10 + i)));
        }
        want.sort();
        assert_eq!(plain, want, "the non-durable receiver");
        assert_eq!(
            durable, want,
            "the durable receiver, as the non-durable one"
        );
    }
);

outbox_test!(breaker_durable_changed_saved_from_a_receiver, |_url, db| {
    db.create_tables::<BreakerParcel>().await.expect("table");
    let tag = token();
    let mut p = BreakerParcel {
        id: None,
        tag: tag.clone(),
        status: "new".into(),
        total: 0,
    };
    p.save(&db).await.expect("parcel");
    let key = p.id.expect("key");
    // An order's post_save receiver moves the parcel to the order's note, in the save's
    // transaction; a save of an order with the same note changes nothing.
    signals_core::isolate_receivers(async {
        signals_core::connect_post_save::<OutboxOrder, _>(
            "steer_parcel",
            async move |order: &OutboxOrder, signal: &mut signals_core::PostSave<'_>| {
                let mut sql = Sql::new(signal.tx().backend());
                sql.push("SELECT tag, total FROM breaker_parcel WHERE id = ")
                    .bind(&key)?;
                let (tag, total): (String, i64) = sql
                    .fetch_optional(signal.tx())
                    .await?
                    .ok_or_else(|| signals_core::Error::Config("no parcel".into()))?;
                BreakerParcel {
                    id: Some(key),
                    tag,
                    status: order.note.clone(),
                    total: total + 1,
                }
                .save(signal.tx())
                .await?;
                Ok(())
            },
        );
        let mut order = OutboxOrder {
            id: None,
            note: "packed".into(),
        };
        order.save(&db).await.expect("order");
        order.save(&db).await.expect("same note");
        order.note = "sent".into();
        order.save(&db).await.expect("sent");
    })
    .await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    runner.drain().await.expect("drain");
    let mut got: Vec<String> = effects(&db)
        .await
        .into_iter()
        // The parcel's (the orders' own effects say only `created` or `updated`).
        .filter(|e| e.order_id == key && e.committed.contains(':'))
        .map(|e| e.committed)
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["created:new:0", "updated:packed:1", "updated:sent:3"],
        "one event per real change of the parcel's status"
    );
});

// ---- ordered handling ----

outbox_test!(
    breaker_ordered_a_failing_event_holds_only_its_instance,
    |_url, db| {
        let Some((names, _js)) = Names::new(&nats_url()).await else {
            return;
        };
        // Instance A: a sick version first, then two fine ones; instance B: fine versions. A's
        // later versions wait for its sick one to be dead-lettered, then flow, in order.
        let sick = token();
        let mut a = orders(&db, 1, &format!("sick:{sick}")).await.remove(0);
        let mut b = orders(&db, 1, "b0").await.remove(0);
        for v in 1..=2 {
            a.note = format!("a{v}");
            a.save(&db).await.expect("a");
            b.note = format!("b{v}");
            b.save(&db).await.expect("b");
        }
        let config = names.config.clone().ordered_per_instance(true).retry(
            "OutboxOrder",
            "record_order",
            Retry::new(3).backoff(Duration::from_millis(300), Duration::from_millis(300)),
        );
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), config)
            .await
            .expect("spawn");
        signals_outbox::wait_until_handled(&db, Duration::from_secs(60))
            .await
            .expect("settled");
        let mut sql = Sql::new(db.backend());
        sql.push("SELECT event_id, payload FROM signals_outbox");
        let payloads: HashMap<String, String> = sql
            .fetch_all::<(String, String)>(&db)
            .await
            .expect("payloads")
            .into_iter()
            .collect();
        let notes = |effects: &[OutboxEffect], key: i64| -> Vec<String> {
            let mut e: Vec<&OutboxEffect> = effects.iter().filter(|e| e.order_id == key).collect();
            e.sort_by_key(|e| e.id);
            e.iter()
                .map(|e| {
                    serde_json::from_str::<OutboxOrder>(&payloads[&e.event_id])
                        .expect("order")
                        .note
                })
                .collect()
        };
        let done = effects(&db).await;
        let a_key = a.id.expect("key");
        let b_key = b.id.expect("key");
        assert_eq!(notes(&done, a_key), ["a1", "a2"]);
        assert_eq!(notes(&done, b_key), ["b0", "b1", "b2"]);
        let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 3);
        // Replayed in ordered mode once mended: handled, once.
        cure(&sick);
        assert_eq!(dead::replay(&db, &Select::all()).await.expect("replay"), 1);
        signals_outbox::wait_until_handled(&db, Duration::from_secs(60))
            .await
            .expect("replayed");
        running.stop().await.expect("stop");
        let done = effects(&db).await;
        assert_once(&done);
        assert_eq!(done.len(), 6);
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.dead), (0, 0));
    }
);

/// A command whose durable receiver sets its parcel's status, in the delivery's transaction.
#[derive(Model, Clone, Debug, Serialize, Deserialize)]
#[model(table = "breaker_command")]
#[on_commit(apply_command, durable)]
pub(crate) struct BreakerCommand {
    /// Key.
    pub(crate) id: Option<i64>,
    /// The parcel it moves.
    pub(crate) parcel: i64,
    /// To this status.
    pub(crate) status: String,
}

async fn apply_command(
    command: BreakerCommand,
    delivery: &mut Delivery<'_>,
) -> signals_core::Result<()> {
    let mut sql = Sql::new(delivery.tx().backend());
    sql.push("SELECT tag, total FROM breaker_parcel WHERE id = ")
        .bind(&command.parcel)?;
    let (tag, total): (String, i64) = sql
        .fetch_optional(delivery.tx())
        .await?
        .ok_or_else(|| signals_core::Error::Config("no parcel".into()))?;
    BreakerParcel {
        id: Some(command.parcel),
        tag,
        status: command.status.clone(),
        total,
    }
    .save(delivery.tx())
    .await?;
    Ok(())
}

outbox_test!(
    breaker_durable_changed_saved_by_separate_deliveries,
    |_url, db| {
        // Two commands, committed apart, each handled by its own delivery: the first moves the
        // parcel held -> paid, the second paid -> new. Each delivery is a transaction of its own
        // to the receiver, so each is a real change of the parcel's status: two parcel events,
        // whether a worker or the embedded runner (which runs a round's events together) handles
        // them.
        db.create_tables::<(BreakerParcel, BreakerCommand)>()
            .await
            .expect("tables");
        let tag = token();
        let mut p = BreakerParcel {
            id: None,
            tag: tag.clone(),
            status: "new".into(),
            total: 0,
        };
        p.save(&db).await.expect("parcel");
        let key = p.id.expect("key");
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        runner.drain().await.expect("the parcel's creation");
        // One command alone: its change is an event.
        BreakerCommand {
            id: None,
            parcel: key,
            status: "held".into(),
        }
        .save(&db)
        .await
        .expect("command");
        runner.drain().await.expect("the command");
        runner.drain().await.expect("what it caused");
        for status in ["paid", "new"] {
            BreakerCommand {
                id: None,
                parcel: key,
                status: status.into(),
            }
            .save(&db)
            .await
            .expect("command");
        }
        runner.drain().await.expect("the commands");
        runner.drain().await.expect("what they caused");
        let mut got: Vec<String> = effects(&db)
            .await
            .into_iter()
            .filter(|e| e.order_id == key)
            .map(|e| e.committed)
            .collect();
        got.sort();
        let plain: Vec<String> = PLAIN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(t, ..)| *t == tag)
            .map(|(_, _, c)| c.clone())
            .collect();
        assert_eq!(
            got,
            [
                "created:new:0",
                "updated:held:0",
                "updated:new:0",
                "updated:paid:0"
            ],
            "durable parcel events; the non-durable receiver saw {plain:?}"
        );
    }
);

outbox_test!(
    breaker_letters_of_a_worker_whose_clock_runs_ahead,
    |_url, db| {
        // The dead letter's time is the dead-lettering machine's clock; the operator's machine
        // runs a minute behind it. What `dead::list` shows, `dead::replay` and `discard` take.
        sick_letters(&db, 2).await;
        db.execute_unprepared("UPDATE signals_dead_letter SET failed_at = failed_at + 60000")
            .await
            .expect("skew");
        let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
        assert_eq!(letters.len(), 2);
        assert_eq!(
            dead::replay(&db, &Select::event(letters[0].event_id.clone()))
                .await
                .expect("replay"),
            1,
            "a listed letter, named by its id, is replayed"
        );
        assert_eq!(
            dead::discard(&db, &Select::event(letters[1].event_id.clone()))
                .await
                .expect("discard"),
            1,
            "a listed letter, named by its id, is discarded"
        );
    }
);

outbox_test!(breaker_replays_and_discards_race, |_url, db| {
    let n = 600;
    sick_letters(&db, n).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let select = if i % 3 == 0 {
                    Select::all().receiver("record_order")
                } else {
                    Select::all()
                };
                if i % 2 == 0 {
                    dead::replay(&db, &select).await.map(|n| (n, 0))
                } else {
                    dead::discard(&db, &select).await.map(|n| (0, n))
                }
            })
        })
        .collect();
    let (mut replayed, mut discarded) = (0, 0);
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok((r, d)) => {
                replayed += r;
                discarded += d;
            }
            Err(err) => errors.push(err.to_string()),
        }
    }
    assert!(
        errors.is_empty(),
        "racing replays and discards failed: {errors:?}"
    );
    assert_eq!(replayed + discarded, n as u64, "each letter one fate");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM signals_dead_letter").await,
        0
    );
    let pending = count(&db, "SELECT COUNT(*) FROM signals_outbox WHERE state = 0").await;
    let rows = count(&db, "SELECT COUNT(*) FROM signals_outbox").await;
    assert_eq!((pending, rows), (replayed as i64, replayed as i64));
});

outbox_test!(breaker_a_huge_backoff_through_the_broker, |_url, db| {
    let Some((names, _js)) = Names::new(&nats_url()).await else {
        return;
    };
    orders(&db, 1, "flaky:1").await;
    let config = names.config.clone().retry(
        "OutboxOrder",
        "record_order",
        Retry::new(3).backoff(Duration::MAX, Duration::MAX),
    );
    let running = signals_outbox::spawn(db.clone(), Some(&names.url), config)
        .await
        .expect("spawn");
    wait_for(&db, "published", Duration::from_secs(20), |s| {
        s.published >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await.expect("stop");
    let s = stats(&db).await.expect("stats");
    assert_eq!(
        (s.handled, s.dead),
        (0, 0),
        "after one failure with a backoff of Duration::MAX, the event waits"
    );
});
