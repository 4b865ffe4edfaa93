//! The photo file follows the transaction: removed after a committed delete, kept after a
//! rolled-back one.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use example_account::{Profile, User, migrate, path_of, set_media_root, set_photo};
use signals_core::{Model, Tx};
use signals_tests::db_test;

/// One media root for this test process (the media root is process-wide, like Django's).
fn media() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        set_media_root(&path);
        (dir, path)
    });
    path
}

fn png(name: &str) -> PathBuf {
    let path = media().join(name);
    std::fs::write(
        &path,
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
    )
    .unwrap();
    path
}

db_test!(async fn photo_is_removed_only_when_the_delete_commits(db) {
    migrate(&db).await.unwrap();
    let name = format!("{}", db.backend()).to_lowercase();
    let mut user = User::create_user(&db, &name, "", "pw").await.unwrap();
    let account = set_photo(&db, &name, &png(&format!("{name}.png"))).await.unwrap();
    let stored = path_of(&account.profile.photo);
    assert!(stored.is_file());

    let mut tx = db.begin().await.unwrap();
    user.clone().delete(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(stored.is_file(), "a rolled-back delete keeps the file");
    assert!(Profile::for_user(&db, &user).await.unwrap().is_some());

    let res: Result<(), signals_core::Error> = db
        .transaction(async |tx: &mut Tx| {
            user.clone().delete(&mut *tx).await?;
            Err(signals_core::BoxError::from("changed my mind").into())
        })
        .await;
    assert!(res.is_err());
    assert!(stored.is_file(), "so does one whose transaction fails later");

    user.delete(&db).await.unwrap();
    assert!(!stored.exists(), "a committed delete removes it");
});
