//! Across relations: conditions through references in either direction and through
//! many-to-many links (`EXISTS`), orderings by a referenced row's column (a join), the
//! referenced row read with each row (`select_related`, a join) and related rows read for a
//! whole list (`prefetch`, one query per relation).
//!
//! Uses `error`, `meta`, `query`, `sql`, `tx`, `value`, `model` and `signal` (the through
//! models of many-to-many relations).

use std::marker::PhantomData;

use crate::backend::MAX_CHUNK_ROWS;
use crate::error::{Error, Result};
use crate::meta::Column;
use crate::model::Model;
use crate::query::{Filter, Order, Query, Via};
use crate::signal::m2m::Through;
use crate::sql::Sql;
use crate::tx::{Executor, Target};
use crate::value::{FieldType, RefersTo, Row};

/// The join a reference column `column` of type `T` makes to `R`'s table.
fn via<T: FieldType, R: Model>(column: &'static str) -> Via {
    Via {
        column,
        table: R::META.table,
        key: R::META.columns[R::META.primary_key],
        columns: R::META.columns,
        nullable: T::NULLABLE,
    }
}

/// Conditions, orderings and counts through a reference (`foreign_key` or `one_to_one`), in
/// either direction.
impl<C: Model, T: FieldType, R: Model> Column<C, T, R>
where
    T: RefersTo<R::Key>,
{
    /// Rows whose referenced row matches `filter`: Django's lookups through a reference
    /// (`Post.objects.filter(author__name="ada")`), as an `EXISTS` subquery. A NULL reference
    /// matches nothing, and its negation (`!`) matches it. Nest them for several hops:
    /// `Comment::POST_ID.matches(Post::AUTHOR_ID.matches(Author::NAME.eq("ada")))`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct Post {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Author, on_delete = cascade)]
    ///     author_id: i64,
    ///     title: String,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Author, Post)>().await?;
    /// for name in ["ada", "bob"] {
    ///     Author { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// for (author_id, title) in [(1, "Engines"), (2, "Gardens"), (1, "Notes")] {
    ///     Post { id: None, author_id, title: title.into() }.save(&db).await?;
    /// }
    /// // Django's `Post.objects.filter(author__name="ada")`.
    /// let by_ada = Post::query().filter(Post::AUTHOR_ID.matches(Author::NAME.eq("ada")));
    /// assert_eq!(by_ada.count(&db).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn matches(self, filter: Filter<R>) -> Filter<C> {
        Filter::related(
            self.name(),
            R::META.table,
            R::META.columns[R::META.primary_key],
            Some(filter),
        )
    }

    /// Rows of the referenced model that some row of `C` refers to through this column and
    /// `filter` matches: the reverse direction (`Author.objects.filter(post__title="x")`),
    /// as an `EXISTS` subquery, so each row comes once however many rows refer to it, and
    /// `!` gives the rows no such row refers to.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct Post {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Author, on_delete = cascade)]
    ///     author_id: i64,
    ///     published: bool,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Author, Post)>().await?;
    /// for name in ["ada", "bob", "cy"] {
    ///     Author { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// for (author_id, published) in [(1, true), (1, true), (2, false)] {
    ///     Post { id: None, author_id, published }.save(&db).await?;
    /// }
    /// // Django's `Author.objects.filter(post__published=True)`: ada, once.
    /// let published = Post::AUTHOR_ID.any(Post::PUBLISHED.eq(true));
    /// let names: Vec<String> = Author::query().filter(published).all(&db).await?
    ///     .into_iter().map(|a| a.name).collect();
    /// assert_eq!(names, ["ada"]);
    /// // Authors without a post: cy.
    /// let idle = Author::query().filter(!Post::AUTHOR_ID.is_referenced());
    /// assert_eq!(idle.count(&db).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn any(self, filter: Filter<C>) -> Filter<R> {
        Filter::related(
            R::META.columns[R::META.primary_key],
            C::META.table,
            self.name(),
            Some(filter),
        )
    }

    /// Rows of the referenced model that some row of `C` refers to through this column
    /// (Django's `filter(post__isnull=False)`, each row once); see [`any`](Self::any).
    pub fn is_referenced(self) -> Filter<R> {
        Filter::related::<C>(
            R::META.columns[R::META.primary_key],
            C::META.table,
            self.name(),
            None,
        )
    }

    /// Orders by a column of the referenced row (Django's `order_by("user__username")`),
    /// joining its table (`LEFT JOIN`: a row with a NULL reference stays, ordered as a NULL
    /// value). Nest them for several hops.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct User { id: Option<i64>, username: String }
    ///
    /// #[derive(Model)]
    /// struct Profile {
    ///     id: Option<i64>,
    ///     #[model(one_to_one = User, on_delete = cascade)]
    ///     user_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(User, Profile)>().await?;
    /// for name in ["mia", "ada", "zoe"] {
    ///     let mut user = User { id: None, username: name.into() };
    ///     user.save(&db).await?;
    ///     Profile { id: None, user_id: user.id.unwrap() }.save(&db).await?;
    /// }
    /// let profiles = Profile::query()
    ///     .order_by(Profile::USER_ID.by(User::USERNAME.asc()))
    ///     .all(&db)
    ///     .await?;
    /// assert_eq!(profiles.iter().map(|p| p.user_id).collect::<Vec<_>>(), [2, 1, 3]);
    /// # Ok(()) }
    /// ```
    pub fn by(self, order: Order<R>) -> Order<C> {
        order.through(via::<T, R>(self.name()))
    }
}

