//! Development-only routes: recent log lines, the email outbox and a deliberate panic.
//! Outside development they answer exactly like unknown routes.

use serde_json::json;
use worker::Response;

use crate::auth::store;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, Method, Route};
use crate::platform::d1;
use crate::platform::logging;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/debug/logs", handler!(debug_logs)),
        Route::new(Method::Get, "/debug/outbox", handler!(debug_outbox)),
        Route::new(Method::Get, "/debug/panic", handler!(debug_panic)),
    ]
}

/// Debug routes exist only in development, and only for a client on this machine: the outbox
/// holds every account's verification and reset links, so anyone who could reach it on a
/// shared development or preview deployment could take over any account. Elsewhere they are
/// indistinguishable from unknown routes.
fn development_only(cx: &Ctx) -> ApiResult<()> {
    let host = cx
        .req
        .url()
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    let client_ip = cx.header("cf-connecting-ip");
    if cx.config.is_development() && is_local_client(host.as_deref(), client_ip.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::route_not_found("GET", cx.route))
    }
}

/// Whether the request came to a loopback address from a loopback client. On Cloudflare the
/// client's address is always in `cf-connecting-ip` (and cannot be forged); locally it is
/// absent or loopback.
fn is_local_client(host: Option<&str>, client_ip: Option<&str>) -> bool {
    let loopback = |h: &str| {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    host.is_some_and(loopback) && client_ip.is_none_or(|ip| loopback(ip.trim()))
}

/// GET /debug/logs?lines=N — the most recent log lines of this isolate (development only),
/// as ThreadFlow's `/debug/logs` offered.
async fn debug_logs(cx: Ctx) -> ApiResult<Response> {
    development_only(&cx)?;
    let lines = match cx.query("lines") {
        None => 100,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=logging::RECENT_LINES_CAPACITY).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "lines",
                    format!(
                        "lines must be a number from 1 to {}.",
                        logging::RECENT_LINES_CAPACITY
                    ),
                )
            })?,
    };
    let entries: Vec<serde_json::Value> = logging::recent_lines(lines)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    response::json(200, &json!({ "lines": entries }))
}

/// GET /debug/panic — panics on purpose (development only), to prove that a panic is logged,
/// answered with a 500 envelope, and that the next request is served by a fresh instance.
async fn debug_panic(cx: Ctx) -> ApiResult<Response> {
    development_only(&cx)?;
    panic!("deliberate panic from /debug/panic");
}

/// GET /debug/outbox?to=EMAIL — account email sent in development, newest first.
async fn debug_outbox(cx: Ctx) -> ApiResult<Response> {
    development_only(&cx)?;
    let db = d1::database(&cx)?;
    let rows = store::outbox(&db, cx.query("to").as_deref()).await?;
    let messages: Vec<_> = rows
        .into_iter()
        .map(|r| json!({ "id": r.id, "to": r.to_address, "subject": r.subject, "text": r.body, "created_at": r.created_at }))
        .collect();
    response::json(200, &json!({ "messages": messages }))
}

#[cfg(test)]
mod tests {
    use super::is_local_client;

    #[test]
    fn only_a_loopback_client_on_a_loopback_host_is_local() {
        assert!(is_local_client(Some("127.0.0.1"), None));
        assert!(is_local_client(Some("localhost"), Some("127.0.0.1")));
        assert!(is_local_client(Some("[::1]"), Some("::1")));
        assert!(!is_local_client(
            Some("threadline.example.workers.dev"),
            None
        ));
        assert!(!is_local_client(Some("127.0.0.1"), Some("203.0.113.7")));
        assert!(!is_local_client(Some("127.0.0.2.example"), None));
        assert!(!is_local_client(None, None));
    }
}
