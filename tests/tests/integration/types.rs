//! Every supported field type round-trips on every backend, NULLs included.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use signals_core::{Backend, ErrorKind, Model};
use signals_tests::{create_tables, db_test};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "all_types")]
struct AllTypes {
    id: Option<i64>,
    flag: bool,
    small: i16,
    medium: i32,
    big: i64,
    single: f32,
    double: f64,
    text: String,
    bytes: Vec<u8>,
    day: NaiveDate,
    moment: NaiveDateTime,
    instant: DateTime<Utc>,
    uid: uuid::Uuid,
    o_flag: Option<bool>,
    o_small: Option<i16>,
    o_medium: Option<i32>,
    o_big: Option<i64>,
    o_single: Option<f32>,
    o_double: Option<f64>,
    o_text: Option<String>,
    o_bytes: Option<Vec<u8>>,
    o_day: Option<NaiveDate>,
    o_moment: Option<NaiveDateTime>,
    o_instant: Option<DateTime<Utc>>,
    o_uid: Option<uuid::Uuid>,
}

const SCHEMA: &str = r#"CREATE TABLE all_types (
    id {pk},
    flag {bool} NOT NULL, small {smallint} NOT NULL, medium {int} NOT NULL, big {bigint} NOT NULL,
    single {float} NOT NULL, "double" {double} NOT NULL, text {text} NOT NULL, bytes {blob} NOT NULL,
    day {date} NOT NULL, moment {datetime} NOT NULL, instant {timestamptz} NOT NULL,
    uid {uuid} NOT NULL,
    o_flag {bool}, o_small {smallint}, o_medium {int}, o_big {bigint}, o_single {float},
    o_double {double}, o_text {text}, o_bytes {blob}, o_day {date}, o_moment {datetime},
    o_instant {timestamptz}, o_uid {uuid}
)"#;

