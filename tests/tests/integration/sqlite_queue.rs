//! The SQLite writers' queue, attacked: a `Db` keeping a connection on a file queues its own
//! writes (transactions before `BEGIN IMMEDIATE`, and statements in autocommit) first come,
//! first served, so SQLite's unfair busy handler cannot starve one of them. Cancellation at
//! every await point, panics, drops with a statement in flight, `close()` while writers
//! wait, a task writing through the `Db` while it holds a transaction, short, zero and
//! unknown busy timeouts, and storms of every operation at once. Written as probes by a
//! reviewer of the queue; each prints what it measured (`-- sqlite_queue --nocapture`).
//!
//! Each probe prints what it measured (`cargo test ... -- queue_probes --nocapture`) and
//! asserts what the documentation and the commit promise.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::{PANIC_POST_SAVE, Profile, User, setup};
use signals_core::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use signals_core::sqlx::{self};
use signals_core::{Backend, ConnRef, Db, Model, PostSave, Result, Tx};
use signals_tests::{Scratch, cancel_at, count, scalar};

/// No receivers: a save on `&db` is one autocommit statement, not queued.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qp_note")]
struct QNote {
    id: Option<i64>,
    body: String,
}

/// A receiver that writes through `tx.conn()` (the connection lent out to sqlx), then
/// panics, sleeps or returns according to `tag`.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qp_lent")]
#[post_save(lent_receiver)]
struct QLent {
    id: Option<i64>,
    tag: String,
}

async fn lent_receiver(row: &QLent, signal: &mut PostSave<'_>) -> Result<()> {
    if let ConnRef::Sqlite(conn) = signal.tx().conn().await? {
        sqlx::query("INSERT INTO qp_note (body) VALUES ('from lent receiver')")
            .execute(&mut *conn)
            .await?;
    }
    match row.tag.as_str() {
        "panic" => panic!("lent receiver panics on purpose"),
        "sleep" => tokio::time::sleep(Duration::from_secs(60)).await,
        _ => {}
    }
    Ok(())
}

/// A receiver that saves through the `Db` instead of its transaction.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qp_bad")]
#[post_save(bad_receiver)]
struct QBad {
    id: Option<i64>,
    tag: String,
}

async fn bad_receiver(row: &QBad, _signal: &mut PostSave<'_>) -> Result<()> {
    let db = BAD_DB.get().expect("set").clone();
    if row.tag == "spawn" {
        // Work on another task: the task-local check cannot see it.
        let res = tokio::spawn(async move {
            User::new(&format!("spawned{}", rand_u32()))
                .save(&db)
                .await
                .map(drop)
        })
        .await
        .expect("join");
        return res;
    }
    User::new(&format!("bad{}", rand_u32())).save(&db).await?;
    Ok(())
}

static BAD_DB: std::sync::OnceLock<Db> = std::sync::OnceLock::new();

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

const EXTRA: &str = "CREATE TABLE qp_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE qp_lent (id INTEGER PRIMARY KEY, tag TEXT NOT NULL);
CREATE TABLE qp_bad (id INTEGER PRIMARY KEY, tag TEXT NOT NULL)";

async fn extra(db: &Db) {
    for s in EXTRA.split(';') {
        db.execute_unprepared(s.trim()).await.unwrap();
    }
}

fn opts(url: &str, busy: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str(url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(busy)
}

/// A queued `Db` (kept connection) on a fresh file with busy timeout `busy`, with the seed's
/// tables and the probes'. `warm`: one transaction run, so the queue knows the busy timeout.
async fn file_db(name: &str, busy: Duration, max: u32, warm: bool) -> (Scratch, Db) {
    let scratch = Scratch::create(Backend::Sqlite, name).await.unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
        .connect_with(opts(&scratch.url, busy))
        .await
        .unwrap();
    let db = Db::from(pool).with_kept_connection(true);
    setup(&db).await;
    extra(&db).await;
    if warm {
        db.begin().await.unwrap().commit().await.unwrap();
    }
    (scratch, db)
}

/// Time of `f` and its outcome as text.
async fn timed<T, F: Future<Output = Result<T>>>(
    f: F,
) -> (Duration, std::result::Result<T, String>) {
    let start = Instant::now();
    let res = f.await.map_err(|e| e.to_string());
    (start.elapsed(), res)
}

/// The next writer of `db` begins and commits promptly: the queue is not stuck.
async fn assert_prompt(db: &Db, what: &str) {
    let start = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(20), async {
        db.begin().await?.commit().await
    })
    .await;
    let took = start.elapsed();
    assert!(
        matches!(res, Ok(Ok(()))),
        "{what}: next writer failed after {took:?}: {res:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "{what}: next writer waited {took:?} (queue stuck or leaked turn?)"
    );
}

async fn no_orphans(db: &Db, what: &str) {
    let orphans = scalar(
        db,
        "SELECT (SELECT COUNT(*) FROM account_user) - (SELECT COUNT(*) FROM account_profile)",
    )
    .await;
    assert_eq!(orphans, 0, "{what}: half-written signup");
}

// ---------------------------------------------------------------------------------------
// 1. A task holding a transaction writes again through the same `Db`.
// ---------------------------------------------------------------------------------------

