//! The seed workload — signup, update, delete of N users, one transaction per operation —
//! through signals-core and through hand-written sqlx running the same statements on the same
//! pool, alternated over several rounds. Prints µs per operation and the ratio. On SQLite it
//! also runs the same statements directly on SQLite (rusqlite on a connection of its own, with
//! the pool's settings), the floor that no driver can beat.
//!
//! `cargo bench -p signals-bench --bench seed` (options after `--`: `--users N`, `--rounds R`,
//! `--only sqlite-file|sqlite-normal|sqlite-memory|postgres|mysql`; `sqlite-normal` is a WAL
//! file with `synchronous = NORMAL` instead of sqlx's default `FULL`).
#![allow(missing_docs, clippy::unwrap_used)]

use signals_bench::{arg, median};

use std::time::Instant;

use chrono::NaiveDate;
use signals_core::sqlx::{self, Row as _};
use signals_core::{Backend, Db, Model, PoolRef, PostDelete, PostSave, PreDelete, Result};

#[derive(Debug, Clone, Model)]
#[model(table = "account_user")]
#[post_save(create_profile, save_profile)]
struct User {
    id: Option<i64>,
    username: String,
    email: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "account_profile")]
#[pre_delete(profile_pre_delete)]
#[post_delete(profile_post_delete)]
struct Profile {
    id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    user_id: i64,
    date_of_birth: Option<NaiveDate>,
    photo: String,
}

async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() {
        let user_id = user.id.unwrap();
        let mut profile = Profile {
            id: None,
            user_id,
            date_of_birth: None,
            photo: String::new(),
        };
        profile.save(signal.tx()).await?;
    }
    Ok(())
}

async fn save_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if let Some(mut profile) = Profile::for_user(signal.tx(), user).await? {
        profile.save(signal.tx()).await?;
    }
    Ok(())
}

async fn profile_pre_delete(_: &Profile, _: &mut PreDelete<'_>) -> Result<()> {
    Ok(())
}

