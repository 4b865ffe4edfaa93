//! Bulk writes: N users, each with the seed's profile, in one transaction, through
//! `User::bulk_save` with the seed's receivers batched (`create_profile` bulk-saves the
//! profiles), against hand-written sqlx running multi-row INSERTs of 1,000 rows (users with
//! `RETURNING id`, or `LAST_INSERT_ID()` on MySQL, then their profiles); then the bulk delete
//! of those users with their profiles against hand-written `DELETE .. IN` statements.
//! Alternated over several rounds; prints the medians and the median of per-round ratios.
//!
//! `cargo bench -p signals-bench --bench bulk` (options after `--`: `--users N`, `--rounds R`,
//! `--only sqlite-memory|sqlite-file|postgres|mysql`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use signals_bench::{arg, each_backend, median};
use signals_core::sqlx::{self, Row as _};
use signals_core::{Backend, ConnRef, Db, Model, PostSaveBatch, Result, Tx};

#[derive(Debug, Clone, Model)]
#[model(table = "account_user")]
#[post_save(create_profile, batch)]
struct User {
    id: Option<i64>,
    username: String,
    email: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "account_profile")]
struct Profile {
    id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    user_id: i64,
    photo: String,
}

async fn create_profile(users: &[User], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    let mut profiles: Vec<Profile> = users
        .iter()
        .zip(signal.created())
        .filter(|(_, created)| **created)
        .map(|(u, _)| Profile {
            id: None,
            user_id: u.id.unwrap(),
            photo: String::new(),
        })
        .collect();
    Profile::bulk_save(signal.tx(), &mut profiles).await?;
    Ok(())
}

fn users(n: usize, round: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            id: None,
            username: format!("r{round}-u{i}"),
            email: format!("u{i}@example.com"),
        })
        .collect()
}

/// Multi-row INSERTs of 1,000 users and then their profiles, by hand, in `tx`.
async fn by_hand_insert(tx: &mut Tx, users: &[User]) -> Vec<i64> {
    let backend = tx.backend();
    let mut ids = Vec::with_capacity(users.len());
    for chunk in users.chunks(1000) {
        let ph = |n: usize, per: usize| -> String {
            let mut s = String::new();
            for r in 0..n {
                if r > 0 {
                    s.push_str(", ");
                }
                s.push('(');
                for c in 0..per {
                    if c > 0 {
                        s.push_str(", ");
                    }
                    if backend == Backend::Postgres {
                        s.push_str(&format!("${}", r * per + c + 1));
                    } else {
                        s.push('?');
                    }
                }
                s.push(')');
            }
            s
        };
        let users_sql = format!(
            "INSERT INTO account_user (username, email) VALUES {}",
            ph(chunk.len(), 2)
        );
        let returning = format!("{users_sql} RETURNING id");
        macro_rules! returning {
            ($c:expr) => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(returning));
                for u in chunk {
                    q = q.bind(&u.username).bind(&u.email);
                }
                let rows = q.fetch_all(&mut *$c).await.unwrap();
                rows.iter().map(|r| r.get::<i64, _>(0)).collect()
            }};
        }
        let mut chunk_ids: Vec<i64> = match tx.conn().await.unwrap() {
            ConnRef::Postgres(c) => returning!(c),
            ConnRef::Sqlite(c) => returning!(c),
            ConnRef::MySql(c) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(users_sql));
                for u in chunk {
                    q = q.bind(&u.username).bind(&u.email);
                }
                let first = q.execute(&mut *c).await.unwrap().last_insert_id() as i64;
                (0..chunk.len() as i64).map(|i| first + i).collect()
            }
            _ => unreachable!("a backend of this crate"),
        };
        chunk_ids.sort_unstable();
        let profiles_sql = format!(
            "INSERT INTO account_profile (user_id, photo) VALUES {}",
            ph(chunk.len(), 2)
        );
        macro_rules! profiles {
            ($c:expr) => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(profiles_sql));
                for id in &chunk_ids {
                    q = q.bind(*id).bind("");
                }
                q.execute(&mut *$c).await.unwrap();
            }};
        }
        match tx.conn().await.unwrap() {
            ConnRef::Postgres(c) => profiles!(c),
            ConnRef::Sqlite(c) => profiles!(c),
            ConnRef::MySql(c) => profiles!(c),
            _ => unreachable!("a backend of this crate"),
        }
        ids.extend(chunk_ids);
    }
    ids
}