fn sample() -> AllTypes {
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    // Microsecond precision: what PostgreSQL and MySQL DATETIME(6) keep.
    let moment = day.and_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let instant = DateTime::<Utc>::from_naive_utc_and_offset(moment, Utc);
    AllTypes {
        id: None,
        flag: true,
        small: i16::MIN,
        medium: i32::MAX,
        big: i64::MIN + 1,
        single: 1.5,
        double: -2.25e100,
        text: "it's \"quoted\" \\ and ünïcödé 🦀".into(),
        bytes: vec![0, 1, 2, 255, 0],
        day,
        moment,
        instant,
        uid: uuid::Uuid::new_v4(),
        o_flag: Some(false),
        o_small: Some(-7),
        o_medium: Some(-70_000),
        o_big: Some(i64::MAX),
        o_single: Some(-0.5),
        o_double: Some(0.1),
        o_text: Some(String::new()),
        o_bytes: Some(Vec::new()),
        o_day: Some(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
        o_moment: Some(moment),
        o_instant: Some(instant),
        o_uid: Some(uuid::Uuid::nil()),
    }
}

db_test!(async fn every_type_round_trips(db) {
    create_tables(&db, SCHEMA).await;
    let mut row = sample();
    row.save(&db).await.unwrap();
    let loaded = AllTypes::get(&db, row.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded, row);

    // The same through an UPDATE.
    row.text = "changed".into();
    row.o_text = Some("now set".into());
    assert!(!row.save(&db).await.unwrap().created());
    assert_eq!(AllTypes::get(&db, row.id.unwrap()).await.unwrap().unwrap(), row);
});

db_test!(async fn nulls_round_trip_and_empty_is_not_null(db) {
    create_tables(&db, SCHEMA).await;
    let mut row = AllTypes {
        o_flag: None, o_small: None, o_medium: None, o_big: None, o_single: None,
        o_double: None, o_text: None, o_bytes: None, o_day: None, o_moment: None,
        o_instant: None, o_uid: None,
        ..sample()
    };
    row.save(&db).await.unwrap();
    let mut empty = AllTypes { o_text: Some(String::new()), ..row.clone() };
    empty.id = None;
    empty.uid = uuid::Uuid::new_v4();
    empty.save(&db).await.unwrap();

    assert_eq!(AllTypes::get(&db, row.id.unwrap()).await.unwrap().unwrap(), row);
    assert_eq!(AllTypes::filter(&db, AllTypes::O_TEXT, None).await.unwrap(), [row.clone()]);
    assert_eq!(
        AllTypes::filter(&db, AllTypes::O_TEXT, Some(String::new())).await.unwrap(),
        [empty.clone()],
        "an empty string is not NULL"
    );
    // Filter on other types too.
    assert_eq!(AllTypes::filter(&db, AllTypes::UID, row.uid).await.unwrap(), [row.clone()]);
    assert_eq!(AllTypes::filter(&db, AllTypes::DAY, row.day).await.unwrap().len(), 2);
});

/// Every column of two rows holds the same value, compared by the database itself (on SQLite
/// also the storage class: `typeof`).
async fn stored_alike(db: &signals_core::Db, a: i64, b: i64) -> bool {
    let columns = [
        "flag",
        "small",
        "medium",
        "big",
        "single",
        "\"double\"",
        "text",
        "bytes",
        "day",
        "moment",
        "instant",
        "uid",
        "o_flag",
        "o_small",
        "o_medium",
        "o_big",
        "o_single",
        "o_double",
        "o_text",
        "o_bytes",
        "o_day",
        "o_moment",
        "o_instant",
        "o_uid",
    ];
    let sqlite = db.backend() == signals_core::Backend::Sqlite;
    let same: Vec<String> = columns
        .iter()
        .map(|c| {
            let mut test = format!("(a.{c} = b.{c} OR (a.{c} IS NULL AND b.{c} IS NULL))");
            if sqlite {
                test.push_str(&format!(" AND typeof(a.{c}) = typeof(b.{c})"));
            }
            test
        })
        .collect();
    let mut sql = format!(
        "SELECT COUNT(*) FROM all_types a, all_types b WHERE a.id = {a} AND b.id = {b} AND {}",
        same.join(" AND ")
    );
    if db.backend() == signals_core::Backend::MySql {
        sql = sql.replace('"', "`");
    }
    signals_tests::scalar(db, &sql).await == 1
}

db_test!(async fn rows_are_written_and_read_alike_inside_and_outside_a_transaction(db) {
    // On SQLite a transaction runs on the connection's own handle and other statements go
    // through sqlx: both must store and read every type the same way.
    create_tables(&db, SCHEMA).await;
    for template in [
        sample(),
        AllTypes {
            o_flag: None, o_small: None, o_medium: None, o_big: None, o_single: None,
            o_double: None, o_text: None, o_bytes: None, o_day: None, o_moment: None,
            o_instant: None, o_uid: None,
            ..sample()
        },
    ] {
        let mut outside = template.clone();
        outside.save(&db).await.unwrap();
        let mut inside = template.clone();
        let mut tx = db.begin().await.unwrap();
        inside.save(&mut tx).await.unwrap();
        // Each read both ways.
        let read_inside = AllTypes::get(&mut tx, outside.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(read_inside, outside);
        assert_eq!(AllTypes::get(&mut tx, inside.id.unwrap()).await.unwrap().unwrap(), inside);
        tx.commit().await.unwrap();
        assert_eq!(AllTypes::get(&db, inside.id.unwrap()).await.unwrap().unwrap(), inside);
        assert!(stored_alike(&db, outside.id.unwrap(), inside.id.unwrap()).await);
    }
});

/// On SQLite the crate encodes and decodes values itself (the same code inside and outside
/// transactions); rows written by sqlx code of your own must read back, and the crate's rows
/// must read with sqlx's own decoders. (On PostgreSQL and MySQL the crate uses sqlx's
/// encoders and decoders.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_values_match_sqlx_encoding_both_ways() {
    use signals_core::sqlx::{self, Row as _};
    signals_tests::run(
        signals_core::Backend::Sqlite,
        "sqlite_sqlx_encoding",
        |db| async move {
            create_tables(&db, SCHEMA).await;
            let signals_core::PoolRef::Sqlite(pool) = db.pool() else {
                unreachable!()
            };
            let s = sample();
            let by_sqlx: i64 = sqlx::query_scalar(
                r#"INSERT INTO all_types (flag, small, medium, big, single, "double", text, bytes,
                day, moment, instant, uid, o_flag, o_small, o_medium, o_big, o_single, o_double,
                o_text, o_bytes, o_day, o_moment, o_instant, o_uid)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               RETURNING id"#,
            )
            .bind(s.flag)
            .bind(s.small)
            .bind(s.medium)
            .bind(s.big)
            .bind(s.single)
            .bind(s.double)
            .bind(&s.text)
            .bind(&s.bytes)
            .bind(s.day)
            .bind(s.moment)
            .bind(s.instant)
            .bind(s.uid)
            .bind(s.o_flag)
            .bind(s.o_small)
            .bind(s.o_medium)
            .bind(s.o_big)
            .bind(s.o_single)
            .bind(s.o_double)
            .bind(&s.o_text)
            .bind(&s.o_bytes)
            .bind(s.o_day)
            .bind(s.o_moment)
            .bind(s.o_instant)
            .bind(s.o_uid)
            .fetch_one(pool)
            .await
            .unwrap();
            let want = AllTypes {
                id: Some(by_sqlx),
                ..s.clone()
            };
            assert_eq!(AllTypes::get(&db, by_sqlx).await.unwrap().unwrap(), want);
            let mut tx = db.begin().await.unwrap();
            assert_eq!(
                AllTypes::get(&mut tx, by_sqlx).await.unwrap().unwrap(),
                want
            );
            let mut ours = s.clone();
            ours.save(&mut tx).await.unwrap();
            tx.commit().await.unwrap();
            assert!(stored_alike(&db, by_sqlx, ours.id.unwrap()).await);

            // The crate's row, read with sqlx's own decoders.
            let r = sqlx::query(r#"SELECT * FROM all_types WHERE id = ?"#)
                .bind(ours.id)
                .fetch_one(pool)
                .await
                .unwrap();
            let read = AllTypes {
                id: r.get("id"),
                flag: r.get("flag"),
                small: r.get("small"),
                medium: r.get("medium"),
                big: r.get("big"),
                single: r.get("single"),
                double: r.get("double"),
                text: r.get("text"),
                bytes: r.get("bytes"),
                day: r.get("day"),
                moment: r.get("moment"),
                instant: r.get("instant"),
                uid: r.get("uid"),
                o_flag: r.get("o_flag"),
                o_small: r.get("o_small"),
                o_medium: r.get("o_medium"),
                o_big: r.get("o_big"),
                o_single: r.get("o_single"),
                o_double: r.get("o_double"),
                o_text: r.get("o_text"),
                o_bytes: r.get("o_bytes"),
                o_day: r.get("o_day"),
                o_moment: r.get("o_moment"),
                o_instant: r.get("o_instant"),
                o_uid: r.get("o_uid"),
            };
            assert_eq!(read, ours);
        },
    )
    .await;
}

// Tables made by another tool (Django's `serial` keys, `integer` and `smallint` columns) read
// into the widest integer fields, on every backend; a value too wide for its field is a decode
// error naming the column.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "django_made")]
struct DjangoMade {
    id: Option<i64>,
    hits: i64,
    rank: i32,
    maybe: Option<i64>,
}

/// The same table through narrower fields (listed in another order: its statements differ
/// from `DjangoMade`'s, so a connection's statement cache never hands one the other's, prepared
/// for another key type).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "django_made")]
struct Narrow {
    hits: i16,
    rank: i32,
    maybe: Option<i16>,
    id: Option<i32>,
}

db_test!(async fn integer_fields_read_narrower_integer_columns(db) {
    let ddl = match db.backend() {
        Backend::Postgres => "CREATE TABLE django_made (id SERIAL PRIMARY KEY, hits INTEGER NOT NULL, rank SMALLINT NOT NULL, maybe INTEGER)",
        Backend::MySql => "CREATE TABLE django_made (id INT AUTO_INCREMENT PRIMARY KEY, hits INT NOT NULL, rank SMALLINT NOT NULL, maybe INT)",
        _ => "CREATE TABLE django_made (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL, rank INTEGER NOT NULL, maybe INTEGER)",
    };
    db.execute_unprepared(ddl).await.unwrap();
    let mut row = DjangoMade { id: None, hits: 7, rank: 3, maybe: None };
    row.save(&db).await.unwrap();
    let mut other = DjangoMade { id: None, hits: 1 << 20, rank: -2, maybe: Some(5) };
    other.save(&db).await.unwrap();
    assert_eq!(DjangoMade::all(&db).await.unwrap(), [row.clone(), other.clone()]);
    assert_eq!(DjangoMade::get(&db, other.id.unwrap()).await.unwrap(), Some(other.clone()));
    assert_eq!(DjangoMade::filter(&db, DjangoMade::MAYBE, None).await.unwrap(), [row.clone()]);
    // Inside a transaction too (SQLite reads on the handle there).
    let mut tx = db.begin().await.unwrap();
    assert_eq!(DjangoMade::all(&mut tx).await.unwrap().len(), 2);
    tx.commit().await.unwrap();

    // Narrower fields: fine while the values fit, a decode error naming the column when not.
    let first = Narrow::get(&db, 1).await.unwrap().unwrap();
    assert_eq!((first.hits, first.maybe), (7, None));
    let err = Narrow::get(&db, other.id.unwrap() as i32).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("`hits`"), "{err}");
});

