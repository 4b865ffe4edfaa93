//! Schema from the models on every backend: the tables it creates hold the models (keys,
//! references, uniqueness enforced), and `check_schema` reports every mismatch of a live
//! database at once, while accepting tables made by Django.

use rust_decimal::Decimal;
use signals_core::schema::Schema;
use signals_core::{Backend, ErrorKind, FieldType, Json, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, Copy, PartialEq, FieldType)]
#[field(rename_all = "lowercase")]
enum Kind {
    Fiction,
    Essay,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "shelf_author")]
struct Author {
    id: Option<i64>,
    #[model(unique, max_length = 150)]
    name: String,
    /// A reference to the same table.
    #[model(foreign_key = Author, on_delete = set_null)]
    mentor_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "shelf_book")]
struct Book {
    #[model(primary_key)]
    isbn: String,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    kind: Kind,
    #[model(max_digits = 8, decimal_places = 2)]
    price: Decimal,
    extra: Option<Json<Vec<String>>>,
    uid: uuid::Uuid,
    published: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "shelf_review")]
struct Review {
    id: Option<i32>,
    #[model(foreign_key = Book, on_delete = cascade)]
    book: String,
    stars: u8,
    body: String,
}

db_test!(async fn created_tables_hold_the_models(db) {
    // Children listed first: the schema creates parents first anyway.
    db.create_tables::<(Review, Book, Author)>().await.unwrap();
    db.check_schema::<(Author, Book, Review)>().await.unwrap();

    let mut ann = Author { id: None, name: "Ann".into(), mentor_id: None };
    ann.save(&db).await.unwrap();
    let mut bob = Author { id: None, name: "Bob".into(), mentor_id: ann.id };
    bob.save(&db).await.unwrap();
    let mut book = Book {
        isbn: "978-3-16-148410-0".into(),
        author_id: bob.id.unwrap(),
        kind: Kind::Essay,
        price: "19.90".parse().unwrap(),
        extra: Some(Json(vec!["signed".into()])),
        uid: uuid::Uuid::new_v4(),
        published: None,
    };
    book.save(&db).await.unwrap();
    let mut review = Review { id: None, book: book.isbn.clone(), stars: 5, body: "Good".into() };
    review.save(&db).await.unwrap();
    assert_eq!(Book::get(&db, book.isbn.clone()).await.unwrap(), Some(book.clone()));

    // Uniqueness and references are the database's too.
    let err = Author { id: None, name: "Ann".into(), mentor_id: None }.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    let err = Review { id: None, book: "nope".into(), stars: 1, body: String::new() }
        .save(&db)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    // Case-sensitive everywhere (MySQL tables use the binary collation).
    Author { id: None, name: "ann".into(), mentor_id: None }.save(&db).await.unwrap();

    // Deleting the mentor sets NULL; deleting Bob cascades to his book and its review.
    ann.delete(&db).await.unwrap();
    bob.refresh(&db).await.unwrap();
    assert_eq!(bob.mentor_id, None);
    bob.delete(&db).await.unwrap();
    assert_eq!(Book::query().count(&db).await.unwrap(), 0);
    assert_eq!(Review::query().count(&db).await.unwrap(), 0);
});

