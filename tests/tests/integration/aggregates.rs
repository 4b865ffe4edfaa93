//! Aggregates, grouping, `distinct`, values into tuples and counts of related rows (issue 29,
//! item 3): the same results on every backend, checked against plain Rust over the same rows;
//! selections no backend runs as meant are refused with a clear error, and the pool stays
//! usable.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use signals_core::{Db, ErrorKind, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "agg_shop")]
struct Shop {
    id: Option<i64>,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "agg_sale")]
struct Sale {
    id: Option<i64>,
    #[model(foreign_key = Shop, on_delete = cascade)]
    shop_id: i64,
    #[model(max_length = 20)]
    status: String,
    units: i32,
    weight: f64,
    #[model(max_digits = 12, decimal_places = 2)]
    amount: Decimal,
    discount: Option<i64>,
    day: Option<NaiveDate>,
}

fn day(d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(2026, 3, d)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn shop(db: &Db) -> Vec<Sale> {
    db.create_tables::<(Shop, Sale)>().await.unwrap();
    let mut shops: Vec<Shop> = ["north", "south", "empty"]
        .iter()
        .map(|n| Shop {
            id: None,
            name: (*n).into(),
        })
        .collect();
    Shop::bulk_save(db, &mut shops).await.unwrap();
    // shop, status, units, weight, amount, discount, day
    type Row = (
        i64,
        &'static str,
        i32,
        f64,
        &'static str,
        Option<i64>,
        Option<u32>,
    );
    let rows: &[Row] = &[
        (1, "paid", 3, 1.5, "10.25", Some(2), Some(4)),
        (1, "paid", i32::MAX, 0.25, "99999.99", None, Some(1)),
        (1, "refunded", 1, 2.0, "5.00", Some(1), None),
        (2, "paid", i32::MAX, 4.0, "0.10", None, Some(9)),
        (2, "open", -7, 0.5, "-3.40", Some(5), Some(2)),
        (2, "paid", i32::MAX, 1.0, "7.05", Some(3), Some(9)),
    ];
    let mut sales: Vec<Sale> = rows
        .iter()
        .map(
            |(shop_id, status, units, weight, amount, discount, d)| Sale {
                id: None,
                shop_id: *shop_id,
                status: (*status).into(),
                units: *units,
                weight: *weight,
                amount: dec(amount),
                discount: *discount,
                day: d.and_then(day),
            },
        )
        .collect();
    Sale::bulk_save(db, &mut sales).await.unwrap();
    sales
}

db_test!(async fn aggregates_over_all_rows_agree_with_rust(db) {
    let sales = shop(&db).await;
    let (count, units, weight, amount) = Sale::query()
        .aggregate(&db, (Sale::ID.count(), Sale::UNITS.sum(), Sale::WEIGHT.sum(), Sale::AMOUNT.sum()))
        .await
        .unwrap();
    assert_eq!(count, sales.len() as i64);
    // Three `i32::MAX` add up past `i32`: sums of integers are `i64`.
    assert_eq!(units, Some(sales.iter().map(|s| i64::from(s.units)).sum()));
    assert_eq!(weight, Some(sales.iter().map(|s| s.weight).sum()));
    assert_eq!(amount, Some(sales.iter().map(|s| s.amount).sum()), "{}", db.backend());
    let (least, most, first_day, last_day) = Sale::query()
        .aggregate(&db, (Sale::UNITS.min(), Sale::AMOUNT.max(), Sale::DAY.min(), Sale::DAY.max()))
        .await
        .unwrap();
    assert_eq!(least, Some(-7));
    assert_eq!(most, Some(dec("99999.99")));
    assert_eq!((first_day, last_day), (day(1), day(9)), "NULL days aside");
    // NULLs aside, as in SQL: the discounts of four rows.
    let (discounts, with_discount, average) = Sale::query()
        .aggregate(&db, (Sale::DISCOUNT.sum(), Sale::DISCOUNT.count(), Sale::DISCOUNT.avg()))
        .await
        .unwrap();
    assert_eq!((discounts, with_discount, average), (Some(11), 4, Some(11.0 / 4.0)));
    assert_eq!(Sale::query().aggregate(&db, Sale::STATUS.count_distinct()).await.unwrap(), 3);
    assert_eq!(Sale::query().aggregate(&db, Sale::STATUS.max()).await.unwrap(), Some("refunded".to_owned()));
    // Over no rows: NULL sums, averages and extremes, a count of 0.
    let none = Sale::query().filter(Sale::STATUS.eq("lost"));
    let nothing = none.aggregate(&db, (Sale::UNITS.sum(), Sale::WEIGHT.avg(), Sale::DAY.max(), Sale::ID.count())).await.unwrap();
    assert_eq!(nothing, (None, None, None, 0));
    // Over a window: the two heaviest sales only.
    let top = Sale::query().order_by(Sale::WEIGHT.desc()).limit(2).aggregate(&db, Sale::WEIGHT.sum()).await.unwrap();
    assert_eq!(top, Some(6.0));
});

db_test!(async fn values_group_by_the_selected_columns(db) {
    let sales = shop(&db).await;
    let got: Vec<(String, i64, Option<i64>)> = Sale::query()
        .filter(Sale::UNITS.lt(100))
        .order_by(Sale::STATUS.asc())
        .values((Sale::STATUS, Sale::ID.count(), Sale::UNITS.sum()))
        .all(&db)
        .await
        .unwrap();
    let mut want: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for s in sales.iter().filter(|s| s.units < 100) {
        let e = want.entry(s.status.clone()).or_default();
        e.0 += 1;
        e.1 += i64::from(s.units);
    }
    let want: Vec<(String, i64, Option<i64>)> = want.into_iter().map(|(k, (n, u))| (k, n, Some(u))).collect();
    assert_eq!(got, want);
    // Two grouping columns, ordered by an aggregate, then a window of the groups.
    let got: Vec<(i64, String, Option<f64>)> = Sale::query()
        .order_by(Sale::WEIGHT.sum().desc())
        .order_by(Sale::SHOP_ID.asc())
        .values((Sale::SHOP_ID, Sale::STATUS, Sale::WEIGHT.sum()))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(
        got,
        [(2, "paid".into(), Some(5.0)), (1, "refunded".into(), Some(2.0)), (1, "paid".into(), Some(1.75)), (2, "open".into(), Some(0.5))]
    );
    let second = Sale::query()
        .order_by(Sale::WEIGHT.sum().desc())
        .values((Sale::SHOP_ID, Sale::STATUS, Sale::WEIGHT.sum()))
        .first(&db)
        .await
        .unwrap();
    assert_eq!(second, Some((2, "paid".into(), Some(5.0))));
    // Plain values: columns into tuples, in key order.
    let got: Vec<(Option<i64>, Decimal)> = Sale::query().filter(Sale::SHOP_ID.eq(2)).values((Sale::ID, Sale::AMOUNT)).all(&db).await.unwrap();
    let want: Vec<(Option<i64>, Decimal)> = sales.iter().filter(|s| s.shop_id == 2).map(|s| (s.id, s.amount)).collect();
    assert_eq!(got, want);
    let one: Vec<Option<NaiveDate>> = Sale::query().values(Sale::DAY).all(&db).await.unwrap();
    assert_eq!(one, sales.iter().map(|s| s.day).collect::<Vec<_>>());
    // Distinct values.
    let got: Vec<String> = Sale::query().order_by(Sale::STATUS.desc()).values(Sale::STATUS).distinct().all(&db).await.unwrap();
    assert_eq!(got, ["refunded", "paid", "open"]);
    let got: Vec<(i64, Option<NaiveDate>)> = Sale::query()
        .filter(Sale::STATUS.eq("paid"))
        .order_by(Sale::SHOP_ID.asc())
        .order_by(Sale::DAY.asc())
        .values((Sale::SHOP_ID, Sale::DAY))
        .distinct()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(got, [(1, day(1)), (1, day(4)), (2, day(9))]);
});

db_test!(async fn annotations_count_related_rows(db) {
    let sales = shop(&db).await;
    let got = Shop::query()
        .order_by(Sale::SHOP_ID.related_count_where(Sale::STATUS.eq("paid")).desc())
        .order_by(Shop::NAME.asc())
        .annotate((Sale::SHOP_ID.related_count(), Sale::SHOP_ID.related_count_where(Sale::STATUS.eq("paid"))))
        .all(&db)
        .await
        .unwrap();
    let got: Vec<(String, i64, i64)> = got.into_iter().map(|(s, (n, p))| (s.name, n, p)).collect();
    let count = |shop: i64, paid: bool| sales.iter().filter(|s| s.shop_id == shop && (!paid || s.status == "paid")).count() as i64;
    assert_eq!(
        got,
        [("north".into(), count(1, false), count(1, true)), ("south".into(), count(2, false), count(2, true)), ("empty".into(), 0, 0)]
    );
    // Filtered by a relation and annotated, the first one.
    let first = Shop::query()
        .filter(Sale::SHOP_ID.any(Sale::STATUS.eq("refunded")))
        .annotate(Sale::SHOP_ID.related_count())
        .first(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.0.name.as_str(), first.1), ("north", 3));
    // A related count is a value per row, so it groups nothing.
    let got: Vec<(Option<i64>, i64)> = Shop::query()
        .order_by(Shop::ID.asc())
        .values((Shop::ID, Sale::SHOP_ID.related_count()))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(got, [(Some(1), 3), (Some(2), 3), (Some(3), 0)]);
});

db_test!(async fn selections_no_backend_runs_as_meant_are_refused(db) {
    shop(&db).await;
    let refused = [
        Sale::query().aggregate(&db, (Sale::STATUS, Sale::UNITS.sum())).await.map(drop).unwrap_err(),
        Shop::query().annotate(Shop::ID.count()).all(&db).await.map(drop).unwrap_err(),
        Sale::query().order_by(Sale::UNITS.asc()).values(Sale::STATUS).distinct().all(&db).await.map(drop).unwrap_err(),
        Sale::query().order_by(Sale::UNITS.asc()).values((Sale::STATUS, Sale::ID.count())).all(&db).await.map(drop).unwrap_err(),
        Sale::query().for_update().values(Sale::STATUS).all(&db).await.map(drop).unwrap_err(),
        Sale::query().order_by(Sale::ID.count().asc()).values(Sale::STATUS).distinct().all(&db).await.map(drop).unwrap_err(),
    ];
    for err in refused {
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
        assert!(err.to_string().contains("Sale") || err.to_string().contains("Shop"), "{err}");
    }
    assert_eq!(Sale::query().count(&db).await.unwrap(), 6, "the pool stays usable");
});
