//! The unified chat model that every provider adapter translates to and from.
//!
//! The rest of Threadline speaks only these types: a [`ChatRequest`] goes in, an
//! [`OutboundRequest`] comes out for the I/O layer to send, and the provider's reply comes
//! back as a [`Completion`] or a sequence of [`ProviderEvent`]s. Keeping one vocabulary
//! here means a handler never needs to know which provider it is talking to.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::sse::SseEvent;

/// Who wrote a chat turn. Tool and function roles are deliberately absent: Threadline
/// relays plain conversations, and adding them here would oblige every adapter to invent
/// a translation for providers that model tools differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One turn of a conversation: its parts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl ChatMessage {
    /// A turn of plain text (one text part).
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            parts: vec![Part::Text(content.into())],
        }
    }

    /// A turn made of `parts`.
    pub fn with_parts(role: Role, parts: Vec<Part>) -> Self {
        Self { role, parts }
    }

    /// The text parts joined by newlines: what a provider that takes text only would read.
    pub fn text(&self) -> String {
        let mut texts = self.parts.iter().filter_map(Part::as_text);
        let first = texts.next().unwrap_or_default().to_owned();
        texts.fold(first, |mut all, text| {
            all.push('\n');
            all.push_str(text);
            all
        })
    }

    /// The text of a turn made of exactly one text part.
    pub fn plain_text(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Whether every part is text, so the turn can go as a plain string.
    pub fn is_text_only(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Text(_)))
    }

    /// The media (images and documents) of the turn.
    pub fn media(&self) -> impl Iterator<Item = &Media> {
        self.parts.iter().filter_map(|part| match part {
            Part::Media(media) => Some(media),
            Part::Text(_) => None,
        })
    }
}

impl ChatMessage {
    /// Appends `other` (of the same role) to this turn: texts are joined by a blank line, as
    /// one turn, and media keep their places.
    pub fn append(&mut self, other: &ChatMessage) {
        if self.is_text_only() && other.is_text_only() {
            let joined = format!("{}\n\n{}", self.text(), other.text());
            self.parts = vec![Part::Text(joined)];
        } else {
            self.parts.extend(other.parts.iter().cloned());
        }
    }
}

/// One piece of a turn as providers take it. Stored files and the API's other part types are
/// turned into these before a request is built, so the adapters see only text and media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Media(Media),
}

impl Part {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text(text) => Some(text),
            Part::Media(_) => None,
        }
    }
}

/// What a media part is, which decides the block it becomes and the capability it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A picture (`image/png`, `image/jpeg`, `image/gif`, `image/webp`): needs vision.
    Image,
    /// A document the model reads itself (`application/pdf`).
    Document,
}

/// Where a media part's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// The bytes, standard base64 without any `data:` prefix (what Anthropic and Gemini take;
    /// OpenAI gets a `data:` URL built from it).
    Base64(String),
    /// An `https` URL the provider fetches itself.
    Url(String),
}

/// An image or document in a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    /// The media type (`image/png`). For a URL whose type is unknown, a guess from its path.
    pub media_type: String,
    pub source: MediaSource,
    /// A file name to show the model (documents), when there is one.
    pub name: Option<String>,
}

impl Media {
    /// An image a model returned: base64 bytes of an `image/*` type, or an https URL (a
    /// `data:` URL is split into its type and bytes). `None` for anything else — audio or an
    /// unknown type is not part of an answer Threadline can keep or show.
    pub fn generated_image(media_type: Option<&str>, data_or_url: &str) -> Option<Media> {
        let (media_type, source) = if let Some(rest) = data_or_url.strip_prefix("data:") {
            let (meta, data) = rest.split_once(',')?;
            let media_type = meta.strip_suffix(";base64")?;
            (
                media_type.to_string(),
                MediaSource::Base64(data.to_string()),
            )
        } else if data_or_url.starts_with("https://") {
            let guessed = media_type.unwrap_or("image/png");
            (
                guessed.to_string(),
                MediaSource::Url(data_or_url.to_string()),
            )
        } else {
            (
                media_type?.to_string(),
                MediaSource::Base64(data_or_url.to_string()),
            )
        };
        let media_type = media_type.trim().to_ascii_lowercase();
        if !media_type.starts_with("image/") || media_type.len() > 100 {
            return None;
        }
        Some(Media {
            kind: MediaKind::Image,
            media_type,
            source,
            name: None,
        })
    }

