//! An incremental Server-Sent Events parser, following WHATWG HTML §9.2.6 ("Interpreting
//! an event stream"), with three documented deviations that the providers force on us:
//!
//! 1. **End of input flushes.** The spec discards an event that has no terminating blank
//!    line when the stream ends. [`SseParser::finish`] delivers it instead: servers do close
//!    right after the last `data:` line, and dropping that line would silently lose the
//!    final chunk (often the one carrying `finishReason` or usage). If the stream was cut
//!    mid-line, the adapter's JSON parse fails and reports it, which is better than
//!    silence.
//! 2. **llama.cpp's `error:` field** (wire-formats §d) is kept in [`SseEvent::error_field`]
//!    rather than ignored, and an event carrying only that field is still delivered, so the
//!    adapter can surface it as an error.
//! 3. **Lines that are not fields we know** are kept verbatim in
//!    [`SseEvent::unknown_lines`] (the spec ignores them), because Gemini can put a bare,
//!    pretty-printed JSON error object in the stream without `data:` (wire-formats §c).
//!
//! Bytes are buffered and only complete lines are decoded, so chunks may be split anywhere,
//! including inside a multi-byte UTF-8 character. Invalid UTF-8 becomes U+FFFD.
//!
//! Memory is bounded by [`MAX_EVENT_BYTES`]: a line, or an event's accumulated fields,
//! beyond it is dropped and the event is delivered with [`SseEvent::oversized`] set (and
//! its data emptied), so an adapter reports an error instead of acting on half a chunk.

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most bytes one line, or one event's fields together, may hold. A text chunk is a few
/// hundred bytes, but a generated image arrives whole, base64 in one chunk (a 1024×1024 PNG
/// is 1–3 MB): 8 MiB, as much as a whole non-stream answer may hold, and still small next to
/// a Worker's 128 MB.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name; `None` for the default type ("message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`. Empty when the event carried no data.
    pub data: String,
    /// The last event ID seen on the stream so far (it persists across events, per spec).
    pub id: Option<String>,
    /// llama.cpp's non-standard `error:` field, its lines joined with `\n`.
    pub error_field: Option<String>,
    /// Lines that were neither comments nor known fields (`data`, `event`, `id`, `retry`,
    /// `error`), verbatim.
    pub unknown_lines: Vec<String>,
    /// A line or the event as a whole exceeded [`MAX_EVENT_BYTES`] and was dropped.
    pub oversized: bool,
}

impl SseEvent {
    /// An unnamed event carrying `data` — the common case, handy in tests.
    pub fn with_data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// A named event carrying `data`.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
            ..Self::default()
        }
    }
}

/// Feeds bytes in as they arrive and gets complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current line, not yet terminated.
    pending_line: Vec<u8>,
    /// The stream's first bytes have been checked for a BOM.
    bom_checked: bool,
    /// The previous chunk ended in CR, so a leading LF in the next one belongs to the same
    /// CRLF and must not count as an (empty, dispatching) line of its own.
    after_cr: bool,
    /// The current line grew beyond the cap; its remaining bytes are being thrown away.
    discarding_line: bool,
    event: EventBuilder,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes to the stream and returns the events they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        // Bytes already buffered were searched before and hold no line terminator.
        let mut search_from = self.pending_line.len();
        self.pending_line.extend_from_slice(bytes);
        if !self.bom_checked {
            let buffered = self.pending_line.as_slice();
            if buffered.len() < BOM.len() && BOM.starts_with(buffered) {
                return events; // Could still become a BOM; wait for more bytes.
            }
            if buffered.starts_with(BOM) {
                self.pending_line.drain(..BOM.len());
            }
            self.bom_checked = true;
            search_from = 0;
        }
        self.split_lines(search_from, &mut events);
        events
    }

    /// Ends the stream: processes an unterminated last line and delivers the event in
    /// progress, if any (deviation 1 in the module docs). The parser is then reset and can
    /// be reused for a new stream.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let last_line = std::mem::take(&mut self.pending_line);
        if self.discarding_line {
            self.event.mark_oversized();
        } else if !last_line.is_empty() {
            // A non-empty line never dispatches by itself.
            let _ = self.event.process_line(&last_line);
        }
        events.extend(self.event.dispatch());
        *self = Self::default();
        events
    }

    fn split_lines(&mut self, search_from: usize, events: &mut Vec<SseEvent>) {
        let len = self.pending_line.len();
        let mut line_start = 0;
        let mut index = search_from;
        while index < len {
            let byte = self.pending_line[index];
            if byte == b'\n' || byte == b'\r' {
                self.complete_line(line_start, index, events);
                if byte == b'\r' {
                    if index + 1 == len {
                        self.after_cr = true;
                    } else if self.pending_line[index + 1] == b'\n' {
                        index += 1;
                    }
                }
                line_start = index + 1;
            }
            index += 1;
        }
        self.pending_line.drain(..line_start);
        if self.pending_line.len() > MAX_EVENT_BYTES {
            // Free the memory now rather than when the line finally ends.
            self.pending_line = Vec::new();
            self.discarding_line = true;
            self.event.mark_oversized();
        }
    }

    fn complete_line(&mut self, start: usize, end: usize, events: &mut Vec<SseEvent>) {
        if std::mem::take(&mut self.discarding_line) || end - start > MAX_EVENT_BYTES {
            self.event.mark_oversized();
            return;
        }
        events.extend(self.event.process_line(&self.pending_line[start..end]));
    }
}

