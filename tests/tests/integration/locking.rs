//! Locking from a query (issue 29, item 7): `for_update` with `skip_locked` for a job queue
//! worked by several processes at once, and `nowait`; each job taken once.

use std::sync::Arc;

use signals_core::{Backend, ErrorKind, Model};
use signals_tests::{another_pool, db_test, scalar};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "lock_job")]
struct Job {
    id: Option<i64>,
    taken_by: Option<i64>,
    #[model(index)]
    done: bool,
}

db_test!(async fn workers_take_each_job_once_skipping_locked_ones(db) {
    db.create_tables::<Job>().await.unwrap();
    let mut jobs: Vec<Job> = (0..60).map(|_| Job { id: None, taken_by: None, done: false }).collect();
    Job::bulk_save(&db, &mut jobs).await.unwrap();
    if db.backend() != Backend::Sqlite {
        // A row locked by one transaction: another skips it, or fails at once with `nowait`.
        let other = another_pool(&db).await;
        let mut holder = db.begin().await.unwrap();
        let held = Job::query().for_update().first(&mut holder).await.unwrap().unwrap();
        let mut tx = other.begin().await.unwrap();
        let next = Job::query().skip_locked().first(&mut tx).await.unwrap().unwrap();
        assert_ne!(next.id, held.id, "{}: the locked job is skipped", db.backend());
        let err = Job::query().filter(Job::ID.eq(held.id.unwrap())).nowait().first(&mut tx).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{}: {err}", db.backend());
        drop(tx);
        holder.rollback().await.unwrap();
        other.close().await;
    }
    let db = Arc::new(db);
    let mut workers = Vec::new();
    for worker in 0..4_i64 {
        let pool = Arc::new(another_pool(&db).await);
        workers.push(tokio::spawn(async move {
            let mut taken = 0;
            loop {
                let mut tx = match pool.begin().await {
                    Ok(tx) => tx,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("{e}"),
                };
                let next = Job::query().filter(Job::DONE.eq(false)).skip_locked().first(&mut tx).await;
                let Some(mut job) = (match next {
                    Ok(job) => job,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("{e}"),
                }) else {
                    break;
                };
                job.done = true;
                job.taken_by = Some(worker);
                job.save(&mut tx).await.unwrap();
                tx.commit().await.unwrap();
                taken += 1;
            }
            pool.close().await;
            taken
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    assert_eq!(total, 60, "{}: each job taken once", db.backend());
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM lock_job WHERE done = TRUE AND taken_by IS NOT NULL").await, 60);
});