/// Busy timeout 1 s. The same task holds `db.begin()` and saves a model with receivers
/// through `&db`: self-deadlock, ended by a timeout. Compared with the same save through a
/// clone without a kept connection (the path every save took before the queue) and with an
/// autocommit save (no receivers, never queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_nested_write_in_the_same_task() {
    let busy = Duration::from_secs(1);
    let (scratch, db) = file_db("qp_nested", busy, 8, true).await;
    let unkept = db.clone().with_kept_connection(false);

    let tx = db.begin().await.unwrap();
    let (queued, queued_res) = timed(User::new("inner_q").save(&db)).await;
    drop(tx);
    let tx = db.begin().await.unwrap();
    let (plain, plain_res) = timed(User::new("inner_p").save(&unkept)).await;
    drop(tx);
    let tx = db.begin().await.unwrap();
    let (auto, auto_res) = timed(
        QNote {
            id: None,
            body: "x".into(),
        }
        .save(&db),
    )
    .await;
    drop(tx);
    let tx = db.begin().await.unwrap();
    let (begin2, begin2_res) = timed(db.begin()).await;
    drop(begin2_res);
    drop(tx);
    // A receiver whose work on another task writes through the Db.
    let _ = BAD_DB.set(db.clone());
    let (spawned, spawned_res) = timed(
        QBad {
            id: None,
            tag: "spawn".into(),
        }
        .save(&db),
    )
    .await;
    // A receiver writing through the Db itself: refused at once.
    let (direct, direct_res) = timed(
        QBad {
            id: None,
            tag: "direct".into(),
        }
        .save(&db),
    )
    .await;
    eprintln!(
        "[qp_nested] busy timeout {busy:?}\n  \
         queued save (kept Db):        {queued:?} {queued_res:?}\n  \
         same save, unkept clone:      {plain:?} {plain_res:?}\n  \
         autocommit save (no recv):    {auto:?} {auto_res:?}\n  \
         second db.begin():            {begin2:?}\n  \
         receiver awaiting spawned save: {spawned:?} {spawned_res:?}\n  \
         receiver saving via Db:       {direct:?} {direct_res:?}"
    );
    assert_prompt(&db, "after nested writes").await;
    no_orphans(&db, "nested").await;
    db.close().await;
    scratch.drop_now().await;
    assert!(queued_res.is_err() && plain_res.is_err() && auto_res.is_err());
    assert!(direct < Duration::from_millis(500), "refused at once");
    // A self-deadlock surfaces after one busy timeout, as without the queue, and says what
    // to do.
    assert!(
        queued < plain + Duration::from_millis(500) && queued < busy + Duration::from_millis(500),
        "a nested write in the same task fails after {queued:?} instead of {plain:?} \
         (error: {queued_res:?})"
    );
    let message = queued_res.as_ref().err().cloned().unwrap_or_default();
    assert!(
        message.contains("database is locked") && message.contains("write through the transaction"),
        "{message}"
    );
    assert!(
        begin2 < busy + Duration::from_millis(500),
        "second begin: {begin2:?}"
    );
    assert!(
        spawned < busy + Duration::from_millis(500),
        "spawned save: {spawned:?}"
    );
}

/// A savepoint fails while the transaction is open; its on_rollback work (run and awaited
/// before the failing operation returns, on a task of its own) writes through the `Db`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_on_rollback_work_writing_through_the_db() {
    let busy = Duration::from_secs(1);
    let (scratch, db) = file_db("qp_onrb", busy, 8, true).await;
    let mut results = Vec::new();
    for kept in [true, false] {
        let writer = if kept {
            db.clone()
        } else {
            db.clone().with_kept_connection(false)
        };
        let (tx_tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = db.begin().await.unwrap();
        let start = Instant::now();
        let _ = tx
            .savepoint(async |tx: &mut Tx| {
                let w = writer.clone();
                tx.on_rollback(async move {
                    let r = User::new(&format!("comp{}", rand_u32())).save(&w).await;
                    let _ = tx_tx.send(r.map(drop).map_err(|e| e.to_string()));
                });
                Err::<(), _>(signals_core::Error::Transaction("fail on purpose".into()))
            })
            .await;
        let took = start.elapsed();
        let res = rx.await.unwrap();
        tx.commit().await.unwrap();
        eprintln!("[qp_onrb] kept={kept}: savepoint returned after {took:?}, work: {res:?}");
        results.push((kept, took, res));
    }
    assert_prompt(&db, "after on_rollback work").await;
    db.close().await;
    scratch.drop_now().await;
    let (queued, plain) = (results[0].1, results[1].1);
    assert!(
        queued < plain + Duration::from_millis(500),
        "on_rollback work writing through the Db: {queued:?} with the queue, {plain:?} without"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Busy timeouts: small, zero, long holders, a fresh Db.
// ---------------------------------------------------------------------------------------

/// Busy timeout 500 ms; a transaction holds the turn for 3 s. How long until a second
/// writer of the same `Db` fails, and with what?
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_long_holder_bounds_the_wait() {
    let busy = Duration::from_millis(500);
    let (scratch, db) = file_db("qp_long", busy, 8, true).await;
    let unkept = db.clone().with_kept_connection(false);
    let mut holder = db.begin().await.unwrap();
    User::new("holder").save(&mut holder).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        holder.commit().await.unwrap();
    });
    let (q, qres) = timed(User::new("q").save(&db)).await;
    let (p, pres) = timed(User::new("p").save(&unkept)).await;
    let kind = match &qres {
        Err(_) => {
            let e = User::new("q2").save(&db).await.unwrap_err();
            format!("{:?}", e.kind())
        }
        Ok(_) => "-".into(),
    };
    release.await.unwrap();
    eprintln!(
        "[qp_long] busy {busy:?}, holder 3 s: queued writer {q:?} {qres:?} (kind {kind}); \
         unkept writer {p:?} {pres:?}"
    );
    assert_prompt(&db, "after the long holder").await;
    db.close().await;
    scratch.drop_now().await;
    assert!(
        q <= busy * 2 + Duration::from_millis(400),
        "documented bound: busy timeout in the queue + busy timeout for the lock; took {q:?}"
    );
}

