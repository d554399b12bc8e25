//! Helpers shared by the adapters' tests.

use super::model::{ProviderError, ProviderEvent, StreamDecoder};
use super::sse::SseParser;

/// Runs a whole SSE body through the parser and `decoder`, end of stream included.
pub fn decode_all(decoder: &mut dyn StreamDecoder, input: &str) -> Vec<ProviderEvent> {
    let mut parser = SseParser::new();
    let mut sse_events = parser.push(input.as_bytes());
    sse_events.extend(parser.finish());
    let mut events: Vec<ProviderEvent> = sse_events
        .iter()
        .flat_map(|event| decoder.on_event(event))
        .collect();
    events.extend(decoder.finish());
    events
}

/// The error that ends `events`; panics (failing the test) when there is none.
pub fn final_error(events: &[ProviderEvent]) -> ProviderError {
    match events {
        [.., ProviderEvent::Error(error)] => error.clone(),
        other => panic!("expected a final error, got {other:?}"),
    }
}
