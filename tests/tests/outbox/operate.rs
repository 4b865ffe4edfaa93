//! Operating durable receivers (issue 30): dead letters listed, replayed (once, however many
//! replays race), discarded and purged; per-receiver retries and permanent errors; receivers
//! a program lacks; waiting until what committed is handled; `changed(..)` decided before
//! the commit. On SQLite, PostgreSQL and MySQL, in-process and through the broker.

use std::time::SystemTime;

use signals_outbox::Retry;
use signals_outbox::dead::{self, Select};
use signals_tests::outbox::{OutboxShipment, cure};

use super::*;

outbox_test!(
    dead_letters_are_listed_replayed_once_and_discarded,
    |_url, db| {
        let sick = token();
        let sick_orders = orders(&db, 6, &format!("sick:{sick}")).await;
        orders(&db, 2, "poison").await;
        orders(&db, 3, "fine").await;
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        drain_until(&runner, &db, "eight dead letters", |s| s.dead >= 8).await;

        let all = dead::list(&db, &Select::all(), 100).await.expect("list");
        assert_eq!(all.len(), 8);
        let letter = &all[0];
        assert_eq!(
            (
                letter.model.as_str(),
                letter.receiver.as_str(),
                letter.attempts
            ),
            ("OutboxOrder", "record_order", 3)
        );
        assert_eq!(letter.committed, "created");
        assert!(letter.failed_at <= SystemTime::now());
        let sick_ids: Vec<String> = all
            .iter()
            .filter(|l| l.error.contains("is sick"))
            .map(|l| l.event_id.clone())
            .collect();
        assert_eq!(sick_ids.len(), 6, "{all:?}");
        let got = dead::get(&db, &sick_ids[0]).await.expect("get");
        assert_eq!(got.as_ref().map(|l| &l.event_id), Some(&sick_ids[0]));
        assert!(
            dead::list(&db, &Select::all().receiver("other"), 100)
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            dead::list(&db, &Select::all().model("OutboxOrder"), 3)
                .await
                .expect("list")
                .len(),
            3,
            "the limit holds"
        );

        // The cause is mended; four replays of the sick ones race, and one of the events is
        // also named alone by a fifth.
        cure(&sick);
        let select = Select::events(sick_ids.clone());
        let races: Vec<_> = (0..4)
            .map(|_| {
                let (db, select) = (db.clone(), select.clone());
                tokio::spawn(async move { dead::replay(&db, &select).await })
            })
            .collect();
        let alone = dead::replay(&db, &Select::event(&sick_ids[0]))
            .await
            .expect("replay one");
        let mut replayed = alone;
        for race in races {
            replayed += race.await.expect("task").expect("replay");
        }
        assert_eq!(replayed, 6, "each dead letter replayed once in all");
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.dead), (6, 2));
        assert_eq!(runner.drain().await.expect("drain"), 6);
        let done = effects(&db).await;
        assert_once(&done);
        let sick_keys: HashSet<i64> = sick_orders.iter().filter_map(|o| o.id).collect();
        assert_eq!(
            done.iter()
                .filter(|e| sick_keys.contains(&e.order_id))
                .count(),
            6,
            "every replayed event handled, once"
        );
        assert_eq!(
            dead::replay(&db, &select).await.expect("again"),
            0,
            "a replayed letter is gone"
        );

        // The poison ones are given up: their dead letters and outbox rows go.
        let poison = dead::list(&db, &Select::all(), 100).await.expect("list");
        assert!(
            poison.iter().all(|l| l.error.contains("poison")),
            "{poison:?}"
        );
        assert_eq!(
            dead::discard(&db, &Select::all()).await.expect("discard"),
            2
        );
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.handled, s.dead), (0, 9, 0));
        let mut sql = signals_core::Sql::new(db.backend());
        sql.push("SELECT COUNT(*) FROM signals_outbox WHERE state = 3");
        let dead_rows: Option<(i64,)> = sql.fetch_optional(&db).await.expect("count");
        let dead_rows = dead_rows.map_or(-1, |(n,)| n);
        assert_eq!(
            dead_rows, 0,
            "the discarded events' outbox rows went with them"
        );
    }
);

