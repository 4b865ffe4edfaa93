//! Streaming a query in chunks (issue 29, item 6): every matching row once, in key order,
//! one chunk at a time, on every backend, in a transaction too; an ordering is refused.

use futures_util::TryStreamExt as _;
use signals_core::{ErrorKind, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "st_event")]
struct Event {
    id: Option<i64>,
    kind: i64,
}

db_test!(async fn a_stream_reads_every_row_once_in_key_order(db) {
    db.create_tables::<Event>().await.unwrap();
    let mut events: Vec<Event> = (0..1_000).map(|i| Event { id: None, kind: i % 3 }).collect();
    Event::bulk_save(&db, &mut events).await.unwrap();
    let want: Vec<i64> = events.iter().filter(|e| e.kind == 1).filter_map(|e| e.id).collect();
    for chunk in [1, 7, 333, 334, 5_000] {
        let got: Vec<i64> = Event::query()
            .filter(Event::KIND.eq(1))
            .stream(&db, chunk)
            .map_ok(|e| e.id.unwrap())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, want, "{} chunk {chunk}", db.backend());
    }
    // Rows written while the stream runs, ahead of where it is, are read too.
    let mut stream = std::pin::pin!(Event::query().stream(&db, 10));
    let mut seen = 0;
    while let Some(event) = stream.try_next().await.unwrap() {
        if seen == 0 {
            Event { id: None, kind: 9 }.save(&db).await.unwrap();
        }
        assert!(event.id.is_some());
        seen += 1;
    }
    assert_eq!(seen, 1_001);
    // In a transaction, seeing its own rows.
    let mut tx = db.begin().await.unwrap();
    Event { id: None, kind: 1 }.save(&mut tx).await.unwrap();
    let n = Event::query().filter(Event::KIND.eq(1)).stream(&mut tx, 50).try_fold(0, async |n, _| Ok(n + 1)).await.unwrap();
    assert_eq!(n, want.len() + 1);
    tx.rollback().await.unwrap();
    // An ordering is refused, naming what to drop; the pool stays usable.
    let mut ordered = std::pin::pin!(Event::query().order_by(Event::KIND.asc()).stream(&db, 10));
    let err = ordered.try_next().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("drop `order_by`"), "{err}");
    assert_eq!(Event::query().count(&db).await.unwrap(), 1_001);
});
