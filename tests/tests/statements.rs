//! How many statements a save sends, counted from the per-statement log events (target
//! `sqlx::query`) that sqlx logs, and that this crate logs alike for the statements of SQLite
//! transactions, which run on the connection's handle. COMMIT is logged everywhere (so its
//! absence proves a save ran without a transaction), BEGIN on MySQL and SQLite (PostgreSQL
//! queues it with the first statement).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use signals_core::{Backend, Db, Model, PostSave, Result};
use signals_tests::create_tables;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

/// Collects the SQL of every statement sqlx logs.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        struct Sql(String);
        impl tracing::field::Visit for Sql {
            // `summary` holds a short statement whole; a long one is abbreviated there and
            // given in full in `db.statement`.
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                let name = field.name();
                if (name == "db.statement" && !value.trim().is_empty())
                    || (name == "summary" && self.0.is_empty())
                {
                    self.0 = value.to_owned();
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut sql = Sql(String::new());
        event.record(&mut sql);
        let sql = sql.0.trim().to_uppercase();
        // A connection the pool opens on the way runs its set-up first: not the save's work.
        if !sql.starts_with("PRAGMA") && !sql.starts_with("SET ") {
            self.0.lock().unwrap().push(sql);
        }
    }
}

impl Statements {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug, Model)]
#[model(table = "note")]
struct Note {
    id: Option<i64>,
    body: String,
}

#[derive(Debug, Model)]
#[model(table = "account_user")]
#[post_save(create_profile, save_profile)]
struct User {
    id: Option<i64>,
    username: String,
}

#[derive(Debug, Model)]
#[model(table = "account_profile")]
struct Profile {
    id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    user_id: i64,
}

async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() {
        Profile {
            id: None,
            user_id: user.id.unwrap(),
        }
        .save(signal.tx())
        .await?;
    }
    Ok(())
}

async fn save_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if let Some(mut profile) = Profile::for_user(signal.tx(), user).await? {
        profile.save(signal.tx()).await?;
    }
    Ok(())
}

/// Two models alike but for `changed(..)`: only the one that asks reads the row it replaces.
#[derive(Debug, Model)]
#[model(table = "plain")]
#[post_save(noop)]
struct Plain {
    id: Option<i64>,
    body: String,
}

#[derive(Debug, Model)]
#[model(table = "tracked")]
#[post_save(noop, changed(body))]
struct Tracked {
    id: Option<i64>,
    body: String,
}

