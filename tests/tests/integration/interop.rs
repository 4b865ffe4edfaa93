//! sqlx interop: a model read by `sqlx::query_as` from a query of the user's own, on every
//! backend, exactly as the crate's own loads read it.

use signals_core::sqlx;
use signals_core::{ConnRef, Db, Model, PoolRef};
use signals_tests::{create_tables, db_test, exec};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "interop_post")]
struct Post {
    id: Option<i64>,
    #[model(column = "headline")]
    title: String,
    views: i64,
    published: Option<chrono::NaiveDate>,
}

const SCHEMA: &str = "CREATE TABLE interop_post (id {pk}, headline {text} NOT NULL,
    views {bigint} NOT NULL, published {date})";

/// `sqlx::query_as::<_, M>(sql)` on whichever backend `db` is, placeholders as the backend
/// writes them.
async fn query_as<M>(db: &Db, sql: &str) -> Result<Vec<M>, sqlx::Error>
where
    M: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>
        + Send
        + Unpin,
{
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        PoolRef::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
        PoolRef::MySql(p) => sqlx::query_as(sql).fetch_all(p).await,
        _ => unreachable!(),
    }
}

db_test!(async fn models_read_from_queries_of_ones_own(db) {
    create_tables(&db, SCHEMA).await;
    let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let mut a = Post { id: None, title: "a".into(), views: 3, published: Some(date) };
    a.save(&db).await.unwrap();
    let mut b = Post { id: None, title: "b".into(), views: 10, published: None };
    b.save(&db).await.unwrap();

    // Columns in another order, a computed filter: read by name, as `get` reads.
    let rows: Vec<Post> = query_as(
        &db,
        "SELECT views, published, headline, id FROM interop_post WHERE views > 1 ORDER BY views DESC",
    )
    .await
    .unwrap();
    assert_eq!(rows, [b.clone(), a.clone()]);
    assert_eq!(rows[1], Post::get(&db, a.id.unwrap()).await.unwrap().unwrap());

    // A missing column is named.
    let err = query_as::<Post>(&db, "SELECT id, headline FROM interop_post").await.unwrap_err();
    assert!(err.to_string().contains("views"), "{err}");
    // A NULL where the field cannot hold one is refused, naming the column.
    exec(&db, "INSERT INTO interop_post (headline, views) VALUES ('c', 1)").await;
    let err = query_as::<Post>(&db, "SELECT id, NULL AS headline, views, published FROM interop_post")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("headline"), "{err}");
});

// Your own SQL inside the crate's transaction: `tx.conn()` is the transaction's connection.
db_test!(async fn sql_of_ones_own_reads_models_inside_the_transaction(db) {
    create_tables(&db, SCHEMA).await;
    let mut tx = db.begin().await.unwrap();
    Post { id: None, title: "draft".into(), views: 0, published: None }.save(&mut tx).await.unwrap();
    let sql = "SELECT id, headline, views, published FROM interop_post";
    let seen: Vec<Post> = match tx.conn().await.unwrap() {
        ConnRef::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await.unwrap(),
        ConnRef::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await.unwrap(),
        ConnRef::MySql(c) => sqlx::query_as(sql).fetch_all(c).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(seen.len(), 1, "the uncommitted row is seen from inside");
    tx.rollback().await.unwrap();
    assert!(query_as::<Post>(&db, sql).await.unwrap().is_empty());
});
