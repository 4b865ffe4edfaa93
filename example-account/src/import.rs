//! `import`: users from a CSV file (`username,email[,password]` per line), saved in one bulk
//! with their profiles (the batched `create_profile`), all or nothing.

use std::path::Path;

use chrono::Utc;
use indicatif::ProgressBar;
use signals_core::{Db, MAX_CHUNK_ROWS, Model};

use crate::{Error, User, password, validate_email, validate_username};

/// Reads the users of `file`: one per line, `username,email`, and optionally a third column
/// with the password (hashed with Argon2id); without one the user gets an unusable password
/// (Django's `set_unusable_password`) and cannot log in until one is set. Every line is checked
/// before anything is saved; a bad one is named by its line number.
pub fn read_users(file: &Path) -> Result<Vec<User>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| csv_error(file, e))?;
    let mut users = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(file, e))?;
        let at = |err: Error| Error::Import {
            line: line + 1,
            reason: err.to_string(),
        };
        let username = record.get(0).unwrap_or_default();
        let email = record.get(1).unwrap_or_default();
        validate_username(username).map_err(at)?;
        validate_email(email).map_err(at)?;
        let password = match record.get(2) {
            Some(p) if !p.is_empty() => password::hash(p).map_err(at)?,
            _ => password::unusable(),
        };
        users.push(User {
            id: None,
            username: username.to_owned(),
            email: email.to_owned(),
            password,
            date_joined: Utc::now(),
            is_active: true,
            is_staff: false,
        });
    }
    Ok(users)
}

fn csv_error(file: &Path, err: csv::Error) -> Error {
    match err.into_kind() {
        csv::ErrorKind::Io(source) => Error::io(file, source),
        other => Error::Import {
            line: 0,
            reason: format!("{other:?}"),
        },
    }
}

/// Saves `users` with their profiles in one transaction, in bulk chunks, advancing
/// `progress` (a bar on a terminal) chunk by chunk. All or nothing: a taken username fails the
/// import naming it, and no user of the file is kept.
pub async fn import_users(
    db: &Db,
    users: &mut [User],
    progress: &ProgressBar,
) -> Result<usize, Error> {
    let mut tx = db.begin().await?;
    for chunk in users.chunks_mut(MAX_CHUNK_ROWS) {
        if let Err(err) = User::bulk_save(&mut tx, chunk).await {
            let name = match &err {
                signals_core::Error::Bulk { row: Some(i), .. } => {
                    chunk.get(*i).map(|u| u.username.clone())
                }
                _ => None,
            };
            tx.rollback().await?;
            return Err(match name {
                Some(name) => Error::from_save(err, &name),
                None => Error::Db(err),
            });
        }
        progress.inc(chunk.len() as u64);
    }
    tx.commit().await?;
    progress.finish_and_clear();
    Ok(users.len())
}