/// A reference column to `R` (`foreign_key` or `one_to_one`); where a column that is no
/// reference is used as one, it says what to do instead.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this column is not a reference, so no related rows are reached through it",
    label = "declare the field a reference, `#[model(foreign_key = Parent, on_delete = ..)]` (or \
             `one_to_one`), to reach `Parent`'s rows through it"
)]
pub trait IsReference<R> {
    /// The join this reference makes.
    #[doc(hidden)]
    fn __via(&self) -> Via;
}

impl<C, T: FieldType + RefersTo<R::Key>, R: Model> IsReference<R> for Column<C, T, R> {
    fn __via(&self) -> Via {
        via::<T, R>(self.name())
    }
}

impl<C, T> Column<C, T, ()> {
    /// Not available on this column: it is not a reference (see [`Column`]).
    pub fn matches<X>(self, _filter: Filter<X>) -> Filter<C>
    where
        Self: IsReference<X>,
    {
        Filter::invalid(format!("`{}` is not a reference", self.name()))
    }

    /// Not available on this column: it is not a reference (see [`Column`]).
    pub fn any<X>(self, _filter: Filter<C>) -> Filter<X>
    where
        Self: IsReference<X>,
    {
        Filter::invalid(format!("`{}` is not a reference", self.name()))
    }

    /// Not available on this column: it is not a reference (see [`Column`]).
    pub fn by<X>(self, _order: Order<X>) -> Order<C>
    where
        Self: IsReference<X>,
    {
        unreachable!("`IsReference` has no implementation")
    }
}

impl<M: Model> Filter<M> {
    /// Rows linked through the many-to-many relation of the through model `Th` to a row of
    /// `T` that `filter` matches: Django's `Post.objects.filter(tags__name="rust")`, as
    /// `EXISTS` subqueries (each row once, however many of its links match).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Filter, Model};
    ///
    /// #[derive(Model)]
    /// #[model(many_to_many(tags: Tag, through = PostTag))]
    /// struct Post { id: Option<i64>, title: String }
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct PostTag {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Post, on_delete = cascade)]
    ///     post_id: i64,
    ///     #[model(foreign_key = Tag, on_delete = cascade)]
    ///     tag_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Post, Tag, PostTag)>().await?;
    /// for title in ["Ownership", "Gardens"] {
    ///     Post { id: None, title: title.into() }.save(&db).await?;
    /// }
    /// for name in ["rust", "sql"] {
    ///     Tag { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// let first = Post::get(&db, 1).await?.unwrap();
    /// first.tags().add(&db, [1, 2]).await?;
    /// let rusty = Post::query().filter(Filter::linked::<PostTag, _>(Tag::NAME.eq("rust")));
    /// assert_eq!(rusty.all(&db).await?.len(), 1);
    /// // And from the other side: tags of posts titled "Gardens" (none).
    /// let tags = Tag::query().filter(Filter::linked::<PostTag, _>(Post::TITLE.eq("Gardens")));
    /// assert_eq!(tags.count(&db).await?, 0);
    /// # Ok(()) }
    /// ```
    pub fn linked<Th: Through<M, T>, T: Model>(filter: Filter<T>) -> Filter<M> {
        let target = Filter::<Th>::related(
            Th::TO,
            T::META.table,
            T::META.columns[T::META.primary_key],
            Some(filter),
        );
        Filter::related(
            M::META.columns[M::META.primary_key],
            Th::META.table,
            Th::FROM,
            Some(target),
        )
    }
}