#[test]
fn statements_per_backend() {
    let schema = Schema::of::<(Review, Book, Author)>();
    let sqlite = schema.create_statements(Backend::Sqlite);
    assert_eq!(
        sqlite,
        [
            "CREATE TABLE \"shelf_author\" (\n    \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n    \"name\" VARCHAR(150) NOT NULL,\n    \"mentor_id\" BIGINT,\n    CONSTRAINT \"shelf_author_name_key\" UNIQUE (\"name\"),\n    CONSTRAINT \"shelf_author_mentor_id_fkey\" FOREIGN KEY (\"mentor_id\") REFERENCES \"shelf_author\" (\"id\")\n)",
            "CREATE INDEX \"shelf_author_mentor_id_idx\" ON \"shelf_author\" (\"mentor_id\")",
            "CREATE TABLE \"shelf_book\" (\n    \"isbn\" TEXT NOT NULL PRIMARY KEY,\n    \"author_id\" BIGINT NOT NULL,\n    \"kind\" TEXT NOT NULL,\n    \"price\" TEXT NOT NULL,\n    \"extra\" TEXT,\n    \"uid\" BLOB NOT NULL,\n    \"published\" DATETIME,\n    CONSTRAINT \"shelf_book_author_id_fkey\" FOREIGN KEY (\"author_id\") REFERENCES \"shelf_author\" (\"id\")\n)",
            "CREATE INDEX \"shelf_book_author_id_idx\" ON \"shelf_book\" (\"author_id\")",
            "CREATE TABLE \"shelf_review\" (\n    \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n    \"book\" TEXT NOT NULL,\n    \"stars\" SMALLINT NOT NULL,\n    \"body\" TEXT NOT NULL,\n    CONSTRAINT \"shelf_review_book_fkey\" FOREIGN KEY (\"book\") REFERENCES \"shelf_book\" (\"isbn\")\n)",
            "CREATE INDEX \"shelf_review_book_idx\" ON \"shelf_review\" (\"book\")",
        ]
    );
    let pg = schema.create_sql(Backend::Postgres);
    assert!(
        pg.contains("\"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        "{pg}"
    );
    assert!(
        pg.contains("\"id\" INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        "{pg}"
    );
    assert!(pg.contains("\"price\" NUMERIC(8, 2) NOT NULL"), "{pg}");
    assert!(pg.contains("\"extra\" JSONB,"), "{pg}");
    assert!(pg.contains("\"published\" TIMESTAMPTZ"), "{pg}");
    let mysql = schema.create_statements(Backend::MySql);
    assert_eq!(mysql.len(), 3, "MySQL indexes references itself");
    assert!(
        mysql[1].contains("`isbn` VARCHAR(255) NOT NULL PRIMARY KEY"),
        "{}",
        mysql[1]
    );
    assert!(
        mysql[2].contains("`book` VARCHAR(255) NOT NULL"),
        "{}",
        mysql[2]
    );
    assert!(
        mysql[2].contains("`body` LONGTEXT NOT NULL"),
        "{}",
        mysql[2]
    );
    assert!(
        mysql[1].contains("`uid` BINARY(16) NOT NULL"),
        "{}",
        mysql[1]
    );
    assert!(
        mysql[0].ends_with(") DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"),
        "{}",
        mysql[0]
    );
}

db_test!(async fn check_reports_every_mismatch_at_once(db) {
    let (author, book) = match db.backend() {
        Backend::Postgres => (
            // `name` nullable; no `mentor_id`.
            "CREATE TABLE shelf_author (id SERIAL PRIMARY KEY, name TEXT)",
            // `price` as text, `uid` as text.
            "CREATE TABLE shelf_book (isbn TEXT PRIMARY KEY, author_id INTEGER NOT NULL, kind TEXT NOT NULL, \
             price TEXT NOT NULL, extra JSON, uid TEXT NOT NULL, published TIMESTAMPTZ)",
        ),
        Backend::MySql => (
            "CREATE TABLE shelf_author (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(150))",
            "CREATE TABLE shelf_book (isbn VARCHAR(20) PRIMARY KEY, author_id INT NOT NULL, kind TEXT NOT NULL, \
             price DOUBLE NOT NULL, extra JSON, uid DATE NOT NULL, published DATETIME(6))",
        ),
        _ => (
            "CREATE TABLE shelf_author (id INTEGER PRIMARY KEY, name TEXT)",
            // Django's `decimal` has NUMERIC affinity; `kind` as INTEGER turns '1' into 1.
            "CREATE TABLE shelf_book (isbn TEXT NOT NULL PRIMARY KEY, author_id INTEGER NOT NULL, kind INTEGER NOT NULL, \
             price decimal NOT NULL, extra TEXT, uid BLOB NOT NULL, published DATETIME)",
        ),
    };
    db.execute_unprepared(author).await.unwrap();
    db.execute_unprepared(book).await.unwrap();
    let err = db.check_schema::<(Author, Book, Review)>().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch);
    let signals_core::Error::SchemaMismatch { problems } = &err else { panic!("{err}") };
    let text = err.to_string();
    let expect_start = [
        "column `shelf_author.name` may hold NULL, but field `name` of `Author` is `String`",
        "column `shelf_author.mentor_id` (field `mentor_id` of `Author`) is missing",
    ];
    assert!(problems[0].starts_with(expect_start[0]), "{text}");
    assert_eq!(problems[1], expect_start[1], "{text}");
    let (price, uid_or_kind) = match db.backend() {
        Backend::Postgres => ("column `shelf_book.price` is `TEXT`, which cannot hold field `price` of `Book` (`Decimal`); the schema from the models makes it `NUMERIC(8, 2)`",
                              "column `shelf_book.uid` is `TEXT`, which cannot hold field `uid` of `Book` (`uuid::Uuid`)"),
        Backend::MySql => ("column `shelf_book.price` is `DOUBLE`, which cannot hold field `price` of `Book` (`Decimal`); the schema from the models makes it `DECIMAL(8, 2)`",
                           "column `shelf_book.uid` is `DATE`, which cannot hold field `uid` of `Book` (`uuid::Uuid`)"),
        _ => ("column `shelf_book.price` is declared `decimal`, but field `price` of `Book` is `Decimal`: SQLite would turn a decimal such as 1.10 into the inexact REAL 1.1",
              "column `shelf_book.kind` is declared `INTEGER`, but field `kind` of `Book` is `Kind`: SQLite would turn text that looks like a number into a number"),
    };
    assert!(problems.iter().any(|p| p.starts_with(price)), "{text}");
    assert!(problems.iter().any(|p| p.starts_with(uid_or_kind)), "{text}");
    assert_eq!(problems.last().unwrap(), "table `shelf_review` (model `Review`) is missing", "{text}");
    assert_eq!(problems.len(), 5, "{text}");
    // The narrower integer key and JSON (not JSONB) columns are fine: they read.
    assert!(!text.contains("shelf_author.id") && !text.contains("extra"), "{text}");
});

// Tables as Django creates them (its migrations' SQL for the example's kind of fields) pass
// the check and hold the models.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "blog_entry")]
struct Entry {
    id: Option<i64>,
    #[model(max_length = 50)]
    slug: String,
    #[model(max_digits = 10, decimal_places = 2)]
    price: Decimal,
    metadata: serde_json::Value,
    rating: Option<u16>,
    created: chrono::DateTime<chrono::Utc>,
}

db_test!(async fn tables_made_by_django_pass_the_check(db) {
    let ddl = match db.backend() {
        Backend::Postgres => "CREATE TABLE blog_entry (id serial NOT NULL PRIMARY KEY, slug varchar(50) NOT NULL, \
             price numeric(10, 2) NOT NULL, metadata jsonb NOT NULL, rating integer NULL CHECK (rating >= 0), \
             created timestamp with time zone NOT NULL)",
        Backend::MySql => "CREATE TABLE blog_entry (id integer AUTO_INCREMENT NOT NULL PRIMARY KEY, slug varchar(50) NOT NULL, \
             price numeric(10, 2) NOT NULL, metadata json NOT NULL, rating integer UNSIGNED NULL, \
             created datetime(6) NOT NULL)",
        _ => "CREATE TABLE blog_entry (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, slug varchar(50) NOT NULL, \
             price text NOT NULL, metadata text NOT NULL CHECK ((JSON_VALID(metadata) OR metadata IS NULL)), \
             rating integer unsigned NULL CHECK (rating >= 0), created datetime NOT NULL)",
    };
    db.execute_unprepared(ddl).await.unwrap();
    db.check_schema::<Entry>().await.unwrap();
    let created = chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap();
    let mut entry = Entry {
        id: None,
        slug: "hello".into(),
        price: "1234.50".parse().unwrap(),
        metadata: serde_json::json!({"draft": false, "tags": ["a", "b"]}),
        rating: Some(u16::MAX),
        created,
    };
    entry.save(&db).await.unwrap();
    assert_eq!(Entry::get(&db, entry.id.unwrap()).await.unwrap(), Some(entry.clone()));
    assert_eq!(
        Entry::query().filter(Entry::PRICE.ge("1000".parse::<Decimal>().unwrap())).count(&db).await.unwrap(),
        1
    );
});

// Item 6 of the third reliability round: `check_schema` describes the tables as they are now,
// also on a connection that checked them before (a pooled connection keeps the statements it
// prepared, with the column types of then).
db_test!(async fn check_schema_sees_a_type_changed_since_the_last_check(db) {
    use signals_core::{Db, PoolRef};
    let alter = match db.backend() {
        Backend::Postgres => "ALTER TABLE shelf_review ALTER COLUMN stars TYPE TEXT",
        Backend::MySql => "ALTER TABLE shelf_review MODIFY stars TEXT NOT NULL",
        _ => return, // SQLite's declared types are read afresh from `pragma_table_info`
    };
    // One connection, so the second check runs where the first one did.
    let one = match db.pool() {
        PoolRef::Postgres(p) => Db::from(
            signals_core::sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with((*p.connect_options()).clone())
                .await
                .unwrap(),
        ),
        PoolRef::MySql(p) => Db::from(
            signals_core::sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with((*p.connect_options()).clone())
                .await
                .unwrap(),
        ),
        _ => unreachable!(),
    };
    one.create_tables::<(Author, Book, Review)>().await.unwrap();
    one.check_schema::<(Author, Book, Review)>().await.unwrap();
    one.execute_unprepared(alter).await.unwrap();
    for _ in 0..2 {
        let err = one.check_schema::<(Author, Book, Review)>().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SchemaMismatch, "{err}");
        assert!(err.to_string().contains("shelf_review.stars"), "{err}");
    }
    one.close().await;
});