/// `DELETE .. IN` of the profiles and then the users, 1,000 keys a statement, by hand.
async fn by_hand_delete(tx: &mut Tx, ids: &[i64]) {
    let backend = tx.backend();
    for chunk in ids.chunks(1000) {
        let list: Vec<String> = (1..=chunk.len())
            .map(|i| {
                if backend == Backend::Postgres {
                    format!("${i}")
                } else {
                    "?".into()
                }
            })
            .collect();
        let list = list.join(", ");
        for sql in [
            format!("DELETE FROM account_profile WHERE user_id IN ({list})"),
            format!("DELETE FROM account_user WHERE id IN ({list})"),
        ] {
            macro_rules! run {
                ($c:expr) => {{
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *$c).await.unwrap();
                }};
            }
            match tx.conn().await.unwrap() {
                ConnRef::Postgres(c) => run!(c),
                ConnRef::Sqlite(c) => run!(c),
                ConnRef::MySql(c) => run!(c),
                _ => unreachable!("a backend of this crate"),
            }
        }
    }
}

async fn bench(label: &str, db: &Db, n: usize, rounds: usize) {
    let ddl = signals_core::schema::Schema::of::<(User, Profile)>().create_sql(db.backend());
    db.execute_unprepared(&ddl).await.unwrap();
    let (mut ours, mut hand, mut del_ours, mut del_hand) = (vec![], vec![], vec![], vec![]);
    let (mut ratio, mut del_ratio) = (vec![], vec![]);
    for round in 0..rounds {
        let mut rows = users(n, round * 2);
        let t = Instant::now();
        let mut tx = db.begin().await.unwrap();
        User::bulk_save(&mut tx, &mut rows).await.unwrap();
        tx.commit().await.unwrap();
        let a = t.elapsed().as_secs_f64();

        let by_hand = users(n, round * 2 + 1);
        let t = Instant::now();
        let mut tx = db.begin().await.unwrap();
        let ids = by_hand_insert(&mut tx, &by_hand).await;
        tx.commit().await.unwrap();
        let b = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut tx = db.begin().await.unwrap();
        User::bulk_delete(&mut tx, &mut rows).await.unwrap();
        tx.commit().await.unwrap();
        let c = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut tx = db.begin().await.unwrap();
        by_hand_delete(&mut tx, &ids).await;
        tx.commit().await.unwrap();
        let d = t.elapsed().as_secs_f64();

        ours.push(n as f64 / a);
        hand.push(n as f64 / b);
        ratio.push(a / b);
        del_ours.push(n as f64 / c);
        del_hand.push(n as f64 / d);
        del_ratio.push(c / d);
    }
    println!(
        "| {label:<13} | {:>9.0} | {:>9.0} | {:>5.2}× | {:>9.0} | {:>9.0} | {:>5.2}× |",
        median(&ours),
        median(&hand),
        median(&ratio),
        median(&del_ours),
        median(&del_hand),
        median(&del_ratio),
    );
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--users").map_or(10_000, |v| v.parse().unwrap());
    let rounds: usize = arg("--rounds").map_or(5, |v| v.parse().unwrap());
    println!("{n} users with profiles per round, one transaction each, {rounds} rounds (users/s)");
    println!("| backend       | bulk_save | by hand   | ratio  | bulk_delete | by hand | ratio  |");
    println!("|---------------|-----------|-----------|--------|-----------|-----------|--------|");
    each_backend("bulk", async |label, db| bench(label, db, n, rounds).await).await;
}