    /// An OpenAI-style URL for the bytes: the URL itself, or a `data:` URL.
    pub fn url(&self) -> String {
        match &self.source {
            MediaSource::Url(url) => url.clone(),
            MediaSource::Base64(data) => format!("data:{};base64,{data}", self.media_type),
        }
    }
}

/// A provider-neutral chat request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The provider's own model name, without Threadline's `provider/` prefix
    /// (`gpt-4o`, not `openai/gpt-4o`).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Stop sequences; empty means none, so adapters omit the field entirely.
    pub stop: Vec<String>,
    pub stream: bool,
    /// Ask for token usage at the end of a stream. Only OpenAI-style servers need to be
    /// asked; Anthropic and Gemini always report usage.
    pub include_usage: bool,
}

/// Token counts in OpenAI's vocabulary, since that is the shape Threadline's own API
/// returns to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    /// Builds usage from the two counts providers always report, deriving the total.
    pub fn from_counts(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// Saturates a provider's token count into `u32`: a count beyond four billion is nonsense,
/// but it must not turn an otherwise good response into an error.
pub(crate) fn saturating_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Why the model stopped generating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the answer, or a stop sequence was hit.
    Stop,
    /// The token limit (or the context window) was reached; the answer is cut short.
    Length,
    /// The provider withheld or stopped the answer for safety, recitation or refusal.
    ContentFilter,
    /// The model wants a tool to be called.
    ToolCalls,
    /// A reason with no OpenAI equivalent, normalised to lowercase snake case
    /// (e.g. Gemini's `MALFORMED_FUNCTION_CALL` becomes `malformed_function_call`,
    /// Anthropic's `pause_turn` stays `pause_turn`).
    Other(String),
}

impl FinishReason {
    /// The string to put in an OpenAI-compatible `finish_reason`.
    ///
    /// Adapters map every provider reason with an OpenAI meaning onto the four named
    /// variants, so `Other` only carries reasons that have none. Those are passed through
    /// verbatim rather than rewritten to `"stop"`: reporting `"stop"` would tell the client
    /// the answer completed normally when it did not, and OpenAI's own set is already open
    /// (`function_call` exists, compatible servers add more), so clients must tolerate
    /// unknown values anyway.
    pub fn as_openai_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Other(reason) => reason,
        }
    }
}

/// One step of a streamed reply.
///
/// Every stream decoder keeps the same order, so consumers can rely on it: zero or more
/// `TextDelta`s and `Media`, then at most one `Usage`, then exactly one `Finish` — or, at
/// any point, one `Error`, after which nothing more is emitted.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    TextDelta(String),
    /// A non-text part of the answer: an image the model generated (Gemini's `inlineData`,
    /// an OpenAI-compatible server's `images`), whole, in the order it came among the deltas.
    Media(Media),
    Usage(Usage),
    Finish(FinishReason),
    Error(ProviderError),
}

/// A whole (non-streamed) reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// The answer's non-text parts (generated images), in order; empty for most models.
    pub media: Vec<Media>,
    pub finish_reason: FinishReason,
    pub usage: Option<Usage>,
    /// The exact model version the provider reports having used (`gpt-4o-2024-08-06`).
    pub provider_model: Option<String>,
}

/// What went wrong, in terms the retry logic and the API's error envelope can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderErrorKind {
    /// The key is missing, wrong, or lacks permission.
    Auth,
    /// Too many requests right now; waiting helps.
    RateLimited,
    /// The account is out of credit or over a hard quota; waiting does not help.
    QuotaExceeded,
    /// The provider rejected the request itself (bad parameter, prompt too long…).
    InvalidRequest,
    /// Unknown model or endpoint.
    NotFound,
    /// The provider is shedding load (Anthropic 529, Gemini 503 "model is overloaded").
    Overloaded,
    /// The provider failed internally.
    Server,
    /// The provider, or a hop before it, timed out.
    Timeout,
    /// The provider's reply could not be understood, or a stream ended before its end.
    Malformed,
}

