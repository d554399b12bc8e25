//! The service's own pages: `/` (what this is), `/openapi.json`, and two renderings of it:
//! `/docs` (Swagger UI, to try requests) and `/redoc` (ReDoc, to read), both served from the
//! worker's own static assets.
//!
//! The OpenAPI document is written by hand in `openapi.json` at the repository root
//! (descriptions, examples and schemas a generator could not know); the tests in the
//! top-level `routes` module compare it with the route table in both directions.

use serde_json::json;
use worker::{Headers, Response};

use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/", handler!(index)),
        Route::new(Method::Get, "/openapi.json", handler!(openapi_document)),
        Route::new(Method::Get, "/docs", handler!(docs_page)),
        Route::new(Method::Get, "/redoc", handler!(redoc_page)),
        Route::new(Method::Get, "/docs/assets/{file}", handler!(docs_asset)),
    ]
}

/// GET / — name, version and where to go next.
async fn index(cx: Ctx) -> ApiResult<Response> {
    response::json(
        200,
        &json!({
            "name": "Threadline",
            "description": "An AI chat backend at the edge: accounts, conversations and one streaming API over OpenAI, Anthropic, Gemini and OpenAI-compatible servers.",
            "version": env!("CARGO_PKG_VERSION"),
            "environment": cx.config.environment.as_str(),
            "links": {
                "docs": "/docs",
                "redoc": "/redoc",
                "openapi": "/openapi.json",
                "health": "/health",
            }
        }),
    )
}

/// GET /openapi.json — the OpenAPI 3.1 document of every route.
async fn openapi_document(_cx: Ctx) -> ApiResult<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "public, max-age=300")?;
    Ok(Response::ok(OPENAPI_DOCUMENT)?.with_headers(headers))
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Threadline API reference</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"#;

/// Kept out of the HTML so the page works under a CSP without `unsafe-inline` scripts.
const DOCS_INIT_JS: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true
});
"##;

/// GET /docs — an interactive API reference (Swagger UI) served by this worker: its script
/// and styles come from the worker's static assets, so the page needs no CDN and works offline.
async fn docs_page(_cx: Ctx) -> ApiResult<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/html; charset=utf-8")?;
    headers.set(
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'",
    )?;
    Ok(Response::ok(DOCS_HTML)?.with_headers(headers))
}

const REDOC_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Threadline API reference</title>
</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <script src="/docs/assets/redoc.standalone.js"></script>
</body>
</html>
"#;

/// GET /redoc — the same document as a ReDoc page, for LLM_MODES and ChronoChat users who
/// know it there. Its script is a static asset like Swagger UI's; ReDoc styles with inline
/// `<style>` and searches in a `blob:` worker, which the policy allows and nothing more.
async fn redoc_page(_cx: Ctx) -> ApiResult<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/html; charset=utf-8")?;
    headers.set(
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; worker-src 'self' blob:; connect-src 'self'",
    )?;
    Ok(Response::ok(REDOC_HTML)?.with_headers(headers))
}

/// GET /docs/assets/{file} — the docs page's script and styles (static assets, outside the wasm).
async fn docs_asset(cx: Ctx) -> ApiResult<Response> {
    let file = cx.param("file")?;
    if file == "init.js" {
        let headers = Headers::new();
        headers.set("content-type", "text/javascript; charset=utf-8")?;
        return Ok(Response::ok(DOCS_INIT_JS)?.with_headers(headers));
    }
    if !matches!(
        file,
        "swagger-ui.css" | "swagger-ui-bundle.js" | "redoc.standalone.js"
    ) {
        return Err(ApiError::not_found());
    }
    let assets = cx
        .env
        .assets("ASSETS")
        .map_err(|_| ApiError::not_found().with_internal("ASSETS binding missing"))?;
    let mut response = assets
        .fetch(format!("https://assets.local/docs/assets/{file}"), None)
        .await?;
    if response.status_code() != 200 {
        return Err(ApiError::not_found()
            .with_internal(format!("asset {file}: {}", response.status_code())));
    }
    let body = response.bytes().await?;
    let headers = Headers::new();
    let content_type = if file.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    headers.set("content-type", content_type)?;
    headers.set("cache-control", "public, max-age=86400")?;
    Ok(Response::from_bytes(body)?.with_headers(headers))
}
