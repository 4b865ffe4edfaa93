//! The seed's Django `account` app on signals-core.
//!
//! A `Profile` for every `User`, made by `post_save` receivers in the same transaction as the
//! user's INSERT; photos stored under a media root like Django's `upload_to`, removed when the
//! profile's delete commits; passwords hashed with Argon2id. The binary (`main.rs`) is a thin
//! command line over the operations here.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), example_account::Error> {
//! use example_account::{Account, User, migrate, set_dob};
//! use signals_core::Db;
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! migrate(&db).await?;
//! let user = User::create_user(&db, "johndoe", "john@example.com", "s3cret").await?;
//! assert!(user.check_password("s3cret"));
//!
//! set_dob(&db, "johndoe", "1990-05-17").await?;
//! let account = Account::load(&db, "johndoe").await?;
//! assert_eq!(account.to_string(), "Profile of johndoe");
//! assert_eq!(account.profile.date_of_birth.map(|d| d.to_string()).as_deref(), Some("1990-05-17"));
//! # Ok(()) }
//! ```

pub mod admin;
pub mod durable;
mod import;
mod media;
mod models;
pub mod observe;
mod password;
mod schema;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use signals_core::{Db, ErrorKind, Model, SaveOptions, Tx};

pub use import::{import_users, read_users};
pub use media::{
    DEFAULT_MAX_UPLOAD_SIZE, MAX_FILE_NAME, MAX_IMAGE_PIXELS, check_image, max_upload_size,
    media_root, path_of, set_max_upload_size, set_media_root, valid_file_name,
};
pub use models::{Account, AdminSession, Profile, User, WelcomeNote};
pub use schema::{
    MIGRATIONS_DIR, create_missing_profiles, migrate, models, schema_sql, sqlmigrate,
};

/// What can go wrong; every message is one line that names the thing at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No user has that username.
    #[error("no user named `{0}`")]
    UnknownUser(String),
    /// The durable receivers' runner, relay or worker failed (the broker is away, say).
    #[error("durable receivers: {0}")]
    Durable(#[from] signals_outbox::Error),
    /// `relay` and `worker` need a broker.
    #[error("`{0}` needs NATS: pass --nats-url nats://127.0.0.1:4222 or set NATS_URL")]
    NoBroker(&'static str),
    /// The username is taken.
    #[error("the username `{0}` is already taken")]
    UsernameTaken(String),
    /// The username has characters Django does not allow, or is too long.
    #[error("invalid username `{0}`: use 1 to 150 letters, digits and @ . + - _")]
    BadUsername(String),
    /// The date is not `YYYY-MM-DD`.
    #[error("malformed date `{0}`: expected YYYY-MM-DD, as in 1990-05-17")]
    BadDate(String),
    /// The file is not an image.
    #[error("`{0}` is not an image (PNG, JPEG, GIF, WebP, BMP, TIFF or ICO)")]
    NotAnImage(String),
    /// The file is larger than the upload limit.
    #[error("`{file}` is {size} bytes, more than the {limit} allowed (--max-upload-size)")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The image declares more pixels than [`MAX_IMAGE_PIXELS`] (a decompression bomb, as
    /// Pillow refuses one).
    #[error("`{file}` declares {width}×{height} pixels, more than the {limit} allowed")]
    TooManyPixels {
        /// The file.
        file: String,
        /// Its declared width.
        width: u64,
        /// Its declared height.
        height: u64,
        /// The limit, in pixels.
        limit: u64,
    },
    /// The file's extension does not match the image format its content has.
    #[error("`{file}` is a {format} image but its extension says otherwise; name it `.{expected}`")]
    WrongExtension {
        /// The file.
        file: String,
        /// The format its content has.
        format: &'static str,
        /// An extension of that format.
        expected: &'static str,
    },
    /// The email address is not one.
    #[error("invalid email address `{0}`: expected name@example.com, at most 254 characters")]
    BadEmail(String),
    /// The file does not exist.
    #[error("no file at `{0}`")]
    NoSuchFile(String),
    /// An empty password.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// No password could be read.
    #[error("cannot read the password: {0}")]
    Password(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A backend this app has no migrations for.
    #[error("no migrations for {0}")]
    Unsupported(String),
    /// A setting of the command or its environment is not usable (an address to listen on, a
    /// session key).
    #[error("{0}")]
    Config(String),
    /// A line of an import file is not a user.
    #[error("line {line}: {reason}")]
    Import {
        /// The line (from 1; 0 when the file itself is unreadable).
        line: usize,
        /// Why.
        reason: String,
    },
    /// The database said no.
    #[error(transparent)]
    Db(#[from] signals_core::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A save of `username`'s user failed: name a taken username as such.
    pub(crate) fn from_save(err: signals_core::Error, username: &str) -> Error {
        if err.kind() == ErrorKind::UniqueViolation {
            Error::UsernameTaken(username.to_owned())
        } else {
            Error::Db(err)
        }
    }
}

/// Django's username rule: 1 to 150 characters, letters, digits and `@.+-_`.
pub fn validate_username(username: &str) -> Result<(), Error> {
    let ok = !username.is_empty()
        && username.chars().count() <= 150
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadUsername(username.to_owned()))
    }
}

/// Django's `EmailValidator`, in short: empty (no address), or `local@domain` with a local part
/// of at most 64 characters and no spaces, quotes or control characters, a domain of letters,
/// digits, `-` and dots with at least one dot (or `localhost`), and at most 254 characters in all
/// (the column's length on every backend).
pub fn validate_email(email: &str) -> Result<(), Error> {
    if email.is_empty() {
        return Ok(());
    }
    let bad = || Error::BadEmail(email.to_owned());
    if email.chars().count() > 254 {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && local
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"\"(),:;<>@[\\]".contains(c));
    let domain_ok = (domain == "localhost" || domain.contains('.'))
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `text` safe to print on a terminal: control characters (newlines, escape sequences, ...)
/// are shown escaped (`\n`, `\u{1b}`), so a stored value can neither forge lines nor drive the
/// terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Result<NaiveDate, Error> {
    use chrono::Datelike as _;
    // Years 1 to 9999, as Django's `DateField` takes them and every backend stores them
    // (MariaDB refuses year 0, and chrono would read `+10000` and negative years).
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()) && text.trim().len() == 10)
        .ok_or_else(|| Error::BadDate(text.to_owned()))
}

