//! Route primitives and matching: each resource module declares its routes with these, the
//! top-level `routes` module merges them, and [`find`] matches a request against the table.
//!
//! Matching is our own rather than `worker::Router` so that a path that exists under another
//! method answers 405 with `Allow`, an unknown path answers our 404 envelope, and the same
//! table drives the OpenAPI consistency test.

use std::future::Future;
use std::pin::Pin;

use crate::http::ctx::{Ctx, Params};
use crate::http::error::ApiResult;

pub type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult<worker::Response>>>>;
pub type Handler = fn(Ctx) -> HandlerFuture;

/// Wraps an `async fn(Ctx) -> ApiResult<Response>` into a [`Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn boxed(cx: $crate::http::ctx::Ctx) -> $crate::http::router::HandlerFuture {
            Box::pin($f(cx))
        }
        boxed as $crate::http::router::Handler
    }};
}
pub(crate) use handler;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "GET" | "HEAD" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Route {
    pub method: Method,
    /// A path template such as `/api/conversations/{id}/messages`.
    pub path: &'static str,
    pub handler: Handler,
    /// The template's last `{param}` takes the rest of the path, slashes included
    /// (`/v1/models/{model}` matching `/v1/models/openai/gpt-4o`). The template stays a plain
    /// OpenAPI path, so the documentation test still compares it as written.
    pub rest: bool,
    /// How large a body the route takes ([`BodyLimit`]).
    pub body: BodyLimit,
}

/// Which size limit a route's body is held to (defined beside the settings it names).
pub use crate::config::BodyLimit;

impl Route {
    pub const fn new(method: Method, path: &'static str, handler: Handler) -> Route {
        Route {
            method,
            path,
            handler,
            rest: false,
            body: BodyLimit::Default,
        }
    }

    /// This route with a body held to `limit` instead of `MAX_BODY_BYTES`.
    pub const fn with_body(mut self, limit: BodyLimit) -> Route {
        self.body = limit;
        self
    }

    /// This route with its last parameter taking the rest of the path (see [`Route::rest`]).
    pub const fn with_rest(mut self) -> Route {
        self.rest = true;
        self
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.as_str(), self.path)
    }
}

