//! Hostile probes of makemigrations and migrate (issue 28), written by a breaker helper and
//! kept as regression tests: sequences of model changes on populated databases, hostile
//! defaults, names that need quoting or collide, renames, cancellation and concurrency.

use std::path::Path;

use signals_core::makemigrations::MakeMigrations;
use signals_core::schema::Models;
use signals_core::{Backend, Db, ErrorKind, Model, PoolRef};
use signals_tests::{db_test, scalar};

use super::makemigrations::{make, migrate, migrations_dir};

/// Plans (with `f`), writes, migrates, checks the schema, and checks a second plan is empty.
/// Returns the migration's SQL.
async fn step<T: Models>(
    db: &Db,
    dir: &Path,
    what: &str,
    f: impl FnOnce(MakeMigrations) -> MakeMigrations,
) -> String {
    let backend = db.backend();
    let plan = f(make::<T>(dir, backend))
        .plan()
        .unwrap_or_else(|e| panic!("{backend} {what}: plan refused: {e}"));
    let sql = plan.sql(backend).unwrap_or_default();
    plan.write().unwrap();
    if let Err(e) = migrate(db, dir).await {
        panic!("{backend} {what}: migrate failed: {e}\n--- SQL ---\n{sql}");
    }
    if let Err(e) = db.check_schema::<T>().await {
        panic!("{backend} {what}: check_schema failed: {e}\n--- SQL ---\n{sql}");
    }
    let again = make::<T>(dir, backend).plan().unwrap();
    assert!(
        again.is_empty(),
        "{backend} {what}: second plan not empty: {:?}\n--- SQL ---\n{sql}",
        again.changes()
    );
    make::<T>(dir, backend).check().unwrap();
    sql
}

/// One text value read with plain sqlx.
async fn text(db: &Db, sql: &str) -> Option<String> {
    use signals_core::sqlx;
    let q = sqlx::AssertSqlSafe(sql.to_owned());
    let res = match db.pool() {
        PoolRef::Sqlite(p) => {
            sqlx::query_scalar::<_, Option<String>>(q)
                .fetch_one(p)
                .await
        }
        PoolRef::Postgres(p) => {
            sqlx::query_scalar::<_, Option<String>>(q)
                .fetch_one(p)
                .await
        }
        PoolRef::MySql(p) => {
            sqlx::query_scalar::<_, Option<String>>(q)
                .fetch_one(p)
                .await
        }
        _ => unreachable!(),
    };
    res.unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
}

// ---------------------------------------------------------------------------------------
// 1a. Type changes that keep data (no flag needed).

mod ty1 {
    use rust_decimal::Decimal;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ty")]
    pub(crate) struct Row {
        pub(crate) id: Option<i64>,
        pub(crate) a: i32,
        pub(crate) b: String,
        pub(crate) c: Option<String>,
        pub(crate) d: Option<i64>,
        #[model(max_length = 10)]
        pub(crate) e: String,
        #[model(max_digits = 6, decimal_places = 2)]
        pub(crate) f: Decimal,
        pub(crate) g: bool,
        pub(crate) h: String,
    }
}

mod ty2 {
    use rust_decimal::Decimal;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ty")]
    pub(crate) struct Row {
        pub(crate) id: Option<i64>,
        pub(crate) a: i64,
        pub(crate) b: Option<String>,
        #[model(default = "dflt")]
        pub(crate) c: String,
        pub(crate) d: i64,
        #[model(max_length = 20)]
        pub(crate) e: String,
        #[model(max_digits = 10, decimal_places = 2)]
        pub(crate) f: Decimal,
        pub(crate) g: bool,
        pub(crate) h: String,
    }
}

/// 1b. Type changes that need the flag: bool -> i32, text -> json, i64 -> i32.
mod ty3 {
    use rust_decimal::Decimal;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ty")]
    pub(crate) struct Row {
        pub(crate) id: Option<i64>,
        pub(crate) a: i32,
        pub(crate) b: Option<String>,
        #[model(default = "dflt")]
        pub(crate) c: String,
        pub(crate) d: i64,
        #[model(max_length = 20)]
        pub(crate) e: String,
        #[model(max_digits = 10, decimal_places = 2)]
        pub(crate) f: Decimal,
        pub(crate) g: i32,
        pub(crate) h: serde_json::Value,
    }
}

