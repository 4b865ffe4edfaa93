//! A deadlock between two transactions: the server picks a victim and undoes it (MySQL undoes
//! the whole transaction, savepoints and all; PostgreSQL aborts it). The victim's error is
//! `ErrorKind::Conflict`, and every later use of the victim's `Tx` fails too: nothing of it
//! runs after the rollback (on MySQL it would otherwise run in autocommit, one statement at a
//! time), and the other transaction commits.

use signals_core::{Backend, ErrorKind, Model, Tx};
use signals_tests::{db_test, scalar};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "dl_account")]
struct Account {
    id: Option<i64>,
    balance: i64,
}

async fn bump(tx: &mut Tx, id: i64) -> signals_core::Result<u64> {
    Account::query()
        .filter(Account::ID.eq(id))
        .update(tx, Account::BALANCE.add(1))
        .await
}

db_test!(async fn the_victim_of_a_deadlock_is_done_for(db) {
    if db.backend() == Backend::Sqlite {
        // One writer at a time: SQLite has no row locks to deadlock on.
        return;
    }
    db.create_tables::<Account>().await.unwrap();
    Account::bulk_save(&db, &mut [Account { id: None, balance: 0 }, Account { id: None, balance: 0 }]).await.unwrap();
    let mut one = db.begin().await.unwrap();
    let mut two = db.begin().await.unwrap();
    bump(&mut one, 1).await.unwrap();
    bump(&mut two, 2).await.unwrap();
    // Each now waits for the other's row.
    let first = tokio::spawn(async move {
        let res = bump(&mut one, 2).await;
        (one, res)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = bump(&mut two, 1).await;
    let (one, first) = first.await.unwrap();
    let (mut victim, mut winner, err) = match (first, second) {
        (Err(err), Ok(_)) => (one, two, err),
        (Ok(_), Err(err)) => (two, one, err),
        other => panic!("one of them is the victim: {other:?}"),
    };
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.is_retryable());
    // Nothing more runs in the victim: a save, an update, a savepoint's work.
    let later = Account { id: None, balance: 100 }.save(&mut victim).await;
    assert!(later.is_err(), "a save after the deadlock ran");
    assert!(bump(&mut victim, 1).await.is_err());
    let _ = victim.rollback().await;
    bump(&mut winner, 1).await.unwrap();
    winner.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dl_account").await, 2, "the victim's save is not there");
    let total = Account::query().aggregate(&db, Account::BALANCE.sum()).await.unwrap();
    assert_eq!(total, Some(3), "the winner's three bumps, none of the victim's");
});
