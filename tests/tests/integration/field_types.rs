//! Open field types on every backend: enums (text and integer), newtypes, a hand-written
//! `FieldType`, `Json<T>`, `serde_json::Value`, `Decimal`, the widened integers, `i32` keys;
//! round trips at their limits, filters on them, and clear decode errors for values that do
//! not fit.

use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use signals_core::sqlx::error::BoxDynError;
use signals_core::{Backend, ErrorKind, FieldType, Json, Model, PoolRef, sqlx};
use signals_tests::db_test;

#[derive(Debug, Clone, Copy, PartialEq, FieldType)]
#[field(rename_all = "snake_case")]
enum Status {
    Draft,
    InReview,
    #[field(rename = "live")]
    Published,
}

#[derive(Debug, Clone, Copy, PartialEq, FieldType)]
#[field(integer)]
enum Priority {
    Low = 1,
    Normal = 5,
    Urgent = -3,
}

#[derive(Debug, Clone, PartialEq, FieldType)]
struct Email(String);

#[derive(Debug, Clone, PartialEq, FieldType)]
struct Slug {
    text: String,
}

/// Degrees Celsius kept as tenths, by hand.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tenths(f64);

impl FieldType for Tenths {
    type Stored = i32;
    fn to_stored(&self) -> i32 {
        (self.0 * 10.0).round() as i32
    }
    fn from_stored(stored: i32) -> Result<Self, BoxDynError> {
        Ok(Tenths(f64::from(stored) / 10.0))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    tags: Vec<String>,
    nested: Option<Box<Meta>>,
    note: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "article")]
struct Article {
    id: Option<i32>,
    status: Status,
    priority: Priority,
    o_status: Option<Status>,
    o_priority: Option<Priority>,
    #[model(unique, max_length = 120)]
    author: Email,
    slug: Option<Slug>,
    temperature: Tenths,
    meta: Json<Meta>,
    extra: Option<serde_json::Value>,
    #[model(max_digits = 20, decimal_places = 6)]
    price: Decimal,
    o_price: Option<Decimal>,
    tiny: i8,
    byte: u8,
    word: u16,
    dword: u32,
    o_byte: Option<u8>,
}

fn meta() -> Meta {
    Meta {
        tags: vec!["rust".into(), "ünïcödé 🦀".into(), "quote \" and \\".into()],
        nested: Some(Box::new(Meta {
            tags: vec![],
            nested: None,
            note: "deep\nline".into(),
        })),
        note: String::new(),
    }
}

fn article(n: u32) -> Article {
    Article {
        id: None,
        status: Status::InReview,
        priority: Priority::Urgent,
        o_status: Some(Status::Published),
        o_priority: None,
        author: Email(format!("author{n}@example.com")),
        slug: Some(Slug {
            text: format!("post-{n}"),
        }),
        temperature: Tenths(-12.5),
        meta: Json(meta()),
        extra: Some(serde_json::json!({"a": [1, 2.5, null, true], "ü": {"k": "v"}})),
        price: Decimal::from_str("12345678901234.123456").unwrap(),
        o_price: Some(Decimal::from_str("1.50").unwrap()),
        tiny: i8::MIN,
        byte: u8::MAX,
        word: u16::MAX,
        dword: u32::MAX,
        o_byte: Some(0),
    }
}

