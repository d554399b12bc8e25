//! Web+: accounts under `/auth`, conversations under `/conversations`, model discovery, and
//! `POST /chat/completions`, which Web+ clients call two ways: with an OpenAI body
//! (`messages[]`, answered as `/v1/chat/completions` answers, nothing stored) or with a chat
//! body (`message`, optional `conversation_id`, stored as `POST /api/chat` stores it).
//! Its model start/stop/status are Threadline's Ollama management (admin only), its
//! pipelines Threadline's pipelines on Queues, its files Threadline's files in R2.

use serde_json::{Map, Value};
use worker::Response;

use super::{alias, native, not_used, ours, own, stands_for, Service, KEPT_IN_KV, STORED_IN_D1};
use crate::config::source::Convert;
use crate::http::ctx::{require_media_type, Ctx};
use crate::http::error::ApiResult;
use crate::http::router::handler;
use crate::http::router::Method::*;

pub const SERVICE: Service = Service {
    name: "Web+",
    routes: &[
        alias(Post, "/auth/register", Post, "/api/auth/register"),
        alias(Post, "/auth/login", Post, "/api/auth/login"),
        alias(Post, "/auth/refresh", Post, "/api/auth/refresh"),
        alias(Get, "/auth/me", Get, "/api/auth/me"),
        alias(Post, "/auth/api-keys", Post, "/api/keys"),
        alias(Get, "/models/available", Get, "/api/models"),
        alias(Post, "/models/start", Post, "/api/models/start"),
        alias(Post, "/models/stop", Post, "/api/models/stop"),
        alias(Get, "/models/{id}/status", Get, "/api/models/{id}/status"),
        alias(Post, "/conversations", Post, "/api/conversations"),
        alias(Get, "/conversations", Get, "/api/conversations"),
        alias(Get, "/conversations/{id}", Get, "/api/conversations/{id}"),
        alias(
            Delete,
            "/conversations/{id}",
            Delete,
            "/api/conversations/{id}",
        ),
        // Web+'s "WebSocket support": the conversation's socket under its conversations path.
        alias(
            Get,
            "/conversations/{id}/ws",
            Get,
            "/api/conversations/{id}/ws",
        ),
        own(
            Post,
            "/chat/completions",
            handler!(chat_completions),
            "an OpenAI body as /v1/chat/completions, a chat body as /api/chat",
        ),
        own(
            Post,
            "/chat/completions/stream",
            handler!(chat_completions_stream),
            "as /chat/completions, always streamed",
        ),
        alias(Post, "/files/upload", Post, "/api/files/upload"),
        alias(
            Post,
            "/files/upload-multiple",
            Post,
            "/api/files/upload-multiple",
        ),
        alias(Get, "/files/{id}", Get, "/api/files/{id}"),
        alias(Post, "/files/{id}/analyze", Post, "/api/files/{id}/analyze"),
        alias(Post, "/pipelines", Post, "/api/pipelines"),
        alias(Get, "/pipelines", Get, "/api/pipelines"),
        alias(
            Post,
            "/pipelines/{id}/execute",
            Post,
            "/api/pipelines/{id}/execute",
        ),
        alias(
            Get,
            "/pipeline-executions/{id}",
            Get,
            "/api/pipeline-executions/{id}",
        ),
        native(Get, "/docs"),
        native(Get, "/redoc"),
    ],
    settings: &[
        not_used("DATABASE_URL", STORED_IN_D1),
        stands_for("JWT_SECRET_KEY", "JWT_SECRET", Convert::Same),
        ours("JWT_ALGORITHM"),
        stands_for(
            "JWT_EXPIRATION_HOURS",
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            Convert::HoursToMinutes,
        ),
        not_used(
            "API_HOST",
            "Workers choose the address; `make dev` serves on DEV_PORT",
        ),
        not_used(
            "API_PORT",
            "Workers choose the address; `make dev` serves on DEV_PORT",
        ),
        not_used("API_RELOAD", "`wrangler dev` rebuilds on change"),
        ours("OLLAMA_BASE_URL"),
        not_used("UPLOAD_DIR", "file bytes are kept in R2 (binding `FILES`)"),
        ours("MAX_FILE_SIZE"),
        not_used("REDIS_URL", KEPT_IN_KV),
        ours("LOG_LEVEL"),
        not_used("LOG_FILE", "logs are JSON lines on the Worker's log stream"),
    ],
};

/// POST /chat/completions — Web+'s "send message and get response", streamed with
/// `"stream": true`.
async fn chat_completions(cx: Ctx) -> ApiResult<Response> {
    send_either(cx, false).await
}

/// POST /chat/completions/stream — as `POST /chat/completions`, always streamed.
async fn chat_completions_stream(cx: Ctx) -> ApiResult<Response> {
    send_either(cx, true).await
}

/// Reads the body once, decides which of the two it is, and hands it on. A body that is not a
/// JSON object with `messages` goes to the chat route, whose errors then name what is wrong.
async fn send_either(mut cx: Ctx, force_stream: bool) -> ApiResult<Response> {
    require_media_type(cx.header("content-type").as_deref(), "application/json")?;
    let bytes = cx.body_bytes().await?;
    let openai = is_openai_body(&bytes);
    cx.put_back_body(bytes);
    if openai {
        crate::openai::routes::completions(cx, force_stream).await
    } else {
        crate::chat::routes::send(cx, None, force_stream).await
    }
}

/// An OpenAI chat completion body: an object whose `messages` is an array.
fn is_openai_body(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(bytes)
        .is_ok_and(|body| body.get("messages").is_some_and(Value::is_array))
}

#[cfg(test)]
mod tests {
    use super::is_openai_body;

    #[test]
    fn a_body_with_a_messages_array_is_an_openai_completion() {
        assert!(is_openai_body(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#
        ));
        assert!(
            is_openai_body(br#"{"messages":[]}"#),
            "an empty list is refused by /v1, not here"
        );
    }

    #[test]
    fn anything_else_is_a_chat_body() {
        for body in [
            &br#"{"message":"hi","conversation_id":"c"}"#[..],
            br#"{"messages":"hi"}"#,
            br#"[{"messages":[]}]"#,
            b"not json",
            b"",
        ] {
            assert!(!is_openai_body(body), "{}", String::from_utf8_lossy(body));
        }
    }
}
