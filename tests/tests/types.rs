//! Every supported field type round-trips on every backend, NULLs included.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use signals_core::Model;
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
