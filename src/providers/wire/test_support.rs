//! Helpers shared by the adapters' tests.

use super::model::{
    ChatMessage, ChatRequest, Media, MediaKind, MediaSource, Part, ProviderError, ProviderEvent,
    Role, StreamDecoder,
};
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

/// A user turn of text, a base64 PNG, an https JPEG and a named base64 PDF, after a text turn
/// of the same role (so adapters that join turns show how parts are joined).
pub fn media_request(model: &str) -> ChatRequest {
    let media = |kind, media_type: &str, source, name: Option<&str>| {
        Part::Media(Media {
            kind,
            media_type: media_type.into(),
            source,
            name: name.map(str::to_owned),
        })
    };
    ChatRequest {
        model: model.into(),
        messages: vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Earlier"),
            ChatMessage::with_parts(
                Role::User,
                vec![
                    Part::Text("What is this?".into()),
                    media(
                        MediaKind::Image,
                        "image/png",
                        MediaSource::Base64("iVBORw0K".into()),
                        None,
                    ),
                    media(
                        MediaKind::Image,
                        "image/jpeg",
                        MediaSource::Url("https://example.com/cat.jpg".into()),
                        None,
                    ),
                    media(
                        MediaKind::Document,
                        "application/pdf",
                        MediaSource::Base64("JVBERi0x".into()),
                        Some("a.pdf"),
                    ),
                ],
            ),
        ],
        ..ChatRequest::default()
    }
}
