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
//!
//! The storage sits behind [`SessionBackend`] so that the security rules — rotation spends a
//! token exactly once, a spent token coming back ends its whole family, refreshing never
//! extends the absolute expiry — are tested natively against an in-memory fake, not only end
//! to end. The seam is cut at the single statements and key operations, so the SQL and key
//! names stay in [`KvD1SessionBackend`] and every decision stays in [`SessionStore`].

use futures::future::LocalBoxFuture;
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

impl Session {
    /// Whether its use is worth recording again (at most once a minute).
    pub fn touch_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_used_at) >= TOUCH_INTERVAL_MS
    }
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

/// A refresh token as stored: only its hash, so a leak of the table leaks no usable token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenRow<'a> {
    pub token_hash: &'a str,
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub created_at: u64,
    pub expires_at: u64,
}

/// A presented token's row, read when the compare-and-set did not take it: a spent token
/// (`used_at` set) is reuse, anything else is merely invalid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenState {
    pub user_id: String,
    pub used_at: Option<u64>,
}

/// The storage a [`SessionStore`] decides over: the session records and user markers of KV,
/// and the refresh-token rows of D1. Each method is one key operation or one statement, so a
/// fake can match the real semantics exactly.
pub trait SessionBackend {
    /// Writes the session's JSON record. It is kept only `ttl_secs`, so KV itself drops the
    /// sessions nobody ends.
    fn put_session<'a>(
        &'a self,
        id: &'a str,
        record: String,
        ttl_secs: u64,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;

    /// The session's JSON record, if KV still holds it.
    fn get_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<Option<String>>>;

    fn delete_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>>;

    /// Notes that `user_id` has session `id`, for listing and ending a user's sessions
    /// together; kept only `ttl_secs`, like the record.
    fn put_user_marker<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        ttl_secs: u64,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;

    fn delete_user_marker<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;

    /// The session ids of the user's markers, all pages of them.
    fn user_session_ids<'a>(
        &'a self,
        user_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>>;

    fn insert_refresh_token<'a>(
        &'a self,
        row: RefreshTokenRow<'a>,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;

    /// The compare-and-set of rotation: marks the token used at `now_ms` if it belongs to
    /// `session_id`, is unused and has not expired; returns the rows changed (0 or 1). Of
    /// concurrent calls with one token, exactly one may see 1.
    fn spend_refresh_token<'a>(
        &'a self,
        token_hash: &'a str,
        session_id: &'a str,
        now_ms: u64,
    ) -> LocalBoxFuture<'a, ApiResult<usize>>;

    fn refresh_token_state<'a>(
        &'a self,
        token_hash: &'a str,
        session_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Option<TokenState>>>;

    fn delete_session_refresh_tokens<'a>(
        &'a self,
        session_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;

    /// Deletes the user's refresh tokens, except those of session `keep`.
    fn delete_user_refresh_tokens<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a str>,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;
}

/// The deployed backend: the `KV` namespace and the `DB` database.
pub struct KvD1SessionBackend {
    pub kv: KvStore,
    pub db: D1Database,
}

impl KvD1SessionBackend {
    pub fn new(cx: &crate::http::ctx::Ctx) -> ApiResult<KvD1SessionBackend> {
        Ok(KvD1SessionBackend {
            kv: cx.env.kv("KV")?,
            db: d1::database(cx)?,
        })
    }
}

fn session_key(id: &str) -> String {
    format!("session:{id}")
}

fn user_marker_key(user_id: &str, id: &str) -> String {
    format!("user-session:{user_id}:{id}")
}

