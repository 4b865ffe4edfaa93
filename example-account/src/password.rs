//! Password hashing with Argon2id (Django's recommended hasher), never stored in clear.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

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
