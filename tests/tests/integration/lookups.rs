//! Case-insensitive lookups and orderings (issue 29, item 4): the same rows, in the same
//! order, on every backend, as a plain Rust definition gives them: ASCII letters fold, every
//! other character is itself, `%` and `_` are no wildcards; also on a MariaDB table with a
//! case-insensitive collation and under `NO_BACKSLASH_ESCAPES,ANSI`.

use signals_core::{Backend, Db, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "lk_word")]
struct Word {
    id: Option<i64>,
    #[model(max_length = 100)]
    text: String,
}

const WORDS: &[&str] = &[
    "Rust",
    "rust",
    "RUST",
    "rUsT nation",
    "trusty",
    "Crust!",
    "Éclair",
    "éclair",
    "ÉCLAIR",
    "straße",
    "STRASSE",
    "Σίσυφος",
    "σίσυφος",
    "İstanbul",
    "istanbul",
    "100% rust",
    "100 rust",
    "a_b",
    "axb",
    "back\\slash",
    "BACK\\SLASH",
    "it's",
    "IT'S",
    "",
    "Z",
    "a",
    "B",
    "_",
    "%",
];

const NEEDLES: &[&str] = &[
    "rust",
    "RUST",
    "Rust",
    "éclair",
    "ÉCLAIR",
    "strasse",
    "straße",
    "σίσυφος",
    "istanbul",
    "100%",
    "a_b",
    "_",
    "%",
    "back\\slash",
    "it's",
    "",
    "z",
    "ST",
];

/// A lookup, its condition, and what it matches by a plain Rust definition.
type Case<'a> = (
    &'static str,
    signals_core::Filter<Word>,
    Box<dyn Fn(&str) -> bool + 'a>,
);

fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

async fn texts(db: &Db, query: signals_core::Query<Word>) -> Vec<String> {
    query
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.text)
        .collect()
}

async fn check_all(db: &Db, what: &str) {
    let backend = db.backend();
    let mut all: Vec<String> = WORDS.iter().map(|s| (*s).to_owned()).collect();
    all.sort();
    for needle in NEEDLES {
        let n = fold(needle);
        let cases: [Case<'_>; 4] = [
            (
                "iexact",
                Word::TEXT.iexact(*needle),
                Box::new(|w: &str| fold(w) == n),
            ),
            (
                "icontains",
                Word::TEXT.icontains(*needle),
                Box::new(|w: &str| fold(w).contains(&n)),
            ),
            (
                "istartswith",
                Word::TEXT.istartswith(*needle),
                Box::new(|w: &str| fold(w).starts_with(&n)),
            ),
            (
                "iendswith",
                Word::TEXT.iendswith(*needle),
                Box::new(|w: &str| fold(w).ends_with(&n)),
            ),
        ];
        for (lookup, filter, oracle) in cases {
            let mut got = texts(db, Word::query().filter(filter)).await;
            got.sort();
            let want: Vec<String> = all.iter().filter(|w| oracle(w)).cloned().collect();
            assert_eq!(got, want, "{backend} {what}: {lookup}({needle:?})");
        }
    }
    // Orders: by the folded text, then the text, in code points; and the text alone.
    let mut want = all.clone();
    want.sort_by(|a, b| fold(a).cmp(&fold(b)).then(a.cmp(b)));
    let got = texts(db, Word::query().order_by(Word::TEXT.asc_ignoring_case())).await;
    assert_eq!(got, want, "{backend} {what}: asc_ignoring_case");
    want.reverse();
    let got = texts(db, Word::query().order_by(Word::TEXT.desc_ignoring_case())).await;
    assert_eq!(got, want, "{backend} {what}: desc_ignoring_case");
    let got = texts(db, Word::query().order_by(Word::TEXT.asc_binary())).await;
    assert_eq!(got, all, "{backend} {what}: asc_binary");
    let mut back = all.clone();
    back.reverse();
    let got = texts(db, Word::query().order_by(Word::TEXT.desc_binary())).await;
    assert_eq!(got, back, "{backend} {what}: desc_binary");
    // Paged in SQL, with a condition: what an admin's search does.
    let page = texts(
        db,
        Word::query()
            .filter(Word::TEXT.icontains("rust"))
            .order_by(Word::TEXT.asc_ignoring_case())
            .limit(3)
            .offset(2),
    )
    .await;
    let mut rusty: Vec<String> = all
        .iter()
        .filter(|w| fold(w).contains("rust"))
        .cloned()
        .collect();
    rusty.sort_by(|a, b| fold(a).cmp(&fold(b)).then(a.cmp(b)));
    assert_eq!(page, rusty[2..5], "{backend} {what}: a page");
}

db_test!(async fn case_insensitive_lookups_and_orders_agree_everywhere(db) {
    db.create_tables::<Word>().await.unwrap();
    let mut words: Vec<Word> = WORDS.iter().map(|t| Word { id: None, text: (*t).to_owned() }).collect();
    Word::bulk_save(&db, &mut words).await.unwrap();
    check_all(&db, "the crate's table").await;
    if db.backend() == Backend::MySql {
        // A table made by hand takes the server's case-insensitive collation.
        db.execute_unprepared("ALTER TABLE lk_word CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            .await
            .unwrap();
        check_all(&db, "a utf8mb4_general_ci table").await;
        let strict = signals_tests::mysql_pool_running(&db, &[signals_tests::STRICT_MODES])
            .await
            .expect("MySQL");
        check_all(&strict, "NO_BACKSLASH_ESCAPES,ANSI").await;
        strict.close().await;
    }
});
