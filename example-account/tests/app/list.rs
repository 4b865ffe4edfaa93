//! The admin's list in SQL (issue 29, item 8): search ignoring the case of ASCII letters,
//! ordering by the user's username across the relation (or the profile's own columns, ties in
//! key order) and paging, each profile with its user, the same on every backend and as plain
//! Rust computes it from the same rows.

use chrono::{NaiveDate, Utc};
use example_account::admin::list::{PER_PAGE, list_page};
use example_account::{Profile, User, migrate};
use signals_core::{Model, SaveOptions};
use signals_tests::db_test;

/// 60 users (`aNn00`, `bob01`, .. with mixed case), each with the profile its receiver
/// makes; every third born on one of a few days, the rest unknown.
async fn people(db: &signals_core::Db) -> Vec<(String, Option<NaiveDate>, i64)> {
    migrate(db).await.unwrap();
    // Distinct small first letters: the same order under any collation.
    let names = ["aNn", "bob", "cAT", "dan", "eVe"];
    let mut made = Vec::new();
    for i in 0..60 {
        let mut user = User {
            id: None,
            username: format!("{}{i:02}", names[i % names.len()]),
            email: String::new(),
            password: "unusable".into(),
            date_joined: Utc::now(),
            is_active: true,
            is_staff: false,
        };
        user.save(db).await.unwrap();
        let mut profile = Profile::for_user(db, &user).await.unwrap().unwrap();
        profile.date_of_birth =
            (i % 3 == 0).then(|| NaiveDate::from_ymd_opt(1990, 1, 1 + (i % 4) as u32).unwrap());
        profile
            .save_with(db, SaveOptions::new().update_fields(Profile::DATE_OF_BIRTH))
            .await
            .unwrap();
        made.push((user.username, profile.date_of_birth, profile.id.unwrap()));
    }
    made
}

db_test!(async fn the_list_searches_orders_and_pages_in_sql(db) {
    let people = people(&db).await;
    // Search: ` aN ` finds aNn.. and dan.. (ASCII case ignored, blanks trimmed), ordered by username descending.
    let mut want: Vec<&(String, Option<NaiveDate>, i64)> =
        people.iter().filter(|p| p.0.to_ascii_lowercase().contains("an")).collect();
    want.sort_by(|a, b| b.0.cmp(&a.0));
    let page = list_page(&db, " aN ", "-user", 1).await.unwrap();
    assert_eq!(page.total, want.len());
    assert_eq!(page.pages, 1);
    assert_eq!(page.ordering, ("user", true));
    let got: Vec<&str> = page.rows.iter().map(|(_, u)| u.username.as_str()).collect();
    let names: Vec<&str> = want.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(got, names);
    for (profile, user) in &page.rows {
        assert_eq!(Some(profile.user_id), user.id, "each profile with its own user");
    }

    // Ordered by date of birth, ties (and the unknown dates) in key order; every page, and a
    // page past the last clamped to it.
    let mut want: Vec<&(String, Option<NaiveDate>, i64)> = people.iter().collect();
    want.sort_by_key(|p| (p.1, p.2));
    let want: Vec<i64> = want.iter().map(|p| p.2).collect();
    let pages = people.len().div_ceil(PER_PAGE);
    let mut got = Vec::new();
    for n in 1..=pages {
        let page = list_page(&db, "", "date_of_birth", n).await.unwrap();
        assert_eq!((page.page, page.pages, page.total), (n, pages, people.len()));
        got.extend(page.rows.iter().map(|(p, _)| p.id.unwrap()));
    }
    // NULLs first going up on SQLite and MySQL, last on PostgreSQL (each database's own).
    let nulls = want.iter().filter(|id| people.iter().any(|p| p.2 == **id && p.1.is_none())).count();
    if db.backend() == signals_core::Backend::Postgres {
        let (unknown, known) = want.split_at(nulls);
        assert_eq!(got, [known, unknown].concat());
    } else {
        assert_eq!(got, want);
    }
    let beyond = list_page(&db, "", "photo", 99).await.unwrap();
    assert_eq!(beyond.page, pages);
    // An unknown ordering orders by username; a search that finds nothing has one empty page.
    let page = list_page(&db, "", "password", 1).await.unwrap();
    assert_eq!(page.ordering, ("user", false));
    let mut names: Vec<&str> = people.iter().map(|p| p.0.as_str()).collect();
    names.sort();
    assert_eq!(page.rows.iter().map(|(_, u)| u.username.as_str()).collect::<Vec<_>>(), names[..PER_PAGE]);
    let none = list_page(&db, "%_'\"\\", "user", 3).await.unwrap();
    assert_eq!((none.total, none.page, none.pages, none.rows.len()), (0, 1, 1, 0));
});

db_test!(async fn hostile_list_parameters_give_a_page(db) {
    let people = people(&db).await;
    let pages = people.len().div_ceil(PER_PAGE);
    for search in ["\0", "a\0n", "%", "_", "\\", "'; DROP TABLE account_user; --", &"x".repeat(10_000), "ÉCLAIR", "  "] {
        let page = list_page(&db, search, "user", 1).await.unwrap();
        let want = people
            .iter()
            .filter(|p| p.0.to_ascii_lowercase().contains(&search.trim().to_ascii_lowercase()))
            .count();
        assert_eq!(page.total, want, "search {search:?}");
    }
    for order in ["-", "--user", "-password", "user;", ""] {
        let page = list_page(&db, "", order, 1).await.unwrap();
        assert_eq!(page.ordering.0, "user", "order {order:?}");
        assert_eq!(page.rows.len(), PER_PAGE);
    }
    for (asked, shown) in [(0, 1), (usize::MAX, pages), (pages + 1, pages)] {
        let page = list_page(&db, "", "-date_of_birth", asked).await.unwrap();
        assert_eq!(page.page, shown, "page {asked}");
        assert!(!page.rows.is_empty());
    }
    assert_eq!(User::query().count(&db).await.unwrap() as usize, people.len(), "nothing dropped");
});