db_test!(async fn p01_type_changes_keep_rows(db) {
    // Rows are read through a fresh pool after each migration (see p01c for why).
    let dir = migrations_dir("ty");
    step::<ty1::Row>(&db, &dir, "create", |m| m).await;
    let mut r = ty1::Row {
        id: None, a: 7, b: "bee".into(), c: None, d: Some(5), e: "short".into(),
        f: "12.34".parse().unwrap(), g: true, h: r#"{"k":1}"#.into(),
    };
    r.save(&db).await.unwrap();
    step::<ty2::Row>(&db, &dir, "widen", |m| m).await;
    let fresh = signals_tests::another_pool(&db).await;
    let rows = ty2::Row::query().all(&fresh).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].a, rows[0].b.as_deref(), rows[0].c.as_str(), rows[0].d), (7, Some("bee"), "dflt", 5));
    assert_eq!(rows[0].f, "12.34".parse::<rust_decimal::Decimal>().unwrap());
    fresh.close().await;
    let sql = step::<ty3::Row>(&db, &dir, "bool->i32, text->json, i64->i32", |m| m.allow_data_loss(true)).await;
    let fresh = signals_tests::another_pool(&db).await;
    let rows = ty3::Row::query().all(&fresh).await.unwrap();
    assert_eq!(rows.len(), 1, "{sql}");
    assert_eq!((rows[0].a, rows[0].g), (7, 1), "{sql}");
    assert_eq!(rows[0].h, serde_json::json!({"k": 1}), "{sql}");
    fresh.close().await;
    // and back: i32 -> bool, json -> text
    step::<ty2::Row>(&db, &dir, "back", |m| m.allow_data_loss(true)).await;
    let fresh = signals_tests::another_pool(&db).await;
    let rows = ty2::Row::query().all(&fresh).await.unwrap();
    assert!(rows[0].g);
    fresh.close().await;
    let _ = std::fs::remove_dir_all(&dir);
});

// 1c. A `Db` that queried a table before `migrate::run` changed a column's type queries it
// again afterwards (an application that migrates while it runs, or a test).
db_test!(async fn p01c_queries_after_a_type_change_on_the_same_pool(db) {
    let dir = migrations_dir("tyc");
    step::<ty1::Row>(&db, &dir, "create", |m| m).await;
    let mut r = ty1::Row {
        id: None, a: 7, b: "bee".into(), c: Some("c".into()), d: Some(5), e: "short".into(),
        f: "12.34".parse().unwrap(), g: true, h: "h".into(),
    };
    r.save(&db).await.unwrap();
    for _ in 0..4 {
        assert_eq!(ty1::Row::query().all(&db).await.unwrap().len(), 1);
    }
    step::<ty2::Row>(&db, &dir, "widen", |m| m).await;
    for i in 0..4 {
        let rows = ty2::Row::query().all(&db).await;
        assert!(rows.is_ok(), "{}: query {i} after the migration: {:?}", db.backend(), rows.err());
    }
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 2. unique / unique_together / index added and removed.

mod uq1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_uq")]
    pub(crate) struct Item {
        pub(crate) id: Option<i64>,
        #[model(max_length = 20)]
        pub(crate) code: String,
        pub(crate) a: i64,
        pub(crate) b: i64,
        #[model(max_length = 20)]
        pub(crate) tag: String,
    }
}

mod uq2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_uq", unique_together(a, b))]
    pub(crate) struct Item {
        pub(crate) id: Option<i64>,
        #[model(max_length = 20, unique)]
        pub(crate) code: String,
        pub(crate) a: i64,
        pub(crate) b: i64,
        #[model(max_length = 20, index)]
        pub(crate) tag: String,
    }
}

db_test!(async fn p02_unique_and_index_added_and_removed(db) {
    let dir = migrations_dir("uq");
    step::<uq1::Item>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_uq (code, a, b, tag) VALUES ('x', 1, 1, 't'), ('y', 1, 2, 't')").await.unwrap();
    step::<uq2::Item>(&db, &dir, "add unique/together/index", |m| m).await;
    let mut dup = uq2::Item { id: None, code: "x".into(), a: 9, b: 9, tag: "t".into() };
    assert_eq!(dup.save(&db).await.unwrap_err().kind(), ErrorKind::UniqueViolation);
    step::<uq1::Item>(&db, &dir, "remove them", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_uq (code, a, b, tag) VALUES ('x', 1, 1, 't')").await.unwrap();
    db.execute_unprepared("DELETE FROM mmb_uq WHERE id > 2").await.unwrap();
    step::<uq2::Item>(&db, &dir, "add again", |m| m).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_uq").await, 2);
    let _ = std::fs::remove_dir_all(&dir);
});

/// 2b. `#[model(index)]` added to a text field without `max_length`: on MySQL the column
/// becomes VARCHAR(255); is it refused as "narrowing" without the flag, on every backend?
mod ix1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ix")]
    pub(crate) struct Note {
        pub(crate) id: Option<i64>,
        pub(crate) body: String,
    }
}

mod ix2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ix")]
    pub(crate) struct Note {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) body: String,
    }
}

db_test!(async fn p02b_index_on_unbounded_text(db) {
    let dir = migrations_dir("ix");
    step::<ix1::Note>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_ix (body) VALUES ('hello')").await.unwrap();
    let plain = make::<ix2::Note>(&dir, db.backend()).plan();
    if let Err(e) = &plain {
        eprintln!("NOTE {}: adding an index on unbounded text refused without the flag: {e}", db.backend());
    }
    step::<ix2::Note>(&db, &dir, "add index", |m| m.allow_data_loss(true)).await;
    step::<ix1::Note>(&db, &dir, "drop index", |m| m.allow_data_loss(true)).await;
    assert_eq!(text(&db, "SELECT body FROM mmb_ix").await.as_deref(), Some("hello"));
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 3. foreign_key -> one_to_one -> foreign_key.

mod o2o_parent {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_o2o_parent")]
    pub(crate) struct Parent {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }
}

mod o2o1 {
    use super::o2o_parent::Parent;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_o2o_child")]
    pub(crate) struct Child {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Parent, on_delete = cascade)]
        pub(crate) parent_id: i64,
    }
}

