//! Bulk saves read the keys the database generated: through `RETURNING` on PostgreSQL and
//! SQLite, and on MySQL and MariaDB from `LAST_INSERT_ID()` and `@@auto_increment_increment`
//! (MySQL 8 has no `INSERT .. RETURNING`, and MariaDB's costs more): every key belongs to its
//! row, also with a step other than 1.

use signals_core::Model;
use signals_tests::{create_tables, db_test, exec};

#[derive(Debug, Clone, Model)]
struct Entry {
    id: Option<i64>,
    label: String,
}

db_test!(async fn keys_from_last_insert_id_belong_to_their_rows(db) {
    create_tables(&db, "CREATE TABLE entry (id {pk}, label {text} NOT NULL)").await;
    for step in [1, 3] {
        let mut tx = db.begin().await.unwrap();
        if let signals_core::ConnRef::MySql(conn) = tx.conn().await.unwrap() {
            // A step other than 1, as a multi-primary cluster sets it.
            let set = format!("SET SESSION auto_increment_increment = {step}");
            signals_core::sqlx::raw_sql(signals_core::sqlx::AssertSqlSafe(set)).execute(conn).await.unwrap();
        }
        let mut all = Vec::new();
        for n in [1usize, 3, 1_500] {
            let mut rows: Vec<Entry> =
                (0..n).map(|i| Entry { id: None, label: format!("{step}-{n}-{i}") }).collect();
            Entry::bulk_save(&mut tx, &mut rows).await.unwrap();
            all.extend(rows);
        }
        for row in &all {
            let stored = Entry::get(&mut tx, row.id.unwrap()).await.unwrap().unwrap();
            assert_eq!(stored.label, row.label);
        }
        if db.backend() == signals_core::Backend::MySql && step == 3 {
            let (a, b) = (all[1].id.unwrap(), all[2].id.unwrap());
            assert_eq!(b - a, 3, "keys spaced by the step");
        }
        tx.commit().await.unwrap();
    }
    exec(&db, "DELETE FROM entry").await;
});
