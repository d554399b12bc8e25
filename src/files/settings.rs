//! The operator's settings for files and media: `MAX_FILE_SIZE` (Web+'s name and default).

use crate::config::source::{parse_number, ConfigSource};

/// Default `MAX_FILE_SIZE`: 10 MiB, as in Web+.
pub const DEFAULT_MAX_FILE_SIZE: usize = 10 * 1024 * 1024;

/// File settings, parsed once per isolate as part of [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct FileSettings {
    /// `MAX_FILE_SIZE` — the largest image or document a message may carry, in bytes.
    pub max_file_size: usize,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

impl FileSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> FileSettings {
        FileSettings {
            max_file_size: parse_number(
                src,
                "MAX_FILE_SIZE",
                DEFAULT_MAX_FILE_SIZE,
                1024,
                100 * 1024 * 1024,
                warnings,
            ),
        }
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
    }

    #[test]
    fn a_media_route_takes_the_ordinary_limit_plus_one_base64_file() {
        let settings = FileSettings {
            max_file_size: 3 * 1024,
        };
        assert_eq!(settings.media_body_bytes(1000), 1000 + 4 * 1024);
    }
}
