//! Ollama's native API (`/api/tags`, `/api/ps`, `/api/pull`, `/api/generate`): the requests
//! sent and the answers read. Pure — no `worker`, no API error type.
//!
//! Ollama streams NDJSON: one JSON object per line, lines split across network reads at any
//! byte, and an error in the middle of a stream arrives as a `{"error": "…"}` line with the
//! HTTP status already 200.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::wire::OutboundRequest;

/// The server root from an OpenAI-compatible base URL: `http://h:11434/v1` → `http://h:11434`.
pub fn native_root(base_url: &str) -> String {
    let trimmed = base_url.trim_end_matches('/');
    trimmed
        .strip_suffix("/v1")
        .unwrap_or(trimmed)
        .trim_end_matches('/')
        .to_string()
}

/// A model name as Ollama keys it: the tag defaults to `latest`.
pub fn canonical(name: &str) -> String {
    let name = name.trim();
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn headers(key: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![("accept".to_string(), "application/json".to_string())];
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        headers.push(("authorization".to_string(), format!("Bearer {key}")));
    }
    headers
}

pub fn get(root: &str, path: &str, key: Option<&str>) -> OutboundRequest {
    OutboundRequest {
        method: "GET",
        url: format!("{root}{path}"),
        headers: headers(key),
        body: String::new(),
    }
}

pub fn post(root: &str, path: &str, key: Option<&str>, body: &Value) -> OutboundRequest {
    let mut headers = headers(key);
    headers.push(("content-type".to_string(), "application/json".to_string()));
    OutboundRequest {
        method: "POST",
        url: format!("{root}{path}"),
        headers,
        body: body.to_string(),
    }
}

/// A local model, from `/api/tags` (and, with `expires_at`/`size_vram`, from `/api/ps`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NativeModel {
    pub name: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub modified_at: Option<String>,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(default)]
    pub size_vram: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The `models` of a `/api/tags` or `/api/ps` answer.
pub fn parse_models(body: &str) -> Result<Vec<NativeModel>, String> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        models: Vec<NativeModel>,
    }
    serde_json::from_str::<List>(body)
        .map(|l| l.models)
        .map_err(|_| "the server's model list was not understood".to_string())
}

/// The message of an Ollama error body `{"error":"…"}`, or the body itself, shortened.
pub fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Error {
        error: String,
    }
    match serde_json::from_str::<Error>(body) {
        Ok(e) => e.error,
        Err(_) => body.chars().take(200).collect(),
    }
}

/// One line of a `/api/pull` stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PullProgress {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullLine {
    Progress(PullProgress),
    /// `{"error": "…"}`: the pull failed (the HTTP status said 200).
    Failed(String),
}

pub fn parse_pull_line(line: &str) -> Result<PullLine, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|_| "a pull progress line was not JSON".to_string())?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Ok(PullLine::Failed(error.to_string()));
    }
    serde_json::from_value(value)
        .map(PullLine::Progress)
        .map_err(|_| "a pull progress line had no status".to_string())
}

/// The progress of a pull, folded: the statuses in order, each layer's latest byte counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullSummary {
    pub events: Vec<PullProgress>,
    pub total_bytes: u64,
    pub completed_bytes: u64,
    pub succeeded: bool,
}

impl PullSummary {
    /// Adds a line: a layer's new counts replace its previous line, so the summary stays one
    /// entry per status or layer however many progress lines the server sends.
    pub fn add(&mut self, progress: PullProgress) {
        if progress.status == "success" {
            self.succeeded = true;
        }
        let same = self
            .events
            .iter_mut()
            .find(|e| e.status == progress.status && e.digest == progress.digest);
        match same {
            Some(existing) => *existing = progress,
            None => self.events.push(progress),
        }
        self.total_bytes = self.events.iter().filter_map(|e| e.total).sum();
        self.completed_bytes = self
            .events
            .iter()
            .map(|e| e.completed.unwrap_or(0).min(e.total.unwrap_or(u64::MAX)))
            .sum();
    }
}

