//! Every SQL statement on accounts, in D1: users (lookup, creation, password changes with
//! history, lockout counting, profile, deletion), one-time email tokens, MFA secrets and
//! recovery codes, API keys and the development outbox — plus the public view of a user
//! (which never includes a secret). Handlers call these functions; none of them writes SQL.
//! The one exception is the refresh-token table: its statements belong to the session
//! backend in `sessions.rs`, beside the KV session records they are kept consistent with.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::D1Database;

use crate::auth::crypto::password_hash::{hash_password, verify_password, Argon2Params};
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1::{self, Val};

/// How many previous passwords a new one may not repeat (the current one included).
pub const PASSWORD_HISTORY_DEPTH: usize = 5;
/// Emails longer than this are refused (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

#[derive(Debug, Clone, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub preferences: String,
    pub email_verified_at: Option<u64>,
    pub mfa_secret: Option<String>,
    pub mfa_enabled_at: Option<u64>,
    pub mfa_last_step: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
}

const USER_COLUMNS: &str = "id, email, password_hash, full_name, preferences, email_verified_at, mfa_secret, mfa_enabled_at, mfa_last_step, created_at, updated_at";

impl UserRow {
    pub fn mfa_enabled(&self) -> bool {
        self.mfa_enabled_at.is_some()
    }