outbox_test!(dead_letters_are_purged_by_age, |_url, db| {
    orders(&db, 2, "poison").await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    drain_until(&runner, &db, "dead", |s| s.dead >= 2).await;
    assert_eq!(
        dead::purge(&db, Duration::from_secs(3600))
            .await
            .expect("purge"),
        0,
        "none that old"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(dead::purge(&db, Duration::ZERO).await.expect("purge"), 2);
    assert_eq!(stats(&db).await.expect("stats").dead, 0);
    // A bare selection of nothing changes nothing.
    assert_eq!(
        dead::replay(&db, &Select::events(Vec::<String>::new()))
            .await
            .expect("replay"),
        0
    );
});

outbox_test!(a_permanent_error_is_dead_lettered_at_once, |_url, db| {
    orders(&db, 1, "permanent").await;
    orders(&db, 1, "fine").await;
    let runner =
        Embedded::new(db.clone(), quick(Config::default().max_attempts(5))).expect("runner");
    runner.drain().await.expect("drain");
    let s = stats(&db).await.expect("stats");
    assert_eq!(
        (s.pending, s.handled, s.dead),
        (0, 1, 1),
        "no retry waited for"
    );
    let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
    assert_eq!(letters[0].attempts, 1);
    assert!(
        letters[0]
            .error
            .contains("can never be recorded (permanent"),
        "{letters:?}"
    );
});

outbox_test!(a_receivers_own_retries_replace_the_default, |_url, db| {
    // Two attempts for every receiver, five for `record_order`: a receiver failing its first
    // three deliveries is handled on its fourth.
    orders(&db, 2, "flaky:3").await;
    let config = quick(Config::default()).max_attempts(2).retry(
        "OutboxOrder",
        "record_order",
        Retry::new(5).backoff(Duration::from_millis(5), Duration::from_millis(20)),
    );
    let runner = Embedded::new(db.clone(), config).expect("runner");
    drain_until(&runner, &db, "handled on the fourth delivery", |s| {
        s.handled >= 2
    })
    .await;
    assert_eq!(stats(&db).await.expect("stats").dead, 0);

    // The default alone gives up after two.
    orders(&db, 1, "flaky:3").await;
    let runner =
        Embedded::new(db.clone(), quick(Config::default()).max_attempts(2)).expect("runner");
    drain_until(&runner, &db, "dead after two", |s| s.dead >= 1).await;
    assert_eq!(
        dead::list(&db, &Select::all(), 10).await.expect("list")[0].attempts,
        2
    );

    // A retry for a receiver the program lacks is a mistake, said at once.
    let err = Embedded::new(
        db.clone(),
        Config::default().retry("OutboxOrder", "record_ordr", Retry::new(3)),
    )
    .expect_err("misspelled");
    let text = err.to_string();
    assert!(
        text.contains("`OutboxOrder.record_ordr`") && text.contains("OutboxOrder.record_order"),
        "{text}"
    );
    let err = Embedded::new(
        db.clone(),
        Config::default().retry("OutboxOrder", "record_order", Retry::new(0)),
    )
    .expect_err("no attempt");
    assert!(err.to_string().contains("at least 1 attempt"), "{err}");
});

outbox_test!(
    an_event_for_a_receiver_the_program_lacks_is_dead_lettered_at_once,
    |_url, db| {
        db.execute_unprepared(
        "INSERT INTO signals_outbox (event_id, model, receiver, instance_key, part, event, payload, created_at) \
         VALUES ('00000000-0000-4000-8000-0000000000aa', 'OutboxOrder', 'send_invoice', 'Some(7)', 0, 'created', '{\"id\":7,\"note\":\"x\"}', 0)",
    )
    .await
    .expect("insert");
        let runner =
            Embedded::new(db.clone(), quick(Config::default().max_attempts(5))).expect("runner");
        runner.drain().await.expect("drain");
        let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
        assert_eq!(letters.len(), 1, "dead at the first delivery");
        assert_eq!(letters[0].attempts, 1);
        let error = &letters[0].error;
        assert!(
            error.contains("no durable receiver `send_invoice` of `OutboxOrder`")
                && error.contains("OutboxOrder.record_order")
                && error.contains("replay"),
            "{error}"
        );
        assert!(signals_outbox::receivers().contains(&"OutboxOrder.record_order".to_owned()));
    }
);

outbox_test!(waiting_until_what_committed_is_handled, |_url, db| {
    // Nothing committed: nothing to wait for.
    signals_outbox::wait_until_handled(&db, Duration::from_millis(10))
        .await
        .expect("nothing to wait for");
    orders(&db, 30, "fine").await;
    orders(&db, 1, "permanent").await;
    // No runner: it gives up, saying how many are left.
    let err = signals_outbox::wait_until_handled(&db, Duration::from_millis(100))
        .await
        .expect_err("no runner");
    assert!(
        matches!(err, signals_outbox::Error::NotHandled { events: 31, .. }),
        "{err}"
    );
    let running = signals_outbox::spawn(db.clone(), None, quick(Config::default()))
        .await
        .expect("spawn");
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    // Right after it returns, every one is settled: no polling.
    let s = stats(&db).await.expect("stats");
    assert_eq!((s.pending, s.handled, s.dead), (0, 30, 1));
    orders(&db, 2, "fine").await;
    signals_outbox::wait_until_handled(&db, Duration::from_secs(30))
        .await
        .expect("handled");
    running.stop().await.expect("stop");
    let counts = signals_outbox::receiver_stats(&db).await.expect("counts");
    let order = counts
        .iter()
        .find(|r| (r.model.as_str(), r.receiver.as_str()) == ("OutboxOrder", "record_order"))
        .expect("the order's receiver");
    assert_eq!((order.pending, order.handled, order.dead), (0, 32, 1));
});

outbox_test!(
    a_durable_changed_receiver_is_decided_before_the_commit,
    |_url, db| {
        let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
        let mut ship = OutboxShipment {
            id: None,
            status: "new".into(),
            total: 10,
        };
        ship.save(&db).await.expect("create"); // created: an event
        ship.total = 11;
        ship.save(&db).await.expect("total"); // no status change: none
        ship.status = "paid".into();
        ship.save(&db).await.expect("paid"); // an event
        // Changed and changed back in one transaction: none.
        let mut tx = db.begin().await.expect("begin");
        ship.status = "held".into();
        ship.save(&mut tx).await.expect("held");
        ship.status = "paid".into();
        ship.save(&mut tx).await.expect("paid again");
        tx.commit().await.expect("commit");
        // Changed, then another field, in one transaction: one event, of the last save.
        let mut tx = db.begin().await.expect("begin");
        ship.status = "shipped".into();
        ship.save(&mut tx).await.expect("shipped");
        ship.total = 12;
        ship.save(&mut tx).await.expect("total");
        tx.commit().await.expect("commit");
        // A change in a savepoint rolled back: none.
        let mut tx = db.begin().await.expect("begin");
        let undone = tx
            .savepoint(async |tx: &mut Tx| {
                let mut lost = ship.clone();
                lost.status = "lost".into();
                lost.save(tx).await?;
                Err::<(), _>(signals_core::Error::Config("undo".into()))
            })
            .await;
        assert!(undone.is_err());
        tx.commit().await.expect("commit");
        // A rolled back transaction: none. A delete: none.
        let mut tx = db.begin().await.expect("begin");
        ship.status = "returned".into();
        ship.save(&mut tx).await.expect("returned");
        tx.rollback().await.expect("rollback");
        ship.status = "shipped".into();
        let mut other = OutboxShipment {
            id: None,
            status: "new".into(),
            total: 1,
        };
        other.save(&db).await.expect("other");
        let b = other.id.expect("key");
        other.delete(&db).await.expect("delete");
        // A bulk: only the rows whose status changed.
        let mut rows: Vec<OutboxShipment> = (0..4)
            .map(|i| OutboxShipment {
                id: None,
                status: "new".into(),
                total: i,
            })
            .collect();
        OutboxShipment::bulk_save(&db, &mut rows)
            .await
            .expect("bulk create");
        rows[1].status = "paid".into();
        rows[2].total = 99;
        OutboxShipment::bulk_save(&db, &mut rows)
            .await
            .expect("bulk update");

        assert_eq!(runner.drain().await.expect("drain"), 9);
        let mut got: Vec<(i64, String)> = effects(&db)
            .await
            .into_iter()
            .map(|e| (e.order_id, e.committed))
            .collect();
        got.sort();
        let a = ship.id.expect("key");
        let bulk: Vec<i64> = rows.iter().map(|r| r.id.expect("key")).collect();
        let mut want = vec![
            (a, "created:new:10".to_owned()),
            (a, "updated:paid:11".to_owned()),
            (a, "updated:shipped:12".to_owned()),
            (b, "created:new:1".to_owned()),
        ];
        for (i, id) in bulk.iter().enumerate() {
            want.push((*id, format!("created:new:{i}")));
        }
        want.push((bulk[1], "updated:paid:1".to_owned()));
        want.sort();
        assert_eq!(got, want);
    }
);

outbox_test!(
    replays_and_missing_receivers_through_the_broker,
    |_url, db| {
        let Some((names, _js)) = Names::new(&nats_url()).await else {
            return;
        };
        let sick = token();
        orders(&db, 3, &format!("sick:{sick}")).await;
        db.execute_unprepared(
        "INSERT INTO signals_outbox (event_id, model, receiver, instance_key, part, event, payload, created_at) \
         VALUES ('00000000-0000-4000-8000-0000000000bb', 'OutboxOrder', 'send_invoice', 'Some(7)', 0, 'created', '{\"id\":7,\"note\":\"x\"}', 0)",
    )
    .await
    .expect("insert");
        let config = names.config.clone().max_attempts(2);
        let running = signals_outbox::spawn(db.clone(), Some(&names.url), config)
            .await
            .expect("spawn");
        signals_outbox::wait_until_handled(&db, Duration::from_secs(60))
            .await
            .expect("settled");
        let letters = dead::list(&db, &Select::all(), 10).await.expect("list");
        assert_eq!(letters.len(), 4, "{letters:?}");
        let missing: Vec<_> = letters
            .iter()
            .filter(|l| l.receiver == "send_invoice")
            .collect();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].attempts, 1, "refused at the first delivery");
        assert!(
            missing[0]
                .error
                .contains("no durable receiver `send_invoice`")
        );

        // Replayed within the stream's duplicate window: published anew, not dropped.
        cure(&sick);
        let replayed = dead::replay(&db, &Select::all().receiver("record_order"))
            .await
            .expect("replay");
        assert_eq!(replayed, 3);
        signals_outbox::wait_until_handled(&db, Duration::from_secs(60))
            .await
            .expect("replayed events handled");
        running.stop().await.expect("stop");
        let done = effects(&db).await;
        assert_eq!(done.len(), 3);
        assert_once(&done);
        let s = stats(&db).await.expect("stats");
        assert_eq!((s.pending, s.handled, s.dead), (0, 3, 1));
    }
);