impl SessionBackend for KvD1SessionBackend {
    fn put_session<'a>(
        &'a self,
        id: &'a str,
        record: String,
        ttl_secs: u64,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            self.kv
                .put(&session_key(id), record)?
                .expiration_ttl(ttl_secs)
                .execute()
                .await?;
            Ok(())
        })
    }

    fn get_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<Option<String>>> {
        Box::pin(async move { Ok(self.kv.get(&session_key(id)).text().await?) })
    }

    fn delete_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            self.kv.delete(&session_key(id)).await?;
            Ok(())
        })
    }

    fn put_user_marker<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        ttl_secs: u64,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            self.kv
                .put(&user_marker_key(user_id, id), "")?
                .expiration_ttl(ttl_secs)
                .execute()
                .await?;
            Ok(())
        })
    }

    fn delete_user_marker<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            self.kv.delete(&user_marker_key(user_id, id)).await?;
            Ok(())
        })
    }

    fn user_session_ids<'a>(
        &'a self,
        user_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>> {
        Box::pin(async move {
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
        })
    }

    fn insert_refresh_token<'a>(
        &'a self,
        row: RefreshTokenRow<'a>,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            d1::execute(
                &self.db,
                "insert into refresh_tokens (token_hash, session_id, user_id, created_at, expires_at) values (?1, ?2, ?3, ?4, ?5)",
                &[
                    Val::from(row.token_hash),
                    Val::from(row.session_id),
                    Val::from(row.user_id),
                    Val::from(row.created_at),
                    Val::from(row.expires_at),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn spend_refresh_token<'a>(
        &'a self,
        token_hash: &'a str,
        session_id: &'a str,
        now_ms: u64,
    ) -> LocalBoxFuture<'a, ApiResult<usize>> {
        Box::pin(async move {
            d1::execute(
                &self.db,
                "update refresh_tokens set used_at = ?1 where token_hash = ?2 and session_id = ?3 and used_at is null and expires_at > ?1",
                &[Val::from(now_ms), Val::from(token_hash), Val::from(session_id)],
            )
            .await
        })
    }

    fn refresh_token_state<'a>(
        &'a self,
        token_hash: &'a str,
        session_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Option<TokenState>>> {
        Box::pin(async move {
            d1::first(
                &self.db,
                "select user_id, used_at from refresh_tokens where token_hash = ?1 and session_id = ?2",
                &[Val::from(token_hash), Val::from(session_id)],
            )
            .await
        })
    }

    fn delete_session_refresh_tokens<'a>(
        &'a self,
        session_id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            d1::execute(
                &self.db,
                "delete from refresh_tokens where session_id = ?1",
                &[Val::from(session_id)],
            )
            .await?;
            Ok(())
        })
    }

    fn delete_user_refresh_tokens<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a str>,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
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
            Ok(())
        })
    }
}

/// The session rules, over any [`SessionBackend`]; the worker uses [`KvD1SessionBackend`].
pub struct SessionStore<B = KvD1SessionBackend> {
    backend: B,
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
        Ok(SessionStore::with_backend(KvD1SessionBackend::new(cx)?))
    }
}

impl<B: SessionBackend> SessionStore<B> {
    pub fn with_backend(backend: B) -> SessionStore<B> {
        SessionStore { backend }
    }

    async fn put(&self, session: &Session, now_ms: u64) -> ApiResult<()> {
        let json = serde_json::to_string(session).map_err(|e| ApiError::internal(e.to_string()))?;
        let ttl = ttl_secs(session.expires_at, now_ms);
        self.backend.put_session(&session.id, json, ttl).await
    }

    async fn issue_refresh_token(&self, session: &Session, now_ms: u64) -> ApiResult<String> {
        let token = format!(
            "{}.{}",
            session.id,
            random_token(&SystemRandom, TOKEN_BYTES)?
        );
        self.backend
            .insert_refresh_token(RefreshTokenRow {
                token_hash: &sha256_hex(&token),
                session_id: &session.id,
                user_id: &session.user_id,
                created_at: now_ms,
                expires_at: session.expires_at,
            })
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
        self.backend
            .put_user_marker(user_id, &session.id, ttl_secs(session.expires_at, now_ms))
            .await?;
        Ok((session, refresh))
    }

    /// The live session with this id, or `None` when it ended or expired.
    pub async fn get(&self, id: &str, now_ms: u64) -> ApiResult<Option<Session>> {
        let Some(json) = self.backend.get_session(id).await? else {
            return Ok(None);
        };
        let session: Session = serde_json::from_str(&json)
            .map_err(|e| ApiError::internal(format!("session record: {e}")))?;
        Ok((session.expires_at > now_ms).then_some(session))
    }