impl ProviderErrorKind {
    /// Whether repeating the same request later may succeed. `QuotaExceeded` is not
    /// retryable even though OpenAI sends it with status 429: the account has no credit,
    /// and retrying only burns the client's time.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Overloaded | Self::Server | Self::Timeout
        )
    }

    /// A stable snake-case code for logs and the API's error envelope.
    pub fn code(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::Overloaded => "overloaded",
            Self::Server => "server",
            Self::Timeout => "timeout",
            Self::Malformed => "malformed",
        }
    }

    /// The kind implied by an HTTP status alone, used when the body says nothing more
    /// specific. 409 counts as `Server` because OpenAI's SDK retries it (a lock timeout on
    /// their side); 402 means "payment required", i.e. quota.
    pub fn from_http_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            402 => Self::QuotaExceeded,
            404 => Self::NotFound,
            408 | 504 | 524 => Self::Timeout,
            409 => Self::Server,
            429 => Self::RateLimited,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Server,
        }
    }
}

/// The longest upstream message passed on to clients; longer ones are cut, because a
/// provider or a proxy in front of it can return whole documents as "messages".
const MAX_MESSAGE_CHARS: usize = 500;

/// An error from a provider, safe to show to Threadline's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// Safe to show the client: never contains an API key (see [`ProviderError::from_upstream`]).
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// The HTTP status the provider answered with, or the integer `code` an in-stream error
    /// carried. `None` for errors found inside an HTTP 200 stream without such a code.
    pub upstream_status: Option<u16>,
}

impl ProviderError {
    /// An error whose message Threadline wrote itself, so needs no scrubbing.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_secs: None,
            upstream_status: None,
        }
    }

    /// An error carrying a message the provider wrote.
    ///
    /// Providers echo credentials back — OpenAI's 401 says "Incorrect API key provided:
    /// sk-abc…". So for `Auth` the upstream text is dropped entirely in favour of a fixed
    /// message, and for every other kind anything shaped like a key is replaced with
    /// `[redacted]` and the text is capped in length. The I/O layer, which knows the real
    /// key, should additionally call [`ProviderError::without_secret`].
    pub fn from_upstream(
        kind: ProviderErrorKind,
        upstream_message: &str,
        upstream_status: Option<u16>,
    ) -> Self {
        // One meaning, one mapping: an HTTP 503 or 529 is a provider shedding load, whatever
        // generic type its body names (Anthropic answers 503 with `api_error`).
        let kind = match (kind, upstream_status) {
            (ProviderErrorKind::Server, Some(503 | 529)) => ProviderErrorKind::Overloaded,
            _ => kind,
        };
        let message = match kind {
            ProviderErrorKind::Auth => default_message(kind).to_owned(),
            _ => {
                let cleaned = sanitize_upstream_message(upstream_message);
                if cleaned.is_empty() {
                    default_message(kind).to_owned()
                } else {
                    cleaned
                }
            }
        };
        Self {
            kind,
            message,
            retry_after_secs: None,
            upstream_status,
        }
    }

    /// The reply was not in the provider's documented shape.
    pub fn malformed(what: impl Into<String>) -> Self {
        Self::new(ProviderErrorKind::Malformed, what)
    }

    /// The connection closed before the provider's end-of-stream marker, so the answer may
    /// be incomplete; the client must be told rather than shown a silently cut answer.
    pub fn stream_ended_early() -> Self {
        Self::malformed("the provider's stream ended early, before its end marker")
    }

    pub fn with_retry_after(mut self, retry_after_secs: Option<u64>) -> Self {
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// Removes every occurrence of `secret` (the configured API key) from the message —
    /// the last line of defence for key formats the pattern-based scrubbing cannot know.
    pub fn without_secret(mut self, secret: &str) -> Self {
        if !secret.is_empty() && self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

impl std::error::Error for ProviderError {}

fn default_message(kind: ProviderErrorKind) -> &'static str {
    match kind {
        ProviderErrorKind::Auth => {
            "the provider rejected the configured API key (missing, invalid, or lacking permission)"
        }
        ProviderErrorKind::RateLimited => "the provider is rate limiting requests",
        ProviderErrorKind::QuotaExceeded => "the provider account has exceeded its quota",
        ProviderErrorKind::InvalidRequest => "the provider rejected the request",
        ProviderErrorKind::NotFound => "the provider does not know this model or endpoint",
        ProviderErrorKind::Overloaded => "the provider is overloaded",
        ProviderErrorKind::Server => "the provider had an internal error",
        ProviderErrorKind::Timeout => "the provider timed out",
        ProviderErrorKind::Malformed => "the provider's reply could not be understood",
    }
}

/// Replaces key-shaped words and caps the length. Key shapes: OpenAI/Anthropic (`sk-`,
/// `sk_`), Google (`AIza`), anything after `key=`, and the word after `Bearer`.
fn sanitize_upstream_message(raw: &str) -> String {
    let mut cleaned = String::with_capacity(raw.len().min(MAX_MESSAGE_CHARS + 8));
    let mut previous_word_was_bearer = false;
    for piece in raw.trim().split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let separator = &piece[word.len()..];
        if word.is_empty() {
            cleaned.push_str(separator);
            continue;
        }
        if previous_word_was_bearer || looks_like_secret(word) {
            cleaned.push_str("[redacted]");
        } else {
            cleaned.push_str(word);
        }
        cleaned.push_str(separator);
        previous_word_was_bearer = word.eq_ignore_ascii_case("bearer");
    }
    if let Some((cut, _)) = cleaned.char_indices().nth(MAX_MESSAGE_CHARS) {
        cleaned.truncate(cut);
        cleaned.push('…');
    }
    cleaned.trim().to_owned()
}

