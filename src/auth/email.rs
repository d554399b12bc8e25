//! Account email (verification and password-reset links) behind one small trait.
//!
//! In development every message lands in a D1 outbox readable at `GET /debug/outbox`, so the
//! flows can be walked and tested end to end without a mail server. In production messages are
//! POSTed as JSON to the HTTP email API named by `EMAIL_API_URL` (any provider with a
//! "send" endpoint taking `{"from","to","subject","text"}` and a bearer key, or a small
//! relay in front of one). Without it, the routes that must send mail say so with a 503 and
//! `/health` reports email as unconfigured.

use serde::Serialize;
use serde_json::json;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::auth::store;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Something that delivers account email.
#[allow(async_fn_in_trait)]
pub trait EmailSender {
    async fn send(&self, message: &EmailMessage) -> ApiResult<()>;
}

/// Development: store the message in D1 for `/debug/outbox`.
pub struct DevOutbox {
    db: worker::D1Database,
}

impl EmailSender for DevOutbox {
    async fn send(&self, m: &EmailMessage) -> ApiResult<()> {
        store::add_to_outbox(&self.db, &m.to, &m.subject, &m.text, SystemClock.now_ms()).await
    }
}

/// Production: POST to the configured HTTP email API.
pub struct HttpEmailApi {
    url: String,
    key: Option<String>,
    from: String,
}

impl EmailSender for HttpEmailApi {
    async fn send(&self, m: &EmailMessage) -> ApiResult<()> {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        if let Some(key) = &self.key {
            headers.set("authorization", &format!("Bearer {key}"))?;
        }
        let body = json!({ "from": self.from, "to": m.to, "subject": m.subject, "text": m.text });
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.to_string().into()));
        let request = Request::new_with_init(&self.url, &init)?;
        let response = Fetch::Request(request).send().await.map_err(|e| {
            ApiError::new(
                502,
                "email_failed",
                "The email service could not be reached.",
            )
            .with_internal(e.to_string())
        })?;
        if !(200..300).contains(&response.status_code()) {
            return Err(ApiError::new(
                502,
                "email_failed",
                "The email service refused the message.",
            )
            .with_internal(format!("email API status {}", response.status_code())));
        }
        Ok(())
    }
}

/// The sender for this deployment.
pub enum Mailer {
    Outbox(DevOutbox),
    Http(HttpEmailApi),
    Unconfigured,
}

impl Mailer {
    pub fn for_request(cx: &Ctx) -> ApiResult<Mailer> {
        if cx.config.is_development() {
            return Ok(Mailer::Outbox(DevOutbox {
                db: d1::database(cx)?,
            }));
        }
        Ok(match &cx.config.email.api_url {
            Some(url) => Mailer::Http(HttpEmailApi {
                url: url.clone(),
                key: cx.config.email.api_key.clone(),
                from: cx.config.email.from.clone(),
            }),
            None => Mailer::Unconfigured,
        })
    }

    /// How `/health` describes email delivery.
    pub fn status(cx: &Ctx) -> &'static str {
        if cx.config.is_development() {
            "outbox"
        } else if cx.config.email.api_url.is_some() {
            "configured"
        } else {
            "unconfigured"
        }
    }

    /// 503 when email cannot be sent at all, before any work is done for it.
    pub fn require_configured(&self) -> ApiResult<()> {
        match self {
            Mailer::Unconfigured => Err(unconfigured()),
            _ => Ok(()),
        }
    }

    pub async fn send(&self, message: &EmailMessage) -> ApiResult<()> {
        match self {
            Mailer::Outbox(o) => o.send(message).await,
            Mailer::Http(h) => h.send(message).await,
            Mailer::Unconfigured => Err(unconfigured()),
        }
    }
}

fn unconfigured() -> ApiError {
    ApiError::new(
        503,
        "email_unconfigured",
        "Email delivery is not configured on this server (set EMAIL_API_URL), so this action is unavailable.",
    )
}

/// The verification email: a link to the app plus the raw token for API clients.
pub fn verification_message(to: &str, app_base_url: &str, token: &str) -> EmailMessage {
    EmailMessage {
        to: to.to_string(),
        subject: "Verify your email address".into(),
        text: format!(
            "Confirm this address for your Threadline account:\n\n{app_base_url}/verify-email?token={token}\n\nOr send this token to POST /api/auth/verify-email:\n{token}\n\nIf you did not create an account, ignore this message.\n"
        ),
    }
}

/// The password-reset email.
pub fn reset_message(to: &str, app_base_url: &str, token: &str, ttl_minutes: u64) -> EmailMessage {
    EmailMessage {
        to: to.to_string(),
        subject: "Reset your password".into(),
        text: format!(
            "Someone asked to reset the password of your Threadline account.\n\n{app_base_url}/reset-password?token={token}\n\nOr send this token to POST /api/auth/reset-password:\n{token}\n\nThe link works once, for {ttl_minutes} minutes. If it was not you, ignore this message.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_link_and_the_raw_token() {
        let m = reset_message("a@b.io", "https://app.example", "TOKEN123", 60);
        assert_eq!(m.to, "a@b.io");
        assert!(m
            .text
            .contains("https://app.example/reset-password?token=TOKEN123"));
        assert!(m.text.contains("\nTOKEN123\n"));
        let v = verification_message("a@b.io", "https://app.example", "T2");
        assert!(v.text.contains("/verify-email?token=T2"));
    }
}