    /// What a client may see about a user.
    pub fn public(&self) -> Value {
        let preferences: Value =
            serde_json::from_str(&self.preferences).unwrap_or_else(|_| json!({}));
        json!({
            "id": self.id,
            "email": self.email,
            "full_name": self.full_name,
            "email_verified": self.email_verified_at.is_some(),
            "mfa_enabled": self.mfa_enabled(),
            "preferences": preferences,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// A plausible email address, trimmed: one `@`, a non-empty local part, a dotted domain, no
/// spaces or control characters. Deliverability is proven by the verification email, not here.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return None;
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return None;
    }
    Some(format!("{local}@{}", domain.to_ascii_lowercase()))
}

pub async fn find_by_email(db: &D1Database, email: &str) -> ApiResult<Option<UserRow>> {
    d1::first(
        db,
        &format!("select {USER_COLUMNS} from users where email = ?1"),
        &[Val::from(email)],
    )
    .await
}

pub async fn find_by_id(db: &D1Database, id: &str) -> ApiResult<Option<UserRow>> {
    d1::first(
        db,
        &format!("select {USER_COLUMNS} from users where id = ?1"),
        &[Val::from(id)],
    )
    .await
}

/// The user of an authenticated request; a user deleted meanwhile is a 401, not a 500.
pub async fn require_by_id(db: &D1Database, id: &str) -> ApiResult<UserRow> {
    find_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("session_revoked", "This account no longer exists."))
}

/// Creates a user with its first password-history entry, in one transaction.
/// A taken email answers 409.
pub async fn create(
    db: &D1Database,
    id: &str,
    email: &str,
    password_hash: &str,
    full_name: Option<&str>,
    now_ms: u64,
) -> ApiResult<()> {
    let insert_user = d1::stmt(
        db,
        "insert into users (id, email, password_hash, full_name, preferences, created_at, updated_at, password_changed_at) values (?1, ?2, ?3, ?4, '{}', ?5, ?5, ?5)",
        &[
            Val::from(id),
            Val::from(email),
            Val::from(password_hash),
            Val::from(full_name),
            Val::from(now_ms),
        ],
    )?;
    let history = d1::stmt(
        db,
        "insert into password_history (user_id, password_hash, created_at) values (?1, ?2, ?3)",
        &[Val::from(id), Val::from(password_hash), Val::from(now_ms)],
    )?;
    d1::batch(db, vec![insert_user, history])
        .await
        .map_err(|e| {
            if d1::is_unique_violation(&e) {
                ApiError::conflict("email_taken", "An account with this email already exists.")
                    .with_field("email")
            } else {
                e
            }
        })
}

/// Whether `password` matches the current password or any of the last few.
pub async fn reuses_recent_password(
    db: &D1Database,
    user_id: &str,
    password: &str,
) -> ApiResult<bool> {
    #[derive(Deserialize)]
    struct Row {
        password_hash: String,
    }
    let rows: Vec<Row> = d1::all(
        db,
        "select password_hash from password_history where user_id = ?1 order by created_at desc, id desc limit ?2",
        &[Val::from(user_id), Val::from(PASSWORD_HISTORY_DEPTH as u64)],
    )
    .await?;
    Ok(rows
        .iter()
        .any(|r| verify_password(password, &r.password_hash)))
}

/// Sets a new password hash, records it in the history and trims the history, atomically.
pub async fn set_password(
    db: &D1Database,
    user_id: &str,
    new_hash: &str,
    now_ms: u64,
) -> ApiResult<()> {
    let update = d1::stmt(
        db,
        "update users set password_hash = ?1, password_changed_at = ?2, updated_at = ?2 where id = ?3",
        &[Val::from(new_hash), Val::from(now_ms), Val::from(user_id)],
    )?;
    let history = d1::stmt(
        db,
        "insert into password_history (user_id, password_hash, created_at) values (?1, ?2, ?3)",
        &[Val::from(user_id), Val::from(new_hash), Val::from(now_ms)],
    )?;
    let trim = d1::stmt(
        db,
        "delete from password_history where user_id = ?1 and id not in (select id from password_history where user_id = ?1 order by created_at desc, id desc limit ?2)",
        &[Val::from(user_id), Val::from(PASSWORD_HISTORY_DEPTH as u64)],
    )?;
    d1::batch(db, vec![update, history, trim]).await
}

/// Replaces a hash made with older parameters after a successful login (same password).
pub async fn upgrade_hash(db: &D1Database, user_id: &str, new_hash: &str) -> ApiResult<()> {
    d1::execute(
        db,
        "update users set password_hash = ?1 where id = ?2",
        &[Val::from(new_hash), Val::from(user_id)],
    )
    .await?;
    Ok(())
}

/// Hashes with a fresh random salt.
pub fn hash_new_password(password: &str, params: Argon2Params) -> ApiResult<String> {
    let salt = crate::platform::random::random_bytes::<16>()?;
    hash_password(password, &salt, params).map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

/// Lockout state for one email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct FailureRecord {
    pub failures: u32,
    pub window_start: u64,
    pub locked_until: Option<u64>,
}

/// Seconds the address stays locked, if it is locked now.
pub fn locked_for_secs(record: Option<&FailureRecord>, now_ms: u64) -> Option<u64> {
    let until = record?.locked_until?;
    (until > now_ms).then(|| (until - now_ms).div_ceil(1000))
}

/// The record after one more failure: a new window when the old one has passed; locked once
/// the count reaches `max` within the window.
pub fn record_failure(
    previous: Option<&FailureRecord>,
    now_ms: u64,
    max: u32,
    window_ms: u64,
    lockout_ms: u64,
) -> FailureRecord {
    let (failures, window_start) = match previous {
        Some(p)
            if now_ms.saturating_sub(p.window_start) < window_ms
                && p.locked_until.is_none_or(|u| u > now_ms) =>
        {
            (p.failures + 1, p.window_start)
        }
        _ => (1, now_ms),
    };
    FailureRecord {
        failures,
        window_start,
        locked_until: (failures >= max).then_some(now_ms + lockout_ms),
    }
}

pub async fn failure_record(db: &D1Database, email: &str) -> ApiResult<Option<FailureRecord>> {
    d1::first(
        db,
        "select failures, window_start, locked_until from login_failures where email = ?1",
        &[Val::from(email)],
    )
    .await
}

pub async fn save_failure(db: &D1Database, email: &str, r: &FailureRecord) -> ApiResult<()> {
    d1::execute(
        db,
        "insert into login_failures (email, failures, window_start, locked_until) values (?1, ?2, ?3, ?4)
         on conflict (email) do update set failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until",
        &[
            Val::from(email),
            Val::from(r.failures as u64),
            Val::from(r.window_start),
            Val::from(r.locked_until),
        ],
    )
    .await?;
    Ok(())
}

pub async fn clear_failures(db: &D1Database, email: &str) -> ApiResult<()> {
    d1::execute(
        db,
        "delete from login_failures where email = ?1",
        &[Val::from(email)],
    )
    .await?;
    Ok(())
}

// ---- profile and account deletion ------------------------------------------------------------

pub async fn update_profile(
    db: &D1Database,
    user_id: &str,
    full_name: Option<&str>,
    preferences: &str,
    now_ms: u64,
) -> ApiResult<()> {
    d1::execute(
        db,
        "update users set full_name = ?1, preferences = ?2, updated_at = ?3 where id = ?4",
        &[
            Val::from(full_name),
            Val::from(preferences),
            Val::from(now_ms),
            Val::from(user_id),
        ],
    )
    .await?;
    Ok(())
}

/// Removes the user (conversations, messages, API keys and tokens follow by cascade), their
/// login-failure record and their development mail, in one transaction.
pub async fn delete_user(db: &D1Database, user: &UserRow) -> ApiResult<()> {
    let delete_user = d1::stmt(
        db,
        "delete from users where id = ?1",
        &[Val::from(&user.id)],
    )?;
    let delete_failures = d1::stmt(
        db,
        "delete from login_failures where email = ?1",
        &[Val::from(&user.email)],
    )?;
    let delete_outbox = d1::stmt(
        db,
        "delete from dev_outbox where to_address = ?1 collate nocase",
        &[Val::from(&user.email)],
    )?;
    d1::batch(db, vec![delete_user, delete_failures, delete_outbox]).await
}

// ---- email tokens ----------------------------------------------------------------------------

/// Stores a one-time email token by its hash. Only the newest link of a kind works: older
/// unused ones are spent in the same transaction.
pub async fn replace_email_token(
    db: &D1Database,
    user_id: &str,
    purpose: &str,
    token_hash: &str,
    now_ms: u64,
    expires_at_ms: u64,
) -> ApiResult<()> {
    let spend_older = d1::stmt(
        db,
        "update email_tokens set used_at = ?1 where user_id = ?2 and purpose = ?3 and used_at is null",
        &[Val::from(now_ms), Val::from(user_id), Val::from(purpose)],
    )?;
    let insert = d1::stmt(
        db,
        "insert into email_tokens (token_hash, user_id, purpose, created_at, expires_at) values (?1, ?2, ?3, ?4, ?5)",
        &[
            Val::from(token_hash),
            Val::from(user_id),
            Val::from(purpose),
            Val::from(now_ms),
            Val::from(expires_at_ms),
        ],
    )?;
    d1::batch(db, vec![spend_older, insert]).await
}

#[derive(Deserialize)]
struct UserIdRow {
    user_id: String,
}

/// Spends a one-time email token: its user when it was valid, unused and unexpired. The
/// conditional update makes it single-use even under concurrent attempts.
pub async fn spend_email_token(
    db: &D1Database,
    token_hash: &str,
    purpose: &str,
    now_ms: u64,
) -> ApiResult<Option<String>> {
    let row: Option<UserIdRow> = d1::first(
        db,
        "update email_tokens set used_at = ?1 where token_hash = ?2 and purpose = ?3 and used_at is null and expires_at > ?1 returning user_id",
        &[Val::from(now_ms), Val::from(token_hash), Val::from(purpose)],
    )
    .await?;
    Ok(row.map(|r| r.user_id))
}

/// The user of a live password-reset token, without spending it.
pub async fn reset_token_user(
    db: &D1Database,
    token_hash: &str,
    now_ms: u64,
) -> ApiResult<Option<String>> {
    let row: Option<UserIdRow> = d1::first(
        db,
        "select user_id from email_tokens where token_hash = ?1 and purpose = 'reset_password' and used_at is null and expires_at > ?2",
        &[Val::from(token_hash), Val::from(now_ms)],
    )
    .await?;
    Ok(row.map(|r| r.user_id))
}

pub async fn mark_email_verified(db: &D1Database, user_id: &str, now_ms: u64) -> ApiResult<()> {
    d1::execute(
        db,
        "update users set email_verified_at = coalesce(email_verified_at, ?1), updated_at = ?1 where id = ?2",
        &[Val::from(now_ms), Val::from(user_id)],
    )
    .await?;
    Ok(())
}

// ---- MFA -------------------------------------------------------------------------------------

/// Records the TOTP time step just used; false when it (or a later one) was used already, so
/// a replayed code or a concurrent second use is refused.
pub async fn record_totp_step(db: &D1Database, user_id: &str, step: u64) -> ApiResult<bool> {
    let changed = d1::execute(
        db,
        "update users set mfa_last_step = ?1 where id = ?2 and (mfa_last_step is null or mfa_last_step < ?1)",
        &[Val::from(step), Val::from(user_id)],
    )
    .await?;
    Ok(changed == 1)
}

/// Spends a recovery code by its hash; true when it was the user's and unused.
pub async fn spend_recovery_code(
    db: &D1Database,
    user_id: &str,
    code_hash: &str,
    now_ms: u64,
) -> ApiResult<bool> {
    let changed = d1::execute(
        db,
        "update mfa_recovery_codes set used_at = ?1 where code_hash = ?2 and user_id = ?3 and used_at is null",
        &[Val::from(now_ms), Val::from(code_hash), Val::from(user_id)],
    )
    .await?;
    Ok(changed == 1)
}

/// Keeps a new, not yet enabled TOTP secret.
pub async fn set_pending_mfa_secret(
    db: &D1Database,
    user_id: &str,
    secret: &str,
    now_ms: u64,
) -> ApiResult<()> {
    d1::execute(
        db,
        "update users set mfa_secret = ?1, mfa_last_step = null, updated_at = ?2 where id = ?3",
        &[Val::from(secret), Val::from(now_ms), Val::from(user_id)],
    )
    .await?;
    Ok(())
}

/// Turns MFA on with a fresh set of recovery codes (by hash), in one transaction.
pub async fn enable_mfa(
    db: &D1Database,
    user_id: &str,
    recovery_code_hashes: &[String],
    now_ms: u64,
) -> ApiResult<()> {
    let mut statements = vec![
        d1::stmt(
            db,
            "update users set mfa_enabled_at = ?1, updated_at = ?1 where id = ?2",
            &[Val::from(now_ms), Val::from(user_id)],
        )?,
        d1::stmt(
            db,
            "delete from mfa_recovery_codes where user_id = ?1",
            &[Val::from(user_id)],
        )?,
    ];
    for hash in recovery_code_hashes {
        statements.push(d1::stmt(
            db,
            "insert into mfa_recovery_codes (code_hash, user_id) values (?1, ?2)",
            &[Val::from(hash), Val::from(user_id)],
        )?);
    }
    d1::batch(db, statements).await
}

/// Turns MFA off and drops the recovery codes, in one transaction.
pub async fn disable_mfa(db: &D1Database, user_id: &str, now_ms: u64) -> ApiResult<()> {
    let clear = d1::stmt(
        db,
        "update users set mfa_secret = null, mfa_enabled_at = null, mfa_last_step = null, updated_at = ?1 where id = ?2",
        &[Val::from(now_ms), Val::from(user_id)],
    )?;
    let codes = d1::stmt(
        db,
        "delete from mfa_recovery_codes where user_id = ?1",
        &[Val::from(user_id)],
    )?;
    d1::batch(db, vec![clear, codes]).await
}

// ---- API keys --------------------------------------------------------------------------------

/// An API key as its owner sees it in a list (never the key itself).
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    pub expires_at: Option<u64>,
}