fn looks_like_secret(word: &str) -> bool {
    const MARKERS: [&str; 4] = ["sk-", "sk_", "AIza", "key="];
    MARKERS.iter().any(|marker| {
        word.match_indices(marker).any(|(at, _)| {
            // Only at a word boundary, so "task-based" or "disk_usage" survive.
            word[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
        })
    })
}

/// Seconds to wait before retrying, from a provider's `retry-after-ms` and `retry-after`
/// headers (raw values), checked in that order as OpenAI's SDK does.
///
/// `retry-after` may be delta-seconds (fractions are tolerated and rounded up) or an
/// HTTP-date; a date needs the current time, which is injected because this crate has no
/// clock of its own. A date in the past means "now" (0). Unparseable values are ignored.
pub fn retry_after_secs(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_unix_secs: u64,
) -> Option<u64> {
    if let Some(millis) = retry_after_ms.and_then(parse_non_negative_number) {
        return Some((millis / 1000.0).ceil() as u64);
    }
    let value = retry_after?.trim();
    if let Some(seconds) = parse_non_negative_number(value) {
        return Some(seconds.ceil() as u64);
    }
    parse_http_date(value).map(|at| at.saturating_sub(now_unix_secs))
}

fn parse_non_negative_number(text: &str) -> Option<f64> {
    let number: f64 = text.trim().parse().ok()?;
    (number.is_finite() && number >= 0.0).then_some(number)
}

/// Parses the three HTTP-date forms RFC 9110 §5.6.7 obliges recipients to accept:
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37
/// GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). Returns Unix seconds.
fn parse_http_date(text: &str) -> Option<u64> {
    let tokens: Vec<&str> = text
        .split([' ', ',', '-'])
        .filter(|token| !token.is_empty())
        .collect();
    let (day, month, year, time) = match tokens.as_slice() {
        [_, month, day, time, year] if month_number(month).is_some() => (day, month, year, time),
        [_, day, month, year, time, zone] if zone.eq_ignore_ascii_case("GMT") => {
            (day, month, year, time)
        }
        _ => return None,
    };
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = month_number(month)?;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        // RFC 850's two-digit years: RFC 9110 says to read them as the most recent past
        // year with those digits; for retry hints, "before 70 is 20xx" is equivalent.
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut clock = time.split(':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds).ok()
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let position = MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))?;
    u32::try_from(position + 1).ok()
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// What the I/O layer should send: a plain description, so building it needs no `worker`
/// types and can be asserted on in native tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    /// Lowercase header names.
    pub headers: Vec<(String, String)>,
    /// Empty for `GET`.
    pub body: String,
}

