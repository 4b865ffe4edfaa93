//! The runners' metrics, through the [`metrics`] facade: nothing is recorded until the program
//! installs a recorder (Prometheus, OpenTelemetry, StatsD, ... through their exporter
//! crates). The names and labels are listed in the crate's documentation.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::{Label, counter, gauge, histogram};
use signals_core::durable::{OUTBOX_TABLE, now_millis};
use signals_core::{Db, Sql};

use crate::config::Config;
use crate::error::Result;
use crate::store::{State, stats};

/// What a runner reports, with the labels of its [`Config::metric_label`]s.
#[derive(Debug)]
pub(crate) struct Observe {
    labels: Vec<Label>,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Observe {
    pub(crate) fn new(config: &Config) -> Self {
        Observe {
            labels: config
                .metric_labels
                .iter()
                .map(|(k, v)| Label::new(k.clone(), v.clone()))
                .collect(),
            every: config.metrics_every,
            last: Mutex::new(None),
        }
    }

    fn of(&self, model: &str, receiver: &str) -> Vec<Label> {
        let mut labels = self.labels.clone();
        labels.push(Label::new("model", model.to_owned()));
        labels.push(Label::new("receiver", receiver.to_owned()));
        labels
    }

    /// A relay published an event (the broker acknowledged it).
    pub(crate) fn published(&self, model: &str, receiver: &str) {
        counter!("signals_outbox_published_total", self.of(model, receiver)).increment(1);
    }

    /// A receiver ran and its transaction committed; `committed_at` is when its save did.
    pub(crate) fn handled(&self, model: &str, receiver: &str, committed_at: i64) {
        let labels = self.of(model, receiver);
        let latency = (now_millis() - committed_at).max(0) as f64 / 1000.0;
        histogram!("signals_outbox_handling_seconds", labels.clone()).record(latency);
        counter!("signals_outbox_handled_total", labels).increment(1);
    }

    /// A delivery found its event handled already.
    pub(crate) fn duplicate(&self, model: &str, receiver: &str) {
        counter!("signals_outbox_duplicates_total", self.of(model, receiver)).increment(1);
    }

    /// A delivery failed (to be retried, or dead-lettered).
    pub(crate) fn failed(&self, model: &str, receiver: &str) {
        counter!("signals_outbox_failures_total", self.of(model, receiver)).increment(1);
    }

    /// An event was dead-lettered.
    pub(crate) fn dead(&self, model: &str, receiver: &str) {
        counter!("signals_outbox_dead_total", self.of(model, receiver)).increment(1);
    }

    /// Sets the gauges read from the tables (the same from every process: the events by
    /// state, and the age of the oldest pending one), at most once per
    /// [`Config::metrics_every`].
    pub(crate) async fn refresh(&self, db: &Db) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < self.every) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(err) = self.read_gauges(db).await {
            tracing::debug!(error = %err, "the outbox's gauges were not read");
        }
    }

    async fn read_gauges(&self, db: &Db) -> Result<()> {
        let s = stats(db).await?;
        let mut sql = Sql::new(db.backend());
        sql.push(&format!(
            "SELECT MIN(created_at) FROM {OUTBOX_TABLE} WHERE state = "
        ))
        .bind(&State::Pending)?;
        let oldest: Option<(Option<i64>,)> = sql.fetch_optional(db).await?;
        let lag = oldest
            .and_then(|(o,)| o)
            .map_or(0.0, |at| (now_millis() - at).max(0) as f64 / 1000.0);
        let labels = &self.labels;
        gauge!("signals_outbox_lag_seconds", labels.clone()).set(lag);
        for (state, n) in [
            ("pending", s.pending),
            ("published", s.published),
            ("handled", s.handled),
            ("dead", s.dead),
        ] {
            let mut labels = labels.clone();
            labels.push(Label::new("state", state));
            gauge!("signals_outbox_events", labels).set(n as f64);
        }
        Ok(())
    }
}