/// A new API key, stored by hash.
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

pub async fn count_active_api_keys(db: &D1Database, user_id: &str) -> ApiResult<u64> {
    #[derive(Deserialize)]
    struct Count {
        n: u64,
    }
    Ok(d1::first::<Count>(
        db,
        "select count(*) as n from api_keys where user_id = ?1 and revoked_at is null",
        &[Val::from(user_id)],
    )
    .await?
    .map_or(0, |c| c.n))
}

pub async fn insert_api_key(db: &D1Database, key: &NewApiKey<'_>) -> ApiResult<()> {
    d1::execute(
        db,
        "insert into api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            Val::from(key.id),
            Val::from(key.user_id),
            Val::from(key.name),
            Val::from(key.prefix),
            Val::from(key.key_hash),
            Val::from(key.created_at),
            Val::from(key.expires_at),
        ],
    )
    .await?;
    Ok(())
}

pub async fn list_api_keys(db: &D1Database, user_id: &str) -> ApiResult<Vec<ApiKeyRow>> {
    d1::all(
        db,
        "select id, name, prefix, created_at, last_used_at, expires_at from api_keys where user_id = ?1 and revoked_at is null order by created_at desc",
        &[Val::from(user_id)],
    )
    .await
}

/// Revokes the user's key `id`; false when there is no such active key of theirs.
pub async fn revoke_api_key(
    db: &D1Database,
    user_id: &str,
    id: &str,
    now_ms: u64,
) -> ApiResult<bool> {
    let changed = d1::execute(
        db,
        "update api_keys set revoked_at = ?1 where id = ?2 and user_id = ?3 and revoked_at is null",
        &[Val::from(now_ms), Val::from(id), Val::from(user_id)],
    )
    .await?;
    Ok(changed > 0)
}

