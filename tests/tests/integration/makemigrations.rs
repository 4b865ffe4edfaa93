//! Migrations written from the models (issue 28): each kind of change applied to a populated
//! database keeps its rows, and the tables migrations make are those `create_tables` makes
//! from the same models, on every backend.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use signals_core::makemigrations::{MakeMigrations, backend_dir};
use signals_core::schema::{Models, Schema};
use signals_core::sqlx::migrate::Migrator;
use signals_core::{Backend, Db, ErrorKind, Model};
use signals_tests::catalog::catalog;
use signals_tests::{db_test, scalar, with_scratch};

/// The first release: authors and their books.
mod v1 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_author")]
    pub(crate) struct Author {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 100)]
        pub(crate) name: String,
        pub(crate) bio: Option<String>,
        pub(crate) nickname: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_book")]
    pub(crate) struct Book {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Author, on_delete = cascade)]
        pub(crate) author_id: i64,
        #[model(max_length = 200)]
        pub(crate) title: String,
        pub(crate) pages: i32,
    }
}

/// Every kind of change that keeps data: columns added (NULL-able, with a default, and
/// neither), a text widened, NULL-able made NOT NULL with a default, an integer widened, a
/// decimal added, an index, a `unique_together`, an `on_delete`, new tables with references
/// and a many-to-many through table.
mod v2 {
    use rust_decimal::Decimal;
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_author")]
    pub(crate) struct Author {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 150)]
        pub(crate) name: String,
        #[model(default = "")]
        pub(crate) bio: String,
        pub(crate) nickname: Option<String>,
        #[model(default = "it's \\ here", max_length = 254)]
        pub(crate) email: String,
        pub(crate) score: i64,
        #[model(default = true)]
        pub(crate) active: bool,
        pub(crate) born: Option<chrono::NaiveDate>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_book", unique_together(author_id, title))]
    #[model(many_to_many(tags: Tag, through = BookTag, related_name = books))]
    pub(crate) struct Book {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Author, on_delete = restrict)]
        pub(crate) author_id: i64,
        #[model(max_length = 200, index)]
        pub(crate) title: String,
        pub(crate) pages: i64,
        #[model(max_digits = 8, decimal_places = 2)]
        pub(crate) price: Option<Decimal>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_tag")]
    pub(crate) struct Tag {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 50)]
        pub(crate) name: String,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_book_tag", unique_together(book_id, tag_id))]
    pub(crate) struct BookTag {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Book, on_delete = cascade)]
        pub(crate) book_id: i64,
        #[model(foreign_key = Tag, on_delete = cascade)]
        pub(crate) tag_id: i64,
    }
}

/// Changes that destroy or rename: a column dropped, a column renamed, a text narrowed, a
/// table renamed, tables dropped, a unique set and an index dropped.
mod v3 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_author")]
    pub(crate) struct Author {
        pub(crate) id: Option<i64>,
        #[model(unique, max_length = 120)]
        pub(crate) name: String,
        #[model(default = "")]
        pub(crate) bio: String,
        #[model(default = "it's \\ here", max_length = 254)]
        pub(crate) email: String,
        pub(crate) points: i64,
        #[model(default = true)]
        pub(crate) active: bool,
        pub(crate) born: Option<chrono::NaiveDate>,
    }

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_volume")]
    pub(crate) struct Volume {
        pub(crate) id: Option<i64>,
        #[model(foreign_key = Author, on_delete = restrict)]
        pub(crate) author_id: i64,
        #[model(max_length = 200)]
        pub(crate) title: String,
        pub(crate) pages: i64,
        #[model(max_digits = 8, decimal_places = 2)]
        pub(crate) price: Option<rust_decimal::Decimal>,
    }
}

/// A fresh migrations directory for one test.
pub(crate) fn migrations_dir(test: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "signals-mm-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Applies the migrations of `dir` for `db`'s backend, as an application does.
pub(crate) async fn migrate(db: &Db, dir: &Path) -> signals_core::Result<()> {
    let migrator = Migrator::new(dir.join(backend_dir(db.backend())))
        .await
        .expect("the migrations resolve");
    signals_core::migrate::run(db, &migrator).await
}

pub(crate) fn make<T: Models>(dir: &Path, backend: Backend) -> MakeMigrations {
    MakeMigrations::new(dir, &Schema::of::<T>()).backends([backend])
}

/// The catalog of the tables `create_tables` makes for models `T`, in a fresh database.
async fn fresh_catalog<T: Models>(backend: Backend) -> Vec<String> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let slot = out.clone();
    with_scratch(backend, "mm_fresh", async move |url: String| {
        let db = Db::connect(&url).await.unwrap();
        db.create_tables::<T>().await.unwrap();
        *slot.lock().unwrap() = catalog(&db, "mm_").await;
        db.close().await;
    })
    .await;
    out.lock().unwrap().clone()
}

