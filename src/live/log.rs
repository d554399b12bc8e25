//! The events of one generation, as the conversation's object keeps them: numbered, so a
//! listener that reconnects says which one it saw last and gets exactly the ones after it.
//!
//! An event id is `<generation>:<index>` — the generation's id and the event's position in
//! it, from 0 (the `user_message` event). SSE clients send the last one back in
//! `Last-Event-ID` (browsers' `EventSource` does it by itself on reconnecting); a WebSocket
//! client sends it in its `resume` message. An id of another generation, or none, means "from
//! the start of the current one". Pure, so resume arithmetic is tested natively.

/// One event: its name (`user_message`, `delta`, `usage`, `done`, `error`) and its JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub name: String,
    pub data: String,
}

impl LiveEvent {
    pub fn is_terminal(&self) -> bool {
        self.name == "done" || self.name == "error"
    }
}

/// The events of one generation, in order.
#[derive(Debug, Clone, Default)]
pub struct GenerationLog {
    pub id: String,
    pub events: Vec<LiveEvent>,
}

impl GenerationLog {
    pub fn new(id: impl Into<String>) -> Self {
        GenerationLog {
            id: id.into(),
            events: Vec::new(),
        }
    }

    /// Appends an event; returns its index.
    pub fn push(&mut self, event: LiveEvent) -> usize {
        self.events.push(event);
        self.events.len() - 1
    }

    /// Whether the generation's last event has been logged.
    pub fn ended(&self) -> bool {
        self.events.last().is_some_and(LiveEvent::is_terminal)
    }

    pub fn event_id(&self, index: usize) -> String {
        format!("{}:{index}", self.id)
    }

    /// The index of the first event a listener that last saw `last_event_id` has not seen:
    /// 0 for no id or one of another generation; past the end for an id beyond it.
    pub fn resume_from(&self, last_event_id: Option<&str>) -> usize {
        let Some((generation, index)) = last_event_id.and_then(|id| id.trim().rsplit_once(':'))
        else {
            return 0;
        };
        if generation != self.id {
            return 0;
        }
        match index.parse::<usize>() {
            Ok(index) => index.saturating_add(1).min(self.events.len()),
            Err(_) => 0,
        }
    }

    /// The event at `index` as a Server-Sent Event with its id.
    pub fn sse(&self, index: usize) -> Option<String> {
        let event = self.events.get(index)?;
        Some(format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.event_id(index),
            event.name,
            event.data
        ))
    }

    /// The event at `index` as a WebSocket text message:
    /// `{"event": name, "id": "<generation>:<index>", "data": {…}}`.
    pub fn ws(&self, index: usize) -> Option<String> {
        let event = self.events.get(index)?;
        Some(ws_message(
            &event.name,
            Some(&self.event_id(index)),
            &event.data,
        ))
    }
}

/// A WebSocket text message; `data` is JSON already.
pub fn ws_message(name: &str, id: Option<&str>, data: &str) -> String {
    let name = serde_json::to_string(name).unwrap_or_default();
    match id {
        Some(id) => {
            let id = serde_json::to_string(id).unwrap_or_default();
            format!("{{\"event\":{name},\"id\":{id},\"data\":{data}}}")
        }
        None => format!("{{\"event\":{name},\"data\":{data}}}"),
    }
}

/// The events in a chunk of the chat relay's Server-Sent Events (`event:` and `data:` lines,
/// a blank line after each; `:` comments skipped). The relay writes whole events, and JSON
/// keeps `data` on one line, so a chunk never splits one.
pub fn parse_sse(chunk: &[u8]) -> Vec<LiveEvent> {
    let text = String::from_utf8_lossy(chunk);
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(v.to_string());
            }
        }
        if let (Some(name), Some(data)) = (name, data) {
            events.push(LiveEvent { name, data });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> LiveEvent {
        LiveEvent {
            name: name.into(),
            data: data.into(),
        }
    }

    fn log_of(n: usize) -> GenerationLog {
        let mut log = GenerationLog::new("g1");
        log.push(event("user_message", "{}"));
        for i in 1..n {
            log.push(event("delta", &format!("{{\"text\":\"{i}\"}}")));
        }
        log
    }

    #[test]
    fn resume_starts_after_the_last_event_seen_of_the_same_generation() {
        let log = log_of(5);
        assert_eq!(log.resume_from(Some("g1:2")), 3);
        assert_eq!(log.resume_from(Some(" g1:0 ")), 1);
        assert_eq!(
            log.resume_from(Some("g1:4")),
            5,
            "all seen: nothing to replay"
        );
        assert_eq!(log.resume_from(Some("g1:99")), 5, "beyond the end: nothing");
    }

    #[test]
    fn resume_starts_from_the_beginning_for_no_id_another_generation_or_garbage() {
        let log = log_of(5);
        assert_eq!(log.resume_from(None), 0);
        assert_eq!(log.resume_from(Some("g0:3")), 0);
        assert_eq!(log.resume_from(Some("g1:x")), 0);
        assert_eq!(log.resume_from(Some("nonsense")), 0);
        assert_eq!(log.resume_from(Some("")), 0);
    }

    #[test]
    fn events_carry_their_ids_on_both_wires() {
        let log = log_of(2);
        assert_eq!(
            log.sse(1).unwrap(),
            "id: g1:1\nevent: delta\ndata: {\"text\":\"1\"}\n\n"
        );
        let ws: serde_json::Value = serde_json::from_str(&log.ws(1).unwrap()).unwrap();
        assert_eq!(
            ws,
            serde_json::json!({"event": "delta", "id": "g1:1", "data": {"text": "1"}})
        );
        assert!(log.sse(2).is_none());
        let bare: serde_json::Value =
            serde_json::from_str(&ws_message("pong", None, "{}")).unwrap();
        assert_eq!(bare, serde_json::json!({"event": "pong", "data": {}}));
    }

    #[test]
    fn a_log_has_ended_once_done_or_error_is_in_it() {
        let mut log = log_of(3);
        assert!(!log.ended());
        log.push(event("done", "{}"));
        assert!(log.ended());
        let mut failed = log_of(1);
        failed.push(event("error", "{}"));
        assert!(failed.ended());
    }

    #[test]
    fn relay_chunks_parse_into_events_and_comments_are_skipped() {
        let chunk = b"event: delta\ndata: {\"text\":\"a\\n\\nb\"}\n\n";
        assert_eq!(
            parse_sse(chunk),
            vec![event("delta", "{\"text\":\"a\\n\\nb\"}")]
        );
        assert!(parse_sse(b":\n\n").is_empty());
        let two = b"event: usage\ndata: {\"total_tokens\":3}\n\nevent: done\ndata: {}\n\n";
        assert_eq!(
            parse_sse(two),
            vec![event("usage", "{\"total_tokens\":3}"), event("done", "{}")]
        );
    }
}
