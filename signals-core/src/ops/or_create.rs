//! Django's `get_or_create` and `update_or_create` on a [`Query`]: the row the query finds, or
//! one made and saved, with the right `created` flag when many tasks race for one key.
//!
//! Uses `error`, `query`, `tx` and `model`.

use crate::error::{ErrorKind, Result};
use crate::model::Model;
use crate::query::{Lock, Query, Shape};
use crate::signal::hooks::Hooks;
use crate::tx::{Executor, Target, Tx};

/// How many times a create that lost a race to a row that then went away is tried again.
const ATTEMPTS: usize = 3;

impl<M: Hooks> Query<M> {
    /// The first row `self` finds or, when it finds none, `make()` saved (Django's
    /// `get_or_create`), and whether it was created. The save sends `pre_save` and
    /// `post_save` with `created() == true`, as any save; a row found sends nothing.
    ///
    /// `make` must build a row the query finds (the lookup's values, and defaults for the
    /// rest). Races are settled by the database: when several tasks or processes ask at once,
    /// one creates the row and the others get it, `created == false`, provided a unique
    /// constraint covers the lookup (`#[model(unique)]`, `unique_together`); without one, as
    /// in Django, each may create a row. A create refused by the unique constraint is undone
    /// alone (a savepoint inside a caller's transaction), and the row is read again with a
    /// locking read, which sees rows committed since the transaction began (MariaDB's
    /// REPEATABLE READ would give a plain read its old snapshot).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// struct Tag { id: Option<i64>, #[model(unique, max_length = 50)] name: String, uses: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Tag>().await?;
    /// let make = || Tag { id: None, name: "rust".into(), uses: 0 };
    /// let (tag, created) = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&db, make).await?;
    /// assert!(created);
    /// let (again, created) = Tag::query().filter(Tag::NAME.eq("rust")).get_or_create(&db, make).await?;
    /// assert_eq!((again.id, created), (tag.id, false));
    /// # Ok(()) }
    /// ```
    pub fn get_or_create<'e>(
        self,
        ex: impl Executor<'e> + 'e,
        make: impl Fn() -> M + Send + 'e,
    ) -> impl Future<Output = Result<(M, bool)>> + Send + 'e
    where
        M: 'e,
    {
        self.limit(1).get_or_create_on(ex.__target(), make)
    }

    async fn get_or_create_on(
        mut self,
        mut target: Target<'_>,
        make: impl Fn() -> M + Send,
    ) -> Result<(M, bool)> {
        if let Some(found) = self.fetch_first(&mut target).await? {
            return Ok((found, false));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut instance = make();
            match save_alone(&mut target, &mut instance).await {
                Ok(()) => return Ok((instance, true)),
                Err(err) if err.kind() == ErrorKind::UniqueViolation && attempt < ATTEMPTS => {
                    self.lock = Lock::KeyShare;
                    if let Some(found) = self.fetch_first(&mut target).await? {
                        return Ok((found, false));
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The first row `self` finds, changed by `update` and saved, or, when it finds none,
    /// `make()` changed by `update` and saved (Django's `update_or_create`), and whether it was
    /// created. All of it is one transaction (a savepoint inside a caller's), the row read
    /// with `FOR UPDATE`, so two updates of one row never interleave; races to create are
    /// settled as in [`get_or_create`](Self::get_or_create): one row, one `created == true`.
    /// Each save sends its signals, `created()` telling which it was.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// struct Tag { id: Option<i64>, #[model(unique, max_length = 50)] name: String, uses: i64 }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Tag>().await?;
    /// for _ in 0..3 {
    ///     Tag::query()
    ///         .filter(Tag::NAME.eq("rust"))
    ///         .update_or_create(&db, || Tag { id: None, name: "rust".into(), uses: 0 }, |t| t.uses += 1)
    ///         .await?;
    /// }
    /// assert_eq!(Tag::query().first(&db).await?.map(|t| t.uses), Some(3));
    /// # Ok(()) }
    /// ```
    pub fn update_or_create<'e>(
        self,
        ex: impl Executor<'e> + 'e,
        make: impl Fn() -> M + Send + Sync + 'e,
        update: impl Fn(&mut M) + Send + Sync + 'e,
    ) -> impl Future<Output = Result<(M, bool)>> + Send + 'e
    where
        M: 'e,
    {
        self.limit(1)
            .update_or_create_on(ex.__target(), make, update)
    }

    async fn update_or_create_on(
        self,
        target: Target<'_>,
        make: impl Fn() -> M + Send + Sync,
        update: impl Fn(&mut M) + Send + Sync,
    ) -> Result<(M, bool)> {
        let query = self;
        match target {
            Target::Db(db) => {
                let mut tx = db.begin().await?;
                let done = query.update_or_create_in(&mut tx, &make, &update).await?;
                tx.commit().await?;
                Ok(done)
            }
            Target::Tx(tx) => {
                let sp = tx.enter(M::META.name).await?;
                let res = query.update_or_create_in(tx, &make, &update).await;
                // On an error the savepoint's rollback may fail too: the first error counts,
                // and the transaction's next use rolls back to the savepoint.
                let ok = res.is_ok();
                let left = tx.leave(sp, ok).await;
                let done = res?;
                left?;
                Ok(done)
            }
        }
    }

    /// [`update_or_create`](Self::update_or_create) inside `tx`.
    async fn update_or_create_in(
        mut self,
        tx: &mut Tx,
        make: &(impl Fn() -> M + Send + Sync),
        update: &(impl Fn(&mut M) + Send + Sync),
    ) -> Result<(M, bool)> {
        self.lock = Lock::Update;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(mut found) = self.fetch_first(&mut Target::Tx(&mut *tx)).await? {
                update(&mut found);
                found.save(&mut *tx).await?;
                return Ok((found, false));
            }
            let mut instance = make();
            update(&mut instance);
            match save_alone(&mut Target::Tx(&mut *tx), &mut instance).await {
                Ok(()) => return Ok((instance, true)),
                Err(err) if err.kind() == ErrorKind::UniqueViolation && attempt < ATTEMPTS => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The first row, read with the query's lock, on `target` (which stays usable).
    async fn fetch_first(&self, target: &mut Target<'_>) -> Result<Option<M>> {
        let (sql, args) = self
            .sql(&M::META, target.backend(), Shape::Rows)?
            .into_parts();
        target
            .fetch_optional(sqlx::AssertSqlSafe(sql), args, M::__load)
            .await
    }
}

/// Saves `instance` so that its failure is undone alone: its own transaction on a pool, a
/// savepoint inside a caller's transaction (on PostgreSQL a failed INSERT would abort it).
async fn save_alone<M: Model>(target: &mut Target<'_>, instance: &mut M) -> Result<()> {
    match target {
        Target::Db(db) => instance.save(*db).await.map(drop),
        Target::Tx(tx) => {
            let sp = tx.enter(M::META.name).await?;
            let res = instance.save(&mut **tx).await.map(drop);
            let left = tx.leave(sp, res.is_ok()).await;
            res?;
            left
        }
    }
}
