//! The chat routes, and the routes that clients of the services Threadline replaces know.
//!
//! The aliases are thin: each points at the handler of the native route, so they cannot
//! drift apart. Bodies accept both services' field names (see [`super::input`]).
//!
//! | alias | service | native route |
//! |---|---|---|
//! | `POST /chat` | ThreadFlow | `POST /api/chat` |
//! | `POST /api/chat/send` | ChronoChat | `POST /api/chat` |
//! | `GET /api/chat/threads` | ChronoChat | `GET /api/conversations` |
//! | `GET /api/chat/threads/{id}` | ChronoChat | `GET /api/conversations/{id}` |
//! | `DELETE /api/chat/threads/{id}` | ChronoChat | `DELETE /api/conversations/{id}` |
//! | `PUT /api/chat/threads/{id}/title` | ChronoChat | `PUT /api/conversations/{id}/title` |
//! | `GET /api/chats` | LLM_MODES | `GET /api/conversations` |
//! | `POST /api/chats` | LLM_MODES | `POST /api/conversations` |
//! | `GET /api/chats/{id}` | LLM_MODES | `GET /api/conversations/{id}` |
//! | `PUT /api/chats/{id}` | LLM_MODES | `PATCH /api/conversations/{id}` |
//! | `DELETE /api/chats/{id}` | LLM_MODES | `DELETE /api/conversations/{id}` |
//! | `POST /api/chats/{id}/messages` | LLM_MODES | `POST /api/conversations/{id}/messages` |

use super::send;
use crate::conversations::routes as conversations;
use crate::handler;
use crate::router::{Method, Route};

pub fn routes() -> Vec<Route> {
    use Method::*;
    vec![
        Route::new(
            Post,
            "/api/conversations/{id}/messages",
            handler!(send::send_in_conversation),
        ),
        Route::new(Post, "/api/chat", handler!(send::chat)),
        Route::new(Post, "/api/chat/stream", handler!(send::chat_stream)),
        // ThreadFlow
        Route::new(Post, "/chat", handler!(send::chat)),
        // ChronoChat
        Route::new(Post, "/api/chat/send", handler!(send::chat)),
        Route::new(Get, "/api/chat/threads", handler!(conversations::list)),
        Route::new(Get, "/api/chat/threads/{id}", handler!(conversations::show)),
        Route::new(
            Delete,
            "/api/chat/threads/{id}",
            handler!(conversations::delete),
        ),
        Route::new(
            Put,
            "/api/chat/threads/{id}/title",
            handler!(conversations::rename),
        ),
        // LLM_MODES
        Route::new(Get, "/api/chats", handler!(conversations::list)),
        Route::new(Post, "/api/chats", handler!(conversations::create)),
        Route::new(Get, "/api/chats/{id}", handler!(conversations::show)),
        Route::new(Put, "/api/chats/{id}", handler!(conversations::update)),
        Route::new(Delete, "/api/chats/{id}", handler!(conversations::delete)),
        Route::new(
            Post,
            "/api/chats/{id}/messages",
            handler!(send::send_in_conversation),
        ),
    ]
}