/// Busy timeout 0 (fail fast): a second writer fails at once, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_busy_timeout_zero_fails_fast() {
    let (scratch, db) = file_db("qp_zero", Duration::ZERO, 8, true).await;
    let holder = db.begin().await.unwrap();
    let (t, res) = timed(db.begin()).await;
    let res = res.map(drop);
    drop(holder);
    eprintln!("[qp_zero] busy 0: second writer {t:?} {res:?}");
    assert!(res.is_err());
    assert!(t < Duration::from_millis(300), "took {t:?}");
    assert_prompt(&db, "busy 0").await;
    db.close().await;
    scratch.drop_now().await;
}

/// A fresh `Db` (no transaction has begun yet) with a busy timeout of 200 ms: the queue's
/// limit is then its 5 s default, not the connections' busy timeout. Writer A's BEGIN waits
/// 100 ms for another process's lock, then A holds the turn for 2.5 s; B asks for its turn
/// while A's BEGIN is still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_fresh_db_queue_ignores_a_short_busy_timeout() {
    let busy = Duration::from_millis(200);
    let scratch = Scratch::create(Backend::Sqlite, "qp_fresh").await.unwrap();
    let mk = || async {
        SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts(&scratch.url, busy))
            .await
            .unwrap()
    };
    let other = Db::from(mk().await); // another process
    setup(&other).await;
    extra(&other).await;
    let db = Db::from(mk().await).with_kept_connection(true);
    // Warm the kept connection with a read (not a transaction).
    assert_eq!(User::query().count(&db).await.unwrap(), 0);

    let ext = other.begin().await.unwrap();
    let ext_release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ext.commit().await.unwrap();
    });
    let a_db = db.clone();
    let a = tokio::spawn(async move {
        let tx = a_db.begin().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (b, bres) = timed(db.begin()).await;
    let bres = bres.map(drop);
    ext_release.await.unwrap();
    a.await.unwrap();
    // The same again, warm: the queue now knows the busy timeout.
    let a_db = db.clone();
    let a = tokio::spawn(async move {
        let tx = a_db.begin().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (b2, b2res) = timed(db.begin()).await;
    let b2res = b2res.map(drop);
    a.await.unwrap();
    eprintln!(
        "[qp_fresh] busy {busy:?}: fresh Db, B waited {b:?} -> {bres:?}; warm Db, B waited \
         {b2:?} -> {b2res:?}"
    );
    db.close().await;
    other.close().await;
    scratch.drop_now().await;
    assert!(
        b < busy * 2 + Duration::from_millis(400),
        "a fresh Db's writer waited {b:?} with a busy timeout of {busy:?} (warm: {b2:?})"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Cancellation.
// ---------------------------------------------------------------------------------------

/// Runs `op(waits)` for waits = 0, 1, .. while (with `holder`) another transaction of `db`
/// holds the turn for 30 ms; after each, the next writer must go promptly and nothing is
/// half written. Returns the number of await points.
async fn cancel_loop<F, Fut>(db: &Db, what: &str, holder: bool, mut op: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    for waits in 0..400 {
        let release = if holder {
            let mut h = db.begin().await.unwrap();
            QNote {
                id: None,
                body: "holder".into(),
            }
            .save(&mut h)
            .await
            .unwrap();
            Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                h.commit().await.unwrap();
            }))
        } else {
            None
        };
        let finished = tokio::time::timeout(Duration::from_secs(30), op(waits))
            .await
            .unwrap_or_else(|_| panic!("{what} at {waits}: hung"));
        if let Some(r) = release {
            r.await.unwrap();
        }
        assert_prompt(db, &format!("{what} cancelled at {waits}")).await;
        no_orphans(db, &format!("{what} cancelled at {waits}")).await;
        if finished {
            return waits;
        }
    }
    panic!("{what}: never finished");
}

/// Checks the caller's instance against the table after a cancelled or finished save.
async fn key_consistent(db: &Db, user: &User, what: &str) {
    let name = user.username.clone();
    let mut rows = User::filter(db, User::USERNAME, name.clone())
        .await
        .unwrap();
    if user.id.is_some() && rows.is_empty() {
        // Cancelled after COMMIT was sent: give it a moment to land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        rows = User::filter(db, User::USERNAME, name).await.unwrap();
    }
    match (user.id, rows.first()) {
        (Some(id), Some(row)) => assert_eq!(Some(id), row.id, "{what}: key differs"),
        (None, None) => {}
        (Some(id), None) => panic!("{what}: instance has key {id}, no row"),
        (None, Some(row)) => panic!("{what}: row {:?} committed, instance has no key", row.id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_cancel_every_operation_while_queued_or_holding() {
    signals_tests::run(Backend::Sqlite, "qp_cancel", |db| async move {
        setup(&db).await;
        extra(&db).await;
        let mut report = Vec::new();
        for holder in [true, false] {
            let tag = if holder { "queued" } else { "holding" };
            // db.begin() alone, dropped at once after.
            let n = cancel_loop(&db, &format!("{tag} begin"), holder, |w| {
                let db = db.clone();
                async move { cancel_at(w, db.begin()).await.map(|r| r.unwrap()).is_some() }
            })
            .await;
            report.push(format!("{tag} begin: {n} points"));
            // A signup.
            let n = cancel_loop(&db, &format!("{tag} save"), holder, |w| {
                let db = db.clone();
                async move {
                    let mut u = User::new(&format!("{tag}s{w}_{}", rand_u32()));
                    let done = cancel_at(w, u.save(&db))
                        .await
                        .map(|r| r.unwrap())
                        .is_some();
                    key_consistent(&db, &u, &format!("{tag} save at {w}")).await;
                    done
                }
            })
            .await;
            report.push(format!("{tag} save: {n} points"));
            // A bulk save of three.
            let n = cancel_loop(&db, &format!("{tag} bulk_save"), holder, |w| {
                let db = db.clone();
                async move {
                    let r = rand_u32();
                    let mut us: Vec<User> = (0..3)
                        .map(|i| User::new(&format!("{tag}b{w}_{r}_{i}")))
                        .collect();
                    let done = cancel_at(w, User::bulk_save(&db, &mut us))
                        .await
                        .map(|r| r.unwrap())
                        .is_some();
                    for u in &us {
                        key_consistent(&db, u, &format!("{tag} bulk_save at {w}")).await;
                    }
                    done
                }
            })
            .await;
            report.push(format!("{tag} bulk_save: {n} points"));
            // A delete with its cascade to the profile.
            let n = cancel_loop(&db, &format!("{tag} delete"), holder, |w| {
                let db = db.clone();
                async move {
                    let mut u = User::new(&format!("{tag}d{w}_{}", rand_u32()));
                    u.save(&db).await.unwrap();
                    let id = u.id;
                    let done = cancel_at(w, u.delete(&db))
                        .await
                        .map(|r| r.unwrap())
                        .is_some();
                    let left = User::filter(&db, User::USERNAME, u.username.clone())
                        .await
                        .unwrap();
                    if done {
                        assert!(left.is_empty() && u.id.is_none());
                    } else if left.is_empty() {
                        // Cancelled after COMMIT was sent: fine, but the profile went too.
                    } else {
                        assert_eq!(left[0].id, id);
                    }
                    done
                }
            })
            .await;
            report.push(format!("{tag} delete: {n} points"));
            // A closure transaction: raw SQL on the lent connection, a save, a savepoint.
            let n = cancel_loop(&db, &format!("{tag} transaction"), holder, |w| {
                let db = db.clone();
                async move {
                    let name = format!("{tag}t{w}_{}", rand_u32());
                    cancel_at(
                        w,
                        db.transaction(async |tx: &mut Tx| {
                            if let ConnRef::Sqlite(c) = tx.conn().await? {
                                sqlx::query("INSERT INTO qp_note (body) VALUES ('raw tx')")
                                    .execute(&mut *c)
                                    .await?;
                            }
                            User::new(&name).save(&mut *tx).await?;
                            tx.savepoint(async |tx: &mut Tx| {
                                QNote {
                                    id: None,
                                    body: "sp".into(),
                                }
                                .save(tx)
                                .await
                            })
                            .await?;
                            Ok::<_, signals_core::Error>(())
                        }),
                    )
                    .await
                    .map(|r| r.unwrap())
                    .is_some()
                }
            })
            .await;
            report.push(format!("{tag} transaction: {n} points"));
            // A save whose receiver writes through tx.conn() (its cancellation drops the
            // transaction with the connection lent: the rollback is spawned).
            let n = cancel_loop(&db, &format!("{tag} lent save"), holder, |w| {
                let db = db.clone();
                async move {
                    let mut l = QLent {
                        id: None,
                        tag: format!("ok{w}"),
                    };
                    cancel_at(w, l.save(&db))
                        .await
                        .map(|r| r.unwrap())
                        .is_some()
                }
            })
            .await;
            report.push(format!("{tag} lent save: {n} points"));
        }
        eprintln!("[qp_cancel] {report:?}");
    })
    .await;
}

/// Three writers queue behind a holder; the middle one is aborted (its task); the others
/// must go in turn, promptly, once the holder commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_abort_the_middle_of_the_queue() {
    let (scratch, db) = file_db("qp_middle", Duration::from_secs(10), 8, true).await;
    for round in 0..20 {
        let holder = db.begin().await.unwrap();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (db, order) = (db.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let mut u = User::new(&format!("m{round}_{i}"));
                u.save(&db).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tasks[1].abort();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let start = Instant::now();
        drop(holder);
        for (i, t) in tasks.into_iter().enumerate() {
            let r = tokio::time::timeout(Duration::from_secs(3), t).await;
            assert!(r.is_ok(), "round {round}: writer {i} stuck");
        }
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
        assert_eq!(*order.lock().unwrap(), [0, 2], "round {round}: FIFO");
    }
    no_orphans(&db, "middle").await;
    assert_prompt(&db, "middle").await;
    db.close().await;
    scratch.drop_now().await;
}

/// A transaction whose connection is lent out (`tx.conn()`) with a slow statement in flight
/// is dropped: the rollback waits for the statement, and the turn with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_drop_with_a_slow_statement_in_flight() {
    let (scratch, db) = file_db("qp_slow", Duration::from_secs(10), 8, true).await;
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
                SELECT COUNT(*) FROM c";
    // How long the statement takes alone.
    let start = Instant::now();
    let _: i64 = match db.pool() {
        signals_core::PoolRef::Sqlite(p) => sqlx::query_scalar(slow).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    };
    let alone = start.elapsed();
    let mut tx = db.begin().await.unwrap();
    QNote {
        id: None,
        body: "dropped".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    if let ConnRef::Sqlite(c) = tx.conn().await.unwrap() {
        let q = sqlx::query_scalar::<_, i64>(slow).fetch_one(&mut *c);
        let _ = tokio::time::timeout(Duration::from_millis(30), q).await;
    }
    let start = Instant::now();
    drop(tx);
    let (next, res) = timed(async { db.begin().await?.commit().await }).await;
    eprintln!(
        "[qp_slow] statement alone {alone:?}; next writer after the drop {next:?} {res:?} \
         (dropped at {:?})",
        start.elapsed()
    );
    assert!(res.is_ok());
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM qp_note WHERE body = 'dropped'").await,
        0
    );
    assert_prompt(&db, "after the slow drop").await;
    db.close().await;
    scratch.drop_now().await;
}

// ---------------------------------------------------------------------------------------
// 4. Panics, close, mixed load.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_panicking_receivers_give_the_turn_back() {
    let (scratch, db) = file_db("qp_panic", Duration::from_secs(10), 8, true).await;
    for i in 0..10 {
        // Panic with the connection lent out (spawned rollback) and with the handle held.
        let d = db.clone();
        let lent = tokio::spawn(async move {
            QLent {
                id: None,
                tag: "panic".into(),
            }
            .save(&d)
            .await
        })
        .await;
        assert!(lent.unwrap_err().is_panic());
        let d = db.clone();
        let held = tokio::spawn(async move {
            let mut u = User::new(&format!("panicky{i}"));
            u.email = PANIC_POST_SAVE.into();
            u.save(&d).await
        })
        .await;
        assert!(held.unwrap_err().is_panic());
        assert_prompt(&db, &format!("after panics {i}")).await;
    }
    assert_eq!(count(&db, "qp_lent").await, 0);
    assert_eq!(count(&db, "qp_note").await, 0);
    assert_eq!(count(&db, "account_user").await, 0);
    db.close().await;
    scratch.drop_now().await;
}

/// `db.close()` while writers wait in the queue behind a holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_close_while_writers_wait() {
    let (scratch, db) = file_db("qp_close", Duration::from_secs(10), 8, true).await;
    let mut holder = db.begin().await.unwrap();
    User::new("holder").save(&mut holder).await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..6 {
        let d = db.clone();
        waiters.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = User::new(&format!("w{i}")).save(&d).await.map(drop);
            (start.elapsed(), r.map_err(|e| e.to_string()))
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = db.clone();
    let closing = tokio::spawn(async move {
        let start = Instant::now();
        d.close().await;
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.commit().await.unwrap();
    let mut outcomes = Vec::new();
    for w in waiters {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("waiter hung")
                .unwrap(),
        );
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), closing)
        .await
        .expect("close hung")
        .unwrap();
    eprintln!("[qp_close] close took {closed:?}; waiters: {outcomes:?}");
    for (t, _) in &outcomes {
        assert!(*t < Duration::from_secs(2), "a waiter took {t:?}");
    }
    scratch.drop_now().await;
}

/// Queued transactions (eight tasks, each holding the lock 5 ms, busy timeout 1 s) beside
/// the same `Db`'s own autocommit writes (saves of a model without receivers) and a clone
/// without a kept connection: who starves?
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_autocommit_writes_beside_queued_transactions() {
    let (scratch, db) = file_db("qp_auto", Duration::from_secs(1), 8, true).await;
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let mut txs = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        txs.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..EACH {
                let r = async {
                    let mut tx = db.begin().await?;
                    QNote {
                        id: None,
                        body: format!("t{t}_{i}"),
                    }
                    .save(&mut tx)
                    .await?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tx.commit().await
                }
                .await;
                if let Err(e) = r {
                    errors.push(e.to_string());
                }
            }
            errors
        }));
    }
    let d = db.clone();
    let auto = tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut worst = Duration::ZERO;
        for i in 0..EACH {
            let start = Instant::now();
            let r = QNote {
                id: None,
                body: format!("auto{i}"),
            }
            .save(&d)
            .await;
            worst = worst.max(start.elapsed());
            if let Err(e) = r {
                errors.push(e.to_string());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (errors, worst)
    });
    let d = db.clone().with_kept_connection(false);
    let unkept = tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut worst = Duration::ZERO;
        for i in 0..EACH {
            let start = Instant::now();
            let r = User::new(&format!("unkept{i}")).save(&d).await;
            worst = worst.max(start.elapsed());
            if let Err(e) = r {
                errors.push(e.to_string());
            }
        }
        (errors, worst)
    });
    let mut tx_errors = Vec::new();
    for t in txs {
        tx_errors.extend(t.await.unwrap());
    }
    let (auto_errors, auto_worst) = auto.await.unwrap();
    let (unkept_errors, unkept_worst) = unkept.await.unwrap();
    eprintln!(
        "[qp_auto] queued tx errors {}/{} {:?}; autocommit saves errors {}/{EACH} worst \
         {auto_worst:?} {:?}; unkept-clone signups errors {}/{EACH} worst {unkept_worst:?} {:?}",
        tx_errors.len(),
        TASKS * EACH,
        tx_errors.first(),
        auto_errors.len(),
        auto_errors.first(),
        unkept_errors.len(),
        unkept_errors.first()
    );
    no_orphans(&db, "auto").await;
    db.close().await;
    scratch.drop_now().await;
    assert!(tx_errors.is_empty());
    assert!(
        auto_errors.is_empty(),
        "the Db's own autocommit writes starve beside its queued transactions: {}/{EACH} \
         failed ({:?})",
        auto_errors.len(),
        auto_errors.first()
    );
}