db_test!(async fn open_types_round_trip_and_filter(db) {
    db.create_tables::<Article>().await.unwrap();
    db.check_schema::<Article>().await.unwrap();

    let mut first = article(1);
    first.save(&db).await.unwrap();
    assert_eq!(first.id, Some(1), "an `i32` key the database assigns");
    let mut second = Article {
        status: Status::Draft,
        priority: Priority::Low,
        o_status: None,
        o_priority: Some(Priority::Normal),
        slug: None,
        extra: None,
        o_price: None,
        o_byte: None,
        price: Decimal::from_str("-0.000001").unwrap(),
        ..article(2)
    };
    second.save(&db).await.unwrap();

    assert_eq!(Article::get(&db, 1).await.unwrap().unwrap(), first);
    assert_eq!(Article::get(&db, 2).await.unwrap().unwrap(), second);
    // The scale is kept, not only the value, except where the column fixes it: MySQL's
    // DECIMAL(38, 10) when the field does not say (PostgreSQL's NUMERIC and SQLite's TEXT keep
    // any scale).
    let loaded = Article::get(&db, 1).await.unwrap().unwrap();
    let unconstrained = if db.backend() == Backend::MySql { "1.5000000000" } else { "1.50" };
    assert_eq!(loaded.o_price.unwrap().to_string(), unconstrained);
    assert_eq!(loaded.price.to_string(), "12345678901234.123456");

    // Filters take the types themselves.
    let q = |f| Article::query().filter(f);
    assert_eq!(q(Article::STATUS.eq(Status::Draft)).all(&db).await.unwrap(), [second.clone()]);
    assert_eq!(q(Article::PRIORITY.lt(Priority::Low)).all(&db).await.unwrap(), [first.clone()]);
    assert_eq!(q(Article::O_STATUS.eq(None)).count(&db).await.unwrap(), 1);
    assert_eq!(
        q(Article::AUTHOR.eq(Email("author2@example.com".into()))).first(&db).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(q(Article::AUTHOR.contains("author1")).count(&db).await.unwrap(), 1);
    assert_eq!(q(Article::PRICE.gt(Decimal::ZERO)).all(&db).await.unwrap(), [first.clone()]);
    assert_eq!(q(Article::TEMPERATURE.eq(Tenths(-12.5))).count(&db).await.unwrap(), 2);
    assert_eq!(q(Article::DWORD.eq(u32::MAX)).count(&db).await.unwrap(), 2);
    assert_eq!(
        q(Article::STATUS.in_([Status::Draft, Status::Published])).count(&db).await.unwrap(),
        1
    );
    // Atomic updates on the new numeric types.
    Article::query()
        .filter(Article::ID.eq(2))
        .update(&db, Article::O_PRICE.set(Decimal::from_str("0.25").unwrap()) & Article::TINY.add(1i8) & Article::PRICE.add(Decimal::ONE))
        .await
        .unwrap();
    second.refresh(&db).await.unwrap();
    assert_eq!(second.o_price, Some(Decimal::from_str("0.25").unwrap()));
    assert_eq!(second.tiny, i8::MIN + 1);
    assert_eq!(second.price, Decimal::from_str("0.999999").unwrap());

    // Inside a transaction (SQLite reads on its handle there) alike.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(Article::all(&mut tx).await.unwrap(), [first.clone(), second.clone()]);
    tx.commit().await.unwrap();
});

db_test!(async fn stored_values_are_what_other_tools_expect(db) {
    db.create_tables::<Article>().await.unwrap();
    article(1).save(&db).await.unwrap();
    let sql = "SELECT status, priority, o_status FROM article";
    let (status, priority, o_status): (String, i32, Option<String>) = match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        PoolRef::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        PoolRef::MySql(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!((status.as_str(), priority, o_status.as_deref()), ("in_review", -3, Some("live")));
    // The JSON is real JSON on the servers: the database reads into it.
    let sql = match db.backend() {
        Backend::Postgres => "SELECT meta->'nested'->>'note' FROM article",
        Backend::MySql => "SELECT JSON_UNQUOTE(JSON_EXTRACT(meta, '$.nested.note')) FROM article",
        _ => "SELECT json_extract(meta, '$.nested.note') FROM article",
    };
    let note: String = match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        PoolRef::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        PoolRef::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(note, "deep\nline");
    // sqlx reads the models' rows itself.
    let sql = "SELECT * FROM article";
    let read: Article = match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        PoolRef::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        PoolRef::MySql(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(read, Article { id: Some(1), ..article(1) });
});

db_test!(async fn values_that_do_not_fit_are_clear_decode_errors(db) {
    db.create_tables::<Article>().await.unwrap();
    let mut row = article(1);
    row.save(&db).await.unwrap();
    let id = row.id.unwrap();
    let set = |column: &str, value: &str| {
        let quoted = if db.backend() == Backend::MySql { format!("`{column}`") } else { format!("\"{column}\"") };
        format!("UPDATE article SET {quoted} = {value} WHERE id = {id}")
    };
    let cases = [
        ("status", "'archived'", "`Status` has no variant stored as \"archived\" (known: \"draft\", \"in_review\", \"live\")"),
        ("priority", "7", "`Priority` has no variant stored as 7 (known: 1, 5, -3)"),
        ("byte", "256", "256 is out of range for `u8`"),
        ("tiny", "-129", "-129 is out of range for `i8`"),
        ("temperature", "1", ""),
    ];
    for (column, value, message) in cases {
        db.execute_unprepared(&set(column, value)).await.unwrap();
        let res = Article::get(&db, id).await;
        if message.is_empty() {
            assert_eq!(res.unwrap().unwrap().temperature, Tenths(0.1));
            continue;
        }
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("`{column}`")) && text.contains(message), "{text}");
        // Put it back for the next case; the connection is fine.
        row.save(&db).await.unwrap();
    }
    // JSON that does not match the type.
    let bad = if db.backend() == Backend::Postgres { "'{\"tags\": 3}'::jsonb" } else { "'{\"tags\": 3}'" };
    db.execute_unprepared(&set("meta", bad)).await.unwrap();
    let err = Article::get(&db, id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("`meta`"), "{err}");
});

db_test!(async fn values_the_backend_cannot_store_are_refused_whole(db) {
    db.create_tables::<Article>().await.unwrap();
    // A map with non-string keys has no JSON form: refused before anything is written.
    let mut row = article(1);
    let mut map = std::collections::BTreeMap::new();
    map.insert(vec![1u8], 2);
    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "odd")]
    struct Odd {
        id: Option<i64>,
        data: Json<std::collections::BTreeMap<Vec<u8>, i32>>,
    }
    db.create_tables::<Odd>().await.unwrap();
    let mut odd = Odd { id: None, data: Json(map) };
    let err = odd.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    assert!(err.to_string().contains("`data`"), "{err}");
    assert_eq!(Odd::query().count(&db).await.unwrap(), 0);
    // A decimal wider than the column: the database refuses it, nothing is written.
    let mut wide = article(2);
    wide.price = Decimal::from_str("123456789012345678.5").unwrap();
    // Checked against the declared DECIMAL(20, 6) before binding, on every backend
    // (SQLite would otherwise keep the text as it is).
    let err = wide.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    assert!(err.to_string().contains("more than the 14"), "{err}");
    assert_eq!(Article::query().count(&db).await.unwrap(), 0);
    assert_eq!(wide.id, None, "a refused save leaves the key unset");
    // The connection is still fine.
    row.extra = None;
    row.save(&db).await.unwrap();
});

