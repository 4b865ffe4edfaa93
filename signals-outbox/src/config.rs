//! How runners behave: names on the broker, batch sizes, waits and retries.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::MAX_BATCH;

/// How often, and how soon, a failed event is delivered again: the attempts in all (the
/// first delivery included) before it goes to the dead letters, and the wait before the
/// second, doubled for each later one up to a cap. Set for every receiver with
/// [`Config::max_attempts`] and [`Config::backoff`], for one with [`Config::retry`].
///
/// ```
/// use std::time::Duration;
/// use signals_outbox::Retry;
/// let retry = Retry::new(8).backoff(Duration::from_secs(1), Duration::from_secs(60));
/// assert_eq!(retry.attempts(), 8);
/// assert_eq!(retry.delay(3), Duration::from_secs(4)); // before the fourth delivery
/// assert_eq!(retry.delay(9), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    first: Duration,
    max: Duration,
}

impl Retry {
    /// `attempts` deliveries in all (at least 1), with the default backoff: 200 ms, doubled
    /// up to 30 s.
    pub fn new(attempts: u32) -> Self {
        Retry {
            attempts,
            first: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }

    /// The wait before the second delivery, doubled for each later one up to `max`.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first = first;
        self.max = max;
        self
    }

    /// The deliveries in all before an event is dead-lettered.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before delivery `attempt + 1` of an event that failed `attempt` times; at
    /// most [`Retry::LONGEST`].
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first
            .saturating_mul(factor)
            .min(self.max)
            .min(Retry::LONGEST)
    }

    /// The longest wait a retry takes (about 292 years: what the broker's delays, in
    /// nanoseconds, can say); a longer backoff waits this long.
    pub const LONGEST: Duration = Duration::from_nanos(i64::MAX as u64);
}

