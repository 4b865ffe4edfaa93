//! Errors a caller can act on: credentials never printed, the kinds that tell what to do
//! (retry, check whether a commit happened), misuse refused before anything is sent.
#![allow(clippy::unwrap_used)]

mod common;

use common::{User, setup};
use signals_core::{Db, ErrorKind, Model, SaveOptions, record_signals};
use signals_tests::{count, db_test};

/// Every credential form the drivers accept, in URLs of servers that refuse the connection.
#[tokio::test]
async fn connection_errors_never_print_a_password() {
    let urls = [
        "postgres://bob:hunter2@127.0.0.1:1/app",
        "postgres://bob@127.0.0.1:1/app?password=hunter2",
        "postgresql:///app?host=127.0.0.1&port=1&user=bob&password=hunter2",
        "postgresql://127.0.0.1:1/app?user=bob&password=hunter2&sslmode=disable",
        "mysql://bob:hunter2@127.0.0.1:1/app",
        "mariadb://bob:hunter2@127.0.0.1:1/app",
        "mysql://bob:hun@ter2@127.0.0.1:1/app",
        "postgres://bob:hunter2@127.0.0.1:notaport/app",
        "oracle://bob:hunter2@127.0.0.1/app?password=hunter2",
    ];
    for url in urls {
        let err = Db::connect(url).await.unwrap_err();
        let shown = format!("{err} / {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{url} shows its password: {shown}"
        );
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Config),
            "{url}: {err}"
        );
    }
}

// Django's `UpdateOnlyFieldsTests.test_update_pk_field`: the key cannot be in update_fields.
db_test!(async fn the_primary_key_in_update_fields_is_refused_before_anything_is_sent(db) {
    setup(&db).await;
    let mut user = User::new("keyed");
    user.save(&db).await.unwrap();
    let (res, fired) = record_signals(
        user.save_with(&db, SaveOptions::new().update_fields(User::ID | User::EMAIL)),
    )
    .await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(
        err.to_string(),
        "`id` is the primary key of `User` and cannot be in `update_fields`: a save never \
         changes a row's key"
    );
    assert!(fired.is_empty(), "no signal was sent");
    assert_eq!(count(&db, "account_user").await, 1);
    // Alone too, and the instance keeps its key.
    let err = user.save_with(&db, SaveOptions::new().update_fields(User::ID)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(user.id.is_some());
});
