//! Sessions: one per login, holding the refresh-token family.
//!
//! The session record lives in KV under `session:{id}`, read on every authenticated request
//! so that logout takes effect at once for that session; a marker `user-session:{user}:{id}`
//! lets a user's sessions be listed and ended together. Refresh tokens are stored only as
//! SHA-256 hashes, in D1's `refresh_tokens`, because rotation needs a compare-and-set that
//! KV cannot give (see migrations/0002).
//!
//! KV is eventually consistent across Cloudflare locations: a session ended in one location
//! can still be read as live in another for up to about 60 seconds. Within the location that
//! ended it, and everywhere for refresh tokens (D1), the effect is immediate.
//!
//! A refresh token is `{session id}.{256 random bits, base64url}`: the session part lets the
//! server find the family, the random part is the secret.

use serde::{Deserialize, Serialize};
use worker::kv::KvStore;
use worker::D1Database;

use crate::auth::crypto::secrets::{random_token, sha256_hex, TOKEN_BYTES};
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1::{self, Val};
use crate::platform::random::SystemRandom;

/// What KV holds for a session. The JSON shape is pinned by a test: records written by one
/// deployment must be readable by the next.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: u64,
    pub last_used_at: u64,
    /// Absolute expiry (ms): refreshing never extends it.
    pub expires_at: u64,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Why a refresh was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefused {
    /// Unknown, malformed or expired token, or its session has ended.
    Invalid,
    /// An already-rotated token came back: the family is revoked.
    Reused,
}

/// How often `last_used_at` is written back: at most once a minute per session, to keep KV
/// writes (1/s per key, and billed) off the hot path.
const TOUCH_INTERVAL_MS: u64 = 60_000;

pub struct SessionStore {
    pub kv: KvStore,
    pub db: D1Database,
}

fn session_key(id: &str) -> String {
    format!("session:{id}")
}

fn user_marker_key(user_id: &str, id: &str) -> String {
    format!("user-session:{user_id}:{id}")
}

/// The session id part of a refresh token, if the token is well-formed.
pub fn session_id_of(refresh_token: &str) -> Option<&str> {
    let (sid, secret) = refresh_token.split_once('.')?;
    (crate::platform::ids::is_valid_id(sid) && secret.len() >= 40 && secret.len() <= 64)
        .then_some(sid)
}

fn ttl_secs(expires_at_ms: u64, now_ms: u64) -> u64 {
    // KV refuses TTLs under 60 s; a session that close to its end may outlive it by a minute in
    // KV, but every read also checks `expires_at`.
    (expires_at_ms.saturating_sub(now_ms) / 1000).max(60)
}

impl SessionStore {
    pub fn new(cx: &crate::http::ctx::Ctx) -> ApiResult<SessionStore> {
        Ok(SessionStore {
            kv: cx.env.kv("KV")?,
            db: d1::database(cx)?,
        })
    }

    async fn put(&self, session: &Session, now_ms: u64) -> ApiResult<()> {
        let json = serde_json::to_string(session).map_err(|e| ApiError::internal(e.to_string()))?;
        let ttl = ttl_secs(session.expires_at, now_ms);
        self.kv
            .put(&session_key(&session.id), json)?
            .expiration_ttl(ttl)
            .execute()
            .await?;
        Ok(())
    }

    async fn issue_refresh_token(&self, session: &Session, now_ms: u64) -> ApiResult<String> {
        let token = format!(
            "{}.{}",
            session.id,
            random_token(&SystemRandom, TOKEN_BYTES)?
        );
        d1::execute(
            &self.db,
            "insert into refresh_tokens (token_hash, session_id, user_id, created_at, expires_at) values (?1, ?2, ?3, ?4, ?5)",
            &[
                Val::from(&sha256_hex(&token)),
                Val::from(&session.id),
                Val::from(&session.user_id),
                Val::from(now_ms),
                Val::from(session.expires_at),
            ],
        )
        .await?;
        Ok(token)
    }

    /// Starts a new session for a login; returns it with its first refresh token.
    pub async fn create(
        &self,
        user_id: &str,
        user_agent: Option<String>,
        now_ms: u64,
        lifetime_secs: u64,
    ) -> ApiResult<(Session, String)> {
        let session = Session {
            id: crate::platform::ids::new_id(now_ms)?,
            user_id: user_id.to_string(),
            created_at: now_ms,
            last_used_at: now_ms,
            expires_at: now_ms + lifetime_secs * 1000,
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
        };
        let refresh = self.issue_refresh_token(&session, now_ms).await?;
        self.put(&session, now_ms).await?;
        self.kv
            .put(&user_marker_key(user_id, &session.id), "")?
            .expiration_ttl(ttl_secs(session.expires_at, now_ms))
            .execute()
            .await?;
        Ok((session, refresh))
    }

    /// The live session with this id, or `None` when it ended or expired.
    pub async fn get(&self, id: &str, now_ms: u64) -> ApiResult<Option<Session>> {
        let Some(json) = self.kv.get(&session_key(id)).text().await? else {
            return Ok(None);
        };
        let session: Session = serde_json::from_str(&json)
            .map_err(|e| ApiError::internal(format!("session record: {e}")))?;
        Ok((session.expires_at > now_ms).then_some(session))
    }

    /// Records use of a session, at most once a minute.
    pub async fn touch(&self, mut session: Session, now_ms: u64) -> ApiResult<()> {
        if now_ms.saturating_sub(session.last_used_at) < TOUCH_INTERVAL_MS {
            return Ok(());
        }
        session.last_used_at = now_ms;
        self.put(&session, now_ms).await
    }