pub enum RouteMatch<'a> {
    Found(&'a Route, Params),
    /// The path exists, but not for this method: the methods it does accept.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Matches one template against a path; `None` when it does not fit.
/// The score counts literal segments so `/a/stats` wins over `/a/{id}`. With `rest`, the
/// template's last parameter takes every remaining segment, joined by `/` again.
fn match_template(template: &'static str, path: &str, rest: bool) -> Option<(usize, Params)> {
    let mut params = Params::new();
    let mut score = 0;
    let mut t_segs = template.split('/').peekable();
    let mut p_segs = path.split('/');
    loop {
        match (t_segs.next(), p_segs.next()) {
            (None, None) => return Some((score, params)),
            (Some(t), Some(p)) => {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    if p.is_empty() {
                        return None;
                    }
                    if rest && t_segs.peek().is_none() {
                        let tail: Vec<&str> = std::iter::once(p).chain(p_segs.by_ref()).collect();
                        if tail.iter().any(|segment| segment.is_empty()) {
                            return None;
                        }
                        params.insert(name, tail.join("/"));
                        return Some((score, params));
                    }
                    params.insert(name, p.to_string());
                } else if t == p {
                    score += 1;
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path`. A trailing slash is ignored (`/health/` is
/// `/health`), as clients of the FastAPI services we replace send both.
///
/// The path is the template that fits it most literally, whatever the method: with
/// `POST /conversations/chat` and `GET /conversations/{id}`, `GET /conversations/chat` is
/// the chat path asked with the wrong method (405, `Allow: POST`), not a conversation
/// called "chat".
pub fn find<'a>(routes: &'a [Route], method: Option<Method>, path: &str) -> RouteMatch<'a> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let matches: Vec<(usize, &Route, Params)> = routes
        .iter()
        .filter_map(|route| {
            match_template(route.path, path, route.rest)
                .map(|(score, params)| (score, route, params))
        })
        .collect();
    let Some(top) = matches.iter().map(|(score, _, _)| *score).max() else {
        return RouteMatch::NotFound;
    };
    let mut methods = Vec::new();
    for (score, route, params) in matches {
        if score != top {
            continue;
        }
        if Some(route.method) == method {
            return RouteMatch::Found(route, params);
        }
        methods.push(route.method);
    }
    methods.sort();
    methods.dedup();
    RouteMatch::MethodNotAllowed(methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy(_: Ctx) -> HandlerFuture {
        unreachable!("handlers are not run in matching tests")
    }

    fn table() -> Vec<Route> {
        vec![
            Route::new(Method::Get, "/", dummy),
            Route::new(Method::Get, "/api/items", dummy),
            Route::new(Method::Post, "/api/items", dummy),
            Route::new(Method::Get, "/api/items/{id}", dummy),
            Route::new(Method::Delete, "/api/items/{id}", dummy),
            Route::new(Method::Get, "/api/items/stats", dummy),
            Route::new(Method::Get, "/api/items/{id}/parts/{part}", dummy),
            Route::new(Method::Get, "/files/{path}", dummy).with_rest(),
            Route::new(Method::Delete, "/files/{path}/lock", dummy),
        ]
    }

    fn found(m: RouteMatch<'_>) -> (String, Params) {
        match m {
            RouteMatch::Found(r, p) => (r.path.to_string(), p),
            RouteMatch::MethodNotAllowed(a) => panic!("405 {a:?}"),
            RouteMatch::NotFound => panic!("404"),
        }
    }

    #[test]
    fn literal_segment_beats_parameter() {
        let t = table();
        let (path, params) = found(find(&t, Some(Method::Get), "/api/items/stats"));
        assert_eq!(path, "/api/items/stats");
        assert!(params.is_empty());
    }

    #[test]
    fn a_literal_path_asked_with_another_method_is_405_not_a_parameter() {
        let t = vec![
            Route::new(Method::Get, "/c/{id}", dummy),
            Route::new(Method::Delete, "/c/{id}", dummy),
            Route::new(Method::Post, "/c/chat", dummy),
        ];
        match find(&t, Some(Method::Get), "/c/chat") {
            RouteMatch::MethodNotAllowed(allowed) => assert_eq!(allowed, [Method::Post]),
            _ => panic!("GET /c/chat must be 405"),
        }
        let (path, params) = found(find(&t, Some(Method::Get), "/c/abc"));
        assert_eq!((path.as_str(), params["id"].as_str()), ("/c/{id}", "abc"));
    }

    #[test]
    fn parameters_are_captured_by_name() {
        let t = table();
        let (path, params) = found(find(&t, Some(Method::Get), "/api/items/42/parts/a-b"));
        assert_eq!(path, "/api/items/{id}/parts/{part}");
        assert_eq!(params["id"], "42");
        assert_eq!(params["part"], "a-b");
    }

    #[test]
    fn a_rest_parameter_takes_the_remaining_segments_slashes_included() {
        let t = table();
        let (path, params) = found(find(&t, Some(Method::Get), "/files/openai/gpt-4o"));
        assert_eq!(path, "/files/{path}");
        assert_eq!(params["path"], "openai/gpt-4o");
        let (_, params) = found(find(&t, Some(Method::Get), "/files/one"));
        assert_eq!(params["path"], "one");
    }

    #[test]
    fn a_rest_parameter_needs_a_segment_and_no_empty_ones() {
        let t = table();
        assert!(matches!(
            find(&t, Some(Method::Get), "/files"),
            RouteMatch::NotFound
        ));
        assert!(matches!(
            find(&t, Some(Method::Get), "/files/a//b"),
            RouteMatch::NotFound
        ));
    }

    #[test]
    fn a_longer_literal_template_beats_a_rest_parameter_whatever_the_method() {
        let t = table();
        let (path, _) = found(find(&t, Some(Method::Delete), "/files/x/lock"));
        assert_eq!(path, "/files/{path}/lock");
        match find(&t, Some(Method::Get), "/files/x/lock") {
            RouteMatch::MethodNotAllowed(m) => assert_eq!(m, vec![Method::Delete]),
            _ => panic!("expected 405: /files/{{path}}/lock is the more literal template"),
        }
    }

    #[test]
    fn wrong_method_on_known_path_lists_allowed_methods() {
        let t = table();
        match find(&t, Some(Method::Put), "/api/items/7") {
            RouteMatch::MethodNotAllowed(m) => assert_eq!(m, vec![Method::Get, Method::Delete]),
            _ => panic!("expected 405"),
        }
    }

    #[test]
    fn unknown_method_on_known_path_is_405_not_404() {
        let t = table();
        assert!(matches!(
            find(&t, None, "/api/items"),
            RouteMatch::MethodNotAllowed(_)
        ));
    }

    #[test]
    fn unknown_path_is_not_found() {
        let t = table();
        assert!(matches!(
            find(&t, Some(Method::Get), "/nope"),
            RouteMatch::NotFound
        ));
        assert!(matches!(
            find(&t, Some(Method::Get), "/api/items/1/x"),
            RouteMatch::NotFound
        ));
    }

    #[test]
    fn trailing_slash_is_ignored_and_empty_parameter_is_not_a_match() {
        let t = table();
        let (path, _) = found(find(&t, Some(Method::Get), "/api/items/"));
        assert_eq!(path, "/api/items");
        assert!(matches!(
            find(&t, Some(Method::Get), "//"),
            RouteMatch::NotFound
        ));
    }
}