async fn noop<M>(_: &M, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

/// A many-to-many relation, for the statements of its actions.
#[derive(Debug, Model)]
#[model(table = "article", many_to_many(labels: Label, through = ArticleLabel))]
struct Article {
    id: Option<i64>,
}

#[derive(Debug, Model)]
#[model(table = "label")]
struct Label {
    id: Option<i64>,
}

#[derive(Debug, Model)]
#[model(table = "article_label")]
struct ArticleLabel {
    id: Option<i64>,
    #[model(foreign_key = Article, on_delete = cascade)]
    article_id: i64,
    #[model(foreign_key = Label, on_delete = cascade)]
    label_id: i64,
}

/// The seed's pair with `create_profile` batched, for the statements of bulk writes.
#[derive(Debug, Model)]
#[model(table = "bulk_user")]
#[post_save(create_profiles, batch)]
struct BulkUser {
    id: Option<i64>,
    username: String,
}

#[derive(Debug, Model)]
#[model(table = "bulk_profile")]
struct BulkProfile {
    id: Option<i64>,
    #[model(one_to_one = BulkUser, on_delete = cascade)]
    user_id: i64,
}

async fn create_profiles(
    users: &[BulkUser],
    signal: &mut signals_core::PostSaveBatch<'_>,
) -> Result<()> {
    let mut profiles: Vec<BulkProfile> = users
        .iter()
        .map(|u| BulkProfile {
            id: None,
            user_id: u.id.unwrap(),
        })
        .collect();
    BulkProfile::bulk_save(signal.tx(), &mut profiles).await?;
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE bulk_user (id {pk}, username {varchar} NOT NULL);
CREATE TABLE bulk_profile (id {pk}, user_id {bigint} NOT NULL UNIQUE);
CREATE TABLE article (id {pk});
CREATE TABLE label (id {pk});
CREATE TABLE article_label (id {pk}, article_id {bigint} NOT NULL, label_id {bigint} NOT NULL);
CREATE TABLE plain (id {pk}, body {text} NOT NULL);
CREATE TABLE tracked (id {pk}, body {text} NOT NULL);
CREATE TABLE note (id {pk}, body {text} NOT NULL);
CREATE TABLE account_user (id {pk}, username {varchar} NOT NULL);
CREATE TABLE account_profile (id {pk}, user_id {bigint} NOT NULL UNIQUE)";

fn is_transaction_control(sql: &str) -> bool {
    [
        "BEGIN",
        "COMMIT",
        "START",
        "SAVEPOINT",
        "RELEASE",
        "ROLLBACK",
    ]
    .iter()
    .any(|k| sql.starts_with(k))
}

async fn a_model_without_receivers_saves_with_one_statement(db: Db, log: &Statements) {
    create_tables(&db, SCHEMA).await;
    // Warm the pool first, so connection set-up statements are not counted.
    Note::all(&db).await.unwrap();
    log.take();

    let mut note = Note {
        id: None,
        body: "a".into(),
    };
    note.save(&db).await.unwrap();
    let insert = log.take();
    assert_eq!(insert.len(), 1, "{insert:?}");
    assert!(insert[0].starts_with("INSERT"), "{insert:?}");

    note.body = "b".into();
    note.save(&db).await.unwrap();
    let update = log.take();
    assert_eq!(update.len(), 1, "{update:?}");
    assert!(update[0].starts_with("UPDATE"), "{update:?}");

    note.delete(&db).await.unwrap();
    let delete = log.take();
    assert_eq!(delete.len(), 1, "{delete:?}");
    assert!(delete[0].starts_with("DELETE"), "{delete:?}");
}

async fn the_seed_signup_sends_the_statements_written_by_hand(db: Db, log: &Statements) {
    User::all(&db).await.unwrap();
    log.take();

    let mut user = User {
        id: None,
        username: "johndoe".into(),
    };
    user.save(&db).await.unwrap();
    let sent = log.take();
    let data: Vec<&String> = sent.iter().filter(|s| !is_transaction_control(s)).collect();
    // INSERT user (its key read back with it), INSERT profile, SELECT profile, UPDATE profile:
    // no extra reads, no savepoints for the receiver-less profile.
    let verbs: Vec<&str> = data
        .iter()
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(verbs, ["INSERT", "INSERT", "SELECT", "UPDATE"], "{sent:?}");
    let control: Vec<&String> = sent.iter().filter(|s| is_transaction_control(s)).collect();
    // One transaction: its COMMIT is logged (PostgreSQL sends BEGIN queued with the first
    // statement, unlogged; MySQL logs it; SQLite runs the transaction on its handle and logs
    // every statement of it).
    let commits = control.iter().filter(|s| s.starts_with("COMMIT")).count();
    let begins = control
        .iter()
        .filter(|s| s.starts_with("BEGIN") || s.starts_with("START"))
        .count();
    match db.backend() {
        Backend::Postgres => assert_eq!((begins, commits, control.len()), (0, 1, 1), "{sent:?}"),
        _ => assert_eq!((begins, commits, control.len()), (1, 1, 2), "{sent:?}"),
    }
    assert!(sent.last().is_some_and(|s| s == "COMMIT"), "{sent:?}");
}

fn data(sent: &[String]) -> Vec<String> {
    sent.iter()
        .filter(|s| !is_transaction_control(s))
        .map(|s| s.split_whitespace().take(1).collect())
        .collect()
}

async fn a_changed_receiver_costs_one_read_and_others_nothing(db: Db, log: &Statements) {
    Plain::all(&db).await.unwrap();
    Tracked::all(&db).await.unwrap();
    log.take();
    let mut plain = Plain {
        id: None,
        body: "a".into(),
    };
    plain.save(&db).await.unwrap();
    assert_eq!(data(&log.take()), ["INSERT"]);
    plain.body = "b".into();
    plain.save(&db).await.unwrap();
    assert_eq!(
        data(&log.take()),
        ["UPDATE"],
        "no old values asked, none read"
    );

    let mut tracked = Tracked {
        id: None,
        body: "a".into(),
    };
    tracked.save(&db).await.unwrap();
    assert_eq!(
        data(&log.take()),
        ["INSERT"],
        "a creation has no old row to read"
    );
    tracked.body = "b".into();
    tracked.save(&db).await.unwrap();
    let sent = log.take();
    assert_eq!(data(&sent), ["SELECT", "UPDATE"], "{sent:?}");
    let read = sent.iter().find(|s| s.starts_with("SELECT")).unwrap();
    if db.backend() != Backend::Sqlite {
        assert!(read.ends_with("FOR UPDATE"), "the row is locked: {read}");
    }
}

async fn a_many_to_many_action_is_one_statement_on_the_through_table(db: Db, log: &Statements) {
    let mut article = Article { id: None };
    article.save(&db).await.unwrap();
    for _ in 0..3 {
        Label { id: None }.save(&db).await.unwrap();
    }
    log.take();
    article.labels().add(&db, [1, 2, 3]).await.unwrap();
    let sent = log.take();
    // On the servers the article's row is locked first (SQLite's write transaction is
    // exclusive already); then the read that tells what changes, and one INSERT of every link.
    let expected: &[&str] = match db.backend() {
        Backend::Sqlite => &["SELECT", "INSERT"],
        _ => &["SELECT", "SELECT", "INSERT"],
    };
    assert_eq!(data(&sent), expected, "{sent:?}");
    article.labels().remove(&db, [1, 3]).await.unwrap();
    let sent = log.take();
    let expected: &[&str] = match db.backend() {
        Backend::Sqlite => &["SELECT", "DELETE"],
        _ => &["SELECT", "SELECT", "DELETE"],
    };
    assert_eq!(data(&sent), expected, "{sent:?}");
    // From the other side, the servers hold the label's own row shared first (so that its
    // delete, which holds it for update and then the articles' rows, cannot deadlock with
    // the change), then the articles' rows: one statement more.
    let label = Label { id: Some(3) };
    label.article_set().add(&db, [1]).await.unwrap();
    let sent = log.take();
    let expected: &[&str] = match db.backend() {
        Backend::Sqlite => &["SELECT", "INSERT"],
        _ => &["SELECT", "SELECT", "SELECT", "INSERT"],
    };
    assert_eq!(data(&sent), expected, "{sent:?}");
}

async fn a_bulk_sends_one_statement_per_chunk_and_model(db: Db, log: &Statements) {
    BulkUser::all(&db).await.unwrap();
    log.take();
    let n = 2 * signals_core::MAX_CHUNK_ROWS + 1;
    let mut users: Vec<BulkUser> = (0..n)
        .map(|i| BulkUser {
            id: None,
            username: format!("u{i}"),
        })
        .collect();
    BulkUser::bulk_save(&db, &mut users).await.unwrap();
    let sent = log.take();
    let mut written = data(&sent);
    if db.backend() == Backend::MySql {
        // Once per transaction, after its first INSERT: the key step, with which the keys
        // follow `LAST_INSERT_ID()` (`@@auto_increment_increment`).
        assert_eq!(written.remove(1), "SELECT", "{sent:?}");
    }
    assert_eq!(
        written, ["INSERT"; 6],
        "users then profiles, three chunks: {sent:?}"
    );

    // The profiles have no receivers and nothing below them: deleted without being read.
    BulkUser::bulk_delete(&db, &mut users).await.unwrap();
    let sent = log.take();
    assert_eq!(
        data(&sent),
        ["DELETE"; 6],
        "profiles, then users, 1,000 keys a statement: {sent:?}"
    );
}

/// `select_related` reads the rows and their parents in one statement; `prefetch` and
/// `prefetch_linked` read a list and then its related rows in one more statement per
/// relation (per 1,000 rows), however many rows there are: no statement per row.
async fn related_rows_take_one_statement_per_relation(db: Db, log: &Statements) {
    for name in ["rel_ann", "rel_ben", "rel_cat"] {
        // Each with a profile, which its receiver makes.
        User {
            id: None,
            username: name.into(),
        }
        .save(&db)
        .await
        .unwrap();
    }
    let mut labels: Vec<Label> = (0..3).map(|_| Label { id: None }).collect();
    Label::bulk_save(&db, &mut labels).await.unwrap();
    let keys: Vec<i64> = labels.iter().map(|l| l.id.unwrap()).collect();
    for _ in 0..3 {
        let mut article = Article { id: None };
        article.save(&db).await.unwrap();
        article.labels().add(&db, keys.clone()).await.unwrap();
    }
    log.take();

    let rows = Profile::query()
        .order_by(Profile::USER_ID.by(User::USERNAME.asc()))
        .select_related(Profile::USER_ID)
        .all(&db)
        .await
        .unwrap();
    assert!(rows.len() >= 3);
    assert!(rows.iter().all(|(p, u)| Some(p.user_id) == u.id));
    let sent = log.take();
    assert_eq!(data(&sent), ["SELECT"], "{sent:?}");
    assert!(sent[0].contains("JOIN"), "{sent:?}");

    let users = User::query()
        .prefetch(Profile::USER_ID)
        .all(&db)
        .await
        .unwrap();
    assert!(users.iter().all(|(_, profiles)| profiles.len() == 1));
    let sent = log.take();
    assert_eq!(data(&sent), ["SELECT", "SELECT"], "{sent:?}");

    let articles = Article::query()
        .prefetch_linked::<ArticleLabel, Label>()
        .all(&db)
        .await
        .unwrap();
    assert!(articles.iter().filter(|(_, l)| l.len() == 3).count() >= 3);
    let sent = log.take();
    assert_eq!(data(&sent), ["SELECT", "SELECT"], "{sent:?}");
}

/// One test for the whole file: the SQLite driver logs from its worker thread, so the
/// subscriber is global, and nothing else may run in this process while it counts.
#[test]
fn statement_counts() {
    let log = Statements::default();
    tracing::subscriber::set_global_default(Registry::default().with(log.clone())).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        runtime.block_on(signals_tests::run(backend, "statement_counts", |db| {
            let log = log.clone();
            async move {
                a_model_without_receivers_saves_with_one_statement(db.clone(), &log).await;
                a_changed_receiver_costs_one_read_and_others_nothing(db.clone(), &log).await;
                a_many_to_many_action_is_one_statement_on_the_through_table(db.clone(), &log).await;
                a_bulk_sends_one_statement_per_chunk_and_model(db.clone(), &log).await;
                the_seed_signup_sends_the_statements_written_by_hand(db.clone(), &log).await;
                related_rows_take_one_statement_per_relation(db, &log).await;
            }
        }));
    }
}
