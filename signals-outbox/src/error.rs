//! The crate's error: the database's, the broker's, a configuration mistake, an outbox row
//! that cannot be read, or a runner task that panicked. Each keeps its source.

/// A boxed error of the broker client's (async-nats has one error type per operation).
pub type BrokerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a relay, a worker or the embedded runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed a statement; [`signals_core::Error::kind`] tells which.
    #[error(transparent)]
    Database(#[from] signals_core::Error),
    /// NATS or JetStream failed while the runner was `doing` something: connecting, a stream or
    /// consumer, a publish or its ack. Usually passing: runners log it and try again.
    #[error("NATS JetStream, {doing}: {source}")]
    Broker {
        /// What the runner was doing.
        doing: String,
        /// The client's error.
        #[source]
        source: BrokerError,
    },
    /// The configuration cannot work (a stream name NATS refuses, say).
    #[error("invalid outbox configuration: {0}")]
    Config(String),
    /// An outbox row that cannot be read as an event (changed by hand, or by another
    /// program): it is dead-lettered, never run.
    #[error("outbox event {event_id} cannot be read: {reason}")]
    Corrupt {
        /// The event's id.
        event_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`wait_until_handled`](crate::wait_until_handled) gave up: `events` committed before
    /// it was called were still neither handled nor dead-lettered after `waited` (no runner
    /// running, or one failing on the database or the broker).
    #[error("{events} durable events still not handled after {waited:?}")]
    NotHandled {
        /// How many were left.
        events: u64,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A runner's task panicked or was aborted; the others were stopped and awaited.
    #[error("the {task} task ended abnormally: {source}")]
    Task {
        /// Which runner: `relay`, `worker` or `embedded runner`.
        task: &'static str,
        /// Tokio's report of the panic or abort.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<signals_core::sqlx::Error> for Error {
    fn from(err: signals_core::sqlx::Error) -> Self {
        Error::Database(err.into())
    }
}

/// A broker error, with what was being done.
pub(crate) fn broker(doing: &str, err: impl Into<BrokerError>) -> Error {
    Error::Broker {
        doing: doing.to_owned(),
        source: err.into(),
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