outbox_test!(
    ordered_workers_handle_each_instance_in_commit_order,
    |url, db| {
        let Some((names, js)) = Names::new(&nats_url()).await else {
            return;
        };
        // 50 orders, each created then updated 20 times, the updates of different orders
        // interleaved, each in a transaction of its own: 1,050 events.
        interleaved_versions(&db, 50, 20).await;
        let config = names.config.clone().ordered_per_instance(true);
        let relay = Relay::new(db.clone(), js.clone(), config)
            .await
            .expect("relay");
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        let relay_task = tokio::spawn(async move { relay.run(stopped).await });
        let mut workers: Vec<Child> = (0..3)
            .map(|_| {
                names
                    .child("worker", &url)
                    .arg("ordered")
                    .spawn()
                    .expect("worker")
            })
            .collect();
        // One worker is killed with SIGKILL mid-stream.
        let mut dice = Dice::new();
        let at = 100 + dice.below(500);
        wait_for(&db, "some events handled", Duration::from_secs(120), |s| {
            s.handled >= at
        })
        .await;
        let victim = dice.below(3) as usize;
        kill(&mut workers[victim]);
        eprintln!("worker {victim} killed after {at} events");
        wait_for(&db, "every event handled", Duration::from_secs(240), |s| {
            s.handled >= 1_050
        })
        .await;
        for w in &mut workers {
            kill(w);
        }
        stop.cancel();
        relay_task.await.expect("relay task").expect("relay");

        // Each order's effects, in the order they were written, are its versions in commit order.
        let mut sql = signals_core::Sql::new(db.backend());
        sql.push("SELECT event_id, payload FROM signals_outbox");
        let payloads: HashMap<String, String> = sql
            .fetch_all::<(String, String)>(&db)
            .await
            .expect("payloads")
            .into_iter()
            .collect();
        let mut done = effects(&db).await;
        assert_eq!(done.len(), 1_050);
        assert_once(&done);
        done.sort_by_key(|e| e.id);
        let mut seen: HashMap<i64, Vec<i64>> = HashMap::new();
        for effect in &done {
            let order: OutboxOrder =
                serde_json::from_str(&payloads[&effect.event_id]).expect("an order");
            let v: i64 = order
                .note
                .trim_start_matches('v')
                .parse()
                .expect("a version");
            seen.entry(effect.order_id).or_default().push(v);
        }
        assert_eq!(seen.len(), 50);
        let in_order: Vec<i64> = (0..=20).collect();
        for (order, versions) in &seen {
            assert_eq!(
                versions, &in_order,
                "order {order} handled out of commit order"
            );
        }
    }
);

outbox_test!(install_adds_the_columns_an_older_outbox_lacks, |url, db| {
    orders(&db, 1, "fine").await;
    // The outbox as the crate's first version made it: no `trace_context`. (On a connection
    // of its own: SQLite refuses to drop a column a connection's older copy of the schema
    // lacks.)
    let other = Db::connect(&url).await.expect("connect");
    other
        .execute_unprepared("ALTER TABLE signals_outbox DROP COLUMN trace_context")
        .await
        .expect("drop the column");
    other.close().await;
    let runner = Embedded::new(db.clone(), quick(Config::default())).expect("runner");
    let err = runner
        .drain()
        .await
        .expect_err("the runner needs the column");
    assert!(err.to_string().contains("trace_context"), "{err}");
    // Two installs at once (two processes starting): both succeed, the column is added once.
    let (a, b) = tokio::join!(signals_outbox::install(&db), signals_outbox::install(&db));
    a.expect("first install");
    b.expect("second install");
    signals_outbox::install(&db)
        .await
        .expect("again: nothing to do");
    orders(&db, 2, "fine").await;
    assert_eq!(runner.drain().await.expect("drain"), 3);
    assert_eq!(effects(&db).await.len(), 3);
});
