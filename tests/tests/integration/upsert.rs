//! `bulk_upsert` (issue 29, item 5): rows matched on unique fields are updated, the rest
//! inserted, each with its save signals and the right `created` flag; 16 tasks upserting the
//! same values at once make one row per value and one `created == true`; bad input is refused
//! whole, and a cancelled upsert leaves the caller's keys telling the truth.

use std::sync::Arc;

use signals_core::{Db, ErrorKind, Model, PostSave};
use signals_tests::{another_pool, cancel_at, db_test, scalar};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "up_stock", unique_together(shop, sku))]
#[post_save(log_save)]
struct Stock {
    id: Option<i64>,
    #[model(max_length = 20)]
    shop: String,
    #[model(max_length = 20)]
    sku: String,
    units: i64,
}

/// One row per save, in the save's transaction: what the signals said.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "up_log")]
struct Log {
    id: Option<i64>,
    #[model(max_length = 20)]
    sku: String,
    created: bool,
    units: i64,
}

async fn log_save(stock: &Stock, signal: &mut PostSave<'_>) -> signals_core::Result<()> {
    let created = signal.created();
    Log {
        id: None,
        sku: stock.sku.clone(),
        created,
        units: stock.units,
    }
    .save(signal.tx())
    .await?;
    Ok(())
}

fn stock(sku: &str, units: i64) -> Stock {
    Stock {
        id: None,
        shop: "north".into(),
        sku: sku.into(),
        units,
    }
}

async fn logs(db: &Db) -> Vec<(String, bool, i64)> {
    Log::all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.sku, l.created, l.units))
        .collect()
}

db_test!(async fn existing_rows_are_updated_and_new_ones_inserted(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    let mut first = [stock("a", 1), stock("b", 2)];
    Stock::bulk_save(&db, &mut first).await.unwrap();
    Log::query().delete(&db).await.unwrap();

    let mut rows = [stock("b", 20), stock("c", 30), stock("a", 10)];
    let saved = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await.unwrap();
    assert_eq!(saved.created(), [false, true, false]);
    assert_eq!((saved.inserted(), saved.updated()), (1, 2));
    assert_eq!(rows[0].id, first[1].id, "b got the key of its row");
    assert_eq!(rows[2].id, first[0].id);
    assert!(rows[1].id.is_some() && rows[1].id != first[0].id && rows[1].id != first[1].id);
    let mut units: Vec<(String, i64)> = Stock::all(&db).await.unwrap().into_iter().map(|s| (s.sku, s.units)).collect();
    units.sort();
    assert_eq!(units, [("a".into(), 10), ("b".into(), 20), ("c".into(), 30)]);
    let mut logged = logs(&db).await;
    logged.sort();
    assert_eq!(logged, [("a".into(), false, 10), ("b".into(), false, 20), ("c".into(), true, 30)]);

    // Again: all matched now; another shop's `a` is another row.
    let mut again = [stock("c", 31), Stock { shop: "south".into(), ..stock("a", 5) }];
    let saved = Stock::bulk_upsert(&db, &mut again, Stock::SHOP | Stock::SKU).await.unwrap();
    assert_eq!(saved.created(), [false, true]);
    assert_eq!(again[0].id, rows[1].id);
    assert_eq!(Stock::query().count(&db).await.unwrap(), 4);
    // A row with a key is saved by it, whatever its values.
    let mut keyed = [Stock { id: rows[0].id, ..stock("b", 99) }];
    let saved = Stock::bulk_upsert(&db, &mut keyed, Stock::SHOP | Stock::SKU).await.unwrap();
    assert_eq!(saved.created(), [false]);
    assert_eq!(Stock::get(&db, rows[0].id.unwrap()).await.unwrap().unwrap().units, 99);
    // Inside a transaction, rolled back with it.
    let mut tx = db.begin().await.unwrap();
    let mut late = [stock("d", 1), stock("a", 0)];
    Stock::bulk_upsert(&mut tx, &mut late, Stock::SHOP | Stock::SKU).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(Stock::query().count(&db).await.unwrap(), 4);
    assert_eq!(Stock::get(&db, first[0].id.unwrap()).await.unwrap().unwrap().units, 10);
});