/// The catalogs of `db` (migrated) and of fresh tables from `T`, which must be equal.
async fn assert_same_tables<T: Models>(db: &Db, step: &str) {
    let migrated = catalog(db, "mm_").await;
    let fresh = fresh_catalog::<T>(db.backend()).await;
    assert_eq!(
        migrated,
        fresh,
        "{}: after {step}, the migrated tables differ from those made from the models",
        db.backend()
    );
}

db_test!(async fn each_change_applied_to_a_populated_database_keeps_its_rows(db) {
    let backend = db.backend();
    let dir = migrations_dir("rows");

    // The first release.
    let written = make::<(v1::Author, v1::Book)>(&dir, backend).name("initial").plan().unwrap().write().unwrap();
    assert_eq!(written.len(), 2, "a migration and its state: {written:?}");
    migrate(&db, &dir).await.unwrap();
    assert_same_tables::<(v1::Author, v1::Book)>(&db, "0001").await;
    let mut ann = v1::Author { id: None, name: "Ann".into(), bio: None, nickname: Some("annie".into()) };
    ann.save(&db).await.unwrap();
    let mut bob = v1::Author { id: None, name: "Bob".into(), bio: Some("writes".into()), nickname: None };
    bob.save(&db).await.unwrap();
    for (author, title, pages) in [(&ann, "First", 100), (&ann, "Second", 200), (&bob, "Third", 300)] {
        let mut book = v1::Book { id: None, author_id: author.id.unwrap(), title: title.into(), pages };
        book.save(&db).await.unwrap();
    }

    // No change: nothing to write, and the check passes.
    assert!(make::<(v1::Author, v1::Book)>(&dir, backend).plan().unwrap().is_empty());
    make::<(v1::Author, v1::Book)>(&dir, backend).check().unwrap();

    // Release two: the check sees the drift, then the migration keeps every row.
    let err = make::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&dir, backend).check().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Makemigrations);
    let text = err.to_string();
    for change in [
        "create table `mm_tag`",
        "create table `mm_book_tag`",
        "add column `mm_author.score`",
        "alter column `mm_author.bio`",
        "add unique `mm_book_author_id_title_key` on `mm_book` (author_id, title)",
        "add index `mm_book_title_idx` on `mm_book` (title)",
        "on_delete of `mm_book.author_id`: cascade → restrict",
    ] {
        assert!(text.contains(change), "{backend}: `{change}` missing from:\n{text}");
    }
    let plan = make::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&dir, backend).plan().unwrap();
    assert!(plan.destroys().is_empty(), "{:?}", plan.destroys());
    assert_eq!(plan.version(), 2);
    plan.write().unwrap();
    migrate(&db, &dir).await.unwrap();
    assert_same_tables::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&db, "0002").await;
    db.check_schema::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>().await.unwrap();
    let authors = v2::Author::query().order_by(v2::Author::ID.asc()).all(&db).await.unwrap();
    assert_eq!(authors.len(), 2);
    assert_eq!((authors[0].name.as_str(), authors[0].bio.as_str()), ("Ann", ""), "NULL takes the default");
    assert_eq!(authors[0].nickname.as_deref(), Some("annie"));
    assert_eq!((authors[1].name.as_str(), authors[1].bio.as_str()), ("Bob", "writes"));
    for a in &authors {
        assert_eq!(a.email, "it's \\ here", "the default, quote and backslash as written");
        assert_eq!((a.score, a.active, a.born), (0, true, None));
    }
    let books = v2::Book::query().order_by(v2::Book::ID.asc()).all(&db).await.unwrap();
    let pages: Vec<(String, i64)> = books.iter().map(|b| (b.title.clone(), b.pages)).collect();
    assert_eq!(pages, [("First".into(), 100), ("Second".into(), 200), ("Third".into(), 300)]);
    // The new constraints hold, and the new tables work.
    let mut dup = v2::Book { id: None, author_id: ann.id.unwrap(), title: "First".into(), pages: 1, price: Some(Decimal::new(1050, 2)) };
    assert_eq!(dup.save(&db).await.unwrap_err().kind(), ErrorKind::UniqueViolation);
    let mut rust = v2::Tag { id: None, name: "rust".into() };
    rust.save(&db).await.unwrap();
    books[0].tags().add(&db, [rust.id.unwrap()]).await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mm_book_tag").await, 1);

    // Release three destroys and renames: refused without the flag, naming what goes and the
    // renames that would keep it.
    let err = make::<(v3::Author, v3::Volume)>(&dir, backend).plan().unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Makemigrations, "{text}");
    for destroyed in [
        "column `mm_author.nickname` and its values",
        "column `mm_author.score` and its values",
        "table `mm_book_tag` and every row in it",
        "--rename-column mm_author.score=points",
        "--rename-table mm_book=mm_volume",
    ] {
        assert!(text.contains(destroyed), "{backend}: `{destroyed}` missing from:\n{text}");
    }
    // A shorter VARCHAR cuts values on the servers; SQLite keeps any text in any text column.
    let narrows = text.contains("column `mm_author.name` narrows from VARCHAR(150) to VARCHAR(120)");
    assert_eq!(narrows, backend != Backend::Sqlite, "{backend}: {text}");
    assert!(!dir.join(backend_dir(backend)).join("0003_auto.sql").exists());
    // Renames: one given as a flag, one answered on the "terminal".
    let asked = Arc::new(Mutex::new(Vec::new()));
    let questions = asked.clone();
    let plan = make::<(v3::Author, v3::Volume)>(&dir, backend)
        .rename_column("mm_author", "score", "points")
        .ask(move |q| {
            questions.lock().unwrap().push(q.to_owned());
            q.contains("`mm_book` renamed to `mm_volume`")
        })
        .allow_data_loss(true)
        .name("volumes")
        .plan()
        .unwrap();
    assert_eq!(*asked.lock().unwrap(), ["Was table `mm_book` renamed to `mm_volume`? [y/N]"]);
    let files = plan.write().unwrap();
    let sql = std::fs::read_to_string(&files[0]).unwrap();
    assert!(sql.contains("-- DESTROYS"), "{sql}");
    assert!(sql.contains("column `mm_author.nickname` and its values"), "{sql}");
    migrate(&db, &dir).await.unwrap();
    assert_same_tables::<(v3::Author, v3::Volume)>(&db, "0003").await;
    let authors = v3::Author::query().order_by(v3::Author::ID.asc()).all(&db).await.unwrap();
    let kept: Vec<(&str, &str, i64)> = authors.iter().map(|a| (a.name.as_str(), a.bio.as_str(), a.points)).collect();
    assert_eq!(kept, [("Ann", "", 0), ("Bob", "writes", 0)]);
    let volumes = v3::Volume::query().order_by(v3::Volume::ID.asc()).all(&db).await.unwrap();
    let titles: Vec<&str> = volumes.iter().map(|v| v.title.as_str()).collect();
    assert_eq!(titles, ["First", "Second", "Third"], "the renamed table keeps its rows");
    assert!(make::<(v3::Author, v3::Volume)>(&dir, backend).plan().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
});

