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

/// The longest username a user can have (`validate_username`): a longer one names no one, and
/// is neither looked up, hashed nor kept whole.
pub(crate) const MAX_USERNAME: usize = 150;
/// The longest password checked; a longer one is refused without hashing.
pub(crate) const MAX_PASSWORD: usize = 4096;

/// Who is trying: the username as the database would find it (NFKC, as Django normalises
/// usernames; lower case and without trailing spaces, as a case-insensitive, PAD SPACE
/// collation compares them; at most [`MAX_USERNAME`] characters), and the client's address
/// (none when the server does not know it, as in a test without a connection).
///
/// A name the database finds is also counted by the account it finds ([`Who::Account`]): a
/// collation that compares `admïn` or `ÁDMÍN` as `admin` (MariaDB's `utf8mb4_general_ci`) then
/// gives no fresh count to each spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    User(String, Option<IpAddr>),
    Account(i64, Option<IpAddr>),
    Address(Option<IpAddr>),
}

fn user_key(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    username
        .nfkc()
        .flat_map(char::to_lowercase)
        .take(MAX_USERNAME + 1)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Login attempts, counted in memory (per process: behind a load balancer each server slows
/// down what reaches it), at most [`MAX_ENTRIES`] keys of at most [`MAX_USERNAME`] characters.
#[derive(Default)]
pub(crate) struct Throttle {
    failures: Mutex<HashMap<Who, Failures>>,
}

impl Throttle {
    /// Starts an attempt: `Err` with the time it must still wait when a run of failures
    /// slowed it down; else the attempt is counted at once, as a failure until
    /// [`succeeded`](Self::succeeded) says otherwise, so that attempts sent all at once are
    /// counted before any of them is checked.
    pub(crate) fn attempt(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        self.count(&[
            (Who::User(user_key(username), addr), FREE_PER_USER),
            (Who::Address(addr), FREE_PER_ADDRESS),
        ])
    }

    /// Continues an attempt whose name the database found as account `id`: counted (and
    /// slowed down) by that account too, however the name was spelt.
    pub(crate) fn attempt_account(&self, id: i64, addr: Option<IpAddr>) -> Result<(), Duration> {
        self.count(&[(Who::Account(id, addr), FREE_PER_USER)])
    }

    fn count(&self, keys: &[(Who, u32)]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|(who, free)| {
                let f = failures.get(who)?;
                if now.duration_since(f.last) >= WINDOW {
                    return None;
                }
                let until = f.last + delay(f.count, *free)?;
                (until > now).then(|| until - now)
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if failures.len() + keys.len() > MAX_ENTRIES {
            failures.retain(|_, f| now.duration_since(f.last) < WINDOW);
            // Still full: the fewest failures go first (the oldest of them), so that a flood
            // of new names cannot wipe out the counts that slow an attacker down.
            while failures.len() + keys.len() > MAX_ENTRIES {
                let least = failures
                    .iter()
                    .min_by_key(|(_, f)| (f.count, f.last))
                    .map(|(w, _)| w.clone());
                match least {
                    Some(who) => failures.remove(&who),
                    None => break,
                };
            }
        }
        for (who, _) in keys {
            let f = failures.entry(who.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= WINDOW {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        }
        Ok(())
    }

    /// A successful login: that username's count from that address is forgotten, and the
    /// attempt no longer counts against the address.
    pub(crate) fn succeeded(&self, username: &str, id: i64, addr: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&Who::User(user_key(username), addr));
        failures.remove(&Who::Account(id, addr));
        if let Some(f) = failures.get_mut(&Who::Address(addr)) {
            f.count = f.count.saturating_sub(1);
        }
    }
}

/// The wait after `count` failures when `free` are allowed: none below `free`, then 1 s from
/// the last failure, doubling with each further one, at most [`MAX_DELAY`].
fn delay(count: u32, free: u32) -> Option<Duration> {
    let over = count.checked_sub(free)?;
    let secs = 1u64.checked_shl(over).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_at_the_free_failures_double_and_are_capped() {
        assert_eq!(delay(4, 5), None);
        assert_eq!(delay(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(delay(6, 5), Some(Duration::from_secs(2)));
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
            assert_eq!(t.attempt("admin", a), Ok(()));
        }
        assert!(t.attempt("admin", a).is_err(), "the sixth waits");
        assert!(t.attempt("Admin  ", a).is_err(), "so do its variants");
        assert!(t.attempt("ａｄｍｉｎ", a).is_err(), "fullwidth too");
        assert_eq!(
            t.attempt("admin", b),
            Ok(()),
            "another address is not slowed down"
        );
        assert_eq!(
            t.attempt("alice", a),
            Ok(()),
            "another user from that address is not"
        );
        t.succeeded("admin", 1, b);
        assert!(t.attempt("admin", a).is_err());
        // Spellings the database finds as the same account share its count.
        for _ in 0..FREE_PER_USER {
            assert_eq!(t.attempt_account(1, b), Ok(()));
        }
        assert!(
            t.attempt_account(1, b).is_err(),
            "admïn, àdmin: the account's count"
        );
    }

    #[test]
    fn a_flood_of_new_names_does_not_wipe_out_counts() {
        let t = Throttle::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..FREE_PER_USER {
            assert_eq!(t.attempt("admin", a), Ok(()));
        }
        for i in 0..(2 * MAX_ENTRIES) {
            let addr = Some(IpAddr::from((i as u32 / 10).to_be_bytes()));
            let _ = t.attempt(&format!("name{i}"), addr);
        }
        let failures = t.failures.lock().unwrap_or_else(|e| e.into_inner());
        let kept = failures.get(&Who::User("admin".into(), a)).map(|f| f.count);
        assert_eq!(kept, Some(FREE_PER_USER), "admin's count from a is kept");
        assert!(failures.len() <= MAX_ENTRIES);
    }

    #[test]
    fn keys_are_bounded() {
        let t = Throttle::default();
        let long = "x".repeat(1_000_000);
        for i in 0..(MAX_ENTRIES + 100) {
            let addr = Some(IpAddr::from((i as u32).to_be_bytes()));
            let _ = t.attempt(&long, addr);
        }
        let failures = t.failures.lock().unwrap_or_else(|e| e.into_inner());
        assert!(failures.len() <= MAX_ENTRIES);
        assert!(failures.keys().all(|w| match w {
            Who::User(name, _) => name.chars().count() <= MAX_USERNAME + 1,
            Who::Account(..) | Who::Address(_) => true,
        }));
    }
}