// Item 8: a decimal reads back with the places its column declares, on every backend
// (SQLite keeps the text it was given: `1.5` read as `1.5` where the servers said `1.50`).
db_test!(async fn decimals_read_back_with_their_declared_places(db) {
    db.create_tables::<(Author, Book, Review)>().await.unwrap();
    let mut ann = Author { id: None, name: "Ann".into(), mentor_id: None };
    ann.save(&db).await.unwrap();
    for (i, (given, read)) in [("1.5", "1.50"), ("7", "7.00"), ("-0.1", "-0.10"), ("12.345", "12.35"), ("0", "0.00")]
        .into_iter()
        .enumerate()
    {
        let mut book = Book {
            isbn: format!("d{i}"),
            author_id: ann.id.unwrap(),
            kind: Kind::Essay,
            price: given.parse().unwrap(),
            extra: None,
            uid: uuid::Uuid::new_v4(),
            published: None,
        };
        book.save(&db).await.unwrap();
        let got = Book::get(&db, book.isbn.clone()).await.unwrap().unwrap();
        assert_eq!(got.price.to_string(), read, "{given} on {}", db.backend());
        assert_eq!(got.price.scale(), 2);
        let queried = Book::query().filter(Book::ISBN.eq(book.isbn.clone())).all(&db).await.unwrap();
        assert_eq!(queried[0].price.to_string(), read);
    }
});