impl Error {
    /// This error with the file it names shown as `name`: the admin names an upload by the
    /// name it was sent with, never by the server's temporary path.
    pub fn shown_as(self, name: &str) -> Error {
        let name = name.to_owned();
        match self {
            Error::NotAnImage(_) => Error::NotAnImage(name),
            Error::NoSuchFile(_) => Error::NoSuchFile(name),
            Error::TooLarge { size, limit, .. } => Error::TooLarge {
                file: name,
                size,
                limit,
            },
            Error::TooManyPixels {
                width,
                height,
                limit,
                ..
            } => Error::TooManyPixels {
                file: name,
                width,
                height,
                limit,
            },
            Error::WrongExtension {
                format, expected, ..
            } => Error::WrongExtension {
                file: name,
                format,
                expected,
            },
            Error::Io { source, .. } => Error::Io { path: name, source },
            other => other,
        }
    }
}

/// Sets `username`'s date of birth and, when given, photo, in one transaction: two
/// submissions of the profile form at once land as one or the other, never a mix. The
/// photo is stored first and removed again if the change fails; the previous one is removed
/// once the change commits.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), example_account::Error> {
/// use example_account::{User, migrate, parse_date, set_profile};
/// use signals_core::Db;
///
/// let db = Db::connect("sqlite::memory:").await?;
/// migrate(&db).await?;
/// User::create_user(&db, "alice", "", "pw").await?;
/// let account = set_profile(&db, "alice", Some(parse_date("1990-05-17")?), None).await?;
/// assert_eq!(account.profile.date_of_birth, Some(parse_date("1990-05-17")?));
/// # Ok(()) }
/// ```
pub async fn set_profile(
    db: &Db,
    username: &str,
    date: Option<NaiveDate>,
    photo: Option<&Path>,
) -> Result<Account, Error> {
    let stored = photo.map(media::store_photo).transpose()?;
    let saved = db
        .transaction(async |tx: &mut Tx| {
            let mut account = Account::load_for_update(tx, username).await?;
            account.profile.date_of_birth = date;
            let mut fields = SaveOptions::new().update_fields(Profile::DATE_OF_BIRTH);
            if let Some(stored) = &stored {
                let previous = std::mem::replace(&mut account.profile.photo, stored.clone());
                fields = SaveOptions::new().update_fields(Profile::DATE_OF_BIRTH | Profile::PHOTO);
                tx.on_commit(async move { media::remove(&previous) });
            }
            account.profile.save_with(&mut *tx, fields).await?;
            Ok::<_, Error>(account)
        })
        .await;
    if saved.is_err()
        && let Some(stored) = &stored
    {
        media::remove(stored);
    }
    saved
}