// Multi-row statements bind every type as single saves do: INSERT .. VALUES (..), (..) and
// UPDATE .. SET col = CASE key WHEN .. THEN .. END (typed parameters on PostgreSQL).
db_test!(async fn open_types_round_trip_through_bulk_saves_and_updates(db) {
    db.create_tables::<Article>().await.unwrap();
    let mut rows: Vec<Article> = (0..5).map(article).collect();
    rows[1].o_status = None;
    rows[2].extra = None;
    Article::bulk_save(&db, &mut rows).await.unwrap();
    for row in &rows {
        assert_eq!(&Article::get(&db, row.id.unwrap()).await.unwrap().unwrap(), row);
    }
    for (n, row) in rows.iter_mut().enumerate() {
        row.status = Status::Published;
        row.priority = Priority::Low;
        row.o_status = if n % 2 == 0 { None } else { Some(Status::Draft) };
        row.o_priority = Some(Priority::Normal);
        row.slug = None;
        row.temperature = Tenths(n as f64 + 0.5);
        row.meta.0.note = format!("edited {n}");
        row.extra = Some(serde_json::json!([n]));
        row.price = Decimal::from_str("-0.000001").unwrap();
        row.o_price = None;
        row.tiny = i8::MAX;
        row.byte = 0;
        row.word = 7;
        row.dword = 0;
        row.o_byte = None;
    }
    let saved = Article::bulk_save(&db, &mut rows).await.unwrap();
    assert_eq!(saved.updated(), 5);
    for row in &rows {
        assert_eq!(&Article::get(&db, row.id.unwrap()).await.unwrap().unwrap(), row);
    }
    let before = rows.clone();
    for row in &mut rows {
        row.dword = u32::MAX;
        row.status = Status::Draft;
    }
    Article::bulk_update(&db, &mut rows, Article::DWORD).await.unwrap();
    for (row, old) in rows.iter().zip(&before) {
        let stored = Article::get(&db, row.id.unwrap()).await.unwrap().unwrap();
        assert_eq!((stored.dword, stored.status), (u32::MAX, old.status));
    }
});