impl OutboundRequest {
    /// A JSON `POST` that accepts SSE when `stream` is set, JSON otherwise, with the
    /// provider's authentication headers.
    pub(crate) fn post_json(
        url: String,
        stream: bool,
        auth: impl IntoIterator<Item = (String, String)>,
        body: serde_json::Value,
    ) -> OutboundRequest {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut headers = vec![
            header("content-type", "application/json"),
            header("accept", accept),
        ];
        headers.extend(auth);
        OutboundRequest {
            method: "POST",
            url,
            headers,
            body: body.to_string(),
        }
    }

    /// A `GET` of JSON (the model lists), with the provider's authentication headers.
    pub(crate) fn get_json(
        url: String,
        auth: impl IntoIterator<Item = (String, String)>,
    ) -> OutboundRequest {
        let mut headers = vec![header("accept", "application/json")];
        headers.extend(auth);
        OutboundRequest {
            method: "GET",
            url,
            headers,
            body: String::new(),
        }
    }

    /// The value of the first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub(crate) fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// The error for a body with no usable error object (HTML from a proxy, plain text, or JSON
/// of another shape): its content is not worth relaying, so the status alone decides.
pub(crate) fn error_from_status(status: u16) -> ProviderError {
    ProviderError::from_upstream(
        ProviderErrorKind::from_http_status(status),
        "",
        Some(status),
    )
}

/// Which wire format an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
    /// Ollama, vLLM, llama.cpp and other servers imitating OpenAI's Chat Completions.
    OpenAiCompatible,
}

/// Where and how to reach one upstream.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderEndpoint {
    pub kind: ProviderKind,
    /// See each adapter's `DEFAULT_BASE_URL` for whether the version path belongs in it.
    /// A trailing slash is tolerated.
    pub base_url: String,
    /// `None` (or empty) sends no credential at all, e.g. for a local Ollama.
    pub api_key: Option<String>,
}

impl ProviderEndpoint {
    /// `base_url` and `path` joined by exactly one slash, whatever either side carries.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// The configured key, treating an empty string as no key.
    pub fn key(&self) -> Option<&str> {
        self.api_key.as_deref().filter(|key| !key.is_empty())
    }
}

/// Written by hand so that logging an endpoint can never print its key.
impl fmt::Debug for ProviderEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEndpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Turns one provider's parsed SSE events into [`ProviderEvent`]s. A trait so the I/O
/// layer can drive any provider's stream the same way (see `providers::stream_decoder`).
pub trait StreamDecoder {
    /// Handles one SSE event. After an `Error` or `Finish` has been returned, further
    /// events are ignored.
    fn on_event(&mut self, event: &SseEvent) -> Vec<ProviderEvent>;

    /// Called once when the body ends. Emits whatever was being held back (`Usage`,
    /// `Finish`), or an error if the provider's end-of-stream marker never came.
    fn finish(&mut self) -> Vec<ProviderEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_joins_texts_and_keeps_media() {
        let mut turn = ChatMessage::new(Role::User, "a");
        turn.append(&ChatMessage::new(Role::User, "b"));
        assert_eq!(turn.plain_text(), Some("a\n\nb"));
        let request = super::super::test_support::media_request("m");
        turn.append(&request.messages[2]);
        assert_eq!(turn.parts.len(), 5);
        assert_eq!(turn.media().count(), 3);
    }

    #[test]
    fn retryable_kinds_are_exactly_the_transient_ones() {
        use ProviderErrorKind::*;
        for kind in [RateLimited, Overloaded, Server, Timeout] {
            assert!(kind.is_retryable(), "{kind:?}");
        }
        for kind in [Auth, QuotaExceeded, InvalidRequest, NotFound, Malformed] {
            assert!(!kind.is_retryable(), "{kind:?}");
        }
    }

    #[test]
    fn finish_reasons_map_to_openai_strings_and_unknown_ones_pass_through() {
        assert_eq!(FinishReason::Stop.as_openai_str(), "stop");
        assert_eq!(FinishReason::Length.as_openai_str(), "length");
        assert_eq!(
            FinishReason::ContentFilter.as_openai_str(),
            "content_filter"
        );
        assert_eq!(FinishReason::ToolCalls.as_openai_str(), "tool_calls");
        assert_eq!(
            FinishReason::Other("pause_turn".into()).as_openai_str(),
            "pause_turn"
        );
    }

