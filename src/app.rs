//! The request pipeline around every handler: request id, configuration check, CORS, routing,
//! error rendering and the one log line per request.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Env, Request, Response};

use crate::config::Config;
use crate::http::ctx::Ctx;
use crate::http::error::ApiError;
use crate::http::response;
use crate::http::router::{self, Method, Route, RouteMatch};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::ids::{is_acceptable_request_id, new_request_id};
use crate::platform::logging::{LogLevel, LogLine};
use crate::platform::random::random_bytes;

/// Configuration and the route table, shared by every request of an isolate.
type IsolateState = (Rc<Config>, Rc<Vec<Route>>);

thread_local! {
    /// Built once per isolate: vars and secrets cannot change without a new deployment,
    /// which starts new isolates.
    static STATE: RefCell<Option<IsolateState>> = const { RefCell::new(None) };
}

fn isolate_state(env: &Env, now_ms: u64) -> IsolateState {
    if let Some(state) = STATE.with(|s| s.borrow().clone()) {
        return state;
    }
    let config = Config::from_source(&crate::compat::settings_source(env), || {
        random_bytes::<32>().map(|b| b.to_vec())
    });
    for warning in &config.warnings {
        LogLine::new(LogLevel::Warn, now_ms, "configuration")
            .field("warning", warning.as_str())
            .emit(config.log_level);
    }
    for problem in &config.problems {
        LogLine::new(LogLevel::Error, now_ms, "configuration")
            .field("setting", problem.setting)
            .field("problem", problem.problem.as_str())
            .emit(config.log_level);
    }
    let state = (Rc::new(config), Rc::new(crate::routes::routes()));
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    state
}

/// The isolate's configuration, for code that runs outside a request's pipeline (a Durable
/// Object's handlers, the queue consumer and the cron sweeper).
pub fn config(env: &Env) -> Rc<Config> {
    isolate_state(env, SystemClock.now_ms()).0
}

/// Answers one request. Never fails: every error becomes the JSON envelope.
pub async fn handle(req: Request, env: Env, worker_ctx: worker::Context) -> Response {
    let started_ms = SystemClock.now_ms();
    let client_request_id = req
        .headers()
        .get("x-request-id")
        .ok()
        .flatten()
        .filter(|id| is_acceptable_request_id(id));
    // Without secure randomness nothing this request might issue would be safe: it fails
    // (500), under an id made from the clock so the failure can still be traced.
    let (request_id, no_randomness) = match client_request_id {
        Some(id) => (id, None),
        None => match new_request_id() {
            Ok(id) => (id, None),
            Err(err) => (format!("t{started_ms:x}"), Some(ApiError::from(err))),
        },
    };
    let (config, routes) = isolate_state(&env, started_ms);
    // The method as the client sent it: the `worker` crate maps names it does not know
    // (PROPFIND, QUERY, PURGE…) to GET, which would run GET handlers for them.
    let method_name = req.inner().method();
    let path = req.path();
    let origin = req.headers().get("origin").ok().flatten();
    let is_cors_request = origin.is_some();
    let cors_origin = origin
        .filter(|o| response::origin_allowed(&config.cors_origins, o))
        .map(|o| {
            if config.cors_origins.iter().any(|a| a == "*") {
                "*".to_string()
            } else {
                o
            }
        });

    let mut route_label = "unmatched";
    let body_limit = match router::find(&routes, Method::parse(&method_name), &path) {
        RouteMatch::Found(route, _) => config.body_limit(route.body),
        _ => config.max_body_bytes,
    };
    let result: Result<Response, ApiError> = if let Some(err) = no_randomness {
        Err(err)
    } else if let Some(problem) = config.problems.first() {
        Err(ApiError::misconfigured(problem.setting, &problem.problem))
    } else if let Some(err) = declared_body_too_large(&req, body_limit) {
        Err(err)
    } else if method_name == "OPTIONS" && is_cors_request {
        preflight(cors_origin.is_some())
    } else if method_name == "OPTIONS" {
        options(&routes, &path)
    } else {
        match router::find(&routes, Method::parse(&method_name), &path) {
            RouteMatch::Found(route, params) => {
                route_label = route.path;
                let cx = Ctx {
                    req,
                    env,
                    worker_ctx: Rc::new(worker_ctx),
                    config: config.clone(),
                    request_id: request_id.clone(),
                    params,
                    route: route.path,
                    read_body: None,
                    body_limit,
                };
                (route.handler)(cx).await
            }
            RouteMatch::MethodNotAllowed(methods) => {
                let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                Err(ApiError::method_not_allowed(&names))
            }
            RouteMatch::NotFound => Err(ApiError::route_not_found(&method_name, &path)),
        }
    };

    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => (response::error_response(&err, &request_id), Some(err)),
    };
    let _ = response::finish_headers(response.headers_mut(), &request_id, cors_origin.as_deref());

    let status = response.status_code();
    let level = match status {
        500.. => LogLevel::Error,
        400..=499 => LogLevel::Info,
        _ => LogLevel::Info,
    };
    let mut line = LogLine::new(level, SystemClock.now_ms(), "request")
        .field("request_id", request_id.as_str())
        .field("method", method_name.as_str())
        .field("route", route_label)
        .field("status", status)
        .field(
            "duration_ms",
            SystemClock.now_ms().saturating_sub(started_ms),
        );
    if let Some(err) = &error {
        line = line.field("error_code", err.code);
        if let Some(detail) = &err.internal {
            line = line.field("error_detail", detail.as_str());
        }
    }
    line.emit(config.log_level);
    response
}

/// 413 before anything else when the declared `Content-Length` is over the limit, so an
/// oversized upload is refused at once instead of after authentication or a wait for the body.
fn declared_body_too_large(req: &Request, limit: usize) -> Option<ApiError> {
    let declared = req.headers().get("content-length").ok().flatten()?;
    declared
        .trim()
        .parse::<u64>()
        .is_ok_and(|n| n > limit as u64)
        .then(|| ApiError::payload_too_large(limit))
}

/// `OPTIONS` without an `Origin` (not a browser preflight): which methods the path accepts.
fn options(routes: &[Route], path: &str) -> Result<Response, ApiError> {
    match router::find(routes, None, path) {
        RouteMatch::MethodNotAllowed(methods) => {
            let mut names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            names.push("OPTIONS");
            let response = Response::empty()?.with_status(204);
            response.headers().set("allow", &names.join(", "))?;
            Ok(response)
        }
        _ => Err(ApiError::route_not_found("OPTIONS", path)),
    }
}

/// `OPTIONS` from a browser: allowed origins get the CORS grant, others a 403 that says why.
fn preflight(origin_allowed: bool) -> Result<Response, ApiError> {
    if !origin_allowed {
        return Err(ApiError::forbidden(
            "cors_origin_not_allowed",
            "This origin is not in CORS_ORIGINS.",
        ));
    }
    let response = Response::empty()?.with_status(204);
    let headers = response.headers();
    headers.set("access-control-allow-methods", response::CORS_ALLOW_METHODS)?;
    headers.set("access-control-allow-headers", response::CORS_ALLOW_HEADERS)?;
    headers.set("access-control-max-age", "600")?;
    Ok(response)
}
