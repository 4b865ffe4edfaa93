//! What keeps the login page from being a weapon: every attempt costs one Argon2 check,
//! whoever it names (so its timing tells nothing about which usernames are staff); the checks
//! queue for the password threads (one per core, see `password.rs`), so a flood cannot take
//! 19 MiB per attempt; and repeated failures are slowed down per username and client
//! address, and per client address alone, with a delay that doubles and is capped
//! (django-axes' idea, without its lockout that an attacker could stretch at will).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failures of one username from one address before its attempts are slowed down.
pub(crate) const FREE_PER_USER: u32 = 5;
/// Failures from one address (any usernames) before its attempts are slowed down.
pub(crate) const FREE_PER_ADDRESS: u32 = 20;
/// The longest wait a run of failures imposes.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries the table keeps at most; the stalest go first when it is full.
const MAX_ENTRIES: usize = 10_000;

/// A password hash no password matches, for attempts that name no staff user: checking it
/// costs what checking a real one costs (Django's `make_password(None)` for unknown users).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        crate::password::hash(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
    })
}

/// Checks `password` against `hash` (or against the dummy hash when there is none) on the
/// password threads, queued behind the work before it; `false` for the dummy.
pub(crate) async fn verify(password: String, hash: Option<String>) -> bool {
    let real = hash.is_some();
    let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
    crate::password::verify_queued(password, hash).await && real
}

/// Who is trying: the username as typed and the client's address (none when the server does
/// not know it, as in a test without a connection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    User(String, Option<IpAddr>),
    Address(Option<IpAddr>),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins, counted in memory (per process: behind a load balancer each server slows
/// down what reaches it).
#[derive(Default)]
pub(crate) struct Throttle {
    failures: Mutex<HashMap<Who, Failures>>,
}

impl Throttle {
    /// How long this attempt must still wait, if a run of failures slowed it down.
    pub(crate) fn wait(&self, username: &str, addr: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        [
            (Who::User(username.to_owned(), addr), FREE_PER_USER),
            (Who::Address(addr), FREE_PER_ADDRESS),
        ]
        .into_iter()
        .filter_map(|(who, free)| {
            let f = failures.get(&who)?;
            let until = f.last + delay(f.count, free)?;
            (until > now && now.duration_since(f.last) < WINDOW).then(|| until - now)
        })
        .max()
    }

    /// Counts a failed attempt.
    pub(crate) fn failed(&self, username: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, f| now.duration_since(f.last) < WINDOW);
            if failures.len() >= MAX_ENTRIES {
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(w, _)| w.clone());
                if let Some(who) = stalest {
                    failures.remove(&who);
                }
            }
        }
        for who in [Who::User(username.to_owned(), addr), Who::Address(addr)] {
            let f = failures.entry(who).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= WINDOW {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        }
    }

    /// A successful login forgets that username's failures from that address.
    pub(crate) fn succeeded(&self, username: &str, addr: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&Who::User(username.to_owned(), addr));
    }
}

/// The wait after `count` failures when `free` are allowed: none up to `free`, then 1 s,
/// doubling with each further failure, at most [`MAX_DELAY`].
fn delay(count: u32, free: u32) -> Option<Duration> {
    let over = count.checked_sub(free).filter(|&n| n > 0)?;
    let secs = 1u64.checked_shl(over - 1).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        assert_eq!(delay(5, 5), None);
        assert_eq!(delay(6, 5), Some(Duration::from_secs(1)));
        assert_eq!(delay(7, 5), Some(Duration::from_secs(2)));
        assert_eq!(delay(100, 5), Some(MAX_DELAY));
    }

    #[test]
    fn failures_slow_down_that_user_from_that_address_only() {
        let t = Throttle::default();
        let (a, b) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
        );
        for _ in 0..FREE_PER_USER {
            assert_eq!(t.wait("admin", a), None);
            t.failed("admin", a);
        }
        t.failed("admin", a);
        assert!(t.wait("admin", a).is_some());
        assert_eq!(
            t.wait("admin", b),
            None,
            "another address is not slowed down"
        );
        assert_eq!(
            t.wait("alice", a),
            None,
            "another user from that address is not"
        );
        t.succeeded("admin", b);
        assert!(t.wait("admin", a).is_some());
    }
}