mod o2o2 {
    use super::o2o_parent::Parent;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_o2o_child")]
    pub(crate) struct Child {
        pub(crate) id: Option<i64>,
        #[model(one_to_one = Parent, on_delete = cascade)]
        pub(crate) parent_id: i64,
    }
}

db_test!(async fn p03_foreign_key_to_one_to_one_and_back(db) {
    let dir = migrations_dir("o2o");
    step::<(o2o_parent::Parent, o2o1::Child)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_o2o_parent (name) VALUES ('a'), ('b')").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_o2o_child (parent_id) VALUES (1), (2)").await.unwrap();
    step::<(o2o_parent::Parent, o2o2::Child)>(&db, &dir, "fk -> one_to_one", |m| m).await;
    step::<(o2o_parent::Parent, o2o1::Child)>(&db, &dir, "one_to_one -> fk", |m| m).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_o2o_child").await, 2);
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 4. References added to existing populated columns (incl. a self-reference), then removed.

mod rf1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rf_owner")]
    pub(crate) struct Owner {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rf_thing")]
    pub(crate) struct Thing {
        pub(crate) id: Option<i64>,
        pub(crate) owner_id: i64,
        pub(crate) parent_id: Option<i64>,
    }
}

mod rf2 {
    use super::rf1::Owner;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rf_thing")]
    pub(crate) struct Thing {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Owner, on_delete = cascade)]
        pub(crate) owner_id: i64,
        #[model(foreign_key = Thing, on_delete = set_null)]
        pub(crate) parent_id: Option<i64>,
    }
}

db_test!(async fn p04_references_added_to_populated_columns_and_removed(db) {
    let dir = migrations_dir("rf");
    step::<(rf1::Owner, rf1::Thing)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_rf_owner (name) VALUES ('o')").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_rf_thing (owner_id, parent_id) VALUES (1, NULL)").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_rf_thing (owner_id, parent_id) VALUES (1, 1)").await.unwrap();
    step::<(rf1::Owner, rf2::Thing)>(&db, &dir, "add references (one to itself)", |m| m).await;
    let mut orphan = rf2::Thing { id: None, owner_id: 99, parent_id: None };
    assert_eq!(orphan.save(&db).await.unwrap_err().kind(), ErrorKind::ForeignKeyViolation);
    step::<(rf1::Owner, rf1::Thing)>(&db, &dir, "remove references", |m| m).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_rf_thing").await, 2);
    // Dropping the referenced table while its child keeps the (now plain) column.
    step::<rf1::Thing>(&db, &dir, "drop owner", |m| m.allow_data_loss(true)).await;
    let _ = std::fs::remove_dir_all(&dir);
});

/// 4b. Dropping a table another references, the child dropping the reference in the same
/// migration.
mod dr1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_dr_p")]
    pub(crate) struct P {
        pub(crate) id: Option<i64>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_dr_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = P, on_delete = cascade)]
        pub(crate) p_id: i64,
    }
}

mod dr2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_dr_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        pub(crate) p_id: i64,
    }
}

db_test!(async fn p04b_drop_a_referenced_table(db) {
    let dir = migrations_dir("dr");
    step::<(dr1::P, dr1::C)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_dr_p (id) VALUES (1)").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_dr_c (p_id) VALUES (1)").await.unwrap();
    step::<dr2::C>(&db, &dir, "drop parent", |m| m.allow_data_loss(true)).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_dr_c").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 5. Renaming a referenced table, then its (referenced) key column.

mod rn1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_author")]
    pub(crate) struct Author {
        pub(crate) id: Option<i64>,
        #[model(max_length = 50)]
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_book")]
    pub(crate) struct Book {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Author, on_delete = cascade)]
        pub(crate) author_id: i64,
    }
}

mod rn2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_writer")]
    pub(crate) struct Writer {
        pub(crate) id: Option<i64>,
        #[model(max_length = 50)]
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_book")]
    pub(crate) struct Book {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Writer, on_delete = cascade)]
        pub(crate) author_id: i64,
    }
}

mod rn3 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_writer")]
    pub(crate) struct Writer {
        #[model(primary_key)]
        pub(crate) pk: Option<i64>,
        #[model(max_length = 50)]
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rn_book")]
    pub(crate) struct Book {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Writer, on_delete = cascade)]
        pub(crate) author_id: i64,
    }
}

db_test!(async fn p05_rename_a_referenced_table_then_its_key(db) {
    let dir = migrations_dir("rn");
    step::<(rn1::Author, rn1::Book)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_rn_author (name) VALUES ('a')").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_rn_book (author_id) VALUES (1)").await.unwrap();
    step::<(rn2::Writer, rn2::Book)>(&db, &dir, "rename table", |m| m.rename_table("mmb_rn_author", "mmb_rn_writer")).await;
    let mut orphan = rn2::Book { id: None, author_id: 99 };
    assert_eq!(orphan.save(&db).await.unwrap_err().kind(), ErrorKind::ForeignKeyViolation);
    step::<(rn3::Writer, rn3::Book)>(&db, &dir, "rename key column", |m| m.rename_column("mmb_rn_writer", "id", "pk")).await;
    let mut orphan = rn3::Book { id: None, author_id: 99 };
    assert_eq!(orphan.save(&db).await.unwrap_err().kind(), ErrorKind::ForeignKeyViolation);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_rn_book").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 6. A table renamed, then a new table under the old name: constraint names recorded for
// the renamed table are the ones the new table is given.

mod rc1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rc_a")]
    pub(crate) struct A {
        pub(crate) id: Option<i64>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rc_b")]
    pub(crate) struct B {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = A, on_delete = cascade)]
        pub(crate) a_id: i64,
        #[model(unique, max_length = 20)]
        pub(crate) code: String,
        #[model(index)]
        pub(crate) n: i64,
    }
}