async fn profile_post_delete(_: &Profile, _: &mut PostDelete<'_>) -> Result<()> {
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE account_user (id {pk}, username {varchar} NOT NULL UNIQUE, email {varchar} NOT NULL);
CREATE TABLE account_profile (id {pk}, user_id {bigint} NOT NULL UNIQUE, date_of_birth {date},
    photo {varchar} NOT NULL,
    CONSTRAINT account_profile_user_fk FOREIGN KEY (user_id) REFERENCES account_user (id))";

// ---- the crate ---------------------------------------------------------------------------

async fn crate_signup(db: &Db, names: &[String]) -> Vec<User> {
    let mut users = Vec::with_capacity(names.len());
    for name in names {
        let mut user = User {
            id: None,
            username: name.clone(),
            email: format!("{name}@x.org"),
        };
        user.save(db).await.unwrap();
        users.push(user);
    }
    users
}

async fn crate_update(db: &Db, users: &mut [User]) {
    for user in users {
        user.email.push('!');
        user.save(db).await.unwrap();
    }
}

async fn crate_delete(db: &Db, users: &mut [User]) {
    for user in users {
        user.delete(db).await.unwrap();
    }
}

// ---- hand-written sqlx, the same statements ------------------------------------------------

/// What the hand-written code keeps of a user.
struct Plain {
    id: i64,
    username: String,
    email: String,
}

struct PlainProfile {
    id: i64,
    user_id: i64,
    date_of_birth: Option<NaiveDate>,
    photo: String,
}

macro_rules! hand_written {
    ($module:ident, $db:ty, $pool:ty, $begin:expr, $returning:expr, $p:expr) => {
        mod $module {
            use super::*;

            fn sql(text: &str) -> sqlx::AssertSqlSafe<String> {
                // `{n}` → the backend's n-th placeholder.
                let mut out = text.to_owned();
                for n in (1..=9).rev() {
                    out = out.replace(&format!("{{{n}}}"), &$p(n));
                }
                sqlx::AssertSqlSafe(out)
            }

            async fn insert_id(
                tx: &mut <$db as sqlx::Database>::Connection,
                text: &str,
                binds: impl FnOnce(
                    sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments>,
                ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments>,
            ) -> i64 {
                if $returning {
                    let q = binds(sqlx::query(sql(&format!("{text} RETURNING id"))));
                    q.fetch_one(&mut *tx).await.unwrap().get::<i64, _>(0)
                } else {
                    let q = binds(sqlx::query(sql(text)));
                    last_id(q.execute(&mut *tx).await.unwrap())
                }
            }

            async fn profile_of(
                tx: &mut <$db as sqlx::Database>::Connection,
                user_id: i64,
            ) -> Option<PlainProfile> {
                sqlx::query(sql(
                    "SELECT id, user_id, date_of_birth, photo FROM account_profile WHERE user_id = {1} ORDER BY id",
                ))
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .unwrap()
                .map(|r| PlainProfile {
                    id: r.get(0),
                    user_id: r.get(1),
                    date_of_birth: r.get(2),
                    photo: r.get(3),
                })
            }

            async fn update_profile(tx: &mut <$db as sqlx::Database>::Connection, p: &PlainProfile) {
                sqlx::query(sql(
                    "UPDATE account_profile SET user_id = {1}, date_of_birth = {2}, photo = {3} WHERE id = {4}",
                ))
                .bind(p.user_id)
                .bind(p.date_of_birth)
                .bind(&p.photo)
                .bind(p.id)
                .execute(&mut *tx)
                .await
                .unwrap();
            }

            pub(crate) async fn signup(pool: &$pool, names: &[String]) -> Vec<Plain> {
                let mut users = Vec::with_capacity(names.len());
                for name in names {
                    let email = format!("{name}@x.org");
                    let mut tx = $begin(pool).await;
                    let id = insert_id(
                        &mut tx,
                        "INSERT INTO account_user (username, email) VALUES ({1}, {2})",
                        |q| q.bind(name.clone()).bind(email.clone()),
                    )
                    .await;
                    insert_id(
                        &mut tx,
                        "INSERT INTO account_profile (user_id, date_of_birth, photo) VALUES ({1}, {2}, {3})",
                        |q| q.bind(id).bind(None::<NaiveDate>).bind(String::new()),
                    )
                    .await;
                    if let Some(p) = profile_of(&mut tx, id).await {
                        update_profile(&mut tx, &p).await;
                    }
                    tx.commit().await.unwrap();
                    users.push(Plain { id, username: name.clone(), email });
                }
                users
            }

            pub(crate) async fn update(pool: &$pool, users: &mut [Plain]) {
                for user in users {
                    user.email.push('!');
                    let mut tx = $begin(pool).await;
                    sqlx::query(sql("UPDATE account_user SET username = {1}, email = {2} WHERE id = {3}"))
                        .bind(&user.username)
                        .bind(&user.email)
                        .bind(user.id)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    if let Some(p) = profile_of(&mut tx, user.id).await {
                        update_profile(&mut tx, &p).await;
                    }
                    tx.commit().await.unwrap();
                }
            }

            pub(crate) async fn delete(pool: &$pool, users: &mut [Plain]) {
                for user in users {
                    let mut tx = $begin(pool).await;
                    if let Some(p) = profile_of(&mut tx, user.id).await {
                        sqlx::query(sql("DELETE FROM account_profile WHERE id = {1}"))
                            .bind(p.id)
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                    sqlx::query(sql("DELETE FROM account_user WHERE id = {1}"))
                        .bind(user.id)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            }
        }
    };
}

fn question(_: usize) -> String {
    "?".into()
}
fn dollar(n: usize) -> String {
    format!("${n}")
}

trait LastId {
    fn id(self) -> i64;
}
impl LastId for sqlx::sqlite::SqliteQueryResult {
    fn id(self) -> i64 {
        self.last_insert_rowid()
    }
}
impl LastId for sqlx::mysql::MySqlQueryResult {
    fn id(self) -> i64 {
        self.last_insert_id() as i64
    }
}
impl LastId for sqlx::postgres::PgQueryResult {
    fn id(self) -> i64 {
        unreachable!("PostgreSQL uses RETURNING")
    }
}
fn last_id(r: impl LastId) -> i64 {
    r.id()
}

hand_written!(
    hand_sqlite,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    |p: &sqlx::SqlitePool| {
        let p = p.clone();
        async move { p.begin_with("BEGIN IMMEDIATE").await.unwrap() }
    },
    false,
    question
);
hand_written!(
    hand_postgres,
    sqlx::Postgres,
    sqlx::PgPool,
    |p: &sqlx::PgPool| {
        let p = p.clone();
        async move { p.begin().await.unwrap() }
    },
    true,
    dollar
);
hand_written!(
    hand_mysql,
    sqlx::MySql,
    sqlx::MySqlPool,
    |p: &sqlx::MySqlPool| {
        let p = p.clone();
        async move { p.begin().await.unwrap() }
    },
    false,
    question
);

// ---- measuring -------------------------------------------------------------------------------

#[derive(Default)]
struct Phases {
    signup: Vec<f64>,
    update: Vec<f64>,
    delete: Vec<f64>,
}

fn per_op(start: Instant, n: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn crate_round(db: &Db, names: &[String], out: &mut Phases) {
    let t = Instant::now();
    let mut users = crate_signup(db, names).await;
    out.signup.push(per_op(t, names.len()));
    let t = Instant::now();
    crate_update(db, &mut users).await;
    out.update.push(per_op(t, names.len()));
    let t = Instant::now();
    crate_delete(db, &mut users).await;
    out.delete.push(per_op(t, names.len()));
}

async fn hand_round(db: &Db, names: &[String], out: &mut Phases) {
    macro_rules! go {
        ($m:ident, $pool:expr) => {{
            let t = Instant::now();
            let mut users = $m::signup($pool, names).await;
            out.signup.push(per_op(t, names.len()));
            let t = Instant::now();
            $m::update($pool, &mut users).await;
            out.update.push(per_op(t, names.len()));
            let t = Instant::now();
            $m::delete($pool, &mut users).await;
            out.delete.push(per_op(t, names.len()));
        }};
    }
    match db.pool() {
        PoolRef::Sqlite(p) => go!(hand_sqlite, p),
        PoolRef::Postgres(p) => go!(hand_postgres, p),
        PoolRef::MySql(p) => go!(hand_mysql, p),
        _ => unreachable!(),
    }
}

// ---- the same statements directly on SQLite (rusqlite, no sqlx) -----------------------------

mod direct {
    use rusqlite::{Connection, OptionalExtension as _, params};

    pub(crate) struct Plain {
        id: i64,
        username: String,
        email: String,
    }

    /// A connection to the same database as the pool, with the pool connection's settings.
    pub(crate) fn open(path: &str, pragmas: &[(String, i64)]) -> Connection {
        let c = Connection::open(path).unwrap();
        for (name, value) in pragmas {
            c.pragma_update(None, name, value).unwrap();
        }
        c
    }

    fn profile_of(c: &Connection, user_id: i64) -> Option<(i64, i64, Option<String>, String)> {
        c.prepare_cached(
            "SELECT id, user_id, date_of_birth, photo FROM account_profile WHERE user_id = ?1 ORDER BY id",
        )
        .unwrap()
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .unwrap()
    }

    fn update_profile(c: &Connection, p: &(i64, i64, Option<String>, String)) {
        c.prepare_cached(
            "UPDATE account_profile SET user_id = ?1, date_of_birth = ?2, photo = ?3 WHERE id = ?4",
        )
        .unwrap()
        .execute(params![p.1, p.2, p.3, p.0])
        .unwrap();
    }

    fn run(c: &Connection, sql: &str) {
        c.prepare_cached(sql).unwrap().execute([]).unwrap();
    }

    pub(crate) fn signup(c: &Connection, names: &[String]) -> Vec<Plain> {
        let mut users = Vec::with_capacity(names.len());
        for name in names {
            let email = format!("{name}@x.org");
            run(c, "BEGIN IMMEDIATE");
            c.prepare_cached("INSERT INTO account_user (username, email) VALUES (?1, ?2)")
                .unwrap()
                .execute(params![name, email])
                .unwrap();
            let id = c.last_insert_rowid();
            c.prepare_cached(
                "INSERT INTO account_profile (user_id, date_of_birth, photo) VALUES (?1, ?2, ?3)",
            )
            .unwrap()
            .execute(params![id, None::<String>, ""])
            .unwrap();
            if let Some(p) = profile_of(c, id) {
                update_profile(c, &p);
            }
            run(c, "COMMIT");
            users.push(Plain {
                id,
                username: name.clone(),
                email,
            });
        }
        users
    }

    pub(crate) fn update(c: &Connection, users: &mut [Plain]) {
        for user in users {
            user.email.push('!');
            run(c, "BEGIN IMMEDIATE");
            c.prepare_cached("UPDATE account_user SET username = ?1, email = ?2 WHERE id = ?3")
                .unwrap()
                .execute(params![user.username, user.email, user.id])
                .unwrap();
            if let Some(p) = profile_of(c, user.id) {
                update_profile(c, &p);
            }
            run(c, "COMMIT");
        }
    }

    pub(crate) fn delete(c: &Connection, users: &mut [Plain]) {
        for user in users {
            run(c, "BEGIN IMMEDIATE");
            if let Some(p) = profile_of(c, user.id) {
                c.prepare_cached("DELETE FROM account_profile WHERE id = ?1")
                    .unwrap()
                    .execute([p.0])
                    .unwrap();
            }
            c.prepare_cached("DELETE FROM account_user WHERE id = ?1")
                .unwrap()
                .execute([user.id])
                .unwrap();
            run(c, "COMMIT");
        }
    }
}

fn direct_round(c: &rusqlite::Connection, names: &[String], out: &mut Phases) {
    let t = Instant::now();
    let mut users = direct::signup(c, names);
    out.signup.push(per_op(t, names.len()));
    let t = Instant::now();
    direct::update(c, &mut users);
    out.update.push(per_op(t, names.len()));
    let t = Instant::now();
    direct::delete(c, &mut users);
    out.delete.push(per_op(t, names.len()));
}

/// The pool connection's settings that change what a statement costs, to give the direct
/// connection the same.
async fn sqlite_pragmas(db: &Db) -> Vec<(String, i64)> {
    // (On an in-memory database `pool()` makes a `Db` stop keeping its connection: this is
    // the hand-written side's `Db`.)
    let PoolRef::Sqlite(pool) = db.pool() else {
        unreachable!()
    };
    let mut out = Vec::new();
    for name in ["foreign_keys", "synchronous", "busy_timeout"] {
        let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(pool)
            .await
            .unwrap();
        out.push((name.to_owned(), value));
    }
    out
}

/// A file database as `Db::connect` opens one (WAL, foreign keys, busy timeout), but with
/// `synchronous = NORMAL`, which SQLite recommends with WAL: commits no longer wait for the
/// disk (a power cut may lose the last ones, never corrupt the file).
async fn sqlite_wal_normal(url: &str) -> Db {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let opts: SqliteConnectOptions = url.parse().unwrap();
    let opts = opts
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .unwrap();
    // As `Db::connect` does for the files it opens.
    Db::from(pool).with_kept_connection(true)
}

/// `hand`: the `Db` whose sqlx pool the hand-written side uses: `db` itself, except on
/// `:memory:`, where asking a `Db` for its pool makes it stop keeping its one connection, so
/// the hand-written side gets an in-memory database of its own.
/// `direct`: for SQLite, the database's path (`:memory:` for a database of its own).
async fn bench(label: &str, db: &Db, hand: &Db, direct: Option<&str>, users: usize, rounds: usize) {
    signals_tests::create_tables(db, SCHEMA).await;
    if !std::ptr::eq(db, hand) {
        signals_tests::create_tables(hand, SCHEMA).await;
    }
    let (mut ours, mut theirs, mut floor) =
        (Phases::default(), Phases::default(), Phases::default());
    let direct = match direct {
        Some(path) => {
            let c = direct::open(path, &sqlite_pragmas(hand).await);
            if path == ":memory:" {
                let ddl = SCHEMA
                    .replace("{pk}", "INTEGER PRIMARY KEY")
                    .replace("{varchar}", "TEXT")
                    .replace("{bigint}", "BIGINT")
                    .replace("{date}", "DATE");
                c.execute_batch(&ddl).unwrap();
            }
            Some(c)
        }
        None => None,
    };
    // One warm-up round each, not counted: prepares statements, fills the pool.
    let warm: Vec<String> = (0..users.min(50)).map(|i| format!("warm{i}")).collect();
    crate_round(db, &warm, &mut Phases::default()).await;
    let warm: Vec<String> = (0..users.min(50)).map(|i| format!("warmh{i}")).collect();
    hand_round(hand, &warm, &mut Phases::default()).await;
    if let Some(c) = &direct {
        let warm: Vec<String> = (0..users.min(50)).map(|i| format!("warmd{i}")).collect();
        direct_round(c, &warm, &mut Phases::default());
    }
    for round in 0..rounds {
        let a: Vec<String> = (0..users).map(|i| format!("c{round}_{i}")).collect();
        let b: Vec<String> = (0..users).map(|i| format!("h{round}_{i}")).collect();
        if let Some(c) = &direct {
            let d: Vec<String> = (0..users).map(|i| format!("d{round}_{i}")).collect();
            direct_round(c, &d, &mut floor);
        }
        // Alternate which goes first, so drift (WAL growth, autovacuum) hits both alike.
        if round % 2 == 0 {
            crate_round(db, &a, &mut ours).await;
            hand_round(hand, &b, &mut theirs).await;
        } else {
            hand_round(hand, &b, &mut theirs).await;
            crate_round(db, &a, &mut ours).await;
        }
    }
    for (phase, o, t, d) in [
        ("signup", &ours.signup, &theirs.signup, &floor.signup),
        ("update", &ours.update, &theirs.update, &floor.update),
        ("delete", &ours.delete, &theirs.delete, &floor.delete),
    ] {
        let (o, t) = (median(o), median(t));
        let (d, od) = if d.is_empty() {
            ("–".to_owned(), "–".to_owned())
        } else {
            let d = median(d);
            (format!("{d:.1}"), format!("{:.2}", o / d))
        };
        println!(
            "| {label:<13} | {phase:<6} | {o:>12.1} | {t:>17.1} | {:>5.2} | {d:>13} | {od:>8} |",
            o / t
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users: usize = arg("--users").and_then(|s| s.parse().ok()).unwrap_or(300);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let only = arg("--only");
    println!("seed workload: {users} users per phase, median of {rounds} rounds, µs per operation");
    println!();
    println!(
        "| backend       | phase  | signals-core | hand-written sqlx | ratio | direct SQLite | ÷ direct |"
    );
    println!(
        "|---------------|--------|-------------:|------------------:|------:|--------------:|---------:|"
    );
    for (label, backend) in [
        ("sqlite-file", Backend::Sqlite),
        ("sqlite-normal", Backend::Sqlite),
        ("sqlite-memory", Backend::Sqlite),
        ("postgres", Backend::Postgres),
        ("mysql", Backend::MySql),
    ] {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        if label == "sqlite-memory" {
            let db = Db::connect("sqlite::memory:").await.unwrap();
            let hand = Db::connect("sqlite::memory:").await.unwrap();
            bench(label, &db, &hand, Some(":memory:"), users, rounds).await;
            db.close().await;
            hand.close().await;
            continue;
        }
        let Some(scratch) = signals_tests::Scratch::create(backend, "bench").await else {
            println!("| {label:<13} | (server not reachable: skipped) |");
            continue;
        };
        let db = if label == "sqlite-normal" {
            sqlite_wal_normal(&scratch.url).await
        } else {
            Db::connect(&scratch.url).await.unwrap()
        };
        let path = scratch.url.strip_prefix("sqlite://");
        bench(label, &db, &db, path, users, rounds).await;
        db.close().await;
        scratch.drop_now().await;
    }
}