impl<M: Model> Query<M> {
    /// Reads each row's referenced row with it, in the same statement (a `LEFT JOIN`):
    /// Django's `select_related("author")`. Each result is `(row, parent)`, the parent an
    /// `Option` for a nullable reference. Call it last, after the conditions, orderings and
    /// window.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct Post {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Author, on_delete = cascade)]
    ///     author_id: i64,
    ///     #[model(foreign_key = Author, on_delete = set_null)]
    ///     editor_id: Option<i64>,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Author, Post)>().await?;
    /// Author { id: None, name: "ada".into() }.save(&db).await?;
    /// Post { id: None, author_id: 1, editor_id: None }.save(&db).await?;
    /// let rows: Vec<(Post, Author)> = Post::query().select_related(Post::AUTHOR_ID).all(&db).await?;
    /// assert_eq!(rows[0].1.name, "ada");
    /// let rows: Vec<(Post, Option<Author>)> = Post::query().select_related(Post::EDITOR_ID).all(&db).await?;
    /// assert!(rows[0].1.is_none());
    /// # Ok(()) }
    /// ```
    pub fn select_related<T, R>(mut self, column: Column<M, T, R>) -> SelectRelated<M, T, R>
    where
        Column<M, T, R>: IsReference<R>,
    {
        self.related.push(column.__via());
        SelectRelated {
            query: self,
            _marker: PhantomData,
        }
    }

    /// Reads, for the whole list, the rows of `C` that refer to each row through `column`:
    /// Django's `prefetch_related("post_set")`, in one more query per 1,000 rows (an `IN`
    /// list of their keys), not one per row. Each result is `(row, children)`, the children
    /// in key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// struct Author { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct Post {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Author, on_delete = cascade)]
    ///     author_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Author, Post)>().await?;
    /// for name in ["ada", "bob"] {
    ///     Author { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// for author_id in [1, 1, 2] {
    ///     Post { id: None, author_id }.save(&db).await?;
    /// }
    /// let authors = Author::query().prefetch(Post::AUTHOR_ID).all(&db).await?;
    /// let counts: Vec<(String, usize)> = authors.into_iter().map(|(a, posts)| (a.name, posts.len())).collect();
    /// assert_eq!(counts, [("ada".to_owned(), 2), ("bob".to_owned(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn prefetch<C: Model, T>(self, column: Column<C, T, M>) -> Prefetch<M, C, T>
    where
        T: RefersTo<M::Key>,
        M::Key: Into<T>,
    {
        Prefetch {
            query: self,
            column,
        }
    }

