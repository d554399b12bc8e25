//! Structured logging: one JSON object per line, written with `console.log` so that
//! `wrangler dev`, `wrangler tail` and Workers observability all pick it up.
//!
//! Only values chosen here are logged — never headers, bodies or query strings, which is how
//! tokens, passwords and provider keys stay out of the logs. The most recent lines are also
//! kept in memory for `GET /debug/logs` (development only); that buffer is per isolate and
//! bounded, which is all a development aid needs.

use std::cell::RefCell;
use std::collections::VecDeque;

use serde_json::{Map, Value};

/// How much is logged (`LOG_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" | "critical" => Some(LogLevel::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// How many lines `GET /debug/logs` can return.
pub const RECENT_LINES_CAPACITY: usize = 1000;

thread_local! {
    static RECENT: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
}

/// A log record under construction: `time`, `level` and `msg` first, then named fields.
pub struct LogLine {
    level: LogLevel,
    fields: Map<String, Value>,
}

impl LogLine {
    pub fn new(level: LogLevel, now_ms: u64, msg: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("time".into(), Value::String(iso8601(now_ms)));
        fields.insert("level".into(), Value::String(level.as_str().into()));
        fields.insert("msg".into(), Value::String(msg.into()));
        LogLine { level, fields }
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    pub fn render(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// Writes the line when its level is at or above `threshold`.
    pub fn emit(self, threshold: LogLevel) {
        if self.level < threshold {
            return;
        }
        let line = self.render();
        write_console(self.level, &line);
        RECENT.with(|recent| {
            let mut recent = recent.borrow_mut();
            if recent.len() == RECENT_LINES_CAPACITY {
                recent.pop_front();
            }
            recent.push_back(line);
        });
    }
}

/// The most recent `n` lines kept by this isolate, oldest first.
pub fn recent_lines(n: usize) -> Vec<String> {
    RECENT.with(|recent| {
        let recent = recent.borrow();
        let skip = recent.len().saturating_sub(n);
        recent.iter().skip(skip).cloned().collect()
    })
}

#[cfg(target_arch = "wasm32")]
fn write_console(level: LogLevel, line: &str) {
    match level {
        LogLevel::Error => worker::console_error!("{line}"),
        LogLevel::Warn => worker::console_warn!("{line}"),
        _ => worker::console_log!("{line}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn write_console(_level: LogLevel, _line: &str) {}

/// `2026-11-21T21:52:54.123Z` from milliseconds since the epoch.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_298_400_000), "2026-11-21T22:00:00.000Z");
    }

    #[test]
    fn lines_are_json_with_time_level_and_fields() {
        let line = LogLine::new(LogLevel::Info, 0, "request")
            .field("status", 200)
            .render();
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "request");
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn lines_below_the_threshold_are_dropped_and_others_kept() {
        LogLine::new(LogLevel::Debug, 0, "hidden-line").emit(LogLevel::Info);
        LogLine::new(LogLevel::Warn, 0, "kept-line").emit(LogLevel::Info);
        let recent = recent_lines(10).join("\n");
        assert!(!recent.contains("hidden-line"));
        assert!(recent.contains("kept-line"));
    }

    #[test]
    fn recent_buffer_is_bounded() {
        for i in 0..(RECENT_LINES_CAPACITY + 5) {
            LogLine::new(LogLevel::Error, 0, &format!("n{i}")).emit(LogLevel::Debug);
        }
        let all = recent_lines(usize::MAX);
        assert_eq!(all.len(), RECENT_LINES_CAPACITY);
        assert!(all
            .last()
            .expect("line")
            .contains(&format!("n{}", RECENT_LINES_CAPACITY + 4)));
    }
}
