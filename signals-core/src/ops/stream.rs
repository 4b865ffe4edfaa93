//! Reading a large [`Query`] without holding it: its rows in chunks, in primary key order,
//! one chunk in memory at a time (Django's `QuerySet.iterator()`).
//!
//! Uses `error`, `query`, `tx` and `model`.

use std::collections::VecDeque;

use futures_util::Stream;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::query::{Query, Shape};
use crate::tx::{Executor, Target};

/// What a stream carries from one chunk to the next.
struct State<'e, M: Model> {
    query: Query<M>,
    target: Target<'e>,
    chunk: u64,
    rows: VecDeque<M>,
    /// The last chunk was short: nothing follows.
    done: bool,
    /// The query came with an ordering or a window, refused at the first poll.
    refused: bool,
}

impl<M: Model> Query<M> {
    /// The rows, read `chunk` at a time in primary key order, as a stream that holds one chunk
    /// (Django's `iterator(chunk_size=..)`): memory stays flat however large the table. Each
    /// chunk is one query (`key > last key ORDER BY key LIMIT chunk`), so no cursor stays
    /// open between them: rows written meanwhile ahead of the last key are seen, those behind
    /// are not. The query takes conditions only; an ordering, `limit` or `offset` is refused
    /// with [`Error::InvalidQuery`] (the order is the key's). Each row goes through the
    /// model's `post_load` receivers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use futures_util::TryStreamExt as _;
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Debug, Model)]
    /// struct Event { id: Option<i64>, kind: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<Event>().await?;
    /// let mut events: Vec<Event> = (0..10).map(|i| Event { id: None, kind: if i % 2 == 0 { "a".into() } else { "b".into() } }).collect();
    /// Event::bulk_save(&db, &mut events).await?;
    /// let mut stream = std::pin::pin!(Event::query().filter(Event::KIND.eq("a")).stream(&db, 2));
    /// let mut seen = 0;
    /// while let Some(event) = stream.try_next().await? {
    ///     assert_eq!(event.kind, "a");
    ///     seen += 1;
    /// }
    /// assert_eq!(seen, 5);
    /// # Ok(()) }
    /// ```
    pub fn stream<'e>(
        self,
        ex: impl Executor<'e> + 'e,
        chunk: u64,
    ) -> impl Stream<Item = Result<M>> + Send + 'e
    where
        M: 'e,
    {
        let chunk = chunk.max(1);
        let refused = self.ordered_or_windowed();
        let state = State {
            // Each chunk is the query, limited, after the last key read.
            query: self.limit(chunk),
            target: ex.__target(),
            chunk,
            rows: VecDeque::new(),
            done: false,
            refused,
        };
        futures_util::stream::try_unfold(state, next_row)
    }
}

/// The next row of the stream, reading the next chunk when the last is used up.
async fn next_row<M: Model>(mut state: State<'_, M>) -> Result<Option<(M, State<'_, M>)>> {
    if state.rows.is_empty() && !state.done {
        if state.refused {
            return Err(Error::InvalidQuery(format!(
                "a stream of `{}` reads in primary key order, in chunks: drop `order_by`, \
                 `limit` and `offset`",
                M::META.name
            )));
        }
        let (sql, args) = state
            .query
            .sql(&M::META, state.target.backend(), Shape::Rows)?
            .into_parts();
        let rows = state
            .target
            .fetch_all(sqlx::AssertSqlSafe(sql), args, M::__load)
            .await?;
        state.done = (rows.len() as u64) < state.chunk;
        if let Some(last) = rows.last().and_then(|row| row.__key()) {
            state.query.after_key = Some(Box::new(last.clone()));
        }
        state.rows = rows.into();
    }
    Ok(state.rows.pop_front().map(|row| (row, state)))
}