// `chrono::NaiveTime`: a time of day, microseconds kept, on every backend.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "opening")]
struct Opening {
    id: Option<i64>,
    at: chrono::NaiveTime,
    until: Option<chrono::NaiveTime>,
}

db_test!(async fn times_of_day_round_trip(db) {
    let time_type = if db.backend() == Backend::MySql { "TIME(6)" } else { "TIME" };
    create_tables(&db, &format!("CREATE TABLE opening (id {{pk}}, at {time_type} NOT NULL, until {time_type})")).await;
    let t = |h, m, s, micro| chrono::NaiveTime::from_hms_micro_opt(h, m, s, micro).unwrap();
    let rows = [
        Opening { id: None, at: t(0, 0, 0, 0), until: None },
        Opening { id: None, at: t(9, 30, 0, 0), until: Some(t(17, 45, 30, 250_000)) },
        Opening { id: None, at: t(23, 59, 59, 999_999), until: Some(t(12, 0, 0, 1)) },
    ];
    let mut saved = Vec::new();
    for mut row in rows {
        row.save(&db).await.unwrap();
        saved.push(row);
    }
    assert_eq!(Opening::all(&db).await.unwrap(), saved);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(Opening::all(&mut tx).await.unwrap(), saved, "alike inside a transaction");
    let mut extra = Opening { id: None, at: t(6, 5, 4, 3), until: None };
    extra.save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Opening::get(&db, extra.id.unwrap()).await.unwrap(), Some(extra));
    assert_eq!(Opening::query().filter(Opening::AT.gt(t(9, 0, 0, 0))).count(&db).await.unwrap(), 2);
    // On SQLite, stored exactly as sqlx stores it, and sqlx's rows read back.
    if let signals_core::PoolRef::Sqlite(pool) = db.pool() {
        use signals_core::sqlx;
        let text: String = sqlx::query_scalar("SELECT at FROM opening WHERE id = 2").fetch_one(pool).await.unwrap();
        assert_eq!(text, "09:30:00");
        sqlx::query("INSERT INTO opening (at) VALUES (?)").bind(t(1, 2, 3, 400)).execute(pool).await.unwrap();
        let last = Opening::query().order_by(Opening::ID.desc()).first(&db).await.unwrap().unwrap();
        assert_eq!(last.at, t(1, 2, 3, 400));
    }
});
