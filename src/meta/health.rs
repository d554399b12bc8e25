//! `GET /health` — is this deployment able to serve? Checks D1 with a query and KV with a
//! read, times each, and answers 503 when one is down so load balancers and uptime checks
//! can act on the status code alone.

use serde::Serialize;
use serde_json::json;
use worker::Response;

use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};

pub fn routes() -> Vec<Route> {
    vec![Route::new(Method::Get, "/health", handler!(health))]
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ComponentHealth {
    pub status: &'static str,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ComponentHealth {
    fn from_check(result: Result<(), String>, latency_ms: u64) -> Self {
        match result {
            Ok(()) => ComponentHealth {
                status: "ok",
                latency_ms,
                error: None,
            },
            Err(error) => ComponentHealth {
                status: "down",
                latency_ms,
                error: Some(error),
            },
        }
    }

    pub fn is_up(&self) -> bool {
        self.status == "ok"
    }
}

async fn timed<F: std::future::Future<Output = Result<(), String>>>(check: F) -> ComponentHealth {
    let start = SystemClock.now_ms();
    let result = check.await;
    ComponentHealth::from_check(result, SystemClock.now_ms().saturating_sub(start))
}

async fn check_d1(cx: &Ctx) -> Result<(), String> {
    let db = cx
        .env
        .d1("DB")
        .map_err(|_| "binding DB is missing".to_string())?;
    db.prepare("select 1 as ok")
        .first::<serde_json::Value>(None)
        .await
        .map_err(|e| format!("query failed: {e}"))?
        .ok_or_else(|| "query returned no row".to_string())?;
    Ok(())
}

async fn check_kv(cx: &Ctx) -> Result<(), String> {
    let kv = cx
        .env
        .kv("KV")
        .map_err(|_| "binding KV is missing".to_string())?;
    kv.get("health:probe")
        .text()
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    Ok(())
}

/// GET /health — component status and latency; 200 when all are up, 503 otherwise.
async fn health(cx: Ctx) -> ApiResult<Response> {
    let (d1, kv) = futures::join!(timed(check_d1(&cx)), timed(check_kv(&cx)));
    let all_up = d1.is_up() && kv.is_up();
    let body = json!({
        "status": if all_up { "ok" } else { "down" },
        "version": env!("CARGO_PKG_VERSION"),
        "environment": cx.config.environment.as_str(),
        "components": { "d1": d1, "kv": kv },
        // Email is optional: without it only verification and reset mail are unavailable.
        "email": { "status": crate::auth::email::Mailer::status(&cx) },
    });
    response::json(if all_up { 200 } else { 503 }, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_is_down_with_its_error() {
        let c = ComponentHealth::from_check(Err("binding DB is missing".into()), 3);
        assert!(!c.is_up());
        assert_eq!(c.error.as_deref(), Some("binding DB is missing"));
        let ok = ComponentHealth::from_check(Ok(()), 1);
        assert!(ok.is_up());
        assert_eq!(
            serde_json::to_value(&ok).expect("json"),
            json!({"status":"ok","latency_ms":1})
        );
    }
}