mod rc2 {
    use super::rc1::A;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_rc_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = A, on_delete = cascade)]
        pub(crate) a_id: i64,
        #[model(unique, max_length = 20)]
        pub(crate) code: String,
        #[model(index)]
        pub(crate) n: i64,
    }
}

db_test!(async fn p06_rename_a_table_then_make_one_under_the_old_name(db) {
    let dir = migrations_dir("rc");
    step::<(rc1::A, rc1::B)>(&db, &dir, "create", |m| m).await;
    step::<(rc1::A, rc2::C)>(&db, &dir, "rename b -> c", |m| m.rename_table("mmb_rc_b", "mmb_rc_c")).await;
    step::<(rc1::A, rc2::C, rc1::B)>(&db, &dir, "new table b", |m| m).await;
    let _ = std::fs::remove_dir_all(&dir);
});

mod cc1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cc")]
    pub(crate) struct T {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) score: i64,
    }
}

mod cc2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cc")]
    pub(crate) struct T {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) points: i64,
    }
}

mod cc3 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cc")]
    pub(crate) struct T {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) points: i64,
        #[model(index)]
        pub(crate) score: i64,
    }
}

db_test!(async fn p06b_rename_an_indexed_column_then_add_one_under_the_old_name(db) {
    let dir = migrations_dir("cc");
    step::<cc1::T>(&db, &dir, "create", |m| m).await;
    step::<cc2::T>(&db, &dir, "rename score -> points", |m| m.rename_column("mmb_cc", "score", "points")).await;
    step::<cc3::T>(&db, &dir, "add indexed score", |m| m).await;
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 7. Hostile defaults (no newline), negative numbers and floats, added to a populated table.

mod hd1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_hd")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }
}

mod hd2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_hd")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
        #[model(default = "it's ''quoted''", max_length = 50)]
        pub(crate) d1: String,
        #[model(default = "back\\slash\\'", max_length = 50)]
        pub(crate) d2: String,
        #[model(default = "a -- b; c /* d */ e", max_length = 50)]
        pub(crate) d3: String,
        #[model(default = "ünï 🎉 x", max_length = 50)]
        pub(crate) d4: String,
        #[model(default = "long \\ 'text'")]
        pub(crate) d6: String,
        #[model(default = -5)]
        pub(crate) n1: i64,
        #[model(default = -1.5)]
        pub(crate) f1: f64,
        #[model(default = 0.0000001)]
        pub(crate) f2: f64,
        #[model(default = -3)]
        pub(crate) f3: f64,
        #[model(default = false)]
        pub(crate) b1: bool,
    }
}

async fn check_hostile(db: &Db) {
    let rows = hd2::H::query().all(db).await.unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    let b = db.backend();
    assert_eq!(r.d1, "it's ''quoted''", "{b}");
    assert_eq!(r.d2, "back\\slash\\'", "{b}");
    assert_eq!(r.d3, "a -- b; c /* d */ e", "{b}");
    assert_eq!(r.d6, "long \\ 'text'", "{b}");
    assert_eq!(
        (r.n1, r.f1, r.f2, r.f3, r.b1),
        (-5, -1.5, 0.0000001, -3.0, false),
        "{b}"
    );
    // And a row inserted by "another program" without the columns.
    db.execute_unprepared("INSERT INTO mmb_hd (name) VALUES ('raw')")
        .await
        .unwrap();
    let raw = hd2::H::query()
        .filter(hd2::H::NAME.eq("raw"))
        .all(db)
        .await
        .unwrap();
    assert_eq!(raw[0].d2, "back\\slash\\'", "{b}");
    assert_eq!(raw[0].d6, "long \\ 'text'", "{b}");
}

db_test!(async fn p07_hostile_defaults(db) {
    let dir = migrations_dir("hd");
    step::<hd1::H>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_hd (name) VALUES ('n')").await.unwrap();
    let sql = step::<hd2::H>(&db, &dir, "hostile defaults", |m| m).await;
    eprintln!("{}: {sql}", db.backend());
    check_hostile(&db).await;
    let _ = std::fs::remove_dir_all(&dir);
});

/// 7b. A NUL character in a default (the unicode case above includes `\0`): separately,
/// since PostgreSQL cannot store it at all.
mod hd_nl1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_nl")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_nl_victim")]
    pub(crate) struct Victim {
        pub(crate) id: Option<i64>,
    }
}

mod hd_nl3 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_nl")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
        #[model(default = "line1\nline2", max_length = 50)]
        pub(crate) two_lines: String,
        #[model(default = "x\nDELETE FROM mmb_nl_victim; --", max_length = 50)]
        pub(crate) evil: String,
    }
}