    #[test]
    fn role_serializes_lowercase() {
        let json = serde_json::to_string(&[Role::Assistant, Role::System]);
        assert_eq!(json.ok().as_deref(), Some(r#"["assistant","system"]"#));
    }

    #[test]
    fn auth_errors_never_repeat_the_upstream_message() {
        let error = ProviderError::from_upstream(
            ProviderErrorKind::Auth,
            "Incorrect API key provided: sk-abc123secret",
            Some(401),
        );
        assert!(!error.message.contains("sk-abc"));
        assert!(!error.message.contains("Incorrect"));
    }

    #[test]
    fn key_shaped_words_are_redacted_from_other_messages() {
        let error = ProviderError::from_upstream(
            ProviderErrorKind::InvalidRequest,
            "bad url ?key=AIzaSyXYZ, header Bearer tok123 and (sk-proj-abc) for a task-based disk_usage",
            Some(400),
        );
        assert_eq!(
            error.message,
            "bad url [redacted] header Bearer [redacted] and [redacted] for a task-based disk_usage"
        );
    }

    #[test]
    fn without_secret_removes_a_known_key_of_any_shape() {
        let error = ProviderError::new(ProviderErrorKind::Server, "bad key ollama-xyz-1")
            .without_secret("ollama-xyz-1");
        assert_eq!(error.message, "bad key [redacted]");
    }

    #[test]
    fn long_upstream_messages_are_capped() {
        let error =
            ProviderError::from_upstream(ProviderErrorKind::Server, &"é".repeat(5000), None);
        assert_eq!(error.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn empty_upstream_message_falls_back_to_a_generic_one() {
        let error = ProviderError::from_upstream(ProviderErrorKind::Overloaded, "  ", Some(529));
        assert_eq!(error.message, "the provider is overloaded");
    }

    #[test]
    fn retry_after_accepts_delta_seconds() {
        assert_eq!(retry_after_secs(None, Some("20"), 0), Some(20));
        assert_eq!(retry_after_secs(None, Some(" 1.2 "), 0), Some(2));
    }

    #[test]
    fn retry_after_ms_takes_precedence_and_rounds_up() {
        assert_eq!(retry_after_secs(Some("1500"), Some("60"), 0), Some(2));
    }

    #[test]
    fn retry_after_accepts_all_three_http_date_forms() {
        let now = 784_111_777 - 30; // 30 s before Sun, 06 Nov 1994 08:49:37 GMT
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(retry_after_secs(None, Some(date), now), Some(30), "{date}");
        }
    }

    #[test]
    fn retry_after_date_in_the_past_means_now() {
        assert_eq!(
            retry_after_secs(None, Some("Sun, 06 Nov 1994 08:49:37 GMT"), 2_000_000_000),
            Some(0)
        );
    }

    #[test]
    fn unparseable_retry_after_is_ignored() {
        assert_eq!(retry_after_secs(Some("soon"), Some("-5"), 0), None);
        assert_eq!(
            retry_after_secs(None, Some("Sun, 99 Nov 1994 08:49:37 GMT"), 0),
            None
        );
        assert_eq!(retry_after_secs(None, None, 0), None);
    }

    #[test]
    fn endpoint_url_joins_with_exactly_one_slash() {
        let endpoint = ProviderEndpoint {
            kind: ProviderKind::OpenAi,
            base_url: "http://localhost:11434/v1/".into(),
            api_key: None,
        };
        assert_eq!(
            endpoint.url("/chat/completions"),
            "http://localhost:11434/v1/chat/completions"
        );
    }

    #[test]
    fn endpoint_debug_output_hides_the_key() {
        let endpoint = ProviderEndpoint {
            kind: ProviderKind::OpenAi,
            base_url: "https://api.openai.com/v1".into(),
            api_key: Some("sk-secret".into()),
        };
        assert!(!format!("{endpoint:?}").contains("sk-secret"));
    }
}
