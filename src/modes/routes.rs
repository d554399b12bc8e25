//! `GET /api/modes`.

use serde::Serialize;

use super::catalogue::{Mode, DEFAULT_MODE};
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::http::response;
use crate::http::router::{handler, Method, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::new(Method::Get, "/api/modes", handler!(list_modes))]
}

#[derive(Serialize)]
struct ModeList<'a> {
    data: &'a [Mode],
    default_mode: &'static str,
}

/// GET /api/modes — the chat modes on offer (built-in and operator-defined). Public: it
/// describes the deployment, not any user.
async fn list_modes(cx: Ctx) -> ApiResult<worker::Response> {
    response::json(
        200,
        &ModeList {
            data: cx.config.chat.modes.all(),
            default_mode: DEFAULT_MODE,
        },
    )
}
