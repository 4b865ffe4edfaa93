//! Loading: get, all, filter with compile-checked columns, relation loaders.

use crate::common::{Profile, User, setup};
use signals_core::Model;
use signals_tests::{db_test, exec};

db_test!(async fn get_all_and_filter(db) {
    setup(&db).await;
    let mut names = Vec::new();
    for name in ["carol", "alice", "bob"] {
        let mut user = User::new(name);
        user.save(&db).await.unwrap();
        names.push(user);
    }
    let all = User::all(&db).await.unwrap();
    assert_eq!(all, names, "ordered by primary key, i.e. insertion order here");

    let bob = &names[2];
    assert_eq!(User::get(&db, bob.id.unwrap()).await.unwrap().as_ref(), Some(bob));
    assert_eq!(User::get(&db, -1).await.unwrap(), None);

    assert_eq!(User::filter(&db, User::USERNAME, "alice").await.unwrap(), [names[1].clone()]);
    assert!(User::filter(&db, User::USERNAME, "nobody").await.unwrap().is_empty());
    assert_eq!(User::filter(&db, User::ID, bob.id).await.unwrap(), std::slice::from_ref(bob));
});

db_test!(async fn filter_by_null_uses_is_null(db) {
    setup(&db).await;
    let mut a = User::new("a");
    a.save(&db).await.unwrap();
    let mut b = User::new("b");
    b.save(&db).await.unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
    let mut pa = Profile::for_user(&db, &a).await.unwrap().unwrap();
    pa.date_of_birth = Some(date);
    pa.save(&db).await.unwrap();

    let born = Profile::filter(&db, Profile::DATE_OF_BIRTH, Some(date)).await.unwrap();
    assert_eq!(born, [pa.clone()]);
    let unknown = Profile::filter(&db, Profile::DATE_OF_BIRTH, None).await.unwrap();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].user_id, b.id.unwrap());
});

db_test!(async fn relation_loaders_both_ways(db) {
    setup(&db).await;
    let mut user = User::new("johndoe");
    user.save(&db).await.unwrap();
    let profile = Profile::for_user(&db, &user).await.unwrap().expect("user.profile");
    assert_eq!(profile.user(&db).await.unwrap().as_ref(), Some(&user), "profile.user");

    let unsaved = User::new("ghost");
    assert_eq!(Profile::for_user(&db, &unsaved).await.unwrap(), None, "an unsaved user has no profile");

    // Inside a transaction, through the same calls.
    let mut tx = db.begin().await.unwrap();
    assert!(Profile::for_user(&mut tx, &user).await.unwrap().is_some());
    tx.commit().await.unwrap();
});

db_test!(async fn rows_with_unexpected_values_give_a_decode_error(db) {
    setup(&db).await;
    // A column the model declares NOT NULL-typed (String) holding NULL cannot be read into it.
    signals_tests::create_tables(&db, "CREATE TABLE loose_user (id {bigint} PRIMARY KEY, username {text}, email {text})").await;
    exec(&db, "INSERT INTO loose_user (id, username, email) VALUES (1, NULL, 'x')").await;
    #[derive(Debug, Model)]
    #[model(table = "loose_user")]
    struct LooseUser {
        id: i64,
        username: String,
        email: String,
    }
    let err = LooseUser::all(&db).await.unwrap_err();
    assert_eq!(err.kind(), signals_core::ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("`username` of `LooseUser`"), "{err}");
    assert!(err.to_string().contains("declare it `Option<_>`"), "{err}");
    let _unused = (LooseUser::ID, LooseUser::EMAIL);
});