/// Everything at once from many tasks on `Db::connect` (busy timeout 10 s): transactions,
/// autocommit saves, reads, raw SQL on `tx.conn()`, bulk saves, cascading deletes,
/// savepoints, panicking receivers, clones with and without the kept connection,
/// cancellations at random await points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_mixed_storm() {
    signals_tests::run(Backend::Sqlite, "qp_storm", |db| async move {
        setup(&db).await;
        extra(&db).await;
        const TASKS: u64 = 24;
        const OPS: u64 = 60;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = t
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut next = move || {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as usize
                };
                let mut errors: Vec<String> = Vec::new();
                let mut worst = Duration::ZERO;
                let mut mine: Vec<User> = Vec::new();
                for i in 0..OPS {
                    let name = format!("s{t}_{i}");
                    let op = next() % 11;
                    let began = Instant::now();
                    let res: Result<()> = match op {
                        0 => {
                            let mut u = User::new(&name);
                            let r = u.save(&db).await.map(drop);
                            if r.is_ok() {
                                mine.push(u);
                            }
                            r
                        }
                        1 => QNote {
                            id: None,
                            body: name.clone(),
                        }
                        .save(&db)
                        .await
                        .map(drop),
                        2 => User::query().count(&db).await.map(drop),
                        3 => {
                            async {
                                let mut tx = db.begin().await?;
                                if let ConnRef::Sqlite(c) = tx.conn().await? {
                                    sqlx::query("INSERT INTO qp_note (body) VALUES ('raw')")
                                        .execute(&mut *c)
                                        .await?;
                                }
                                User::new(&name).save(&mut tx).await?;
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                tx.commit().await
                            }
                            .await
                        }
                        4 => {
                            let mut us: Vec<User> =
                                (0..3).map(|k| User::new(&format!("{name}_{k}"))).collect();
                            User::bulk_save(&db, &mut us).await.map(drop)
                        }
                        5 => match mine.pop() {
                            Some(mut u) => u.delete(&db).await.map(drop),
                            None => Ok(()),
                        },
                        6 => {
                            async {
                                let mut tx = db.begin().await?;
                                let r = tx
                                    .savepoint(async |tx: &mut Tx| {
                                        User::new(&name).save(&mut *tx).await?;
                                        Err::<(), _>(signals_core::Error::Transaction(
                                            "undo".into(),
                                        ))
                                    })
                                    .await;
                                assert!(r.is_err());
                                Profile::all(&mut tx).await?;
                                tx.commit().await
                            }
                            .await
                        }
                        7 => {
                            let d = db.clone();
                            let tag = if next() % 2 == 0 { "panic" } else { "ok" };
                            let r = tokio::spawn(async move {
                                QLent {
                                    id: None,
                                    tag: tag.into(),
                                }
                                .save(&d)
                                .await
                                .map(drop)
                            })
                            .await;
                            match r {
                                Ok(r) => r,
                                Err(e) if e.is_panic() => Ok(()),
                                Err(e) => panic!("{e}"),
                            }
                        }
                        8 => {
                            let d = db.clone().with_kept_connection(false);
                            User::new(&name).save(&d).await.map(drop)
                        }
                        9 => {
                            let w = next() % 12;
                            let mut u = User::new(&name);
                            let _ = cancel_at(w, u.save(&db)).await;
                            Ok(())
                        }
                        _ => {
                            async {
                                let mut tx = db.begin().await?;
                                if let ConnRef::Sqlite(c) = tx.conn().await? {
                                    sqlx::query("INSERT INTO qp_note (body) VALUES ('dropped')")
                                        .execute(&mut *c)
                                        .await?;
                                }
                                drop(tx);
                                Ok(())
                            }
                            .await
                        }
                    };
                    worst = worst.max(began.elapsed());
                    if let Err(e) = res {
                        errors.push(format!("op {op}: {e}"));
                    }
                }
                (errors, worst)
            }));
        }
        let mut errors = Vec::new();
        let mut worst = Duration::ZERO;
        for t in tasks {
            let (e, w) = tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .expect("storm task hung")
                .unwrap();
            errors.extend(e);
            worst = worst.max(w);
        }
        eprintln!(
            "[qp_storm] {} ops in {:?}, worst op {worst:?}, {} errors: {:?}",
            TASKS * OPS,
            start.elapsed(),
            errors.len(),
            errors.iter().take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        no_orphans(&db, "storm").await;
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM qp_note WHERE body = 'dropped'").await,
            0
        );
        assert_prompt(&db, "after the storm").await;
        assert!(errors.is_empty(), "{errors:?}");
    })
    .await;
}