// Item 4 of the third reliability round: `migrate::run` from eight connections at once applies
// each migration once, on every backend (MariaDB answers sqlx's `GET_LOCK(name, -1)` with
// NULL, no lock: concurrent first runs found migrations half applied, or applied them twice).
db_test!(async fn concurrent_migrations_apply_each_migration_once(db) {
    use std::borrow::Cow;
    use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
    use signals_core::sqlx::{AssertSqlSafe, SqlSafeStr};
    let migration = |version: i64, sql: &'static str| {
        Migration::new(version, Cow::Borrowed("m"), MigrationType::Simple, AssertSqlSafe(sql).into_sql_str(), false)
    };
    let migrator = std::sync::Arc::new(Migrator::with_migrations(vec![
        migration(1, "CREATE TABLE mig_a (id BIGINT PRIMARY KEY, note VARCHAR(20) NOT NULL)"),
        migration(2, "ALTER TABLE mig_a ADD COLUMN extra BIGINT"),
        migration(3, "INSERT INTO mig_a (id, note) VALUES (1, 'once')"),
    ]));
    // Eight pools, as eight processes would have.
    let mut pools = Vec::new();
    for _ in 0..8 {
        pools.push(signals_tests::another_pool(&db).await);
    }
    let tasks: Vec<_> = pools
        .into_iter()
        .map(|pool| {
            let migrator = migrator.clone();
            tokio::spawn(async move {
                let res = signals_core::migrate::run(&pool, &migrator).await;
                pool.close().await;
                res
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(signals_tests::scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, 3);
    assert_eq!(signals_tests::scalar(&db, "SELECT COUNT(*) FROM mig_a").await, 1);
    // Run again: nothing to do.
    signals_core::migrate::run(&db, &migrator).await.unwrap();
});

// `migrate::run` and `check_schema` run on connections of the pool, with the session its
// `after_connect` sets up: a PostgreSQL `search_path` (a schema per tenant), a MySQL
// `sql_mode` (`ANSI_QUOTES`).
db_test!(async fn migrations_and_checks_run_in_the_pools_sessions(db) {
    use std::borrow::Cow;
    use signals_core::sqlx::migrate::{Migration, MigrationType, Migrator};
    use signals_core::sqlx::{AssertSqlSafe, Executor as _, SqlSafeStr};
    use signals_core::{Db, PoolRef};
    let migration = |sql: String| {
        Migrator::with_migrations(vec![Migration::new(1, Cow::Borrowed("m"), MigrationType::Simple, AssertSqlSafe(sql).into_sql_str(), false)])
    };
    match db.pool() {
        PoolRef::Postgres(p) => {
            db.execute_unprepared("CREATE SCHEMA tenant1").await.unwrap();
            let tenant = Db::from(
                signals_core::sqlx::postgres::PgPoolOptions::new()
                    .after_connect(|conn, _| Box::pin(async move {
                        conn.execute("SET search_path TO tenant1").await?;
                        Ok(())
                    }))
                    .connect_with((*p.connect_options()).clone())
                    .await
                    .unwrap(),
            );
            let ddl = Schema::of::<(Author, Book, Review)>().create_sql(Backend::Postgres);
            signals_core::migrate::run(&tenant, &migration(ddl)).await.unwrap();
            let in_tenant = signals_tests::scalar(&db, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'tenant1' AND table_name = 'shelf_book'").await;
            assert_eq!(in_tenant, 1, "the tables went where the pool's sessions look");
            tenant.check_schema::<(Author, Book, Review)>().await.unwrap();
            tenant.close().await;
        }
        PoolRef::MySql(p) => {
            let ansi = Db::from(
                signals_core::sqlx::mysql::MySqlPoolOptions::new()
                    .after_connect(|conn, _| Box::pin(async move {
                        conn.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')").await?;
                        Ok(())
                    }))
                    .connect_with((*p.connect_options()).clone())
                    .await
                    .unwrap(),
            );
            let quoted = migration(r#"CREATE TABLE "quoted_t" ("id" BIGINT PRIMARY KEY)"#.to_owned());
            signals_core::migrate::run(&ansi, &quoted).await.unwrap();
            ansi.close().await;
        }
        _ => {}
    }
});

// Item 8, stored: a decimal is rounded to its places as it is written, on SQLite as the
// servers round it, so filters find the same rows everywhere; one with more digits than its
// column holds is refused on every backend.
db_test!(async fn decimals_are_stored_at_their_declared_places(db) {
    db.create_tables::<(Author, Book, Review)>().await.unwrap();
    let mut ann = Author { id: None, name: "Ann".into(), mentor_id: None };
    ann.save(&db).await.unwrap();
    let author = ann.id.unwrap();
    let book = |isbn: &str, price: &str| Book {
        isbn: isbn.into(),
        author_id: author,
        kind: Kind::Essay,
        price: price.parse().unwrap(),
        extra: None,
        uid: uuid::Uuid::new_v4(),
        published: None,
    };
    book("a", "12.345").save(&db).await.unwrap();
    book("b", "12.344").save(&db).await.unwrap();
    let d = |s: &str| -> Decimal { s.parse().unwrap() };
    for (filter, want) in [
        (Book::PRICE.eq(d("12.35")), vec!["a"]),
        (Book::PRICE.eq(d("12.345")), vec![]),
        (Book::PRICE.eq(d("12.34")), vec!["b"]),
        (Book::PRICE.gt(d("12.344")) & Book::PRICE.lt(d("12.35")), vec![]),
    ] {
        let shown = format!("{filter:?}");
        let mut isbns: Vec<String> = Book::query().filter(filter).all(&db).await.unwrap().into_iter().map(|b| b.isbn).collect();
        isbns.sort();
        assert_eq!(isbns, want, "{shown} on {}", db.backend());
    }
    // DECIMAL(8, 2) holds 6 digits before its point.
    let err = book("c", "999999.995").save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    assert!(err.to_string().contains("`price`"), "{err}");
    book("c", "999999.994").save(&db).await.unwrap();
    assert_eq!(Book::get(&db, "c".to_owned()).await.unwrap().unwrap().price.to_string(), "999999.99");
});