impl Default for Retry {
    fn default() -> Self {
        Retry::new(5)
    }
}

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
    pub(crate) retry: Retry,
    /// Per receiver (`Model.receiver`), the retries that replace `retry`.
    pub(crate) retries: std::collections::BTreeMap<String, Retry>,
    pub(crate) ack_wait: Duration,
    pub(crate) duplicate_window: Duration,
    pub(crate) retention: Duration,
    pub(crate) name: String,
    pub(crate) claim: usize,
    pub(crate) local_wakeups: bool,
    pub(crate) concurrency: usize,
    pub(crate) ordered: bool,
    pub(crate) metric_labels: Vec<(String, String)>,
    pub(crate) metrics_every: Duration,
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
            retry: Retry::default(),
            retries: std::collections::BTreeMap::new(),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            retention: Duration::from_secs(7 * 24 * 3600),
            name: format!("runner-{}", uuid::Uuid::new_v4()),
            claim: signals_core::durable::PARTITIONS as usize,
            local_wakeups: true,
            concurrency: 1,
            ordered: false,
            metric_labels: Vec::new(),
            metrics_every: Duration::from_secs(5),
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

    /// Deliveries of an event before it goes to the dead letters (default 5), for every
    /// receiver without a [`retry`](Self::retry) of its own.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.attempts = attempts;
        self
    }

    /// The wait before the second delivery of a failed event, doubled for each later one up
    /// to `max` (defaults 200 ms and 30 s), for every receiver without a
    /// [`retry`](Self::retry) of its own. It also paces a runner's retries after the broker
    /// or the database failed.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry.first = first;
        self.retry.max = max;
        self
    }

    /// The attempts and backoff of durable receiver `receiver` of model `model`, in place of
    /// [`max_attempts`](Self::max_attempts) and [`backoff`](Self::backoff): a mail that may
    /// wait for hours, next to a cache refresh worth one try. A worker or embedded runner
    /// refuses to start when the receiver is not in its program (a misspelled name).
    /// Workers apply it; give the same to every worker.
    ///
    /// ```
    /// use std::time::Duration;
    /// use signals_outbox::{Config, Retry};
    /// let config = Config::default()
    ///     .max_attempts(3)
    ///     .retry("User", "send_welcome", Retry::new(10).backoff(Duration::from_secs(5), Duration::from_secs(3600)));
    /// assert_eq!(config.retry_of("User", "send_welcome").attempts(), 10);
    /// assert_eq!(config.retry_of("User", "audit").attempts(), 3);
    /// ```
    pub fn retry(mut self, model: &str, receiver: &str, retry: Retry) -> Self {
        self.retries.insert(format!("{model}.{receiver}"), retry);
        self
    }

    /// The retries of receiver `receiver` of model `model`: its own, or every receiver's.
    pub fn retry_of(&self, model: &str, receiver: &str) -> Retry {
        if self.retries.is_empty() {
            return self.retry;
        }
        self.retries
            .get(&format!("{model}.{receiver}"))
            .copied()
            .unwrap_or(self.retry)
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

    /// Handles the events of each instance in the order they committed, across every worker
    /// process, while events of different instances run side by side (default off), as
    /// Debezium's outbox router keys its messages by aggregate.
    ///
    /// Events are ordered by the outbox's 16 partitions (an instance always falls in the same
    /// one, [`partition`](signals_core::durable::partition)): relays publish each partition in
    /// commit order, to subjects that name it (`<prefix>.<partition>.<Model>.<receiver>`), and
    /// workers share one consumer per partition (`<consumer>-p<partition>`) that lets one
    /// event at a time be handled, acknowledged after its transaction commits. So a failing
    /// event holds up the later events of its partition until it is handled or
    /// dead-lettered (after its retries), and a worker killed mid-event holds its partition
    /// for [`ack_wait`](Self::ack_wait). At most 16 events are handled at once, whatever the
    /// number of workers; [`concurrency`](Self::concurrency) does not apply.
    ///
    /// Relays and workers must agree: give every one the same setting. Switching an existing
    /// deployment over: let the relays and workers drain first (the unordered consumer is
    /// left in place, unused, and can be deleted).
    ///
    /// ```
    /// let config = signals_outbox::Config::default().ordered_per_instance(true);
    /// assert_eq!(config.subject_in(3, "Order", "confirm"), "signals.3.Order.confirm");
    /// ```
    pub fn ordered_per_instance(mut self, on: bool) -> Self {
        self.ordered = on;
        self
    }

    /// The subject an event of receiver `receiver` of model `model` in partition `part` is
    /// published to: [`subject`](Self::subject), or with
    /// [`ordered_per_instance`](Self::ordered_per_instance) the partition after the prefix.
    pub fn subject_in(&self, part: i64, model: &str, receiver: &str) -> String {
        let subject = self.subject(model, receiver);
        if !self.ordered {
            return subject;
        }
        let rest = &subject[self.subject_prefix.len()..];
        format!("{}.{part}{rest}", self.subject_prefix)
    }

    /// A label every metric of this runner carries (see the crate's documentation for the
    /// metrics): to tell apart the outboxes of several databases in one process, say.
    ///
    /// ```
    /// let config = signals_outbox::Config::default().metric_label("outbox", "accounts");
    /// # let _ = config;
    /// ```
    pub fn metric_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metric_labels.push((key.into(), value.into()));
        self
    }

    /// How often a runner reads the gauges from the tables (default 5 s): the events by
    /// state, and the age of the oldest pending one.
    pub fn metrics_every(mut self, every: Duration) -> Self {
        self.metrics_every = every;
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

    /// The wait before a runner's try `failures + 1` after the broker or the database failed.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        self.retry.delay(failures)
    }

    /// Refuses retries of receivers this program does not have (a misspelled name would
    /// otherwise be ignored in silence).
    pub(crate) fn check_receivers(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for r in signals_core::durable::receivers() {
            if !seen.insert((r.model, r.receiver)) {
                return Err(Error::Config(format!(
                    "two durable receivers are registered as `{}.{}` (two models named `{}` \
                     in different modules?): events name their receiver by model and receiver \
                     name only, so a runner cannot tell them apart; rename one",
                    r.model, r.receiver, r.model
                )));
            }
        }
        for name in self.retries.keys() {
            let known = signals_core::durable::receivers()
                .any(|r| name.split_once('.') == Some((r.model, r.receiver)));
            if !known {
                return Err(Error::Config(format!(
                    "`retry` names `{name}`, which is no durable receiver of this program \
                     (it has: {})",
                    crate::handle::served().join(", ")
                )));
            }
        }
        Ok(())
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
        if self.retry.attempts == 0 {
            return Err(Error::Config("max_attempts must be at least 1".into()));
        }
        if let Some((name, _)) = self.retries.iter().find(|(_, r)| r.attempts == 0) {
            return Err(Error::Config(format!(
                "the retry of `{name}` must allow at least 1 attempt"
            )));
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