/// A clone given `with_kept_connection(true)` again keeps sharing the original's kept
/// connection and queue: its writers and the original's queue together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_rekept_clone_shares_the_queue() {
    let (scratch, db) = file_db("qp_rekept", Duration::from_millis(500), 8, true).await;
    let again = db.clone().with_kept_connection(true);
    again.begin().await.unwrap().commit().await.unwrap();
    let holder = db.begin().await.unwrap();
    let (t, res) = timed(again.begin()).await;
    let res = res.map(drop);
    drop(holder);
    let holder = db.begin().await.unwrap();
    let (t2, res2) = timed(db.clone().begin()).await;
    let res2 = res2.map(drop);
    drop(holder);
    eprintln!(
        "[qp_rekept] busy 500 ms, holder on db: re-kept clone's begin {t:?} {res:?}; \
         plain clone's begin {t2:?} {res2:?}"
    );
    db.close().await;
    again.close().await;
    scratch.drop_now().await;
    // Both wait in the one queue, behind the holder, for the busy timeout.
    assert!(res.is_err() && res2.is_err(), "{res:?} {res2:?}");
    assert!(
        t >= Duration::from_millis(400) && t < Duration::from_millis(1200),
        "the re-kept clone queued with the original: {t:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Second round: comparisons and deeper cancellation.
// ---------------------------------------------------------------------------------------

/// One round of `qp_autocommit_writes_beside_queued_transactions`: eight tasks of 25
/// transactions (5 ms each) through `tx_db`, one task of 25 autocommit saves through `db`.
/// Returns (transaction errors, autocommit errors, worst autocommit latency).
async fn auto_round(db: &Db, tx_db: &Db) -> (usize, usize, Duration) {
    let mut txs = Vec::new();
    for t in 0..8 {
        let db = tx_db.clone();
        txs.push(tokio::spawn(async move {
            let mut errors = 0;
            for i in 0..25 {
                let r = async {
                    let mut tx = db.begin().await?;
                    QNote {
                        id: None,
                        body: format!("t{t}_{i}"),
                    }
                    .save(&mut tx)
                    .await?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tx.commit().await
                }
                .await;
                errors += usize::from(r.is_err());
            }
            errors
        }));
    }
    let d = db.clone();
    let auto = tokio::spawn(async move {
        let mut errors = 0;
        let mut worst = Duration::ZERO;
        for i in 0..25 {
            let start = Instant::now();
            let r = QNote {
                id: None,
                body: format!("auto{i}"),
            }
            .save(&d)
            .await;
            worst = worst.max(start.elapsed());
            errors += usize::from(r.is_err());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (errors, worst)
    });
    let mut tx_errors = 0;
    for t in txs {
        tx_errors += t.await.unwrap();
    }
    let (a, w) = auto.await.unwrap();
    (tx_errors, a, w)
}

/// The same load with the transactions queued (through `db`) and unqueued (through a clone
/// without a kept connection: every writer meets SQLite's busy handler, as before a9e09ed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_autocommit_starvation_queued_vs_unqueued() {
    let (scratch, db) = file_db("qp_auto2", Duration::from_secs(1), 8, true).await;
    let unkept = db.clone().with_kept_connection(false);
    let mut lines = Vec::new();
    let (mut q_auto, mut u_auto, mut q_tx, mut u_tx) = (0, 0, 0, 0);
    for round in 0..3 {
        let (t, a, w) = auto_round(&db, &db).await;
        lines.push(format!(
            "round {round} queued:   tx errors {t}/200, autocommit errors {a}/25, worst {w:?}"
        ));
        q_auto += a;
        q_tx += t;
        let (t, a, w) = auto_round(&unkept, &unkept).await;
        lines.push(format!(
            "round {round} unqueued: tx errors {t}/200, autocommit errors {a}/25, worst {w:?}"
        ));
        u_auto += a;
        u_tx += t;
    }
    eprintln!("[qp_auto2]\n  {}", lines.join("\n  "));
    db.close().await;
    scratch.drop_now().await;
    eprintln!(
        "[qp_auto2] totals: queued tx {q_tx} auto {q_auto}; unqueued tx {u_tx} auto {u_auto}"
    );
    assert_eq!(
        q_auto, 0,
        "autocommit writes of the queued Db failed {q_auto}/75 times"
    );
}

/// Cancellation at every await point of an operation that runs on a pool connection (the
/// keeper empty: a fresh `with_kept_connection(true)` clone per attempt, whose first
/// transaction takes its connection from the pool), queued behind a holder whose connection
/// is lent out when it is dropped (rollback spawned, turn handed over after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_cancel_on_a_pool_connection_everywhere() {
    signals_tests::run(Backend::Sqlite, "qp_cancel_pool", |base| async move {
        setup(&base).await;
        extra(&base).await;
        let mut report = Vec::new();
        for holder in [false, true] {
            for what in ["save", "transaction", "lent save", "bulk_save"] {
                let mut points = None;
                for w in 0..300 {
                    let db = base.clone().with_kept_connection(true);
                    let release = if holder {
                        let mut h = db.begin().await.unwrap();
                        if let ConnRef::Sqlite(c) = h.conn().await.unwrap() {
                            sqlx::query("INSERT INTO qp_note (body) VALUES ('holder dropped')")
                                .execute(&mut *c)
                                .await
                                .unwrap();
                        }
                        Some(tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            drop(h);
                        }))
                    } else {
                        None
                    };
                    let name = format!("cp{holder}{w}_{}", rand_u32());
                    let done = match what {
                        "save" => {
                            let mut u = User::new(&name);
                            let d = cancel_at(w, u.save(&db))
                                .await
                                .map(|r| r.unwrap())
                                .is_some();
                            key_consistent(&base, &u, &format!("{what} at {w}")).await;
                            d
                        }
                        "bulk_save" => {
                            let mut us: Vec<User> =
                                (0..3).map(|i| User::new(&format!("{name}_{i}"))).collect();
                            let d = cancel_at(w, User::bulk_save(&db, &mut us))
                                .await
                                .map(|r| r.unwrap())
                                .is_some();
                            for u in &us {
                                key_consistent(&base, u, &format!("{what} at {w}")).await;
                            }
                            d
                        }
                        "lent save" => {
                            let mut l = QLent {
                                id: None,
                                tag: name.clone(),
                            };
                            cancel_at(w, l.save(&db))
                                .await
                                .map(|r| r.unwrap())
                                .is_some()
                        }
                        _ => cancel_at(
                            w,
                            db.transaction(async |tx: &mut Tx| {
                                if let ConnRef::Sqlite(c) = tx.conn().await? {
                                    sqlx::query("INSERT INTO qp_note (body) VALUES ('raw tx')")
                                        .execute(&mut *c)
                                        .await?;
                                }
                                User::new(&name).save(&mut *tx).await?;
                                Ok::<_, signals_core::Error>(())
                            }),
                        )
                        .await
                        .map(|r| r.unwrap())
                        .is_some(),
                    };
                    if let Some(r) = release {
                        r.await.unwrap();
                    }
                    assert_prompt(&db, &format!("{what} (holder {holder}) cancelled at {w}")).await;
                    no_orphans(&base, &format!("{what} cancelled at {w}")).await;
                    // Not `db.close()`: it closes the shared pool, and waits forever for the
                    // connection `base` keeps (see `qp_close_of_a_rekept_clone`).
                    drop(db);
                    if done {
                        points = Some(w);
                        break;
                    }
                }
                report.push(format!("holder={holder} {what}: {points:?} points"));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            scalar(
                &base,
                "SELECT COUNT(*) FROM qp_note WHERE body = 'holder dropped'"
            )
            .await,
            0
        );
        eprintln!("[qp_cancel_pool] {report:?}");
    })
    .await;
}