/// Sets `username`'s date of birth: the profile is read and written in one transaction, its
/// row locked, and only `date_of_birth` is written, so a concurrent change of the photo is
/// neither lost nor undone.
pub async fn set_dob(db: &Db, username: &str, date: &str) -> Result<Account, Error> {
    set_dob_or_clear(db, username, Some(parse_date(date)?)).await
}

/// [`set_dob`] with a parsed date, or `None` to clear it.
pub async fn set_dob_or_clear(
    db: &Db,
    username: &str,
    date: Option<NaiveDate>,
) -> Result<Account, Error> {
    db.transaction(async |tx: &mut Tx| {
        let mut account = Account::load_for_update(tx, username).await?;
        account.profile.date_of_birth = date;
        let only_dob = SaveOptions::new().update_fields(Profile::DATE_OF_BIRTH);
        account.profile.save_with(&mut *tx, only_dob).await?;
        Ok(account)
    })
    .await
}

/// Sets `username`'s email address; once it commits, the user gets a note telling the old
/// address from the new (the `email_changed` receiver, conditioned on `email`). Setting the
/// same address again changes nothing and sends no note.
pub async fn set_email(db: &Db, username: &str, email: &str) -> Result<User, Error> {
    validate_email(email)?;
    db.transaction(async |tx: &mut Tx| {
        let mut user = User::by_username(&mut *tx, username)
            .await?
            .ok_or_else(|| Error::UnknownUser(username.to_owned()))?;
        user.email = email.to_owned();
        let only_email = SaveOptions::new().update_fields(User::EMAIL);
        user.save_with(&mut *tx, only_email).await?;
        Ok(user)
    })
    .await
}

/// Stores `file` as `username`'s photo and removes the previous one once the change commits.
/// Nothing changes if the user is unknown, the file is not an image, or the save fails. The
/// previous photo is read inside the transaction, its row locked, and only `photo` is
/// written: a concurrent `set_dob` keeps its date, and a concurrent `set_photo` never leaves a
/// profile pointing at a removed file or an upload no profile refers to.
pub async fn set_photo(db: &Db, username: &str, file: &Path) -> Result<Account, Error> {
    let stored = media::store_photo(file)?;
    let saved = db
        .transaction(async |tx: &mut Tx| {
            let mut account = Account::load_for_update(tx, username).await?;
            let previous = std::mem::replace(&mut account.profile.photo, stored.clone());
            let only_photo = SaveOptions::new().update_fields(Profile::PHOTO);
            account.profile.save_with(&mut *tx, only_photo).await?;
            tx.on_commit(async move { media::remove(&previous) });
            Ok::<_, Error>(account)
        })
        .await;
    if saved.is_err() {
        media::remove(&stored);
    }
    saved
}

/// Deletes `username`, its profile by cascade, and (after commit) its photo.
pub async fn delete_user(db: &Db, username: &str) -> Result<u64, Error> {
    let mut user = User::by_username(db, username)
        .await?
        .ok_or_else(|| Error::UnknownUser(username.to_owned()))?;
    Ok(user.delete(db).await?.total())
}

/// Every account, ordered by user id.
pub async fn accounts(db: &Db) -> Result<Vec<Account>, Error> {
    let mut out = Vec::new();
    for user in User::all(db).await? {
        out.push(Account::load(db, &user.username).await?);
    }
    Ok(out)
}