/// Splits a byte stream into lines, holding a partial line (and a UTF-8 character split
/// across reads) until the rest arrives.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line).trim().to_string();
            if !text.is_empty() {
                lines.push(text);
            }
        }
        lines
    }

    /// What is left after the stream ends (a last line without a newline).
    pub fn finish(&mut self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.pending).trim().to_string();
        self.pending.clear();
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_root_is_the_base_url_without_v1() {
        assert_eq!(native_root("http://h:11434/v1"), "http://h:11434");
        assert_eq!(native_root("http://h:11434/v1/"), "http://h:11434");
        assert_eq!(native_root("http://h/ollama/v1"), "http://h/ollama");
        assert_eq!(native_root("http://h:11434"), "http://h:11434");
    }

    #[test]
    fn a_name_without_a_tag_is_its_latest() {
        assert_eq!(canonical("llama3.2"), "llama3.2:latest");
        assert_eq!(canonical("qwen2.5:0.5b"), "qwen2.5:0.5b");
        assert_eq!(canonical("ns/model"), "ns/model:latest");
        assert_eq!(canonical("host:5000/ns/model"), "host:5000/ns/model:latest");
    }

    #[test]
    fn requests_carry_the_key_only_when_there_is_one() {
        let r = post(
            "http://h",
            "/api/pull",
            Some("k"),
            &serde_json::json!({"model":"m"}),
        );
        assert_eq!(r.url, "http://h/api/pull");
        assert_eq!(r.header("authorization"), Some("Bearer k"));
        assert_eq!(r.body, r#"{"model":"m"}"#);
        assert_eq!(
            get("http://h", "/api/ps", None).header("authorization"),
            None
        );
    }

    #[test]
    fn model_lists_read_tags_and_ps() {
        let tags = r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","modified_at":"2026-01-01T00:00:00Z","size":2019393189,"digest":"a80c","details":{"family":"llama"}}]}"#;
        let m = &parse_models(tags).unwrap()[0];
        assert_eq!(
            (m.name.as_str(), m.size, m.size_vram),
            ("llama3.2:latest", 2019393189, None)
        );
        let ps = r#"{"models":[{"name":"llama3.2:latest","size":1,"size_vram":5,"expires_at":"2026-01-01T00:05:00Z"}]}"#;
        let m = &parse_models(ps).unwrap()[0];
        assert_eq!(m.size_vram, Some(5));
        assert_eq!(m.expires_at.as_deref(), Some("2026-01-01T00:05:00Z"));
        assert!(parse_models("<html>").is_err());
    }

    #[test]
    fn pull_lines_are_progress_or_a_failure() {
        assert_eq!(
            parse_pull_line(r#"{"status":"pulling ab","digest":"ab","total":10,"completed":4}"#),
            Ok(PullLine::Progress(PullProgress {
                status: "pulling ab".into(),
                digest: Some("ab".into()),
                total: Some(10),
                completed: Some(4)
            }))
        );
        assert_eq!(
            parse_pull_line(r#"{"error":"pull model manifest: file does not exist"}"#),
            Ok(PullLine::Failed(
                "pull model manifest: file does not exist".into()
            ))
        );
        assert!(parse_pull_line("nope").is_err());
    }

    #[test]
    fn a_summary_keeps_one_entry_per_layer_with_its_latest_counts() {
        let mut s = PullSummary::default();
        let p = |status: &str, digest: Option<&str>, total, completed| PullProgress {
            status: status.into(),
            digest: digest.map(Into::into),
            total,
            completed,
        };
        s.add(p("pulling manifest", None, None, None));
        s.add(p("pulling a", Some("a"), Some(100), None));
        s.add(p("pulling a", Some("a"), Some(100), Some(40)));
        s.add(p("pulling b", Some("b"), Some(10), Some(10)));
        s.add(p("pulling a", Some("a"), Some(100), Some(100)));
        s.add(p("success", None, None, None));
        assert_eq!(s.events.len(), 4);
        assert_eq!(
            (s.total_bytes, s.completed_bytes, s.succeeded),
            (110, 110, true)
        );
    }

    #[test]
    fn lines_split_anywhere_are_joined_again() {
        let mut split = LineSplitter::default();
        let text =
            "{\"status\":\"pulling manifest\"}\n{\"status\":\"é\"}\n{\"status\":\"success\"}";
        let bytes = text.as_bytes();
        let mut lines = Vec::new();
        // Every one-byte read, which also splits the two-byte é.
        for b in bytes {
            lines.extend(split.push(std::slice::from_ref(b)));
        }
        lines.extend(split.finish());
        assert_eq!(
            lines,
            vec![
                "{\"status\":\"pulling manifest\"}",
                "{\"status\":\"é\"}",
                "{\"status\":\"success\"}"
            ]
        );
    }
}