/// A model whose new NOT NULL column has no default: the rows already there get the type's
/// zero, and the file says so.
mod v4 {
    use signals_core::Model;

    #[derive(Debug, Clone, PartialEq, Model)]
    #[model(table = "mm_note")]
    pub(crate) struct Note {
        pub(crate) id: Option<i64>,
        pub(crate) body: Option<String>,
    }

    pub(crate) mod next {
        use signals_core::Model;

        #[derive(Debug, Clone, PartialEq, Model)]
        #[model(table = "mm_note")]
        pub(crate) struct Note {
            pub(crate) id: Option<i64>,
            pub(crate) body: String,
            pub(crate) stamp: chrono::DateTime<chrono::Utc>,
            pub(crate) data: Vec<u8>,
            pub(crate) key: uuid::Uuid,
        }
    }
}

db_test!(async fn a_column_that_refuses_null_without_a_default_fails_on_null_rows_and_fills_new_ones(db) {
    let backend = db.backend();
    let dir = migrations_dir("zero");
    make::<v4::Note>(&dir, backend).plan().unwrap().write().unwrap();
    migrate(&db, &dir).await.unwrap();
    let mut note = v4::Note { id: None, body: None };
    note.save(&db).await.unwrap();
    // `body` becomes NOT NULL with no default: the NULL there fails the migration, which
    // (where DDL is transactional) leaves everything as it was.
    let plan = make::<v4::next::Note>(&dir, backend).plan().unwrap();
    let sql = plan.sql(backend).unwrap();
    assert!(sql.contains("rows there get"), "{sql}");
    plan.write().unwrap();
    let err = migrate(&db, &dir).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Migrate, "{err}");
    if backend != Backend::MySql {
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mm_note").await, 1, "{backend}: the row is kept");
        assert_eq!(v4::Note::query().all(&db).await.unwrap(), [note.clone()]);
        // Filled by hand, the same migration then applies.
        db.execute_unprepared("UPDATE mm_note SET body = 'filled'").await.unwrap();
        migrate(&db, &dir).await.unwrap();
        let loaded = v4::next::Note::query().all(&db).await.unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].body, "filled");
        assert_eq!(loaded[0].stamp.timestamp(), 0, "the zero of a time is 1970");
        assert_eq!((loaded[0].data.len(), loaded[0].key), (0, uuid::Uuid::nil()));
        assert_same_tables::<v4::next::Note>(&db, "the zero fill").await;
    }
    let _ = std::fs::remove_dir_all(&dir);
});