    /// Rotates a refresh token: the presented one is spent, a new one is returned. A token
    /// that was already spent revokes its whole session (RFC 9700 §4.14.2).
    pub async fn rotate(
        &self,
        refresh_token: &str,
        now_ms: u64,
    ) -> ApiResult<Result<(Session, String), RefreshRefused>> {
        let Some(sid) = session_id_of(refresh_token) else {
            return Ok(Err(RefreshRefused::Invalid));
        };
        let hash = sha256_hex(refresh_token);
        // The compare-and-set: of concurrent refreshes with one token, exactly one changes the row.
        let won = d1::execute(
            &self.db,
            "update refresh_tokens set used_at = ?1 where token_hash = ?2 and session_id = ?3 and used_at is null and expires_at > ?1",
            &[Val::from(now_ms), Val::from(&hash), Val::from(sid)],
        )
        .await?;
        if won == 1 {
            let Some(mut session) = self.get(sid, now_ms).await? else {
                return Ok(Err(RefreshRefused::Invalid));
            };
            let token = self.issue_refresh_token(&session, now_ms).await?;
            session.last_used_at = now_ms;
            self.put(&session, now_ms).await?;
            return Ok(Ok((session, token)));
        }
        #[derive(Deserialize)]
        struct Row {
            user_id: String,
            used_at: Option<u64>,
        }
        let row: Option<Row> = d1::first(
            &self.db,
            "select user_id, used_at from refresh_tokens where token_hash = ?1 and session_id = ?2",
            &[Val::from(&hash), Val::from(sid)],
        )
        .await?;
        match row {
            Some(Row {
                user_id,
                used_at: Some(_),
            }) => {
                self.revoke(&user_id, sid).await?;
                Ok(Err(RefreshRefused::Reused))
            }
            _ => Ok(Err(RefreshRefused::Invalid)),
        }
    }

    /// Ends one session: its access tokens fail at the next request, its refresh tokens at once.
    pub async fn revoke(&self, user_id: &str, id: &str) -> ApiResult<()> {
        d1::execute(
            &self.db,
            "delete from refresh_tokens where session_id = ?1",
            &[Val::from(id)],
        )
        .await?;
        self.kv.delete(&session_key(id)).await?;
        self.kv.delete(&user_marker_key(user_id, id)).await?;
        Ok(())
    }

    /// The ids of the user's sessions (from the markers; some may have just ended).
    async fn session_ids(&self, user_id: &str) -> ApiResult<Vec<String>> {
        let prefix = format!("user-session:{user_id}:");
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut list = self.kv.list().prefix(prefix.clone()).limit(1000);
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await?;
            ids.extend(
                page.keys
                    .iter()
                    .filter_map(|k| k.name.strip_prefix(&prefix).map(str::to_string)),
            );
            match page.cursor {
                Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
                _ => break,
            }
        }
        Ok(ids)
    }

    /// The user's live sessions, newest first.
    pub async fn list(&self, user_id: &str, now_ms: u64) -> ApiResult<Vec<Session>> {
        let mut sessions = Vec::new();
        for id in self.session_ids(user_id).await? {
            if let Some(s) = self.get(&id, now_ms).await? {
                if s.user_id == user_id {
                    sessions.push(s);
                }
            }
        }
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(sessions)
    }

    /// Ends every session of the user except `keep` (the one that changed the password).
    pub async fn revoke_all(&self, user_id: &str, keep: Option<&str>) -> ApiResult<()> {
        match keep {
            Some(k) => {
                d1::execute(
                    &self.db,
                    "delete from refresh_tokens where user_id = ?1 and session_id != ?2",
                    &[Val::from(user_id), Val::from(k)],
                )
                .await?
            }
            None => {
                d1::execute(
                    &self.db,
                    "delete from refresh_tokens where user_id = ?1",
                    &[Val::from(user_id)],
                )
                .await?
            }
        };
        for id in self.session_ids(user_id).await? {
            if Some(id.as_str()) != keep {
                self.kv.delete(&session_key(&id)).await?;
                self.kv.delete(&user_marker_key(user_id, &id)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_record_json_shape_is_stable() {
        let s = Session {
            id: "0".repeat(32),
            user_id: "1".repeat(32),
            created_at: 1,
            last_used_at: 2,
            expires_at: 3,
            user_agent: Some("curl/8".into()),
        };
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "id": "0".repeat(32), "user_id": "1".repeat(32), "created_at": 1,
                "last_used_at": 2, "expires_at": 3, "user_agent": "curl/8"
            })
        );
        // Records written before a field existed still read.
        let old: Session = serde_json::from_str(&format!(
            r#"{{"id":"{}","user_id":"u","created_at":1,"last_used_at":1,"expires_at":9}}"#,
            "0".repeat(32)
        ))
        .expect("old record");
        assert_eq!(old.user_agent, None);
    }

    #[test]
    fn refresh_tokens_name_their_session_and_junk_does_not() {
        let sid = "0123456789abcdef0123456789abcdef";
        let token = format!("{sid}.{}", "A".repeat(43));
        assert_eq!(session_id_of(&token), Some(sid));
        assert_eq!(session_id_of("no-dot"), None);
        assert_eq!(session_id_of(&format!("{sid}.short")), None);
        assert_eq!(session_id_of(&format!("xyz.{}", "A".repeat(43))), None);
    }

    #[test]
    fn kv_ttl_is_the_remaining_lifetime_but_at_least_a_minute() {
        assert_eq!(ttl_secs(1_000_000, 0), 1000);
        assert_eq!(ttl_secs(10_000, 0), 60);
        assert_eq!(ttl_secs(0, 5_000), 60);
    }
}
