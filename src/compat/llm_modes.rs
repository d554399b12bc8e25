//! LLM_MODES: full account security and chats with pin/archive and per-mode settings, under
//! `/api/auth` and `/api/chats`. Its account routes are ours already; a chat is our
//! conversation, and `PUT /api/chats/{id}` (the whole chat object sent back, read-only fields
//! included) is our `PATCH`, which ignores the fields a conversation itself returns.

use super::{alias, native, not_used, ours, stands_for, Service, STORED_IN_D1};
use crate::config::source::Convert;
use crate::http::router::Method::*;

pub const SERVICE: Service = Service {
    name: "LLM_MODES",
    routes: &[
        native(Post, "/api/auth/register"),
        native(Post, "/api/auth/login"),
        native(Post, "/api/auth/refresh"),
        native(Post, "/api/auth/logout"),
        native(Get, "/api/auth/me"),
        native(Post, "/api/auth/forgot-password"),
        native(Post, "/api/auth/reset-password"),
        native(Post, "/api/auth/verify-email"),
        alias(Get, "/api/chats", Get, "/api/conversations"),
        alias(Post, "/api/chats", Post, "/api/conversations"),
        alias(Get, "/api/chats/{id}", Get, "/api/conversations/{id}"),
        alias(Put, "/api/chats/{id}", Patch, "/api/conversations/{id}"),
        alias(Delete, "/api/chats/{id}", Delete, "/api/conversations/{id}"),
        alias(
            Post,
            "/api/chats/{id}/messages",
            Post,
            "/api/conversations/{id}/messages",
        ),
        native(Get, "/"),
        native(Get, "/health"),
        native(Get, "/docs"),
        native(Get, "/redoc"),
    ],
    settings: &[
        stands_for("SECRET_KEY", "JWT_SECRET", Convert::Same),
        not_used("DATABASE_URL", STORED_IN_D1),
        ours("ACCESS_TOKEN_EXPIRE_MINUTES"),
        ours("MAX_LOGIN_ATTEMPTS"),
        stands_for("DEBUG", "LOG_LEVEL", Convert::TrueMeansDebug),
        ours("LOG_LEVEL"),
        ours("ENVIRONMENT"),
    ],
};