/// The fields of the event being received.
#[derive(Debug, Default)]
struct EventBuilder {
    event_type: String,
    data: Option<String>,
    error_field: Option<String>,
    unknown_lines: Vec<String>,
    oversized: bool,
    buffered_bytes: usize,
    last_event_id: Option<String>,
}

impl EventBuilder {
    /// Interprets one line (without its terminator); returns an event if it was the blank
    /// line that completes one.
    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // A comment, e.g. ": keep-alive".
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*text, ""),
        };
        match field {
            "data" => {
                if self.reserve(value.len() + 1) {
                    append_line(&mut self.data, value);
                }
            }
            "event" => self.event_type = value.to_owned(),
            "id" => {
                // The spec ignores IDs containing NUL; an empty one resets the last ID.
                if !value.contains('\0') {
                    self.last_event_id = (!value.is_empty()).then(|| value.to_owned());
                }
            }
            // Reconnection is not ours to do: a dropped provider stream is an error.
            "retry" => {}
            "error" => {
                if self.reserve(value.len() + 1) {
                    append_line(&mut self.error_field, value);
                }
            }
            _ => {
                if self.reserve(text.len()) {
                    self.unknown_lines.push(text.into_owned());
                }
            }
        }
        None
    }

    /// Accounts for `bytes` more of this event; false (and the event marked oversized) if
    /// that would pass the cap.
    fn reserve(&mut self, bytes: usize) -> bool {
        if self.oversized || self.buffered_bytes + bytes > MAX_EVENT_BYTES {
            self.mark_oversized();
            return false;
        }
        self.buffered_bytes += bytes;
        true
    }

    fn mark_oversized(&mut self) {
        self.oversized = true;
        self.data = None;
        self.error_field = None;
        self.unknown_lines = Vec::new();
    }

    /// Completes the event. Per spec, an event without data is not dispatched (so a lone
    /// `event: ping` is dropped), except for our deviations 2 and 3 and oversize reports.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event_type = std::mem::take(&mut self.event_type);
        let data = self.data.take();
        let error_field = self.error_field.take();
        let unknown_lines = std::mem::take(&mut self.unknown_lines);
        let oversized = std::mem::take(&mut self.oversized);
        self.buffered_bytes = 0;
        if data.is_none() && error_field.is_none() && unknown_lines.is_empty() && !oversized {
            return None;
        }
        Some(SseEvent {
            event: (!event_type.is_empty()).then_some(event_type),
            data: data.unwrap_or_default(),
            id: self.last_event_id.clone(),
            error_field,
            unknown_lines,
            oversized,
        })
    }
}

