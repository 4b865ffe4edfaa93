//! The crate's error: the database's, the broker's, or a configuration mistake.

/// What went wrong in a relay, a worker or the embedded runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed a statement.
    #[error(transparent)]
    Database(#[from] signals_core::Error),
    /// NATS or JetStream failed: connecting, a stream or consumer, a publish or its ack.
    #[error("NATS JetStream: {0}")]
    Broker(String),
    /// The configuration cannot work (a stream name NATS refuses, say).
    #[error("invalid outbox configuration: {0}")]
    Config(String),
}

impl From<signals_core::sqlx::Error> for Error {
    fn from(err: signals_core::sqlx::Error) -> Self {
        Error::Database(err.into())
    }
}

/// A broker error, with what was being done.
pub(crate) fn broker(doing: &str, err: impl std::fmt::Display) -> Error {
    Error::Broker(format!("{doing}: {err}"))
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
