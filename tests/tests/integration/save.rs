//! Save semantics: INSERT or UPDATE as Django decides, `created`, keys, pre_save changes.

use crate::common::{Profile, User, setup};
use signals_core::{Db, ErrorKind, Model};
use signals_tests::{count, create_tables, db_test, exec, take_events};

db_test!(async fn insert_assigns_key_and_reports_created(db) {
    setup(&db).await;
    let mut user = User::new("johndoe");
    let saved = user.save(&db).await.unwrap();
    assert!(saved.created());
    let id = user.id.expect("the key is read back");
    assert!(id > 0);
    let mut second = User::new("janedoe");
    second.save(&db).await.unwrap();
    assert_ne!(second.id, Some(id), "each insert gets its own key");
    assert_eq!(count(&db, "account_user").await, 2);
    assert_eq!(count(&db, "account_profile").await, 2, "create_profile ran for each");
});

db_test!(async fn update_reports_not_created(db) {
    setup(&db).await;
    let mut user = User::new("johndoe");
    user.save(&db).await.unwrap();
    user.email = "new@example.com".into();
    assert!(!user.save(&db).await.unwrap().created());
    let loaded = User::get(&db, user.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded.email, "new@example.com");
    assert_eq!(count(&db, "account_user").await, 1);
});

db_test!(async fn unchanged_row_saved_twice_is_an_update(db) {
    // MySQL reports changed rows, not matched ones, unless the client asks otherwise; an
    // unchanged row must still count as an update and never fall through to INSERT.
    setup(&db).await;
    let mut user = User::new("johndoe");
    user.save(&db).await.unwrap();
    for _ in 0..2 {
        let saved = user.save(&db).await.unwrap();
        assert!(!saved.created());
    }
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
});

db_test!(async fn key_without_row_is_inserted_with_that_key(db) {
    setup(&db).await;
    let mut user = User { id: Some(4242), username: "ghost".into(), email: "g@example.com".into() };
    let saved = user.save(&db).await.unwrap();
    assert!(saved.created(), "UPDATE matched nothing, so the save INSERTed");
    assert_eq!(user.id, Some(4242));
    assert_eq!(User::get(&db, 4242).await.unwrap().unwrap().username, "ghost");
    take_events();
    assert!(!user.save(&db).await.unwrap().created());
    assert_eq!(
        take_events(),
        ["pre_save User adding=false", "create_profile created=false", "save_profile created=false",
         "pre_save Profile adding=false", "post_save Profile created=false"]
    );
});

db_test!(async fn pre_save_changes_are_persisted(db) {
    setup(&db).await;
    let mut user = User::new("  JohnDoe ");
    user.save(&db).await.unwrap();
    assert_eq!(user.username, "johndoe", "the instance shows the change");
    let loaded = User::get(&db, user.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded.username, "johndoe", "and so does the row");
});

db_test!(async fn signal_order_on_create_matches_django(db) {
    setup(&db).await;
    User::new("johndoe").save(&db).await.unwrap();
    assert_eq!(
        take_events(),
        [
            "pre_save User adding=true",
            "create_profile created=true",
            "pre_save Profile adding=true",
            "post_save Profile created=true",
            "save_profile created=true",
            "pre_save Profile adding=false",
            "post_save Profile created=false",
        ]
    );
});

db_test!(async fn save_profile_repairs_users_without_profile(db) {
    // The seed's pitfall: a user row that predates the receivers has no profile, and Django's
    // `instance.profile.save()` raises. Ours creates it.
    setup(&db).await;
    exec(&db, "INSERT INTO account_user (username, email) VALUES ('legacy', 'l@example.com')").await;
    let mut legacy = User::filter(&db, User::USERNAME, "legacy").await.unwrap().remove(0);
    assert!(Profile::for_user(&db, &legacy).await.unwrap().is_none());
    assert!(!legacy.save(&db).await.unwrap().created());
    let profile = Profile::for_user(&db, &legacy).await.unwrap().expect("save_profile made one");
    assert_eq!(profile.user_id, legacy.id.unwrap());
});

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "plain_note")]
struct Note {
    id: Option<i64>,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "keyed_setting")]
struct Setting {
    #[model(primary_key)]
    name: String,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "uuid_doc")]
struct Doc {
    id: uuid::Uuid,
    title: String,
}

const PLAIN_SCHEMA: &str = "
CREATE TABLE plain_note (id {pk}, body {text} NOT NULL);
CREATE TABLE keyed_setting (name {varchar} NOT NULL PRIMARY KEY, value {text} NOT NULL);
CREATE TABLE uuid_doc (id {uuid} NOT NULL PRIMARY KEY, title {text} NOT NULL)";

db_test!(async fn models_without_receivers_save_and_update(db) {
    create_tables(&db, PLAIN_SCHEMA).await;
    let mut note = Note { id: None, body: "hello".into() };
    assert!(note.save(&db).await.unwrap().created());
    note.body = "changed".into();
    assert!(!note.save(&db).await.unwrap().created());
    assert_eq!(Note::all(&db).await.unwrap(), vec![note.clone()]);
});

db_test!(async fn application_assigned_keys(db) {
    create_tables(&db, PLAIN_SCHEMA).await;
    let mut setting = Setting { name: "theme".into(), value: "dark".into() };
    assert!(setting.save(&db).await.unwrap().created());
    setting.value = "light".into();
    assert!(!setting.save(&db).await.unwrap().created());
    assert_eq!(Setting::get(&db, "theme".into()).await.unwrap(), Some(setting));

    let id = uuid::Uuid::new_v4();
    let mut doc = Doc { id, title: "spec".into() };
    assert!(doc.save(&db).await.unwrap().created());
    assert!(!doc.save(&db).await.unwrap().created());
    assert_eq!(Doc::get(&db, id).await.unwrap().unwrap().title, "spec");
    assert_eq!(count(&db, "uuid_doc").await, 1);
});

db_test!(async fn duplicate_username_is_a_unique_violation_and_writes_nothing(db) {
    setup(&db).await;
    User::new("johndoe").save(&db).await.unwrap();
    let mut dup = User::new("johndoe");
    let err = dup.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    assert!(err.to_string().contains("username"), "names the constraint: {err}");
    assert_eq!(dup.id, None);
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
    // The pool is still usable.
    User::new("janedoe").save(&db).await.unwrap();
});

db_test!(async fn foreign_key_to_missing_row_is_a_foreign_key_violation(db) {
    setup(&db).await;
    let mut orphan = Profile { id: None, user_id: 999, date_of_birth: None, photo: String::new() };
    let err = orphan.save(&db).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForeignKeyViolation, "{err}");
    assert_eq!(count(&db, "account_profile").await, 0);
});

#[tokio::test]
async fn unknown_scheme_is_a_config_error() {
    let err = Db::connect("oracle://scott@tiger/db").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("oracle"), "{err}");
}
