//! The photo file follows the transaction: removed after a committed delete, kept after a
//! rolled-back one.

use std::path::PathBuf;

use example_account::{Account, Profile, User, migrate, path_of, set_dob, set_photo};
use signals_core::{Model, Tx};
use signals_tests::db_test;

/// The media root of this test process (process-wide, like Django's).
fn media() -> PathBuf {
    crate::media_root().to_path_buf()
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

/// Every stored file of `prefix` under the media root.
fn stored_files(prefix: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, prefix, out);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&media().join("users"), prefix, &mut out);
    out
}

// `set-photo` and `set-dob` of one user at the same time, 30 times: no date is lost, the
// profile always names a file that exists, and no upload is left that nothing refers to.
db_test!(async fn concurrent_set_photo_and_set_dob_lose_nothing(db) {
    migrate(&db).await.unwrap();
    let name = format!("race_{}", db.backend()).to_lowercase();
    User::create_user(&db, &name, "", "pw").await.unwrap();
    let source = png(&format!("{name}.png"));
    for round in 0..30 {
        let date = format!("19{:02}-01-01", 50 + round);
        let (photo, dob) =
            tokio::join!(set_photo(&db, &name, &source), set_dob(&db, &name, &date));
        photo.unwrap();
        dob.unwrap();
        let account = Account::load(&db, &name).await.unwrap();
        assert_eq!(
            account.profile.date_of_birth.map(|d| d.to_string()),
            Some(date),
            "round {round}: the date was kept"
        );
        assert!(
            path_of(&account.profile.photo).is_file(),
            "round {round}: the profile names a file that exists"
        );
    }
    let account = Account::load(&db, &name).await.unwrap();
    assert_eq!(
        stored_files(&name),
        [path_of(&account.profile.photo)],
        "only the current photo is stored"
    );
});