/// An active key by the hash of the key presented.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKeyCredential {
    pub id: String,
    pub user_id: String,
    pub expires_at: Option<u64>,
    pub last_used_at: Option<u64>,
}

pub async fn find_api_key(db: &D1Database, key_hash: &str) -> ApiResult<Option<ApiKeyCredential>> {
    d1::first(
        db,
        "select id, user_id, expires_at, last_used_at from api_keys where key_hash = ?1 and revoked_at is null",
        &[Val::from(key_hash)],
    )
    .await
}

pub async fn touch_api_key(db: &D1Database, id: &str, now_ms: u64) -> ApiResult<()> {
    d1::execute(
        db,
        "update api_keys set last_used_at = ?1 where id = ?2",
        &[Val::from(now_ms), Val::from(id)],
    )
    .await?;
    Ok(())
}

// ---- development outbox ----------------------------------------------------------------------

/// A message in the development outbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboxRow {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub created_at: u64,
}

pub async fn add_to_outbox(
    db: &D1Database,
    to: &str,
    subject: &str,
    body: &str,
    now_ms: u64,
) -> ApiResult<()> {
    d1::execute(
        db,
        "insert into dev_outbox (to_address, subject, body, created_at) values (?1, ?2, ?3, ?4)",
        &[
            Val::from(to),
            Val::from(subject),
            Val::from(body),
            Val::from(now_ms),
        ],
    )
    .await?;
    Ok(())
}