mod hd_nl4 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_nl")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
        #[model(default = "x\nDELETE FROM mmb_nl_victim; --", max_length = 50)]
        pub(crate) evil: String,
    }
}

// 7c. A default with a newline: the generated file's header comment lists the change with
// the default's literal; the newline is written escaped there, so nothing after it runs.
db_test!(async fn p07c_default_with_a_newline(db) {
    let dir = migrations_dir("nl");
    step::<(hd_nl1::H, hd_nl1::Victim)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_nl (name) VALUES ('n')").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_nl_victim (id) VALUES (1)").await.unwrap();
    // The line after the newline in the header comment would run as SQL.
    let sql = step::<(hd_nl4::H, hd_nl1::Victim)>(&db, &dir, "default with a newline and SQL", |m| m).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_nl_victim").await, 1, "{}: the comment ran as SQL:\n{sql}", db.backend());
    // An innocent two-line default: the migration parses, and rows get it as written.
    let sql = step::<(hd_nl3::H, hd_nl1::Victim)>(&db, &dir, "default with a newline", |m| m).await;
    assert_eq!(text(&db, "SELECT two_lines FROM mmb_nl").await.as_deref(), Some("line1\nline2"), "{sql}");
    let _ = std::fs::remove_dir_all(&dir);
});

// 7d. MariaDB sessions with NO_BACKSLASH_ESCAPES and ANSI: migrations through such a pool.
async fn mysql_session_pool(db: &Db, mode: &'static str) -> Option<Db> {
    use signals_core::sqlx::Executor as _;
    let PoolRef::MySql(p) = db.pool() else {
        return None;
    };
    Some(Db::from(
        signals_core::sqlx::mysql::MySqlPoolOptions::new()
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(signals_core::sqlx::AssertSqlSafe(format!(
                        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',{mode}')"
                    )))
                    .await?;
                    Ok(())
                })
            })
            .connect_with((*p.connect_options()).clone())
            .await
            .unwrap(),
    ))
}

async fn hostile_in_session(db: Db, mode: &'static str) {
    let Some(session) = mysql_session_pool(&db, mode).await else {
        return;
    };
    let dir = migrations_dir("mode");
    step::<hd1::H>(&session, &dir, mode, |m| m).await;
    session
        .execute_unprepared("INSERT INTO mmb_hd (name) VALUES ('n')")
        .await
        .unwrap();
    step::<hd2::H>(&session, &dir, mode, |m| m).await;
    check_hostile(&session).await;
    // Option -> non-Option with a hostile default: the UPDATE ... WHERE IS NULL path.
    step::<(hd2::H, ty1::Row)>(&session, &dir, mode, |m| m).await;
    session.execute_unprepared("INSERT INTO mmb_ty (a, b, c, d, e, f, g, h) VALUES (1, 'b', NULL, 1, 'e', 1, TRUE, 'h')").await.unwrap();
    step::<(hd2::H, ty2::Row)>(&session, &dir, mode, |m| m).await;
    assert_eq!(
        text(&session, "SELECT c FROM mmb_ty").await.as_deref(),
        Some("dflt")
    );
    session.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

db_test!(async fn p07d_mysql_no_backslash_escapes(db) {
    hostile_in_session(db, "NO_BACKSLASH_ESCAPES").await;
});

db_test!(async fn p07e_mysql_ansi(db) {
    hostile_in_session(db, "ANSI").await;
});

// 7f. A NUL character: refused in a default by the derive (UI case
// `shape/default-with-a-nul.rs`), and in a table name by `plan()`, before any file is written
// (SQLite ends a statement's text at a NUL; PostgreSQL text cannot hold one).
mod nul2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_a\u{0}b")]
    pub(crate) struct H {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }
}

#[test]
fn p07f_a_nul_in_a_name_is_refused() {
    let dir = migrations_dir("nul");
    let err = make::<nul2::H>(&dir, Backend::Sqlite).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Makemigrations);
    assert!(err.to_string().contains("NUL character"), "{err}");
    assert!(!dir.exists(), "nothing written");
}

// ---------------------------------------------------------------------------------------
// 8. Names that need quoting: reserved words and uppercase.

mod nm1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "order")]
    pub(crate) struct Order {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 20)]
        pub(crate) key: String,
        #[model(column = "Group", index)]
        pub(crate) group: i64,
        pub(crate) select: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "MixedCase")]
    pub(crate) struct Mixed {
        pub(crate) id: Option<i64>,
        #[model(column = "From", foreign_key = Order, on_delete = cascade)]
        pub(crate) from: i64,
    }
}

mod nm2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "order", unique_together(key, group))]
    pub(crate) struct Order {
        pub(crate) id: Option<i64>,
        #[model(max_length = 30)]
        pub(crate) key: String,
        #[model(column = "Group")]
        pub(crate) group: i32,
        #[model(default = "x")]
        pub(crate) select: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "MixedCase")]
    pub(crate) struct Mixed {
        pub(crate) id: Option<i64>,
        #[model(column = "From", one_to_one = Order, on_delete = cascade)]
        pub(crate) from: i64,
        #[model(column = "Where", default = 1)]
        pub(crate) r#where: i64,
    }
}

