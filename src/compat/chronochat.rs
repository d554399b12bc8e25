//! ChronoChat: sessions (refresh, logout, logout-all, verify), threads with history, titles
//! and statistics, and profile management. A thread is our conversation.

use super::{alias, native, not_used, ours, stands_for, Service, KEPT_IN_KV, STORED_IN_D1};
use crate::config::source::Convert;
use crate::http::router::Method::*;

pub const SERVICE: Service = Service {
    name: "ChronoChat",
    routes: &[
        native(Post, "/api/auth/register"),
        native(Post, "/api/auth/login"),
        native(Post, "/api/auth/refresh"),
        native(Post, "/api/auth/logout"),
        native(Post, "/api/auth/logout-all"),
        native(Get, "/api/auth/me"),
        native(Get, "/api/auth/verify"),
        alias(Post, "/api/chat/send", Post, "/api/chat"),
        alias(Get, "/api/chat/threads", Get, "/api/conversations"),
        alias(
            Get,
            "/api/chat/threads/{id}",
            Get,
            "/api/conversations/{id}",
        ),
        alias(
            Delete,
            "/api/chat/threads/{id}",
            Delete,
            "/api/conversations/{id}",
        ),
        alias(
            Put,
            "/api/chat/threads/{id}/title",
            Put,
            "/api/conversations/{id}/title",
        ),
        native(Get, "/api/chat/stats"),
        native(Get, "/api/users/profile"),
        native(Put, "/api/users/profile"),
        native(Post, "/api/users/change-password"),
        native(Delete, "/api/users/account"),
        native(Get, "/docs"),
        native(Get, "/redoc"),
    ],
    settings: &[
        not_used("DATABASE_URL", STORED_IN_D1),
        not_used("REDIS_URL", KEPT_IN_KV),
        stands_for("SECRET_KEY", "JWT_SECRET", Convert::Same),
        ours("ACCESS_TOKEN_EXPIRE_MINUTES"),
        stands_for("DEBUG", "LOG_LEVEL", Convert::TrueMeansDebug),
        ours("CORS_ORIGINS"),
    ],
};