    /// Records use of a session, at most once a minute.
    pub async fn touch(&self, mut session: Session, now_ms: u64) -> ApiResult<()> {
        if !session.touch_due(now_ms) {
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
        let won = self.backend.spend_refresh_token(&hash, sid, now_ms).await?;
        if won == 1 {
            let Some(mut session) = self.get(sid, now_ms).await? else {
                return Ok(Err(RefreshRefused::Invalid));
            };
            let token = self.issue_refresh_token(&session, now_ms).await?;
            session.last_used_at = now_ms;
            self.put(&session, now_ms).await?;
            return Ok(Ok((session, token)));
        }
        match self.backend.refresh_token_state(&hash, sid).await? {
            Some(TokenState {
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
        self.backend.delete_session_refresh_tokens(id).await?;
        self.backend.delete_session(id).await?;
        self.backend.delete_user_marker(user_id, id).await?;
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn list(&self, user_id: &str, now_ms: u64) -> ApiResult<Vec<Session>> {
        let mut sessions = Vec::new();
        // The markers may name sessions that have just ended; `get` filters those out.
        for id in self.backend.user_session_ids(user_id).await? {
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
        self.backend
            .delete_user_refresh_tokens(user_id, keep)
            .await?;
        for id in self.backend.user_session_ids(user_id).await? {
            if Some(id.as_str()) != keep {
                self.backend.delete_session(&id).await?;
                self.backend.delete_user_marker(user_id, &id).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;

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

    /// Pending once before completing, so that `join`ed store calls interleave at every
    /// storage operation as concurrent requests would.
    #[derive(Default)]
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct FakeToken {
        session_id: String,
        user_id: String,
        created_at: u64,
        expires_at: u64,
        used_at: Option<u64>,
    }

    /// KV and D1 in memory: records and markers with the TTL they were given (never expired
    /// here; every read checks `expires_at` anyway), token rows keyed by hash as in
    /// `refresh_tokens`, and a log of the operations in order.
    #[derive(Default)]
    struct FakeBackend {
        sessions: RefCell<BTreeMap<String, (String, u64)>>,
        markers: RefCell<BTreeMap<(String, String), u64>>,
        tokens: RefCell<BTreeMap<String, FakeToken>>,
        log: RefCell<Vec<&'static str>>,
    }

    impl FakeBackend {
        async fn enter(&self, operation: &'static str) {
            YieldOnce::default().await;
            self.log.borrow_mut().push(operation);
        }

        fn count(&self, operation: &str) -> usize {
            self.log
                .borrow()
                .iter()
                .filter(|o| **o == operation)
                .count()
        }

        fn record(&self, id: &str) -> Option<Session> {
            let sessions = self.sessions.borrow();
            let (json, _) = sessions.get(id)?;
            Some(serde_json::from_str(json).expect("record"))
        }

        fn record_ttl(&self, id: &str) -> Option<u64> {
            self.sessions.borrow().get(id).map(|(_, ttl)| *ttl)
        }

        fn token(&self, refresh_token: &str) -> Option<FakeToken> {
            self.tokens
                .borrow()
                .get(&sha256_hex(refresh_token))
                .cloned()
        }
    }

    impl SessionBackend for FakeBackend {
        fn put_session<'a>(
            &'a self,
            id: &'a str,
            record: String,
            ttl_secs: u64,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("put_session").await;
                self.sessions
                    .borrow_mut()
                    .insert(id.to_string(), (record, ttl_secs));
                Ok(())
            })
        }

        fn get_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<Option<String>>> {
            Box::pin(async move {
                self.enter("get_session").await;
                Ok(self.sessions.borrow().get(id).map(|(json, _)| json.clone()))
            })
        }

        fn delete_session<'a>(&'a self, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("delete_session").await;
                self.sessions.borrow_mut().remove(id);
                Ok(())
            })
        }

        fn put_user_marker<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
            ttl_secs: u64,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("put_user_marker").await;
                self.markers
                    .borrow_mut()
                    .insert((user_id.to_string(), id.to_string()), ttl_secs);
                Ok(())
            })
        }

        fn delete_user_marker<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("delete_user_marker").await;
                self.markers
                    .borrow_mut()
                    .remove(&(user_id.to_string(), id.to_string()));
                Ok(())
            })
        }

        fn user_session_ids<'a>(
            &'a self,
            user_id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>> {
            Box::pin(async move {
                self.enter("user_session_ids").await;
                Ok(self
                    .markers
                    .borrow()
                    .keys()
                    .filter(|(user, _)| user == user_id)
                    .map(|(_, id)| id.clone())
                    .collect())
            })
        }

        fn insert_refresh_token<'a>(
            &'a self,
            row: RefreshTokenRow<'a>,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("insert_refresh_token").await;
                let mut tokens = self.tokens.borrow_mut();
                if tokens.contains_key(row.token_hash) {
                    return Err(ApiError::internal(
                        "UNIQUE constraint failed: refresh_tokens.token_hash",
                    ));
                }
                tokens.insert(
                    row.token_hash.to_string(),
                    FakeToken {
                        session_id: row.session_id.to_string(),
                        user_id: row.user_id.to_string(),
                        created_at: row.created_at,
                        expires_at: row.expires_at,
                        used_at: None,
                    },
                );
                Ok(())
            })
        }

        fn spend_refresh_token<'a>(
            &'a self,
            token_hash: &'a str,
            session_id: &'a str,
            now_ms: u64,
        ) -> LocalBoxFuture<'a, ApiResult<usize>> {
            Box::pin(async move {
                self.enter("spend_refresh_token").await;
                let mut tokens = self.tokens.borrow_mut();
                match tokens.get_mut(token_hash) {
                    Some(row)
                        if row.session_id == session_id
                            && row.used_at.is_none()
                            && row.expires_at > now_ms =>
                    {
                        row.used_at = Some(now_ms);
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            })
        }

        fn refresh_token_state<'a>(
            &'a self,
            token_hash: &'a str,
            session_id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<Option<TokenState>>> {
            Box::pin(async move {
                self.enter("refresh_token_state").await;
                Ok(self
                    .tokens
                    .borrow()
                    .get(token_hash)
                    .filter(|row| row.session_id == session_id)
                    .map(|row| TokenState {
                        user_id: row.user_id.clone(),
                        used_at: row.used_at,
                    }))
            })
        }

        fn delete_session_refresh_tokens<'a>(
            &'a self,
            session_id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("delete_session_refresh_tokens").await;
                self.tokens
                    .borrow_mut()
                    .retain(|_, row| row.session_id != session_id);
                Ok(())
            })
        }

        fn delete_user_refresh_tokens<'a>(
            &'a self,
            user_id: &'a str,
            keep: Option<&'a str>,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            Box::pin(async move {
                self.enter("delete_user_refresh_tokens").await;
                self.tokens.borrow_mut().retain(|_, row| {
                    row.user_id != user_id || Some(row.session_id.as_str()) == keep
                });
                Ok(())
            })
        }
    }

    const ALICE: &str = "a11ce000000000000000000000000000";
    const BOB: &str = "b0b00000000000000000000000000000";
    /// A login time; every other time in these tests is an offset from it.
    const T0: u64 = 1_700_000_000_000;
    const DAY_MS: u64 = 86_400_000;
    const LIFETIME_SECS: u64 = 30 * 86_400;

    fn store() -> SessionStore<FakeBackend> {
        SessionStore::with_backend(FakeBackend::default())
    }

    fn login(store: &SessionStore<FakeBackend>, user_id: &str, now_ms: u64) -> (Session, String) {
        block_on(store.create(user_id, Some("curl/8".into()), now_ms, LIFETIME_SECS))
            .expect("create")
    }

    fn rotate(
        store: &SessionStore<FakeBackend>,
        refresh_token: &str,
        now_ms: u64,
    ) -> Result<(Session, String), RefreshRefused> {
        block_on(store.rotate(refresh_token, now_ms)).expect("storage")
    }

    fn get(store: &SessionStore<FakeBackend>, id: &str, now_ms: u64) -> Option<Session> {
        block_on(store.get(id, now_ms)).expect("storage")
    }

    fn list(store: &SessionStore<FakeBackend>, user_id: &str, now_ms: u64) -> Vec<String> {
        block_on(store.list(user_id, now_ms))
            .expect("storage")
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    #[test]
    fn a_login_creates_a_live_session_with_a_refresh_token() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        assert_eq!(session.user_id, ALICE);
        assert_eq!(session.created_at, T0);
        assert_eq!(session.last_used_at, T0);
        assert_eq!(session.expires_at, T0 + LIFETIME_SECS * 1000);
        assert_eq!(session.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(session_id_of(&refresh), Some(session.id.as_str()));
        assert_eq!(get(&store, &session.id, T0), Some(session.clone()));
        assert_eq!(list(&store, ALICE, T0), vec![session.id]);
    }

    #[test]
    fn refresh_tokens_are_stored_only_as_their_hash() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        let tokens = store.backend.tokens.borrow();
        assert_eq!(
            tokens.keys().collect::<Vec<_>>(),
            vec![&sha256_hex(&refresh)]
        );
        assert_eq!(
            tokens.values().next(),
            Some(&FakeToken {
                session_id: session.id.clone(),
                user_id: ALICE.into(),
                created_at: T0,
                expires_at: session.expires_at,
                used_at: None,
            })
        );
    }

    #[test]
    fn the_kv_entries_of_a_session_live_as_long_as_it_does() {
        let store = store();
        let (session, _) = login(&store, ALICE, T0);
        assert_eq!(store.backend.record_ttl(&session.id), Some(LIFETIME_SECS));
        let markers = store.backend.markers.borrow();
        assert_eq!(
            markers.get(&(ALICE.to_string(), session.id.clone())),
            Some(&LIFETIME_SECS)
        );
    }

    #[test]
    fn a_long_user_agent_is_kept_to_256_characters() {
        let store = store();
        let (session, _) =
            block_on(store.create(ALICE, Some("é".repeat(300)), T0, LIFETIME_SECS)).expect("ok");
        assert_eq!(session.user_agent, Some("é".repeat(256)));
    }

    #[test]
    fn rotation_spends_the_old_token_and_issues_a_new_one() {
        let store = store();
        let (session, old) = login(&store, ALICE, T0);
        let (rotated, new) = rotate(&store, &old, T0 + 1000).expect("rotates");
        assert_eq!(rotated.id, session.id);
        assert_ne!(new, old);
        assert_eq!(session_id_of(&new), Some(session.id.as_str()));
        assert_eq!(
            store.backend.token(&old).expect("row").used_at,
            Some(T0 + 1000)
        );
        assert_eq!(store.backend.token(&new).expect("row").used_at, None);
        assert!(rotate(&store, &new, T0 + 2000).is_ok());
    }

    #[test]
    fn rotation_records_the_use_of_the_session() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        let (rotated, _) = rotate(&store, &refresh, T0 + 5000).expect("rotates");
        assert_eq!(rotated.last_used_at, T0 + 5000);
        assert_eq!(store.backend.record(&session.id), Some(rotated));
    }

    #[test]
    fn presenting_a_spent_refresh_token_revokes_the_whole_session() {
        let store = store();
        let (session, old) = login(&store, ALICE, T0);
        let (_, new) = rotate(&store, &old, T0 + 1000).expect("rotates");
        assert_eq!(rotate(&store, &old, T0 + 2000), Err(RefreshRefused::Reused));
        assert_eq!(get(&store, &session.id, T0 + 2000), None);
        assert_eq!(list(&store, ALICE, T0 + 2000), Vec::<String>::new());
        assert_eq!(
            rotate(&store, &new, T0 + 3000),
            Err(RefreshRefused::Invalid)
        );
    }

    #[test]
    fn of_two_concurrent_rotations_with_one_token_exactly_one_wins() {
        let store = store();
        let (_, refresh) = login(&store, ALICE, T0);
        store.backend.log.borrow_mut().clear();
        let (first, second) = block_on(futures::future::join(
            store.rotate(&refresh, T0 + 1000),
            store.rotate(&refresh, T0 + 1000),
        ));
        let outcomes = [first.expect("storage"), second.expect("storage")];
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        assert!(outcomes.contains(&Err(RefreshRefused::Reused)));
        // Both were in flight together: each tried the compare-and-set before either went on.
        assert_eq!(
            store.backend.log.borrow()[..2],
            ["spend_refresh_token", "spend_refresh_token"]
        );
    }

    #[test]
    fn a_malformed_refresh_token_is_invalid_without_touching_storage() {
        let store = store();
        for junk in [
            "",
            "no-dot",
            "xyz.short",
            &format!("{}.{}", "g".repeat(32), "A".repeat(43)),
        ] {
            assert_eq!(rotate(&store, junk, T0), Err(RefreshRefused::Invalid));
        }
        assert!(store.backend.log.borrow().is_empty());
    }

    #[test]
    fn an_unknown_refresh_token_for_a_live_session_is_invalid_and_ends_nothing() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        let forged = format!("{}.{}", session.id, "A".repeat(43));
        assert_eq!(
            rotate(&store, &forged, T0 + 1000),
            Err(RefreshRefused::Invalid)
        );
        assert!(get(&store, &session.id, T0 + 1000).is_some());
        assert!(rotate(&store, &refresh, T0 + 2000).is_ok());
    }

    #[test]
    fn a_refresh_token_presented_under_another_session_id_is_invalid() {
        let store = store();
        let (alice, refresh) = login(&store, ALICE, T0);
        let (bob, _) = login(&store, BOB, T0);
        let secret = refresh.split_once('.').expect("dot").1;
        let moved = format!("{}.{secret}", bob.id);
        assert_eq!(
            rotate(&store, &moved, T0 + 1000),
            Err(RefreshRefused::Invalid)
        );
        assert!(get(&store, &alice.id, T0 + 1000).is_some());
        assert!(get(&store, &bob.id, T0 + 1000).is_some());
    }

    #[test]
    fn refresh_after_the_absolute_expiry_is_refused() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        assert_eq!(
            rotate(&store, &refresh, session.expires_at),
            Err(RefreshRefused::Invalid)
        );
        // Refused as expired, not taken for reuse: the token was never spent.
        assert_eq!(store.backend.token(&refresh).expect("row").used_at, None);
    }

    #[test]
    fn refreshing_never_extends_the_absolute_expiry() {
        let store = store();
        let (session, mut refresh) = login(&store, ALICE, T0);
        for day in 1..30 {
            let now = T0 + day * DAY_MS;
            let (rotated, next) = rotate(&store, &refresh, now).expect("rotates");
            assert_eq!(rotated.expires_at, session.expires_at);
            assert_eq!(
                store.backend.token(&next).expect("row").expires_at,
                session.expires_at
            );
            assert_eq!(
                store.backend.record_ttl(&session.id),
                Some((session.expires_at - now) / 1000)
            );
            refresh = next;
        }
        assert_eq!(
            rotate(&store, &refresh, session.expires_at),
            Err(RefreshRefused::Invalid)
        );
    }

    #[test]
    fn a_refresh_whose_session_record_has_gone_is_invalid() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        store.backend.sessions.borrow_mut().remove(&session.id);
        assert_eq!(
            rotate(&store, &refresh, T0 + 1000),
            Err(RefreshRefused::Invalid)
        );
    }

    #[test]
    fn a_session_reads_as_ended_from_its_expiry_even_while_kv_still_holds_it() {
        let store = store();
        let (session, _) = login(&store, ALICE, T0);
        assert!(get(&store, &session.id, session.expires_at - 1).is_some());
        assert_eq!(get(&store, &session.id, session.expires_at), None);
        assert!(store.backend.record(&session.id).is_some());
    }

    #[test]
    fn touch_writes_at_most_once_a_minute() {
        let store = store();
        let (session, _) = login(&store, ALICE, T0);
        let writes = || store.backend.count("put_session");
        let before = writes();
        block_on(store.touch(session.clone(), T0 + TOUCH_INTERVAL_MS - 1)).expect("touch");
        assert_eq!(writes(), before);
        assert_eq!(store.backend.record(&session.id), Some(session.clone()));
        block_on(store.touch(session.clone(), T0 + TOUCH_INTERVAL_MS)).expect("touch");
        assert_eq!(writes(), before + 1);
        let touched = store.backend.record(&session.id).expect("record");
        assert_eq!(touched.last_used_at, T0 + TOUCH_INTERVAL_MS);
        assert_eq!(touched.expires_at, session.expires_at);
    }

    #[test]
    fn revoke_ends_the_session_and_its_refresh_tokens() {
        let store = store();
        let (session, refresh) = login(&store, ALICE, T0);
        let (other, _) = login(&store, ALICE, T0 + 1);
        block_on(store.revoke(ALICE, &session.id)).expect("revoke");
        assert_eq!(get(&store, &session.id, T0 + 2), None);
        assert_eq!(
            rotate(&store, &refresh, T0 + 2),
            Err(RefreshRefused::Invalid)
        );
        assert_eq!(list(&store, ALICE, T0 + 2), vec![other.id]);
    }

    #[test]
    fn revoke_all_keeps_only_the_named_session() {
        let store = store();
        let (a, a_refresh) = login(&store, ALICE, T0);
        let (b, b_refresh) = login(&store, ALICE, T0 + 1);
        let (c, c_refresh) = login(&store, ALICE, T0 + 2);
        block_on(store.revoke_all(ALICE, Some(&b.id))).expect("revoke_all");
        assert_eq!(list(&store, ALICE, T0 + 3), vec![b.id.clone()]);
        assert_eq!(get(&store, &a.id, T0 + 3), None);
        assert_eq!(get(&store, &c.id, T0 + 3), None);
        assert_eq!(
            rotate(&store, &a_refresh, T0 + 3),
            Err(RefreshRefused::Invalid)
        );
        assert_eq!(
            rotate(&store, &c_refresh, T0 + 3),
            Err(RefreshRefused::Invalid)
        );
        assert!(rotate(&store, &b_refresh, T0 + 3).is_ok());
    }

    #[test]
    fn revoke_all_without_a_keeper_ends_every_session() {
        let store = store();
        let (a, a_refresh) = login(&store, ALICE, T0);
        let (b, b_refresh) = login(&store, ALICE, T0 + 1);
        block_on(store.revoke_all(ALICE, None)).expect("revoke_all");
        assert_eq!(list(&store, ALICE, T0 + 2), Vec::<String>::new());
        assert_eq!(get(&store, &a.id, T0 + 2), None);
        assert_eq!(get(&store, &b.id, T0 + 2), None);
        assert_eq!(
            rotate(&store, &a_refresh, T0 + 2),
            Err(RefreshRefused::Invalid)
        );
        assert_eq!(
            rotate(&store, &b_refresh, T0 + 2),
            Err(RefreshRefused::Invalid)
        );
    }

    #[test]
    fn revoke_all_leaves_other_users_sessions_alone() {
        let store = store();
        login(&store, ALICE, T0);
        let (bob, bob_refresh) = login(&store, BOB, T0);
        block_on(store.revoke_all(ALICE, None)).expect("revoke_all");
        assert_eq!(list(&store, BOB, T0 + 1), vec![bob.id]);
        assert!(rotate(&store, &bob_refresh, T0 + 1).is_ok());
    }

    #[test]
    fn list_returns_live_sessions_newest_first() {
        let store = store();
        let (oldest, _) = login(&store, ALICE, T0);
        let (newest, _) = login(&store, ALICE, T0 + 2000);
        let (middle, _) = login(&store, ALICE, T0 + 1000);
        let (short, _) = block_on(store.create(ALICE, None, T0 + 3000, 60)).expect("create");
        login(&store, BOB, T0 + 4000);
        assert_eq!(
            list(&store, ALICE, short.expires_at),
            vec![newest.id, middle.id, oldest.id]
        );
    }

    #[test]
    fn list_skips_a_marker_whose_session_has_ended() {
        let store = store();
        let (ended, _) = login(&store, ALICE, T0);
        let (live, _) = login(&store, ALICE, T0 + 1);
        // KV entries expire independently: the record can go before its marker.
        store.backend.sessions.borrow_mut().remove(&ended.id);
        assert_eq!(list(&store, ALICE, T0 + 2), vec![live.id]);
    }
}