db_test!(async fn p08_reserved_and_uppercase_names(db) {
    let dir = migrations_dir("nm");
    step::<(nm1::Order, nm1::Mixed)>(&db, &dir, "create", |m| m).await;
    let mut o = nm1::Order { id: None, key: "k".into(), group: 1, select: None };
    o.save(&db).await.unwrap();
    let mut m = nm1::Mixed { id: None, from: o.id.unwrap() };
    m.save(&db).await.unwrap();
    step::<(nm2::Order, nm2::Mixed)>(&db, &dir, "alter", |m| m.allow_data_loss(true)).await;
    step::<(nm1::Order, nm1::Mixed)>(&db, &dir, "back", |m| m.allow_data_loss(true)).await;
    let _ = std::fs::remove_dir_all(&dir);
});

// 8b. Very long names (constraint names past 63 bytes).
mod ln1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_a_very_long_table_name_that_goes_on_and_on_xx")]
    pub(crate) struct Long {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 20)]
        pub(crate) a_rather_long_column_name_for_a_unique_one: String,
        #[model(index)]
        pub(crate) a_rather_long_column_name_for_an_index_one: i64,
        #[model(foreign_key = Long, on_delete = set_null)]
        pub(crate) a_rather_long_column_name_for_a_reference_x: Option<i64>,
    }
}

mod ln2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(
        table = "mmb_a_very_long_table_name_that_goes_on_and_on_xx",
        unique_together(
            a_rather_long_column_name_for_an_index_one,
            a_rather_long_column_name_for_a_reference_x
        )
    )]
    pub(crate) struct Long {
        pub(crate) id: Option<i64>,
        #[model(max_length = 30)]
        pub(crate) a_rather_long_column_name_for_a_unique_one: String,
        pub(crate) a_rather_long_column_name_for_an_index_one: i64,
        #[model(one_to_one = Long, on_delete = set_null)]
        pub(crate) a_rather_long_column_name_for_a_reference_x: Option<i64>,
    }
}

db_test!(async fn p08b_long_names(db) {
    let dir = migrations_dir("ln");
    step::<ln1::Long>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_a_very_long_table_name_that_goes_on_and_on_xx (a_rather_long_column_name_for_a_unique_one, a_rather_long_column_name_for_an_index_one) VALUES ('a', 1)").await.unwrap();
    step::<ln2::Long>(&db, &dir, "alter", |m| m).await;
    step::<ln1::Long>(&db, &dir, "back", |m| m.allow_data_loss(true)).await;
    let _ = std::fs::remove_dir_all(&dir);
});

// 8c. Two tables whose constraint names come out the same: `mmb_order` + `item_count` and
// `mmb_order_item` + `count` are both `mmb_order_item_count_idx`.
mod col {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_order")]
    pub(crate) struct Order {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) item_count: i64,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_order_item")]
    pub(crate) struct OrderItem {
        pub(crate) id: Option<i64>,
        #[model(index)]
        pub(crate) count: i64,
    }
}

db_test!(async fn p08c_constraint_names_of_two_tables_collide(db) {
    let dir = migrations_dir("col");
    step::<(col::Order, col::OrderItem)>(&db, &dir, "create", |m| m).await;
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 9. The key's type widened (i32 -> i64), with and without a child.

mod pk1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_pk")]
    pub(crate) struct K {
        pub(crate) id: Option<i32>,
        pub(crate) name: String,
    }
}

mod pk2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_pk")]
    pub(crate) struct K {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }
}

db_test!(async fn p09_key_widened(db) {
    let dir = migrations_dir("pk");
    step::<pk1::K>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_pk (name) VALUES ('a')").await.unwrap();
    match make::<pk2::K>(&dir, db.backend()).plan() {
        Err(e) => eprintln!("NOTE {}: key widening refused: {e}", db.backend()),
        Ok(_) => {
            step::<pk2::K>(&db, &dir, "key i32 -> i64", |m| m).await;
            let mut k = pk2::K { id: None, name: "b".into() };
            k.save(&db).await.unwrap();
            assert_eq!(k.id, Some(2));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});

// 9b. A reference made NULL-able (on_delete set_null) and back.
mod fn1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_fn_p")]
    pub(crate) struct P {
        pub(crate) id: Option<i64>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_fn_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = P, on_delete = cascade)]
        pub(crate) p_id: i64,
    }
}

mod fn2 {
    use super::fn1::P;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_fn_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = P, on_delete = set_null)]
        pub(crate) p_id: Option<i64>,
    }
}