/// The newest 100 messages, to one address (any case) or to all.
pub async fn outbox(db: &D1Database, to: Option<&str>) -> ApiResult<Vec<OutboxRow>> {
    match to {
        Some(to) => {
            d1::all(
                db,
                "select id, to_address, subject, body, created_at from dev_outbox where to_address = ?1 collate nocase order by id desc limit 100",
                &[Val::from(to)],
            )
            .await
        }
        None => {
            d1::all(
                db,
                "select id, to_address, subject, body, created_at from dev_outbox order by id desc limit 100",
                &[],
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_their_domain_lowercased() {
        assert_eq!(
            normalize_email("  Ann.Lee@Example.COM ").as_deref(),
            Some("Ann.Lee@example.com")
        );
        assert_eq!(
            normalize_email("a+tag@sub.example.io").as_deref(),
            Some("a+tag@sub.example.io")
        );
    }

    #[test]
    fn implausible_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a\n@b.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        assert_eq!(
            normalize_email(&format!("{}@example.com", "a".repeat(65))),
            None
        );
    }

    #[test]
    fn lockout_starts_at_the_configured_count_within_the_window() {
        let (max, window, lockout) = (5, 900_000, 900_000);
        let mut r: Option<FailureRecord> = None;
        for i in 1..=4 {
            r = Some(record_failure(r.as_ref(), 1_000 * i, max, window, lockout));
            assert_eq!(locked_for_secs(r.as_ref(), 1_000 * i), None, "failure {i}");
        }
        r = Some(record_failure(r.as_ref(), 5_000, max, window, lockout));
        assert_eq!(locked_for_secs(r.as_ref(), 5_000), Some(900));
        assert_eq!(locked_for_secs(r.as_ref(), 5_000 + 899_500), Some(1));
        assert_eq!(
            locked_for_secs(r.as_ref(), 5_000 + 900_000),
            None,
            "the lock lifts after its duration"
        );
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let first = record_failure(None, 0, 5, 1_000, 5_000);
        let later = record_failure(Some(&first), 2_000, 5, 1_000, 5_000);
        assert_eq!(later.failures, 1);
        assert_eq!(later.window_start, 2_000);
    }

    #[test]
    fn a_failure_after_an_expired_lock_counts_from_one() {
        let locked = FailureRecord {
            failures: 5,
            window_start: 0,
            locked_until: Some(100),
        };
        let next = record_failure(Some(&locked), 200, 5, 1_000_000, 100);
        assert_eq!(next.failures, 1);
        assert_eq!(next.locked_until, None);
    }

    #[test]
    fn public_view_never_contains_secrets() {
        let u = UserRow {
            id: "u1".into(),
            email: "a@b.io".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            full_name: None,
            preferences: "{\"theme\":\"dark\"}".into(),
            email_verified_at: None,
            mfa_secret: Some("JBSWY3DPEHPK3PXP".into()),
            mfa_enabled_at: Some(1),
            mfa_last_step: Some(2),
            created_at: 1,
            updated_at: 2,
        };
        let text = u.public().to_string();
        assert!(!text.contains("argon2"));
        assert!(!text.contains("JBSWY3DP"));
        assert_eq!(u.public()["mfa_enabled"], true);
        assert_eq!(u.public()["preferences"]["theme"], "dark");
    }
}
