//! How runners behave: names on the broker, batch sizes, waits and retries.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::MAX_BATCH;

/// The settings of relays, workers and the embedded runner; [`Config::default`] suits most
/// applications, and each setter changes one.
///
/// ```
/// use std::time::Duration;
/// let config = signals_outbox::Config::default()
///     .stream("ACCOUNTS")
///     .subject_prefix("accounts")
///     .max_attempts(3)
///     .backoff(Duration::from_millis(50), Duration::from_secs(5));
/// assert_eq!(config.subject("User", "send_welcome"), "accounts.User.send_welcome");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) stream: String,
    pub(crate) subject_prefix: String,
    pub(crate) consumer: String,
    pub(crate) batch: usize,
    pub(crate) poll: Duration,
    pub(crate) lease: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) ack_wait: Duration,
    pub(crate) duplicate_window: Duration,
    pub(crate) retention: Duration,
    pub(crate) name: String,
    pub(crate) claim: usize,
    pub(crate) local_wakeups: bool,
    pub(crate) concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stream: "SIGNALS".into(),
            subject_prefix: "signals".into(),
            consumer: "signals-workers".into(),
            batch: 500,
            poll: Duration::from_millis(100),
            lease: Duration::from_secs(10),
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            retention: Duration::from_secs(7 * 24 * 3600),
            name: format!("runner-{}", uuid::Uuid::new_v4()),
            claim: signals_core::durable::PARTITIONS as usize,
            local_wakeups: true,
            concurrency: 1,
        }
    }
}

impl Config {
    /// The JetStream stream events are published to (default `SIGNALS`).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The first token of every subject (default `signals`): an event of receiver `r` of
    /// model `M` goes to `signals.M.r`.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// The durable consumer the workers share (default `signals-workers`).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// Events per round of a relay or the embedded runner (default 500, at most 1,000).
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events;
        self
    }

    /// How long a runner waits for new events before it looks at the table again (default
    /// 100 ms). Commits in the runner's own process wake it at once, and on PostgreSQL so do
    /// every process's (`LISTEN`/`NOTIFY`): the poll bounds the latency of other processes'
    /// commits on SQLite and MySQL.
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// On SQLite, how long a runner's claim on its partitions lasts unless renewed (default
    /// 10 s): how long the others wait when it dies. PostgreSQL and MySQL need no lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Deliveries of an event before it goes to the dead letters (default 5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The wait before the second delivery of a failed event, doubled for each later one up
    /// to `max` (defaults 200 ms and 30 s).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max;
        self
    }

    /// How long a worker has to handle a delivery before JetStream gives it to another
    /// (default 30 s): a worker that dies mid-event costs this long.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// The stream's window for dropping a republished event (default 2 minutes).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long the stream keeps an event (default 7 days; its `max_age`): the window in which
    /// JetStream can deliver an event again, to a consumer made anew (which starts from the
    /// stream's first message) or after a worker's failure. Keep the inbox at least this long
    /// ([`purge`](crate::purge)'s age): an event replayed after the inbox forgot it is
    /// dead-lettered, not run. A relay or worker brings an existing stream to this retention.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// This runner's name, which holds its SQLite leases (default: random per runner). A
    /// restarted runner with the same name takes its partitions back at once.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many of the outbox's 16 partitions a round claims at most (default all 16). With
    /// several relays (or embedded runners), a lower number spreads the partitions over them
    /// so they publish side by side; events of one instance stay in one partition, in order.
    pub fn claim(mut self, partitions: usize) -> Self {
        self.claim = partitions;
        self
    }

    /// How many deliveries one worker handles at once, each in a transaction of its own
    /// (default 1: one after the other, in the order the stream holds them). More raise a
    /// worker's throughput when receivers wait on the database; each takes a connection of
    /// the pool while it runs. Events of one instance may then be handled out of order, as
    /// they may be with several workers.
    pub fn concurrency(mut self, deliveries: usize) -> Self {
        self.concurrency = deliveries;
        self
    }

    /// Ignores the commits of this process as wake-ups, as a runner in another process would
    /// (for benchmarks of cross-process latency).
    #[doc(hidden)]
    pub fn __without_local_wakeups(mut self) -> Self {
        self.local_wakeups = false;
        self
    }

    /// The subject of receiver `receiver`'s events of model `model`. Characters NATS keeps
    /// for itself (`.`, `*`, `>`, white space) become `_`.
    pub fn subject(&self, model: &str, receiver: &str) -> String {
        let token = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if matches!(c, '.' | '*' | '>') || c.is_whitespace() {
                        '_'
                    } else {
                        c
                    }
                })
                .collect()
        };
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            token(model),
            token(receiver)
        )
    }

    /// The wait before delivery `attempt + 1` of an event that failed `attempt` times.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }

    pub(crate) fn check(&self) -> Result<()> {
        let reserved = |c: char| matches!(c, '*' | '>') || c.is_whitespace();
        // Stream and consumer names are single tokens; the prefix may have several.
        let bad_name = |v: &str| v.is_empty() || v.chars().any(|c| reserved(c) || c == '.');
        let bad_prefix = |v: &str| {
            v.split('.')
                .any(|t| t.is_empty() || t.chars().any(reserved))
        };
        for (what, v, bad) in [
            ("stream", &self.stream, bad_name(&self.stream)),
            ("consumer", &self.consumer, bad_name(&self.consumer)),
            (
                "subject prefix",
                &self.subject_prefix,
                bad_prefix(&self.subject_prefix),
            ),
        ] {
            if bad {
                return Err(Error::Config(format!(
                    "the {what} `{v}` is empty or holds a character NATS reserves there (`*`, `>`, white space, or `.` but between tokens of a prefix)"
                )));
            }
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(Error::Config(format!(
                "batch must be between 1 and {MAX_BATCH} events, not {}",
                self.batch
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::Config(
                "concurrency must be at least 1 delivery".into(),
            ));
        }
        if self.claim == 0 {
            return Err(Error::Config("claim must be at least 1 partition".into()));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("max_attempts must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = Config::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<u128> = (1..=6).map(|a| c.delay(a).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn names_are_checked() {
        assert!(Config::default().check().is_ok());
        assert!(Config::default().stream("a.b").check().is_err());
        assert!(
            Config::default()
                .subject_prefix("app.events")
                .check()
                .is_ok()
        );
        assert!(Config::default().subject_prefix("a b").check().is_err());
        assert!(Config::default().batch(0).check().is_err());
        assert!(Config::default().batch(5000).check().is_err());
        assert!(Config::default().max_attempts(0).check().is_err());
        assert_eq!(Config::default().subject("M", "a::b.c"), "signals.M.a::b_c");
    }
}
