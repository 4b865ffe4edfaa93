//! Password hashing with Argon2id (Django's recommended hasher), never stored in clear.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use std::sync::{Arc, Mutex, OnceLock, mpsc};

use crate::Error;

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a random salt.
pub(crate) fn hash(password: &str) -> Result<String, Error> {
    if password.is_empty() {
        return Err(Error::EmptyPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Password(e.to_string()))
}

/// An unusable password (Django's `set_unusable_password`): `!` and random characters, which
/// no password verifies against.
pub(crate) fn unusable() -> String {
    format!("!{}", SaltString::generate(&mut OsRng).as_str())
}

/// Whether `password` matches the stored `hash`; a malformed hash never matches.
pub(crate) fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// What the password threads do.
enum Job {
    Hash(String, tokio::sync::oneshot::Sender<Result<String, Error>>),
    Verify(String, String, tokio::sync::oneshot::Sender<bool>),
}

/// The queue of the threads that hash and check passwords, started on first use: one per
/// core, for the life of the process. Argon2 allocates 19 MiB per hash and frees it; on a
/// few long-lived threads the allocator reuses that memory, where on tokio's blocking pool
/// (up to 512 threads, each with an arena of its own) a flood of logins left gigabytes behind
/// for good. Work queues here instead of running all at once.
fn jobs() -> &'static mpsc::Sender<Job> {
    static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let receive = Arc::clone(&receive);
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let queue = receive.lock().unwrap_or_else(|e| e.into_inner());
                            queue.recv()
                        };
                        match job {
                            Ok(Job::Hash(password, reply)) => {
                                let _ = reply.send(hash(&password));
                            }
                            Ok(Job::Verify(password, hash, reply)) => {
                                let _ = reply.send(verify(&password, &hash));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "no thread to hash passwords");
            }
        }
        send
    })
}

/// [`hash`] on the password threads, queued behind the work before it: an async caller's
/// thread is not blocked for Argon2's tens of milliseconds.
pub(crate) async fn hash_queued(password: &str) -> Result<String, Error> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let gone = || Error::Password("the password threads stopped".into());
    jobs()
        .send(Job::Hash(password.to_owned(), reply))
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

/// [`verify`] on the password threads, queued behind the work before it.
pub(crate) async fn verify_queued(password: String, hash: String) -> bool {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if jobs().send(Job::Verify(password, hash, reply)).is_err() {
        return false;
    }
    answer.await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_differ() {
        let a = super::hash("s3cret").expect("hashes");
        let b = super::hash("s3cret").expect("hashes");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(!a.contains("s3cret"));
        assert!(super::verify("s3cret", &a));
        assert!(!super::verify("wrong", &a));
        assert!(!super::verify("s3cret", "not a hash"));
        assert!(matches!(super::hash(""), Err(crate::Error::EmptyPassword)));
    }
}