/// After-commit work that writes through the `Db` runs once the turn is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_on_commit_work_writes_promptly() {
    let (scratch, db) = file_db("qp_oncommit", Duration::from_secs(5), 8, true).await;
    let mut tx = db.begin().await.unwrap();
    let d = db.clone();
    let (s, r) = tokio::sync::oneshot::channel();
    tx.on_commit(async move {
        let start = Instant::now();
        let res = User::new("after_commit").save(&d).await.map(drop);
        let _ = s.send((start.elapsed(), res.map_err(|e| e.to_string())));
    });
    tx.commit().await.unwrap();
    let (t, res) = r.await.unwrap();
    eprintln!("[qp_oncommit] after-commit save {t:?} {res:?}");
    assert!(res.is_ok() && t < Duration::from_millis(500));
    db.close().await;
    scratch.drop_now().await;
}

/// The commit's own scenario, heavier and mixed: 32 tasks x 100 signups on `Db::connect`
/// (busy timeout 10 s), transactions holding the lock 1 ms, beside one task of autocommit
/// saves and one of signups through a clone without a kept connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_signups_32x100_with_side_writers() {
    signals_tests::run(Backend::Sqlite, "qp_3200", |db| async move {
        setup(&db).await;
        extra(&db).await;
        let start = Instant::now();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..32 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut worst = Duration::ZERO;
                for i in 0..100 {
                    let began = Instant::now();
                    let r = async {
                        let mut tx = db.begin().await?;
                        User::new(&format!("u{t}_{i}")).save(&mut tx).await?;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        tx.commit().await
                    }
                    .await;
                    worst = worst.max(began.elapsed());
                    if let Err(e) = r {
                        errors.push(e.to_string());
                    }
                }
                (errors, worst)
            }));
        }
        let side = |kept: bool| {
            let db = if kept {
                db.clone()
            } else {
                db.clone().with_kept_connection(false)
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut n, mut errors, mut worst) = (0, Vec::new(), Duration::ZERO);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let began = Instant::now();
                    let r = if kept {
                        QNote {
                            id: None,
                            body: format!("side{n}"),
                        }
                        .save(&db)
                        .await
                        .map(drop)
                    } else {
                        User::new(&format!("side{n}")).save(&db).await.map(drop)
                    };
                    worst = worst.max(began.elapsed());
                    n += 1;
                    if let Err(e) = r {
                        errors.push(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                (n, errors, worst)
            })
        };
        let auto = side(true);
        let unkept = side(false);
        let mut errors = Vec::new();
        let mut worst = Duration::ZERO;
        for t in tasks {
            let (e, w) = t.await.unwrap();
            errors.extend(e);
            worst = worst.max(w);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (an, ae, aw) = auto.await.unwrap();
        let (un, ue, uw) = unkept.await.unwrap();
        eprintln!(
            "[qp_3200] {:?}: queued signups errors {}/3200 worst {worst:?} {:?}; autocommit \
             side {}/{an} failed worst {aw:?} {:?}; unkept side {}/{un} failed worst {uw:?} {:?}",
            start.elapsed(),
            errors.len(),
            errors.first(),
            ae.len(),
            ae.first(),
            ue.len(),
            ue.first()
        );
        no_orphans(&db, "3200").await;
        assert!(errors.is_empty());
        assert!(ae.is_empty(), "autocommit writes of the same Db starved");
    })
    .await;
}

/// Side note (not from a9e09ed): `close()` on a clone that keeps a connection of its own
/// (`with_kept_connection(true)` again) closes the shared pool and waits for the connection
/// the original `Db` keeps, which nothing gives back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qp_close_of_a_rekept_clone() {
    let (scratch, db) = file_db("qp_close_rekept", Duration::from_secs(5), 8, true).await;
    User::new("kept").save(&db).await.unwrap();
    let again = db.clone().with_kept_connection(true);
    User::new("again").save(&again).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), again.close()).await;
    eprintln!("[qp_close_rekept] close of the re-kept clone: {closed:?}");
    let closed2 = tokio::time::timeout(Duration::from_secs(3), db.close()).await;
    eprintln!("[qp_close_rekept] close of the original afterwards: {closed2:?}");
    scratch.drop_now().await;
    assert!(closed.is_ok(), "close() of a re-kept clone hung");
}