    /// Reads, for the whole list, the rows of `T` each row is linked to through the
    /// many-to-many relation of the through model `Th`: Django's `prefetch_related("tags")`,
    /// in one more query per 1,000 rows. Each result is `(row, linked)`, the linked rows in
    /// key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// #[model(many_to_many(tags: Tag, through = PostTag))]
    /// struct Post { id: Option<i64> }
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String }
    ///
    /// #[derive(Model)]
    /// struct PostTag {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Post, on_delete = cascade)]
    ///     post_id: i64,
    ///     #[model(foreign_key = Tag, on_delete = cascade)]
    ///     tag_id: i64,
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Post, Tag, PostTag)>().await?;
    /// for _ in 0..2 {
    ///     Post { id: None }.save(&db).await?;
    /// }
    /// for name in ["rust", "sql"] {
    ///     Tag { id: None, name: name.into() }.save(&db).await?;
    /// }
    /// Post::get(&db, 1).await?.unwrap().tags().add(&db, [2, 1]).await?;
    /// let posts = Post::query().prefetch_linked::<PostTag, Tag>().all(&db).await?;
    /// let names: Vec<Vec<String>> = posts.into_iter()
    ///     .map(|(_, tags)| tags.into_iter().map(|t| t.name).collect())
    ///     .collect();
    /// assert_eq!(names, [vec!["rust".to_owned(), "sql".to_owned()], vec![]]);
    /// # Ok(()) }
    /// ```
    pub fn prefetch_linked<Th: Through<M, T>, T: Model>(self) -> PrefetchLinked<M, Th, T> {
        PrefetchLinked {
            query: self,
            _marker: PhantomData,
        }
    }
}

/// A query whose rows come with their referenced rows: [`Query::select_related`].
pub struct SelectRelated<M, T, R> {
    query: Query<M>,
    _marker: PhantomData<fn() -> (T, R)>,
}

impl<M, T, R> std::fmt::Debug for SelectRelated<M, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectRelated")
            .field("query", &self.query)
            .finish()
    }
}

/// A row and its referenced row, read from one joined row: the model's columns, then the
/// parent's.
fn decode_joined<M: Model, T: RefersTo<R::Key>, R: Model>(
    row: &Row<'_>,
) -> Result<(M, T::Loaded<R>)> {
    let this = M::__load(row)?;
    let joined = Row::Offset(row, M::META.columns.len());
    let key = R::META.primary_key;
    let parent = if joined.is_null(key, R::META.name, R::META.columns[key])? {
        None
    } else {
        Some(R::__load(&joined)?)
    };
    match T::loaded(parent) {
        Some(parent) => Ok((this, parent)),
        // A reference that cannot be NULL and names no row: only where the database does
        // not enforce references.
        None => Err(Error::NotFound {
            model: R::META.name,
            key: format!("that a `{}` row refers to", M::META.name),
        }),
    }
}

impl<M: Model, T: RefersTo<R::Key> + 'static, R: Model> SelectRelated<M, T, R>
where
    T::Loaded<R>: Send,
{
    /// The rows with their referenced rows, in the query's order.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<(M, T::Loaded<R>)>> {
        self.query
            .rows_by(&mut ex.__target(), decode_joined::<M, T, R>)
            .await
    }

    /// The first row with its referenced row, if any.
    pub async fn first<'e>(self, ex: impl Executor<'e>) -> Result<Option<(M, T::Loaded<R>)>> {
        self.query
            .first_by(&mut ex.__target(), decode_joined::<M, T, R>)
            .await
    }
}

/// A query whose rows come with the rows that refer to them: [`Query::prefetch`].
pub struct Prefetch<M, C, T> {
    query: Query<M>,
    column: Column<C, T, M>,
}

impl<M, C, T> std::fmt::Debug for Prefetch<M, C, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("query", &self.query)
            .field("column", &self.column)
            .finish()
    }
}

impl<M: Model, C: Model, T: RefersTo<M::Key> + FieldType> Prefetch<M, C, T>
where
    M::Key: Into<T>,
{
    /// The rows, each with the rows of `C` that refer to it.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<(M, Vec<C>)>> {
        let mut target = ex.__target();
        let rows = self.query.rows_by(&mut target, M::__load).await?;
        let (keys, mut out) = keyed(rows)?;
        for chunk in keys.chunks(MAX_CHUNK_ROWS) {
            let children = C::query()
                .filter(self.column.in_(chunk.iter().map(|(k, _)| k.clone())))
                .rows_by(&mut target, C::__load)
                .await?;
            for child in children {
                let Some(value) = child.__field(self.column.index()).downcast_ref::<T>() else {
                    continue;
                };
                if let Some(i) = value.referenced_key().and_then(|k| find(&keys, k)) {
                    out[i].1.push(child);
                }
            }
        }
        Ok(out)
    }
}

