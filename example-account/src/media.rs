//! Uploaded files under the media root, as Django's `FileSystemStorage` and `upload_to` do.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, Utc};
use imagesize::ImageType;

use crate::Error;

static MEDIA_ROOT: RwLock<Option<PathBuf>> = RwLock::new(None);

/// The default upload limit: 5 MiB.
pub const DEFAULT_MAX_UPLOAD_SIZE: u64 = 5 * 1024 * 1024;

static MAX_UPLOAD_SIZE: AtomicU64 = AtomicU64::new(DEFAULT_MAX_UPLOAD_SIZE);

/// Sets the largest upload accepted, in bytes (Django's `FILE_UPLOAD_MAX_MEMORY_SIZE` and
/// `DATA_UPLOAD_MAX_MEMORY_SIZE` play this part there); default [`DEFAULT_MAX_UPLOAD_SIZE`].
pub fn set_max_upload_size(bytes: u64) {
    MAX_UPLOAD_SIZE.store(bytes, Ordering::Relaxed);
}

/// The largest upload accepted, in bytes.
pub fn max_upload_size() -> u64 {
    MAX_UPLOAD_SIZE.load(Ordering::Relaxed)
}

/// The longest stored file name, extension included (Django's `FileField` default
/// `max_length` is 100 for the whole path; here the name, so the path stays well within the
/// 255 characters the column holds on every backend).
pub const MAX_FILE_NAME: usize = 100;

/// The image formats accepted, with the extensions each may carry.
const FORMATS: &[(ImageType, &str, &[&str])] = &[
    (ImageType::Png, "PNG", &["png"]),
    (ImageType::Jpeg, "JPEG", &["jpg", "jpeg", "jpe", "jfif"]),
    (ImageType::Gif, "GIF", &["gif"]),
    (ImageType::Webp, "WebP", &["webp"]),
    (ImageType::Bmp, "BMP", &["bmp"]),
    (ImageType::Tiff, "TIFF", &["tif", "tiff"]),
    (ImageType::Ico, "ICO", &["ico"]),
];

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

/// The most pixels an image may declare: Pillow's `MAX_IMAGE_PIXELS`, above which it refuses
/// an image as a decompression bomb (a small file declaring 100000×100000 pixels would take
/// 40 GB to decode).
pub const MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Checks that `source` is an image we accept, as Django's `ImageField` does with Pillow: no
/// larger than [`max_upload_size`], a PNG, JPEG, GIF, WebP, BMP, TIFF or ICO by its header,
/// declaring at most [`MAX_IMAGE_PIXELS`], with an extension that matches that format (a PNG
/// named `.jpg` is refused).
///
/// ```
/// use example_account::{Error, check_image};
///
/// // A few bytes of PNG header declaring 100000 × 100000 pixels: a decompression bomb.
/// let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
/// png.extend(100_000u32.to_be_bytes());
/// png.extend(100_000u32.to_be_bytes());
/// png.extend(b"\x08\x06\0\0\0\x1f\x15\xc4\x89");
/// let dir = tempfile::tempdir()?;
/// let bomb = dir.path().join("bomb.png");
/// std::fs::write(&bomb, &png)?;
/// let err = check_image(&bomb).unwrap_err();
/// assert!(matches!(err, Error::TooManyPixels { width: 100_000, height: 100_000, .. }));
/// // Shown by the name it was uploaded with, not the path it was kept at.
/// assert!(err.shown_as("holiday.png").to_string().starts_with("`holiday.png` declares"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_image(source: &Path) -> Result<(), Error> {
    let shown = || source.display().to_string();
    let meta = std::fs::metadata(source).map_err(|_| Error::NoSuchFile(shown()))?;
    if !meta.is_file() {
        return Err(Error::NoSuchFile(shown()));
    }
    let limit = max_upload_size();
    if meta.len() > limit {
        return Err(Error::TooLarge {
            file: shown(),
            size: meta.len(),
            limit,
        });
    }
    let mut header = Vec::with_capacity(4096);
    std::fs::File::open(source)
        .and_then(|f| f.take(4096).read_to_end(&mut header))
        .map_err(|e| Error::io(source, e))?;
    let kind = imagesize::image_type(&header).map_err(|_| Error::NotAnImage(shown()))?;
    let Some((_, format, extensions)) = FORMATS.iter().find(|(t, _, _)| *t == kind) else {
        return Err(Error::NotAnImage(shown()));
    };
    let size = imagesize::blob_size(&header).map_err(|_| Error::NotAnImage(shown()))?;
    let (width, height) = (size.width as u64, size.height as u64);
    if width.saturating_mul(height) > MAX_IMAGE_PIXELS {
        return Err(Error::TooManyPixels {
            file: shown(),
            width,
            height,
            limit: MAX_IMAGE_PIXELS,
        });
    }
    let extension = source
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !extensions.contains(&extension.as_str()) {
        return Err(Error::WrongExtension {
            file: shown(),
            format,
            expected: extensions[0],
        });
    }
    Ok(())
}

/// A file name safe to store and show, as Django's `get_valid_filename` makes it: spaces become
/// `_`, anything but letters, digits, `-`, `_` and `.` is dropped (control characters,
/// slashes, quotes), and the name is cut to [`MAX_FILE_NAME`] characters, keeping its
/// extension.
pub fn valid_file_name(name: &str) -> String {
    let cleaned: String = name
        .trim()
        .replace(' ', "_")
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (cleaned, String::new()),
    };
    let ext: String = ext.chars().take(16).collect();
    let keep = MAX_FILE_NAME.saturating_sub(ext.chars().count() + 4); // room for `_999`
    let stem: String = stem.chars().take(keep).collect();
    let stem = if stem.is_empty() {
        "photo".to_owned()
    } else {
        stem
    };
    format!("{stem}{ext}")
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
    let name = valid_file_name(
        &source
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
    );
    let name = name.as_str();
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
                // At most the limit, whatever the file's size was when it was checked.
                let limit = max_upload_size();
                let copied = std::fs::File::open(source)
                    .and_then(|input| std::io::copy(&mut input.take(limit + 1), &mut out));
                let failure = match copied {
                    Ok(n) if n > limit => Some(Error::TooLarge {
                        file: source.display().to_string(),
                        size: n,
                        limit,
                    }),
                    Ok(_) => None,
                    Err(e) => Some(Error::io(source, e)),
                };
                if let Some(err) = failure {
                    let _ = std::fs::remove_file(&target);
                    return Err(err);
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
