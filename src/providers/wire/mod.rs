//! The wire translators: one unified request/event model and pure adapters per provider.
//!
//! # Layering
//!
//! Everything under `wire` is a pure translator: no network, no JS, no `worker` crate, no
//! API error type, no clock. That keeps the awkward parts — every variant of every provider's
//! wire format — testable with plain `cargo test`, against recorded bytes split at every
//! position.
//!
//! - [`model`]: the unified model ([`ChatRequest`], [`ProviderEvent`], [`ProviderError`], …).
//! - [`sse`]: an incremental Server-Sent Events parser, shared by all streams.
//! - [`openai`] (also Ollama, vLLM, llama.cpp), [`anthropic`], [`gemini`]: per provider,
//!   `build_request`, `parse_completion`, a stream decoder, `parse_error`,
//!   `models_request` and `parse_model_list`.
//! - [`embeddings`]: the unified embeddings request and reply, and each provider's format.
//!
//! The worker-side I/O lives elsewhere and drives these: it sends the
//! [`OutboundRequest`], feeds response bytes to an [`SseParser`] and the parsed events to
//! the provider's [`StreamDecoder`], calls `finish` on both at end of body, maps non-2xx
//! responses with [`parse_error`] (after [`retry_after_secs`] on the headers and
//! [`ProviderError::without_secret`] with the real key), and owns retries, timeouts and
//! client aborts. The functions below dispatch on [`ProviderKind`] so that layer never
//! needs a `match` of its own.

pub mod anthropic;
pub mod embeddings;
pub mod gemini;
pub mod model;
pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod test_support;

pub use sse::{SseEvent, SseParser};

pub use model::{
    retry_after_secs, ChatMessage, ChatRequest, Completion, FinishReason, Media, MediaKind,
    MediaSource, OutboundRequest, Part, ProviderEndpoint, ProviderError, ProviderErrorKind,
    ProviderEvent, ProviderKind, Role, StreamDecoder, Usage,
};

/// The chat request for `endpoint`'s provider.
pub fn build_request(req: &ChatRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    match endpoint.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            openai::build_request(req, endpoint)
        }
        ProviderKind::Anthropic => anthropic::build_request(req, endpoint),
        ProviderKind::Gemini => gemini::build_request(req, endpoint),
    }
}

/// The list-models request for `endpoint`'s provider.
pub fn models_request(endpoint: &ProviderEndpoint) -> OutboundRequest {
    match endpoint.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => openai::models_request(endpoint),
        ProviderKind::Anthropic => anthropic::models_request(endpoint),
        ProviderKind::Gemini => gemini::models_request(endpoint),
    }
}

/// Reads a successful non-stream reply.
pub fn parse_completion(kind: ProviderKind, body: &str) -> Result<Completion, ProviderError> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => openai::parse_completion(body),
        ProviderKind::Anthropic => anthropic::parse_completion(body),
        ProviderKind::Gemini => gemini::parse_completion(body),
    }
}

/// Maps a non-2xx reply to an error.
pub fn parse_error(
    kind: ProviderKind,
    status: u16,
    retry_after_secs: Option<u64>,
    body: &str,
) -> ProviderError {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            openai::parse_error(status, retry_after_secs, body)
        }
        ProviderKind::Anthropic => anthropic::parse_error(status, retry_after_secs, body),
        ProviderKind::Gemini => gemini::parse_error(status, retry_after_secs, body),
    }
}

/// Model names from a successful list-models reply.
pub fn parse_model_list(kind: ProviderKind, body: &str) -> Result<Vec<String>, ProviderError> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => openai::parse_model_list(body),
        ProviderKind::Anthropic => anthropic::parse_model_list(body),
        ProviderKind::Gemini => gemini::parse_model_list(body),
    }
}

/// A fresh decoder for one streamed reply.
pub fn stream_decoder(kind: ProviderKind) -> Box<dyn StreamDecoder> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            Box::new(openai::OpenAiStreamDecoder::new())
        }
        ProviderKind::Anthropic => Box::new(anthropic::AnthropicStreamDecoder::new()),
        ProviderKind::Gemini => Box::new(gemini::GeminiStreamDecoder::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the parser and a boxed decoder the way the I/O layer will, chunk by chunk.
    fn run_stream(kind: ProviderKind, chunks: &[&[u8]]) -> Vec<ProviderEvent> {
        let mut parser = SseParser::new();
        let mut decoder = stream_decoder(kind);
        let mut events = Vec::new();
        for chunk in chunks {
            for sse_event in parser.push(chunk) {
                events.extend(decoder.on_event(&sse_event));
            }
        }
        for sse_event in parser.finish() {
            events.extend(decoder.on_event(&sse_event));
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn every_provider_decodes_its_recorded_stream_split_at_every_byte() {
        let gemini = include_str!("fixtures/gemini_stream.txt").replace('\n', "\r\n");
        let samples = [
            (
                ProviderKind::OpenAi,
                include_str!("fixtures/openai_stream.txt").to_owned(),
            ),
            (
                ProviderKind::Anthropic,
                include_str!("fixtures/anthropic_basic_response.txt").to_owned(),
            ),
            (ProviderKind::Gemini, gemini),
        ];
        for (kind, sample) in samples {
            let bytes = sample.as_bytes();
            let expected = run_stream(kind, &[bytes]);
            assert!(
                matches!(expected.last(), Some(ProviderEvent::Finish(_))),
                "{kind:?}"
            );
            for split_at in 0..=bytes.len() {
                let (head, tail) = bytes.split_at(split_at);
                assert_eq!(
                    run_stream(kind, &[head, tail]),
                    expected,
                    "{kind:?} at {split_at}"
                );
            }
        }
    }

    #[test]
    fn dispatch_routes_ollama_to_the_openai_adapter() {
        let endpoint = ProviderEndpoint {
            kind: ProviderKind::OpenAiCompatible,
            base_url: "http://localhost:11434/v1".into(),
            api_key: None,
        };
        assert_eq!(
            build_request(&ChatRequest::default(), &endpoint).url,
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            models_request(&endpoint).url,
            "http://localhost:11434/v1/models"
        );
    }

    #[test]
    fn dispatch_parses_each_providers_error_shape() {
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            parse_error(ProviderKind::Anthropic, 529, None, anthropic).kind,
            ProviderErrorKind::Overloaded
        );
        let quota = r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(
            parse_error(ProviderKind::OpenAi, 429, None, quota).kind,
            ProviderErrorKind::QuotaExceeded
        );
    }
}