db_test!(async fn eight_concurrent_migrate_runs_apply_each_generated_migration_once(db) {
    let backend = db.backend();
    let dir = migrations_dir("race");
    make::<(v1::Author, v1::Book)>(&dir, backend).plan().unwrap().write().unwrap();
    make::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&dir, backend).plan().unwrap().write().unwrap();
    let mut runs = Vec::new();
    for _ in 0..8 {
        let pool = signals_tests::another_pool(&db).await;
        let dir = dir.clone();
        runs.push(tokio::spawn(async move {
            let res = migrate(&pool, &dir).await;
            pool.close().await;
            res
        }));
    }
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await, 2);
    assert_same_tables::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&db, "eight runs").await;
    let _ = std::fs::remove_dir_all(&dir);
});

/// Migrations written by hand are not guessed at: makemigrations refuses the directory until
/// a baseline records what they make; later hand-written ones (data fixes) are noted.
#[test]
fn hand_written_migrations_are_adopted_by_a_baseline() {
    let dir = migrations_dir("baseline");
    let sqlite = dir.join("sqlite");
    std::fs::create_dir_all(&sqlite).unwrap();
    std::fs::write(
        sqlite.join("0001_init.sql"),
        "CREATE TABLE mm_note (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);\n",
    )
    .unwrap();
    let err = make::<v4::Note>(&dir, Backend::Sqlite).plan().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Makemigrations);
    assert!(err.to_string().contains("no recorded state"), "{err}");
    let written = make::<v4::Note>(&dir, Backend::Sqlite).baseline().unwrap();
    assert_eq!(written, [sqlite.join("0001_init.state.json")]);
    assert!(
        make::<v4::Note>(&dir, Backend::Sqlite)
            .plan()
            .unwrap()
            .is_empty()
    );
    std::fs::write(
        sqlite.join("0002_fix.sql"),
        "UPDATE mm_note SET body = '' WHERE body IS NULL;\n",
    )
    .unwrap();
    let plan = make::<v4::Note>(&dir, Backend::Sqlite).plan().unwrap();
    assert!(plan.is_empty());
    assert!(
        plan.notes()[0].contains("0002_fix.sql` has no recorded state"),
        "{:?}",
        plan.notes()
    );
    // The next migration is numbered after the hand-written one.
    let plan = make::<v4::next::Note>(&dir, Backend::Sqlite)
        .plan()
        .unwrap();
    assert_eq!(plan.version(), 3);
    // A state file that is not one is reported, naming it.
    std::fs::write(sqlite.join("0001_init.state.json"), "{").unwrap();
    std::fs::remove_file(sqlite.join("0002_fix.sql")).unwrap();
    let err = make::<v4::Note>(&dir, Backend::Sqlite).plan().unwrap_err();
    assert!(
        err.to_string()
            .contains("0001_init.state.json` is not a migration state"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SQLite rebuilds a table with references unenforced (as it must) and checks them before the
/// migration commits: a reference pointing nowhere fails the migration, which leaves the
/// tables as they were, and the pool's connections enforce references again afterwards.
#[tokio::test]
async fn a_sqlite_rebuild_that_leaves_a_dangling_reference_fails_whole() {
    let dir = migrations_dir("dangling");
    let file = dir.join("db.sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", file.display());
    let db = Db::connect(&url).await.unwrap();
    make::<(v1::Author, v1::Book)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    migrate(&db, &dir).await.unwrap();
    let mut ann = v1::Author {
        id: None,
        name: "Ann".into(),
        bio: None,
        nickname: None,
    };
    ann.save(&db).await.unwrap();
    db.execute_unprepared("PRAGMA foreign_keys = OFF; INSERT INTO mm_book (author_id, title, pages) VALUES (99, 'Orphan', 1); PRAGMA foreign_keys = ON")
        .await
        .unwrap();
    make::<(v2::Author, v2::Book, v2::Tag, v2::BookTag)>(&dir, Backend::Sqlite)
        .plan()
        .unwrap()
        .write()
        .unwrap();
    let err = migrate(&db, &dir).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("a reference points to a row that is not there"),
        "{err}"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        1
    );
    assert_same_tables::<(v1::Author, v1::Book)>(&db, "the failed rebuild").await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM mm_book").await, 1);
    // References are enforced again on every connection of the pool.
    for _ in 0..4 {
        assert_eq!(
            scalar(&db, "SELECT foreign_keys FROM pragma_foreign_keys").await,
            1
        );
    }
    let mut orphan = v1::Book {
        id: None,
        author_id: 12345,
        title: "x".into(),
        pages: 1,
    };
    assert_eq!(
        orphan.save(&db).await.unwrap_err().kind(),
        ErrorKind::ForeignKeyViolation
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
