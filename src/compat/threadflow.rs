//! ThreadFlow: one chat API over Gemini, Claude and GPT-4o, with model discovery, health and
//! a development log view. Its clients send `{"message", "model"}` to `POST /chat`; the body
//! is read as our send body, which accepts that shape.

use super::{alias, native, not_used, ours, Service, STORED_IN_D1};
use crate::http::router::Method::*;

pub const SERVICE: Service = Service {
    name: "ThreadFlow",
    routes: &[
        native(Get, "/"),
        native(Get, "/health"),
        alias(Get, "/models", Get, "/api/models"),
        alias(Post, "/chat", Post, "/api/chat"),
        native(Get, "/debug/logs"),
    ],
    settings: &[
        not_used("MONGODB_URI", STORED_IN_D1),
        ours("JWT_SECRET"),
        ours("GEMINI_API_KEY"),
        ours("OPENAI_API_KEY"),
        ours("ANTHROPIC_API_KEY"),
    ],
};
