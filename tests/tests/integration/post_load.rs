//! `#[post_load]`: every instance the crate builds from a row goes through the receivers, on
//! every backend; an error fails the load and leaves the connection usable.

use signals_core::{BoxError, ErrorKind, Model, PreDelete, Result, SignalKind, Tx};
use signals_tests::{db_test, record, take_events};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "pl_note")]
#[post_load(normalize_code, verify)]
struct Note {
    id: Option<i64>,
    /// Stored lowercase by an older version of the app; the program wants it uppercase.
    code: String,
    body: String,
}

/// A derived value fixed up as the row is read.
fn normalize_code(note: &mut Note) -> Result<()> {
    note.code = note.code.to_uppercase();
    Ok(())
}

/// Refuses a row it cannot trust.
fn verify(note: &mut Note) -> Result<()> {
    record(format!("loaded note {:?}", note.id));
    if note.body == "corrupt" {
        return Err(BoxError::from(format!("note {:?} is corrupt", note.id)).into());
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "pl_comment")]
#[post_load(comment_loaded)]
#[pre_delete(comment_going)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Note, on_delete = cascade)]
    note_id: i64,
}

fn comment_loaded(comment: &mut Comment) -> Result<()> {
    record(format!("loaded comment {:?}", comment.id));
    Ok(())
}

async fn comment_going(_: &Comment, _: &mut PreDelete<'_>) -> Result<()> {
    record("pre_delete comment");
    Ok(())
}

async fn setup(db: &signals_core::Db) -> (Note, Comment) {
    db.create_tables::<(Note, Comment)>().await.unwrap();
    let mut note = Note {
        id: None,
        code: "abc".into(),
        body: "fine".into(),
    };
    note.save(db).await.unwrap();
    // Saving builds nothing from a row: no receiver ran, and the instance is as given.
    assert_eq!(note.code, "abc");
    let mut comment = Comment {
        id: None,
        note_id: note.id.unwrap(),
    };
    comment.save(db).await.unwrap();
    assert!(take_events().is_empty());
    (note, comment)
}

db_test!(async fn every_read_instance_goes_through_post_load(db) {
    let (mut note, comment) = setup(&db).await;
    let id = note.id.unwrap();

    let got = Note::get(&db, id).await.unwrap().unwrap();
    assert_eq!(got.code, "ABC");
    assert_eq!(take_events(), [format!("loaded note Some({id})")]);

    assert_eq!(Note::all(&db).await.unwrap()[0].code, "ABC");
    assert_eq!(Note::filter(&db, Note::CODE, "abc".to_owned()).await.unwrap()[0].code, "ABC");
    let queried = Note::query().filter(Note::BODY.eq("fine")).all(&db).await.unwrap();
    assert_eq!(queried[0].code, "ABC");
    assert_eq!(Note::query().first(&db).await.unwrap().unwrap().code, "ABC");
    assert_eq!(take_events().len(), 4);

    note.refresh(&db).await.unwrap();
    assert_eq!(note.code, "ABC");
    assert_eq!(take_events().len(), 1);

    let mut tx = db.begin().await.unwrap();
    let locked = Note::get_for_update(&mut tx, id).await.unwrap().unwrap();
    assert_eq!(locked.code, "ABC");
    tx.rollback().await.unwrap();
    assert_eq!(take_events().len(), 1);

    // Loaders, both ways.
    assert_eq!(comment.note(&db).await.unwrap().unwrap().code, "ABC");
    assert_eq!(Comment::for_note(&db, &note).await.unwrap().len(), 1);
    assert_eq!(
        take_events(),
        [format!("loaded note Some({id})"), format!("loaded comment {:?}", comment.id)]
    );

    // The rows a cascade reads for its receivers are loaded instances too.
    Note::get(&db, id).await.unwrap().unwrap().delete(&db).await.unwrap();
    let events = take_events();
    assert!(events.contains(&format!("loaded comment {:?}", comment.id)), "{events:?}");
    assert!(events.contains(&"pre_delete comment".to_owned()), "{events:?}");
});

db_test!(async fn a_failing_post_load_fails_the_load_and_loses_nothing(db) {
    let (_, _) = setup(&db).await;
    let mut bad = Note { id: None, code: "x".into(), body: "corrupt".into() };
    bad.save(&db).await.unwrap();
    let bad_id = bad.id.unwrap();
    take_events();

    let err = Note::get(&db, bad_id).await.unwrap_err();
    assert_eq!(err.receiver_chain(), [("Note", SignalKind::PostLoad, "verify")]);
    assert!(err.to_string().contains("is corrupt"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Other);
    // A list with the bad row fails whole; the connection (and a transaction) stays usable.
    assert!(Note::all(&db).await.is_err());
    let mut tx: Tx = db.begin().await.unwrap();
    assert!(Note::get(&mut tx, bad_id).await.is_err());
    let good = Note::query().filter(Note::BODY.eq("fine")).all(&mut tx).await.unwrap();
    assert_eq!(good.len(), 1);
    tx.commit().await.unwrap();
    // The row is still there, untouched.
    assert_eq!(Note::query().count(&db).await.unwrap(), 2);
});
