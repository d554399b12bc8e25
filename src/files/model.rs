//! A stored file as the API shows it, and the pure rules around it: clean names, the R2 key,
//! the download headers.

use serde::Serialize;

/// How long a `pending` or `deleting` row may sit before a sweep removes it (and its object):
/// far longer than any upload or delete takes.
pub const STALE_AFTER_MS: u64 = 15 * 60 * 1000;

/// One row of `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub status: String,
    pub created_at: u64,
    /// The latest analysis, as stored JSON.
    #[serde(default)]
    pub analysis: Option<String>,
}

/// A file in API answers (`object: "file"`, as OpenAI's file objects; `bytes` is its size
/// under OpenAI's name and `filename` its name under theirs, so both kinds of client read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub filename: String,
    pub media_type: String,
    pub size: u64,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: u64,
    /// The latest analysis (`POST /api/files/{id}/analyze`), or null.
    pub analysis: Option<serde_json::Value>,
}

impl From<&FileRecord> for FileView {
    fn from(file: &FileRecord) -> Self {
        FileView {
            id: file.id.clone(),
            object: "file",
            name: file.name.clone(),
            filename: file.name.clone(),
            media_type: file.media_type.clone(),
            size: file.size,
            bytes: file.size,
            sha256: file.sha256.clone(),
            created_at: file.created_at,
            analysis: file
                .analysis
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
        }
    }
}

/// The R2 key of a file: ids only, so no client-chosen text ever reaches the key.
pub fn object_key(user_id: &str, file_id: &str) -> String {
    format!("{}{file_id}", user_prefix(user_id))
}

/// The prefix under which all of a user's objects are kept.
pub fn user_prefix(user_id: &str) -> String {
    format!("files/{user_id}/")
}

/// The longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// A client's file name made safe to store and show: only its last path component (`../../etc/
/// passwd` is `passwd`, `C:\\x\\a.txt` is `a.txt`), without control characters, trimmed, at most
/// [`MAX_NAME_CHARS`]; `file` when nothing is left (`..`, empty).
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "file".to_string()
    } else {
        cleaned.to_string()
    }
}

/// `Content-Disposition: attachment` naming the file (RFC 6266): an ASCII fallback
/// `filename` with quotes and backslashes replaced, and the exact name in `filename*`.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_keep_only_a_clean_last_component() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("a\u{0}b\r\n.txt"), "ab.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name("dir/"), "file");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(clean_name("  notes.md "), "notes.md");
    }

    #[test]
    fn keys_are_made_of_ids_only() {
        assert_eq!(object_key("u1", "f1"), "files/u1/f1");
    }

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("résumé \"final\".pdf"),
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%2Epdf"
        );
    }
}