/// The admin's `list_display = ['user', 'date_of_birth', 'photo']`, as an aligned table.
pub fn render_list(accounts: &[Account]) -> String {
    let rows: Vec<[String; 3]> = accounts
        .iter()
        .map(|a| {
            [
                printable(&a.user.username),
                a.profile
                    .date_of_birth
                    .map_or_else(|| "-".into(), |d| d.to_string()),
                if a.profile.photo.is_empty() {
                    "-".into()
                } else {
                    printable(&a.profile.photo)
                },
            ]
        })
        .collect();
    let header = ["user", "date_of_birth", "photo"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    let mut line = |cells: [&str; 3]| {
        let _ = writeln!(out, "{:<w0$}  {:<w1$}  {}", cells[0], cells[1], cells[2]);
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2]]);
    }
    if rows.is_empty() {
        out.push_str("(no users)\n");
    }
    out
}

/// One account in detail.
pub fn render_account(account: &Account) -> String {
    let user = &account.user;
    let profile = &account.profile;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            printable(s)
        }
    };
    format!(
        "{}\n\
         username:      {}\n\
         email:         {}\n\
         date joined:   {}\n\
         active:        {}\n\
         date of birth: {}\n\
         photo:         {}\n",
        printable(&account.to_string()),
        printable(&user.username),
        or_dash(&user.email),
        user.date_joined.format("%Y-%m-%d %H:%M:%S UTC"),
        if user.is_active { "yes" } else { "no" },
        profile
            .date_of_birth
            .map_or_else(|| "-".into(), |d| d.to_string()),
        if profile.photo.is_empty() {
            "-".to_owned()
        } else {
            printable(&path_of(&profile.photo).display().to_string())
        },
    )
}

/// The demo: the seed's story, safe to run again.
pub async fn demo(db: &Db, out: &mut String) -> Result<(), Error> {
    let _ = writeln!(out, "The Django seed's story, on {}:", db.backend());
    match User::by_username(db, "johndoe").await? {
        None => {
            User::create_user(db, "johndoe", "john@example.com", "johndoe-demo").await?;
            let _ = writeln!(
                out,
                "1. create_user(\"johndoe\"): the post_save receivers create_profile and \
                 save_profile made its profile, in the user's own transaction"
            );
        }
        Some(mut user) => {
            user.save(db).await?;
            let _ = writeln!(
                out,
                "1. johndoe exists (joined {}); saving it ran save_profile again",
                user.date_joined.format("%Y-%m-%d")
            );
        }
    }
    let account = Account::load(db, "johndoe").await?;
    let _ = writeln!(out, "2. johndoe's profile: {account}");
    set_dob(db, "johndoe", "1990-05-17").await?;
    let _ = writeln!(out, "3. date of birth set to 1990-05-17");
    let _ = writeln!(out, "4. profiles (the admin's list):");
    for line in render_list(&accounts(db).await?).lines() {
        let _ = writeln!(out, "   {line}");
    }
    Ok(())
}

/// The welcome notes, newest last, one per line.
pub async fn render_notes(db: &Db) -> Result<String, Error> {
    let notes = WelcomeNote::all(db).await?;
    if notes.is_empty() {
        return Ok("no welcome notes yet\n".into());
    }
    Ok(notes
        .iter()
        .map(|n| format!("to {}: {}\n", printable(&n.username), printable(&n.body)))
        .collect())
}

/// The newest welcome note, as the demo and `createuser` show it once it was written.
pub async fn render_new_notes(db: &Db) -> Result<String, Error> {
    let newest = WelcomeNote::all(db).await?.into_iter().max_by_key(|n| n.id);
    Ok(match newest {
        Some(n) => format!(
            "welcome note (durable receiver send_welcome) to {}: {}\n",
            printable(&n.username),
            printable(&n.body)
        ),
        None => String::new(),
    })
}

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://account.db";

/// The default media root.
pub fn default_media_root() -> PathBuf {
    PathBuf::from("media")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("john.doe+1@x-y_z").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("john doe").is_err());
        assert!(validate_username("robert'); DROP TABLE").is_err());
        assert!(validate_username(&"a".repeat(151)).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("1990-05-17")
                .map(|d| d.to_string())
                .ok()
                .as_deref(),
            Some("1990-05-17")
        );
        assert!(matches!(parse_date("17/05/1990"), Err(Error::BadDate(_))));
        assert!(matches!(parse_date("1990-02-30"), Err(Error::BadDate(_))));
    }
}
