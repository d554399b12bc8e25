//! Chatflow: email/password accounts (form and JSON login), conversations, and chat sent to
//! `/conversations/chat`, streamed or not. A message without `conversation_id` starts a
//! conversation, as Chatflow's did.

use super::{alias, later, not_used, ours, stands_for, Service, KEPT_IN_KV, STORED_IN_D1};
use crate::config::source::Convert;
use crate::http::router::Method::*;

pub const SERVICE: Service = Service {
    name: "Chatflow",
    routes: &[
        alias(Post, "/auth/register", Post, "/api/auth/register"),
        alias(Post, "/auth/login", Post, "/api/auth/login"),
        alias(Post, "/auth/login-json", Post, "/api/auth/login-json"),
        alias(Get, "/auth/me", Get, "/api/auth/me"),
        alias(Get, "/conversations", Get, "/api/conversations"),
        alias(Post, "/conversations", Post, "/api/conversations"),
        alias(Get, "/conversations/{id}", Get, "/api/conversations/{id}"),
        alias(
            Delete,
            "/conversations/{id}",
            Delete,
            "/api/conversations/{id}",
        ),
        alias(Post, "/conversations/chat", Post, "/api/chat"),
        alias(Post, "/conversations/chat/stream", Post, "/api/chat/stream"),
        later(Get, "/conversations/tools/available", "MCP tools"),
    ],
    settings: &[
        not_used("DATABASE_URL", STORED_IN_D1),
        not_used("REDIS_URL", KEPT_IN_KV),
        stands_for("JWT_SECRET_KEY", "JWT_SECRET", Convert::Same),
        ours("JWT_ALGORITHM"),
        ours("ACCESS_TOKEN_EXPIRE_MINUTES"),
        ours("OPENAI_API_KEY"),
        ours("GEMINI_API_KEY"),
        stands_for("DEBUG", "LOG_LEVEL", Convert::TrueMeansDebug),
        ours("ENVIRONMENT"),
        not_used("MCP_SERVERS", "MCP tools are not available yet"),
    ],
};