fn append_line(buffer: &mut Option<String>, value: &str) {
    match buffer {
        Some(existing) => {
            existing.push('\n');
            existing.push_str(value);
        }
        None => *buffer = Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI_STREAM: &str = include_str!("fixtures/openai_stream.txt");
    const ANTHROPIC_STREAM: &str = include_str!("fixtures/anthropic_basic_response.txt");
    const GEMINI_STREAM_LF: &str = include_str!("fixtures/gemini_stream.txt");
    const MULTIBYTE_STREAM: &str = "data: {\"text\":\"héllo 👋\"}\n\ndata: ünïcödé ✓\n\n";

    fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(input);
        events.extend(parser.finish());
        events
    }

    fn parse_in_two(input: &[u8], split_at: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(&input[..split_at]);
        events.extend(parser.push(&input[split_at..]));
        events.extend(parser.finish());
        events
    }

    fn parse_byte_by_byte(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events: Vec<SseEvent> = input
            .iter()
            .flat_map(|byte| parser.push(std::slice::from_ref(byte)))
            .collect();
        events.extend(parser.finish());
        events
    }

    /// Gemini ends its lines with CRLF on the wire; the fixture is stored with LF so that
    /// no git line-ending setting can alter it, and converted here.
    fn gemini_stream_crlf() -> String {
        GEMINI_STREAM_LF.replace('\n', "\r\n")
    }

    fn samples() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("openai", OPENAI_STREAM.as_bytes().to_vec()),
            ("anthropic", ANTHROPIC_STREAM.as_bytes().to_vec()),
            ("gemini crlf", gemini_stream_crlf().into_bytes()),
            ("multibyte", MULTIBYTE_STREAM.as_bytes().to_vec()),
            (
                "cr only with bom",
                b"\xEF\xBB\xBFdata: a\r\rdata: b\r: c\r\r".to_vec(),
            ),
        ]
    }

    #[test]
    fn every_two_piece_split_gives_the_same_events_as_the_whole_input() {
        for (name, input) in samples() {
            let expected = parse_whole(&input);
            assert!(!expected.is_empty(), "{name}");
            for split_at in 0..=input.len() {
                assert_eq!(
                    parse_in_two(&input, split_at),
                    expected,
                    "{name} split at {split_at}"
                );
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_events_as_the_whole_input() {
        for (name, input) in samples() {
            assert_eq!(parse_byte_by_byte(&input), parse_whole(&input), "{name}");
        }
    }

    #[test]
    fn openai_sample_yields_one_unnamed_event_per_data_line() {
        let events = parse_whole(OPENAI_STREAM.as_bytes());
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|event| event.event.is_none()));
        assert!(events[0].data.starts_with(r#"{"id":"chatcmpl-9tXj""#));
        assert_eq!(events[4], SseEvent::with_data("[DONE]"));
    }

    #[test]
    fn anthropic_fixture_yields_named_events_including_ping() {
        let names: Vec<Option<String>> = parse_whole(ANTHROPIC_STREAM.as_bytes())
            .into_iter()
            .map(|event| event.event)
            .collect();
        let expected = [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        .map(|name| Some(name.to_owned()));
        assert_eq!(names, expected);
    }

    #[test]
    fn gemini_crlf_sample_yields_clean_json_without_carriage_returns() {
        let events = parse_whole(gemini_stream_crlf().as_bytes());
        assert_eq!(events.len(), 3);
        for event in &events {
            assert!(!event.data.contains('\r'));
            assert!(event.data.starts_with('{') && event.data.ends_with('}'));
        }
    }

    #[test]
    fn multibyte_characters_survive_splits_inside_them() {
        let events = parse_byte_by_byte(MULTIBYTE_STREAM.as_bytes());
        assert_eq!(events[0].data, "{\"text\":\"héllo 👋\"}");
        assert_eq!(events[1].data, "ünïcödé ✓");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let events = parse_whole(b"data: a\xFF\xFEb\n\n");
        assert_eq!(events, vec![SseEvent::with_data("a\u{FFFD}\u{FFFD}b")]);
    }

    #[test]
    fn comments_are_ignored() {
        let events = parse_whole(b": keep-alive\n\n:another\ndata: x\n\n");
        assert_eq!(events, vec![SseEvent::with_data("x")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let events = parse_whole(b"data: first\ndata:second\ndata\n\n");
        assert_eq!(events, vec![SseEvent::with_data("first\nsecond\n")]);
    }

    #[test]
    fn only_one_leading_space_is_stripped_from_a_value() {
        let events = parse_whole(b"data:  two spaces\n\n");
        assert_eq!(events, vec![SseEvent::with_data(" two spaces")]);
    }

    #[test]
    fn a_field_without_colon_has_an_empty_value() {
        let events = parse_whole(b"data\n\n");
        assert_eq!(events, vec![SseEvent::with_data("")]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert!(parse_whole(b"event: ping\n\nid: 7\n\nretry: 10\n\n").is_empty());
    }

    #[test]
    fn event_name_applies_only_to_its_own_event() {
        let events = parse_whole(b"event: ping\ndata: {}\n\ndata: x\n\n");
        assert_eq!(
            events,
            vec![SseEvent::named("ping", "{}"), SseEvent::with_data("x")]
        );
    }

    #[test]
    fn last_event_id_persists_until_changed() {
        let events = parse_whole(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n");
        let ids: Vec<Option<&str>> = events.iter().map(|event| event.id.as_deref()).collect();
        assert_eq!(ids, vec![Some("1"), Some("1"), None]);
    }

    #[test]
    fn unknown_fields_do_not_affect_data() {
        let events = parse_whole(b"foo: bar\ndata: x\n\n");
        assert_eq!(events[0].data, "x");
        assert_eq!(events[0].unknown_lines, vec!["foo: bar".to_owned()]);
    }

    #[test]
    fn bare_json_lines_are_kept_verbatim_as_unknown_lines() {
        let events = parse_whole(b"{\n  \"error\": {\"code\": 503}\n}\n");
        assert_eq!(
            events[0].unknown_lines,
            vec!["{", "  \"error\": {\"code\": 503}", "}"]
        );
        assert_eq!(events[0].data, "");
    }

    #[test]
    fn missing_final_blank_line_still_delivers_the_event_at_finish() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: {\"last\":true}").is_empty());
        assert_eq!(
            parser.finish(),
            vec![SseEvent::with_data("{\"last\":true}")]
        );
    }

    #[test]
    fn lone_cr_line_endings_are_accepted() {
        let events = parse_whole(b"data: a\r\rdata: b\r\r");
        assert_eq!(
            events,
            vec![SseEvent::with_data("a"), SseEvent::with_data("b")]
        );
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_ending() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\r"), vec![]);
        assert_eq!(parser.push(b"\n\r"), vec![SseEvent::with_data("a")]);
        assert_eq!(
            parser.push(b"\ndata: b\r\n\r\n"),
            vec![SseEvent::with_data("b")]
        );
        assert!(parser.finish().is_empty());
    }

    #[test]
    fn a_leading_bom_is_stripped_even_when_split() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"\xEF").is_empty());
        assert!(parser.push(b"\xBB").is_empty());
        assert_eq!(
            parser.push(b"\xBFdata: x\n\n"),
            vec![SseEvent::with_data("x")]
        );
    }

    #[test]
    fn a_bom_after_the_start_is_not_stripped() {
        let events = parse_whole(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].unknown_lines, vec!["\u{FEFF}data: b".to_owned()]);
    }

    #[test]
    fn llama_cpp_error_field_is_delivered_even_without_data() {
        let events = parse_whole(b"error: {\"code\":500,\"message\":\"boom\"}\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                error_field: Some("{\"code\":500,\"message\":\"boom\"}".into()),
                ..SseEvent::default()
            }]
        );
    }

    #[test]
    fn an_over_long_line_is_dropped_and_reported_and_parsing_recovers() {
        let mut parser = SseParser::new();
        let mut events = parser.push(b"data: ");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_EVENT_BYTES / chunk.len() + 4) {
            events.extend(parser.push(&chunk));
        }
        assert!(parser.pending_line.len() <= MAX_EVENT_BYTES);
        events.extend(parser.push(b"\n\ndata: ok\n\n"));
        assert_eq!(
            events,
            vec![
                SseEvent {
                    oversized: true,
                    ..SseEvent::default()
                },
                SseEvent::with_data("ok"),
            ]
        );
    }

    #[test]
    fn an_event_accumulating_too_many_lines_is_reported_oversized() {
        let line = format!("data: {}\n", "y".repeat(1000));
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for _ in 0..(MAX_EVENT_BYTES / 1000 + 100) {
            events.extend(parser.push(line.as_bytes()));
        }
        events.extend(parser.push(b"\n"));
        assert_eq!(events.len(), 1);
        assert!(events[0].oversized);
        assert!(events[0].data.is_empty());
    }
}