/// The rows' keys, sorted, each with its row's position, and the rows with empty lists.
#[allow(clippy::type_complexity)]
fn keyed<M: Model, X>(rows: Vec<M>) -> Result<(Vec<(M::Key, usize)>, Vec<(M, Vec<X>)>)> {
    let mut keys = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let key = row.__key().ok_or(Error::NotSaved {
            model: M::META.name,
        })?;
        keys.push((key.clone(), i));
    }
    keys.sort();
    Ok((keys, rows.into_iter().map(|r| (r, Vec::new())).collect()))
}

/// The positions of the rows whose key is `key` (one: keys are unique).
fn find<K: Ord>(keys: &[(K, usize)], key: &K) -> Option<usize> {
    keys.binary_search_by(|(k, _)| k.cmp(key))
        .ok()
        .map(|at| keys[at].1)
}

/// A query whose rows come with the rows linked to them: [`Query::prefetch_linked`].
pub struct PrefetchLinked<M, Th, T> {
    query: Query<M>,
    _marker: PhantomData<fn() -> (Th, T)>,
}

impl<M, Th, T> std::fmt::Debug for PrefetchLinked<M, Th, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefetchLinked")
            .field("query", &self.query)
            .finish()
    }
}

/// A linked row and the key of the row it is linked to, from `T`'s columns and then the
/// through row's `FROM` column.
fn decode_linked<M: Model, T: Model>(row: &Row<'_>) -> Result<(T, M::Key)> {
    let linked = T::__load(row)?;
    let key = M::Key::__read(row, T::META.columns.len(), M::META.name, "link")?;
    Ok((linked, key))
}

impl<M: Model, Th: Through<M, T>, T: Model> PrefetchLinked<M, Th, T> {
    /// The rows, each with the rows of `T` linked to it.
    pub async fn all<'e>(self, ex: impl Executor<'e>) -> Result<Vec<(M, Vec<T>)>> {
        let mut target = ex.__target();
        let rows = self.query.rows_by(&mut target, M::__load).await?;
        let (keys, mut out) = keyed(rows)?;
        for chunk in keys.chunks(MAX_CHUNK_ROWS) {
            let sql = linked_sql::<M, Th, T>(&target, chunk)?;
            let (sql, args) = sql.into_parts();
            let links = target
                .fetch_all(sqlx::AssertSqlSafe(sql), args, decode_linked::<M, T>)
                .await?;
            for (linked, key) in links {
                if let Some(i) = find(&keys, &key) {
                    out[i].1.push(linked);
                }
            }
        }
        Ok(out)
    }
}

/// `SELECT T's columns, link.FROM FROM T JOIN Th AS link ON link.TO = T.key WHERE link.FROM
/// IN (keys) ORDER BY T.key`.
fn linked_sql<M: Model, Th: Through<M, T>, T: Model>(
    target: &Target<'_>,
    keys: &[(M::Key, usize)],
) -> Result<Sql> {
    let mut sql = Sql::with_capacity(target.backend(), keys.len());
    sql.scope_of(T::META.table, true);
    let own = sql.scope();
    let link = Sql::join_scope(Th::META.table, 1);
    let key = T::META.columns[T::META.primary_key];
    sql.push("SELECT ");
    sql.each(T::META.columns, |sql, column| {
        sql.column(column);
    });
    sql.push(", ").column_of(link, Th::FROM);
    sql.push(" FROM ").ident(T::META.table).push(" JOIN ");
    sql.ident(Th::META.table).push(" AS ").qualifier(link);
    sql.push(" ON ")
        .column_of(link, Th::TO)
        .push(" = ")
        .column_of(own, key);
    sql.push(" WHERE ").column_of(link, Th::FROM).push(" IN (");
    sql.list(keys, |sql, (key, _)| sql.bind_as(key, Th::FROM).map(drop))?;
    sql.push(") ORDER BY ").column_of(own, key);
    Ok(sql)
}
