//! The operator's settings for files and media: `MAX_FILE_SIZE` (Web+'s name and default),
//! `MAX_FILES_PER_UPLOAD`, `FILE_STORAGE_QUOTA_BYTES` and `ALLOWED_FILE_TYPES`.

use crate::config::source::{parse_number, ConfigSource};

/// Default `MAX_FILE_SIZE`: 10 MiB, as in Web+.
pub const DEFAULT_MAX_FILE_SIZE: usize = 10 * 1024 * 1024;
/// Default `MAX_FILES_PER_UPLOAD`.
pub const DEFAULT_MAX_FILES_PER_UPLOAD: usize = 10;
/// Default `FILE_STORAGE_QUOTA_BYTES`: 1 GiB per user.
pub const DEFAULT_STORAGE_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;

/// The types an upload may be when `ALLOWED_FILE_TYPES` is not set: the images vision models
/// read, PDF, and the text-like types analysis reads itself (source code is `text/plain`).
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
];

/// File settings, parsed once per isolate as part of [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct FileSettings {
    /// `MAX_FILE_SIZE` — the largest file (an upload, or an image or document in a message).
    pub max_file_size: usize,
    /// `MAX_FILES_PER_UPLOAD` — the most files one upload request may carry.
    pub max_files_per_upload: usize,
    /// `FILE_STORAGE_QUOTA_BYTES` — the most bytes of files one user may keep.
    pub storage_quota_bytes: u64,
    /// `ALLOWED_FILE_TYPES` — comma-separated media types an upload may be (after sniffing).
    pub allowed_types: Vec<String>,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_files_per_upload: DEFAULT_MAX_FILES_PER_UPLOAD,
            storage_quota_bytes: DEFAULT_STORAGE_QUOTA_BYTES,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }
}

impl FileSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> FileSettings {
        let allowed_types = match src.get("ALLOWED_FILE_TYPES") {
            Some(raw) if !raw.trim().is_empty() => raw
                .split(',')
                .map(crate::files::media::normalize)
                .filter(|t| !t.is_empty())
                .collect(),
            _ => FileSettings::default().allowed_types,
        };
        FileSettings {
            max_file_size: parse_number(
                src,
                "MAX_FILE_SIZE",
                DEFAULT_MAX_FILE_SIZE,
                1024,
                100 * 1024 * 1024,
                warnings,
            ),
            max_files_per_upload: parse_number(
                src,
                "MAX_FILES_PER_UPLOAD",
                DEFAULT_MAX_FILES_PER_UPLOAD,
                1,
                100,
                warnings,
            ),
            storage_quota_bytes: parse_number(
                src,
                "FILE_STORAGE_QUOTA_BYTES",
                DEFAULT_STORAGE_QUOTA_BYTES,
                1024,
                1 << 50,
                warnings,
            ),
            allowed_types,
        }
    }

    /// The largest upload body: every file at its largest, plus room for the multipart framing.
    pub fn upload_body_bytes(&self) -> usize {
        self.max_file_size
            .saturating_mul(self.max_files_per_upload)
            .saturating_add(64 * 1024)
    }

    /// Whether uploads may be of `media_type`.
    pub fn allows(&self, media_type: &str) -> bool {
        self.allowed_types.iter().any(|t| t == media_type)
    }

    /// The largest JSON body a route carrying inline media takes: the ordinary limit plus one
    /// base64-encoded `MAX_FILE_SIZE` (4 bytes for every 3).
    pub fn media_body_bytes(&self, max_body_bytes: usize) -> usize {
        max_body_bytes.saturating_add(self.max_file_size.div_ceil(3).saturating_mul(4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn source(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn max_file_size_defaults_to_web_plus_ten_mebibytes_and_can_be_set() {
        let mut warnings = Vec::new();
        let defaults = FileSettings::from_source(&source(&[]), &mut warnings);
        assert_eq!(defaults.max_file_size, 10_485_760);
        let set = FileSettings::from_source(&source(&[("MAX_FILE_SIZE", "2048")]), &mut warnings);
        assert_eq!(set.max_file_size, 2048);
        let bad = FileSettings::from_source(&source(&[("MAX_FILE_SIZE", "big")]), &mut warnings);
        assert_eq!(bad.max_file_size, DEFAULT_MAX_FILE_SIZE);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let typed = FileSettings::from_source(
            &source(&[("ALLOWED_FILE_TYPES", "image/png, Image/JPG")]),
            &mut warnings,
        );
        assert_eq!(typed.allowed_types, ["image/png", "image/jpeg"]);
        assert!(defaults.allows("text/csv") && !defaults.allows("image/svg+xml"));
    }

    #[test]
    fn a_media_route_takes_the_ordinary_limit_plus_one_base64_file() {
        let settings = FileSettings {
            max_file_size: 3 * 1024,
            ..FileSettings::default()
        };
        assert_eq!(settings.media_body_bytes(1000), 1000 + 4 * 1024);
    }
}
