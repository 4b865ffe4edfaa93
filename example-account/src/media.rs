//! Uploaded files under the media root, as Django's `FileSystemStorage` and `upload_to` do.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use chrono::{Datelike, Utc};

use crate::Error;

static MEDIA_ROOT: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the directory uploaded files live under (Django's `MEDIA_ROOT`); default `media`.
pub fn set_media_root(root: impl Into<PathBuf>) {
    if let Ok(mut guard) = MEDIA_ROOT.write() {
        *guard = Some(root.into());
    }
}

/// The media root.
pub fn media_root() -> PathBuf {
    MEDIA_ROOT
        .read()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(|| PathBuf::from("media"))
}

/// The absolute location of a stored file's relative path.
pub fn path_of(relative: &str) -> PathBuf {
    media_root().join(relative)
}

/// Checks that `source` is an image by its header (PNG, JPEG, GIF, WebP, BMP, ...), as
/// Django's `ImageField` does with Pillow.
pub fn check_image(source: &Path) -> Result<(), Error> {
    if !source.is_file() {
        return Err(Error::NoSuchFile(source.display().to_string()));
    }
    imagesize::size(source)
        .map(drop)
        .map_err(|_| Error::NotAnImage(source.display().to_string()))
}

/// Copies `source` to `users/%Y/%m/%d/<name>` under the media root (adding `_1`, `_2`, ... to
/// the name when taken) and returns the relative path.
pub(crate) fn store_photo(source: &Path) -> Result<String, Error> {
    check_image(source)?;
    let today = Utc::now().date_naive();
    let dir = format!(
        "users/{:04}/{:02}/{:02}",
        today.year(),
        today.month(),
        today.day()
    );
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("photo");
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let target_dir = media_root().join(&dir);
    std::fs::create_dir_all(&target_dir).map_err(|e| Error::io(&target_dir, e))?;
    for n in 0..1000u32 {
        let file = if n == 0 {
            format!("{stem}{ext}")
        } else {
            format!("{stem}_{n}{ext}")
        };
        let target = target_dir.join(&file);
        // `create_new` refuses an existing file, so two uploads never share a name.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
        {
            Ok(mut out) => {
                let copied = std::fs::File::open(source)
                    .and_then(|mut input| std::io::copy(&mut input, &mut out));
                if let Err(e) = copied {
                    let _ = std::fs::remove_file(&target);
                    return Err(Error::io(source, e));
                }
                return Ok(format!("{dir}/{file}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&target, e)),
        }
    }
    Err(Error::io(
        &target_dir.join(name),
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a thousand uploads with this name today; rename the file",
        ),
    ))
}

/// Removes a stored file; a missing file is not an error.
pub(crate) fn remove(relative: &str) {
    if !relative.is_empty() {
        let _ = std::fs::remove_file(path_of(relative));
    }
}