db_test!(async fn p09b_reference_nullability_changes(db) {
    let dir = migrations_dir("fn");
    step::<(fn1::P, fn1::C)>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_fn_p (id) VALUES (1)").await.unwrap();
    db.execute_unprepared("INSERT INTO mmb_fn_c (p_id) VALUES (1)").await.unwrap();
    step::<(fn1::P, fn2::C)>(&db, &dir, "nullable", |m| m).await;
    step::<(fn1::P, fn1::C)>(&db, &dir, "not null", |m| m).await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mmb_fn_c").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 10. Nothing changes but the order: models in the tuple, fields in the struct.

mod ord {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ord_a")]
    pub(crate) struct A {
        pub(crate) id: Option<i64>,
        pub(crate) x: i64,
        pub(crate) y: i64,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ord_b")]
    pub(crate) struct B {
        pub(crate) id: Option<i64>,
    }

    pub(crate) mod swapped {
        use signals_core::Model;

        #[derive(Debug, Clone, PartialEq, Model)]
        #[model(table = "mmb_ord_a")]
        pub(crate) struct A {
            pub(crate) id: Option<i64>,
            pub(crate) y: i64,
            pub(crate) x: i64,
        }
    }
}

#[test]
fn p10_order_only_changes_nothing() {
    let dir = migrations_dir("ord");
    make::<(ord::A, ord::B)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    let mut problems = Vec::new();
    let tuple = make::<(ord::B, ord::A)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap();
    if !tuple.is_empty() {
        problems.push(format!(
            "models swapped in the tuple: not empty, changes {:?}, sql:\n{}",
            tuple.changes(),
            tuple.sql(Backend::Sqlite).unwrap_or_default()
        ));
    }
    if let Err(e) = make::<(ord::B, ord::A)>(&dir, Backend::Sqlite).check() {
        problems.push(format!("check fails on swapped tuple: {e}"));
    }
    let fields = make::<(ord::swapped::A, ord::B)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap();
    if !fields.is_empty() {
        problems.push(format!(
            "fields swapped: not empty, changes {:?}",
            fields.changes()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---------------------------------------------------------------------------------------
// 11. SQLite AUTOINCREMENT across a rebuild: a deleted key must not be reused.

mod ai1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ai")]
    pub(crate) struct T {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }
}

mod ai2 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_ai")]
    pub(crate) struct T {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 20)]
        pub(crate) name: String,
    }
}

db_test!(async fn p11_keys_not_reused_after_a_rebuild(db) {
    let dir = migrations_dir("ai");
    step::<ai1::T>(&db, &dir, "create", |m| m).await;
    db.execute_unprepared("INSERT INTO mmb_ai (name) VALUES ('a'), ('b'), ('c')").await.unwrap();
    db.execute_unprepared("DELETE FROM mmb_ai WHERE name = 'c'").await.unwrap();
    step::<ai2::T>(&db, &dir, "unique (a rebuild on SQLite)", |m| m.allow_data_loss(true)).await;
    let mut t = ai2::T { id: None, name: "d".into() };
    t.save(&db).await.unwrap();
    assert_eq!(t.id, Some(4), "{}: key 3 (deleted) reused", db.backend());
    let _ = std::fs::remove_dir_all(&dir);
});

// ---------------------------------------------------------------------------------------
// 12. Cancellation on SQLite: a `migrate::run` dropped midway.

mod cx1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cx_p")]
    pub(crate) struct P {
        pub(crate) id: Option<i64>,
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cx_c")]
    pub(crate) struct C {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = P, on_delete = cascade)]
        pub(crate) p_id: i64,
    }
}

mod cx2 {
    use super::cx1::C;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mmb_cx_p")]
    pub(crate) struct P {
        pub(crate) id: Option<i64>,
        #[model(max_length = 40)]
        pub(crate) name: String,
        pub(crate) extra: i64,
    }

    pub(crate) type Both = (P, C);
}

async fn fk_on_everywhere(db: &Db, what: &str) {
    let PoolRef::Sqlite(p) = db.pool() else {
        unreachable!()
    };
    let mut held = Vec::new();
    let n = p.size().max(1);
    for _ in 0..n {
        let conn = tokio::time::timeout(std::time::Duration::from_secs(5), p.acquire())
            .await
            .unwrap_or_else(|_| panic!("{what}: a connection could not be had within 5 s"))
            .unwrap();
        held.push(conn);
    }
    for (i, conn) in held.iter_mut().enumerate() {
        let on: i64 =
            signals_core::sqlx::query_scalar("SELECT foreign_keys FROM pragma_foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
        assert_eq!(
            on, 1,
            "{what}: connection {i} of {n} does not enforce references"
        );
    }
}

async fn cancel_probe(url: &str, dir: &Path, nanos: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let db = Db::connect(url).await.unwrap();
    make::<(cx1::P, cx1::C)>(dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    migrate(&db, dir).await.unwrap();
    db.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO mmb_cx_p (name) SELECT 'p' || i FROM n; \
         INSERT INTO mmb_cx_c (p_id) SELECT id FROM mmb_cx_p",
    )
    .await
    .unwrap();
    make::<cx2::Both>(dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    let cancelled =
        tokio::time::timeout(std::time::Duration::from_nanos(nanos), migrate(&db, dir)).await;
    let what = format!(
        "{url} cancelled after {nanos} ns ({})",
        if cancelled.is_err() {
            "cancelled"
        } else {
            "finished"
        }
    );
    // Right away: references enforced on every connection, the database consistent.
    let r = std::panic::AssertUnwindSafe(fk_on_everywhere(&db, &what));
    if let Err(e) = futures_util::FutureExt::catch_unwind(r).await {
        problems.push(format!("{:?}", e.downcast_ref::<String>()));
    }
    let orphan = db
        .execute_unprepared("INSERT INTO mmb_cx_c (p_id) VALUES (999999)")
        .await;
    if orphan.is_ok() {
        problems.push(format!("{what}: an orphan child was accepted"));
        let _ = db
            .execute_unprepared("DELETE FROM mmb_cx_c WHERE p_id = 999999")
            .await;
    }
    let check = scalar(&db, "SELECT COUNT(*) FROM pragma_foreign_key_check").await;
    if check != 0 {
        problems.push(format!("{what}: {check} dangling references"));
    }
    // Migrating again completes, keeping the rows.
    if let Err(e) = migrate(&db, dir).await {
        problems.push(format!("{what}: migrating again failed: {e}"));
    } else {
        if let Err(e) = db.check_schema::<cx2::Both>().await {
            problems.push(format!("{what}: check_schema: {e}"));
        }
        let n = scalar(&db, "SELECT COUNT(*) FROM mmb_cx_c").await;
        let p = scalar(&db, "SELECT COUNT(*) FROM mmb_cx_p").await;
        if (n, p) != (20000, 20000) {
            problems.push(format!("{what}: rows after: {p} parents, {n} children"));
        }
        let again = format!("{what}, after migrating again");
        let r = std::panic::AssertUnwindSafe(fk_on_everywhere(&db, &again));
        if let Err(e) = futures_util::FutureExt::catch_unwind(r).await {
            problems.push(format!("{:?}", e.downcast_ref::<String>()));
        }
    }
    db.close().await;
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p12_sqlite_cancellation_file() {
    let mut problems = Vec::new();
    for nanos in [
        1,
        1_000,
        100_000,
        1_000_000,
        5_000_000,
        20_000_000,
        60_000_000,
        200_000_000,
    ] {
        let dir = migrations_dir("cxf");
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        problems.extend(cancel_probe(&url, &dir, nanos).await);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p12_sqlite_cancellation_memory() {
    let mut problems = Vec::new();
    for nanos in [
        1,
        1_000,
        100_000,
        1_000_000,
        5_000_000,
        20_000_000,
        60_000_000,
        200_000_000,
    ] {
        let dir = migrations_dir("cxm");
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            cancel_probe("sqlite::memory:", &dir, nanos),
        )
        .await;
        match r {
            Ok(p) => problems.extend(p),
            Err(_) => problems.push(format!("memory, {nanos} ns: the probe hung for 60 s")),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---------------------------------------------------------------------------------------
// 13. Concurrency: 8 runs on the same `Db` (clones), and on sqlite::memory:.

db_test!(async fn p13_concurrent_runs_on_one_db(db) {
    let backend = db.backend();
    let dir = migrations_dir("conc");
    make::<(cx1::P, cx1::C)>(&dir, backend).plan().unwrap().write().unwrap();
    make::<cx2::Both>(&dir, backend).allow_data_loss(true).plan().unwrap().write().unwrap();
    let mut runs = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        let dir = dir.clone();
        runs.push(tokio::spawn(async move { migrate(&db, &dir).await }));
    }
    for run in runs {
        tokio::time::timeout(std::time::Duration::from_secs(60), run).await.expect("a run hung").unwrap().unwrap();
    }
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, 2);
    db.check_schema::<cx2::Both>().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p13_concurrent_runs_on_sqlite_memory() {
    let dir = migrations_dir("concm");
    make::<(cx1::P, cx1::C)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    make::<cx2::Both>(&dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    let db = Db::connect("sqlite::memory:").await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        let dir = dir.clone();
        runs.push(tokio::spawn(async move { migrate(&db, &dir).await }));
    }
    for run in runs {
        tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("a run hung")
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        2
    );
    assert_eq!(
        scalar(&db, "SELECT foreign_keys FROM pragma_foreign_keys").await,
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 12b. A run cancelled at many points of its first milliseconds: every connection of the
/// pool must enforce references afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p12b_sqlite_cancelled_early_file() {
    let mut bad = Vec::new();
    for step_us in 0..60u64 {
        let dir = migrations_dir("cxb");
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let db = Db::connect(&url).await.unwrap();
        make::<(cx1::P, cx1::C)>(&dir, Backend::Sqlite)
            .plan()
            .unwrap()
            .write()
            .unwrap();
        migrate(&db, &dir).await.unwrap();
        db.execute_unprepared("INSERT INTO mmb_cx_p (name) VALUES ('p')")
            .await
            .unwrap();
        make::<cx2::Both>(&dir, Backend::Sqlite)
            .plan()
            .unwrap()
            .write()
            .unwrap();
        let r = tokio::time::timeout(
            std::time::Duration::from_micros(step_us * 50),
            migrate(&db, &dir),
        )
        .await;
        let applied = scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await;
        let what = format!(
            "cancel after {} us (cancelled: {}, applied: {applied})",
            step_us * 50,
            r.is_err()
        );
        let check = std::panic::AssertUnwindSafe(fk_on_everywhere(&db, &what));
        if let Err(e) = futures_util::FutureExt::catch_unwind(check).await {
            bad.push(e.downcast_ref::<String>().cloned().unwrap_or_default());
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        bad.is_empty(),
        "{} of 60 runs left a connection without references enforced: {bad:#?}",
        bad.len()
    );
}