db_test!(async fn sixteen_racing_upserts_make_one_row_and_one_created_per_value(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for i in 0..16_i64 {
        let pool = if i % 2 == 0 { Arc::clone(&db) } else { Arc::new(another_pool(&db).await) };
        tasks.push(tokio::spawn(async move {
            // Each task its own order of the same values.
            let mut rows = if i % 3 == 0 {
                vec![stock("x", i), stock("y", i)]
            } else {
                vec![stock("y", i), stock("x", i)]
            };
            let saved = Stock::bulk_upsert(&*pool, &mut rows, Stock::SHOP | Stock::SKU).await?;
            Ok::<_, signals_core::Error>((saved.created().to_vec(), rows))
        }));
    }
    let mut created = 0;
    let mut keys = std::collections::BTreeSet::new();
    for task in tasks {
        let (flags, rows) = task.await.unwrap().unwrap();
        created += flags.iter().filter(|c| **c).count();
        keys.extend(rows.iter().map(|r| (r.sku.clone(), r.id.unwrap())));
    }
    assert_eq!(created, 2, "one created per value ({})", db.backend());
    assert_eq!(keys.len(), 2, "every task got the one row of each value: {keys:?}");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM up_stock").await, 2);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM up_log").await, 32, "one post_save per row per task");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM up_log WHERE created = TRUE").await, 2);
});

db_test!(async fn bad_input_is_refused_whole(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    let mut rows = [stock("a", 1), stock("b", 2), stock("a", 3)];
    let err = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("rows 0 and 2"), "{err}");
    let err = Stock::bulk_upsert(&db, &mut rows, signals_core::FieldSet::empty()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    let err = Stock::bulk_upsert(&db, &mut rows, Stock::ID | Stock::SKU).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    // A row the database refuses: nothing of the upsert stays, and no instance claims a row.
    let mut rows = [stock("ok", 1), Stock { sku: "x".repeat(500), ..stock("", 2) }];
    let err = Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU).await;
    if db.backend() != signals_core::Backend::Sqlite {
        // SQLite stores the long text (it has no length limit).
        assert!(err.is_err());
        assert!(rows.iter().all(|r| r.id.is_none()), "{rows:?}");
        assert_eq!(Stock::query().count(&db).await.unwrap(), 0);
    }
    assert!(rows.iter().all(|r| r.id.is_none()) || err.is_ok());
    assert_eq!(Stock::query().filter(Stock::SKU.eq("zzz")).count(&db).await.unwrap(), 0, "the pool stays usable");
});

db_test!(async fn a_cancelled_upsert_leaves_keys_that_tell_the_truth(db) {
    db.create_tables::<(Stock, Log)>().await.unwrap();
    Stock::bulk_save(&db, &mut [stock("old", 1)]).await.unwrap();
    for waits in 0.. {
        let mut rows = [stock("old", 2), stock(&format!("new{waits}"), 3)];
        let done = cancel_at(waits, Stock::bulk_upsert(&db, &mut rows, Stock::SHOP | Stock::SKU)).await;
        let stored: Vec<Stock> = Stock::all(&db).await.unwrap();
        for row in &rows {
            match row.id {
                // A key never names another row's values (cancelled after its COMMIT was
                // sent, the row may not be there: the key says which to look up).
                Some(id) => assert!(stored.iter().all(|s| s.id != Some(id) || s.sku == row.sku), "waits {waits}: {row:?}"),
                // No key: the new value was not stored.
                None => assert!(row.sku == "old" || !stored.iter().any(|s| s.sku == row.sku), "waits {waits}: {row:?}"),
            }
        }
        if let Some(res) = done {
            res.unwrap();
            assert!(rows.iter().all(|r| r.id.is_some()));
            break;
        }
        assert!(waits < 1000, "never finished");
    }
    assert_eq!(Stock::query().filter(Stock::SKU.eq("old")).count(&db).await.unwrap(), 1);
});
