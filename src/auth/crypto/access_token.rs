//! Short-lived signed tokens: the access token sent with every API request, and the MFA
//! challenge token that bridges a correct password and the second factor.
//!
//! They are JWTs, but handled per RFC 8725 (JWT best current practice): one algorithm pinned
//! (HS256, the server is both issuer and audience, so there is no public key to distribute),
//! every claim we rely on required and checked, and an explicit `typ` claim so that one kind
//! of token can never be used as another. Refresh tokens are deliberately *not* JWTs: they
//! are opaque random strings (see `secrets`) that the server can revoke by deleting a row.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

/// The only algorithm accepted, compared exactly (`hs256`, `HS512`, `none` are all refused).
pub const ALGORITHM: &str = "HS256";

/// Shortest HMAC secret we will sign with: 256 bits, the output size of SHA-256, so the key
/// is no easier to brute-force than the MAC itself (RFC 7518 §3.2 requires at least this).
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock skew tolerated on `exp` and `nbf`. Small, because issuer and verifier are the same
/// fleet of Workers; 30 s only absorbs skew between edge locations.
pub const LEEWAY_SECS: u64 = 30;

/// Tokens longer than this are refused before any parsing or base64 decoding, so a hostile
/// header cannot make us allocate or hash much. Ours are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Lifetime of an MFA challenge token: long enough to open an authenticator app, short
/// enough that a leaked one is soon useless.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;

/// What a token is for, carried in its `typ` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Authorises API requests for a session.
    Access,
    /// Proves the password step of a login; only exchangeable for a session together with a
    /// valid TOTP or recovery code.
    Mfa,
}

impl TokenType {
    /// The `typ` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Mfa => "mfa",
        }
    }
}

/// The verified contents of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session id; empty only in MFA tokens, which precede the session.
    pub sid: String,
    /// Token type, equal to the type that was asked for.
    pub typ: String,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry time, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused. [`code`](Self::code) and [`message`](Self::message) are what a
/// client may see; `Display` gives the precise reason for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLarge,
    /// Not three base64url parts, or header/claims not the JSON we expect.
    Malformed,
    /// Header `alg` missing or anything but exactly [`ALGORITHM`].
    Algorithm,
    /// Header lists `crit` extensions, none of which we implement (RFC 7515 §4.1.11).
    UnsupportedCriticalHeader,
    /// Signature does not verify with our secret.
    Signature,
    /// `exp` missing.
    MissingExpiry,
    /// `exp` passed (beyond the leeway).
    Expired,
    /// `nbf` missing.
    MissingNotBefore,
    /// `nbf` still in the future (beyond the leeway).
    NotYetValid,
    /// `iss` missing or not ours.
    Issuer,
    /// `aud` missing or not ours.
    Audience,
    /// `typ` missing or not the expected type.
    Type,
    /// `sub` missing or empty, or `sid` missing or empty in an access token.
    Subject,
}

impl TokenError {
    /// Stable code for API clients. Only expiry is distinguished, because it tells a client
    /// to refresh; every other reason is one generic code so attackers learn nothing.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            _ => "token_invalid",
        }
    }

    /// Client-facing message; as generic as [`code`](Self::code).
    pub fn message(&self) -> &'static str {
        match self {
            Self::Expired => "The token has expired.",
            _ => "The token is invalid.",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "token exceeds the size limit",
            Self::Malformed => "token is malformed",
            Self::Algorithm => "token algorithm is not HS256",
            Self::UnsupportedCriticalHeader => "token has critical header extensions",
            Self::Signature => "token signature is invalid",
            Self::MissingExpiry => "token has no exp claim",
            Self::Expired => "token has expired",
            Self::MissingNotBefore => "token has no nbf claim",
            Self::NotYetValid => "token is not valid yet",
            Self::Issuer => "token issuer is wrong or missing",
            Self::Audience => "token audience is wrong or missing",
            Self::Type => "token type is wrong or missing",
            Self::Subject => "token subject or session is missing",
        })
    }
}

impl std::error::Error for TokenError {}

/// The configured secret is too short to sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakSecretError {
    pub actual_bytes: usize,
}

impl fmt::Display for WeakSecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the JWT secret is {} bytes; at least {MIN_SECRET_BYTES} random bytes are required \
             so tokens cannot be forged by guessing it",
            self.actual_bytes
        )
    }
}

impl std::error::Error for WeakSecretError {}

/// Issues and verifies HS256 tokens for one issuer and audience.
#[derive(Clone)]
pub struct TokenSigner {
    key: Hs256Key,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// Claims as they travel. Everything is optional here so that a missing claim is reported as
/// exactly that, instead of as a generic parse failure. (`exp`, `nbf`, `iat` live in
/// jwt-compact's `Claims` around this.)
#[derive(Debug, Default, Serialize, Deserialize)]
struct WireClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// A single string: we never issue array audiences, and accepting them would only widen
    /// what an attacker can present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Header fields beyond those jwt-compact reads that we must look at.
#[derive(Debug, Clone, Deserialize)]
struct ExtraHeaderFields {
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl TokenSigner {
    /// A signer for `issuer`/`audience` whose access tokens live `ttl_secs`.
    ///
    /// Refuses a secret shorter than [`MIN_SECRET_BYTES`], so a misconfigured deployment
    /// fails at startup instead of issuing forgeable tokens.
    pub fn new(
        secret: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl_secs: u64,
    ) -> Result<Self, WeakSecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecretError {
                actual_bytes: secret.len(),
            });
        }
        Ok(Self {
            key: Hs256Key::new(secret),
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs,
        })
    }

    /// Lifetime of access tokens from [`issue`](Self::issue).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// An access token for user `sub` in session `sid`.
    pub fn issue(&self, sub: &str, sid: &str, now_unix_secs: u64) -> String {
        self.issue_with_type(sub, sid, TokenType::Access, self.ttl_secs, now_unix_secs)
    }

    /// A token of any type; `sid` may be empty for [`TokenType::Mfa`].
    pub fn issue_with_type(
        &self,
        sub: &str,
        sid: &str,
        typ: TokenType,
        ttl_secs: u64,
        now_unix_secs: u64,
    ) -> String {
        let mut claims = Claims::new(WireClaims {
            iss: Some(self.issuer.clone()),
            aud: Some(self.audience.clone()),
            sub: Some(sub.to_owned()),
            sid: (!sid.is_empty()).then(|| sid.to_owned()),
            typ: Some(typ.as_str().to_owned()),
        });
        let now = timestamp(now_unix_secs);
        claims.issued_at = Some(now);
        claims.not_before = Some(now);
        claims.expiration = Some(timestamp(now_unix_secs.saturating_add(ttl_secs)));
        let header = Header::empty().with_token_type("JWT");
        Hs256
            .token(&header, &claims, &self.key)
            .expect("serialising string and timestamp claims to JSON cannot fail")
    }

    /// Verifies an access token (see [`verify_type`](Self::verify_type)).
    pub fn verify(&self, token: &str, now_unix_secs: u64) -> Result<AccessClaims, TokenError> {
        self.verify_type(token, TokenType::Access, now_unix_secs)
    }

    /// Verifies a token of the `expected` type: size, structure, algorithm, signature, then
    /// `exp`/`nbf` with [`LEEWAY_SECS`], `iss`, `aud`, `typ`, `sub` (and `sid` for access
    /// tokens). Claims are only trusted after the signature has been checked.
    ///
    /// Whether the session is still live is the caller's check, against storage.
    pub fn verify_type(
        &self,
        token: &str,
        expected: TokenType,
        now_unix_secs: u64,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let untrusted = UntrustedToken::<ExtraHeaderFields>::try_from(token)
            .map_err(|_| TokenError::Malformed)?;
        // jwt-compact checks this too; checking it here first makes the pinning explicit.
        if untrusted.algorithm() != ALGORITHM {
            return Err(TokenError::Algorithm);
        }
        if untrusted.header().other_fields.crit.is_some() {
            return Err(TokenError::UnsupportedCriticalHeader);
        }
        let verified = Hs256
            .validator::<WireClaims>(&self.key)
            .validate(&untrusted)
            .map_err(|err| match err {
                ValidationError::AlgorithmMismatch { .. } => TokenError::Algorithm,
                ValidationError::InvalidSignature
                | ValidationError::InvalidSignatureLen { .. }
                | ValidationError::MalformedSignature(_) => TokenError::Signature,
                _ => TokenError::Malformed,
            })?;
        let claims = verified.claims();

        let clock_now = timestamp(now_unix_secs);
        let options = TimeOptions::new(leeway(), move || clock_now);
        claims
            .validate_expiration(&options)
            .map_err(|err| match err {
                ValidationError::Expired => TokenError::Expired,
                _ => TokenError::MissingExpiry,
            })?;
        claims
            .validate_maturity(&options)
            .map_err(|err| match err {
                ValidationError::NotMature => TokenError::NotYetValid,
                _ => TokenError::MissingNotBefore,
            })?;

        let custom = &claims.custom;
        if custom.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(TokenError::Issuer);
        }
        if custom.aud.as_deref() != Some(self.audience.as_str()) {
            return Err(TokenError::Audience);
        }
        if custom.typ.as_deref() != Some(expected.as_str()) {
            return Err(TokenError::Type);
        }
        let sub = custom.sub.as_deref().unwrap_or_default();
        let sid = custom.sid.as_deref().unwrap_or_default();
        if sub.is_empty() || (expected == TokenType::Access && sid.is_empty()) {
            return Err(TokenError::Subject);
        }

        Ok(AccessClaims {
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            typ: expected.as_str().to_owned(),
            iat: claims.issued_at.map_or(0, unix_secs),
            exp: claims.expiration.map_or(0, unix_secs),
        })
    }
}

fn leeway() -> TimeDelta {
    TimeDelta::seconds(LEEWAY_SECS as i64)
}

/// Seconds since the epoch as a chrono timestamp, saturating instead of failing for clocks
/// beyond chrono's range (hundreds of millennia away), so no input can panic here.
fn timestamp(unix_secs: u64) -> DateTime<Utc> {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn unix_secs(moment: DateTime<Utc>) -> u64 {
    u64::try_from(moment.timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use sha2::{Sha256, Sha512};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ISSUER: &str = "https://threadline.example";
    const AUDIENCE: &str = "threadline-api";
    const NOW: u64 = 1_700_000_000;
    const TTL: u64 = 900;

    fn signer() -> TokenSigner {
        TokenSigner::new(SECRET, ISSUER, AUDIENCE, TTL).expect("32-byte secret")
    }

    fn b64(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }

    /// Claims of a valid access token issued at `NOW`, for tests to alter.
    fn valid_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "sid": "session-1",
            "typ": "access",
            "iat": NOW,
            "nbf": NOW,
            "exp": NOW + TTL,
        })
    }

    fn without(mut claims: Value, name: &str) -> Value {
        if let Some(object) = claims.as_object_mut() {
            object.remove(name);
        }
        claims
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    /// `header.payload` as base64url, for signing by hand.
    fn signing_input(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    }

    fn hs256_signature(input: &str, secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key size");
        mac.update(input.as_bytes());
        b64(&mac.finalize().into_bytes())
    }

    fn hs512_signature(input: &str, secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("any key size");
        mac.update(input.as_bytes());
        b64(&mac.finalize().into_bytes())
    }

    /// A token with an arbitrary header, correctly HMAC-SHA256-signed with our secret, so that
    /// only the header is wrong.
    fn forge_hs256(header: Value, claims: &Value) -> String {
        let input = signing_input(&header, claims);
        let signature = hs256_signature(&input, SECRET);
        format!("{input}.{signature}")
    }

    fn forge_claims(claims: &Value) -> String {
        forge_hs256(json!({"alg": "HS256", "typ": "JWT"}), claims)
    }

    fn verify(token: &str) -> Result<AccessClaims, TokenError> {
        signer().verify(token, NOW)
    }

    #[test]
    fn issued_access_token_verifies_with_its_claims() {
        let token = signer().issue("user-1", "session-1", NOW);
        let claims = signer().verify(&token, NOW + 10).expect("valid token");
        assert_eq!(
            claims,
            AccessClaims {
                sub: "user-1".to_owned(),
                sid: "session-1".to_owned(),
                typ: "access".to_owned(),
                iat: NOW,
                exp: NOW + TTL,
            }
        );
    }

    #[test]
    fn issued_token_header_names_hs256_and_jwt() {
        let token = signer().issue("user-1", "session-1", NOW);
        let header_b64 = token.split('.').next().unwrap_or_default();
        let header: Value = serde_json::from_slice(
            &Base64UrlUnpadded::decode_vec(header_b64).expect("base64url header"),
        )
        .expect("JSON header");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "JWT");
    }

    #[test]
    fn hand_built_valid_token_is_accepted() {
        // Guards the forging helpers: every rejection below differs from this in one way.
        assert!(verify(&forge_claims(&valid_claims())).is_ok());
    }

    #[test]
    fn signer_refuses_a_secret_shorter_than_32_bytes() {
        let error = TokenSigner::new(&SECRET[..31], ISSUER, AUDIENCE, TTL).unwrap_err();
        assert_eq!(error, WeakSecretError { actual_bytes: 31 });
        assert!(error.to_string().contains("at least 32"));
    }

    #[test]
    fn signer_debug_output_does_not_reveal_the_secret() {
        let debug = format!("{:?}", signer());
        assert!(!debug.contains("0123456789abcdef"));
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn jwt_with_alg_none_is_rejected() {
        let input = signing_input(&json!({"alg": "none"}), &valid_claims());
        assert_eq!(verify(&format!("{input}.")), Err(TokenError::Algorithm));
        assert_eq!(
            verify(&forge_hs256(json!({"alg": "none"}), &valid_claims())),
            Err(TokenError::Algorithm)
        );
    }

    #[test]
    fn jwt_with_alg_capitalised_none_is_rejected() {
        let input = signing_input(&json!({"alg": "None"}), &valid_claims());
        assert_eq!(verify(&format!("{input}.")), Err(TokenError::Algorithm));
    }

    #[test]
    fn jwt_with_lowercase_hs256_is_rejected() {
        let token = forge_hs256(json!({"alg": "hs256"}), &valid_claims());
        assert_eq!(verify(&token), Err(TokenError::Algorithm));
    }

    #[test]
    fn jwt_with_alg_hs512_is_rejected_even_when_signed_with_our_secret() {
        let input = signing_input(&json!({"alg": "HS512"}), &valid_claims());
        let token = format!("{input}.{}", hs512_signature(&input, SECRET));
        assert_eq!(verify(&token), Err(TokenError::Algorithm));
    }

    #[test]
    fn jwt_with_alg_rs256_is_rejected() {
        let token = forge_hs256(json!({"alg": "RS256"}), &valid_claims());
        assert_eq!(verify(&token), Err(TokenError::Algorithm));
    }

    #[test]
    fn jwt_without_alg_is_rejected() {
        let token = forge_hs256(json!({"typ": "JWT"}), &valid_claims());
        assert_eq!(verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn jwt_with_critical_header_extensions_is_rejected() {
        let token = forge_hs256(json!({"alg": "HS256", "crit": ["exp"]}), &valid_claims());
        assert_eq!(verify(&token), Err(TokenError::UnsupportedCriticalHeader));
    }

    #[test]
    fn jwt_with_tampered_signature_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let mut bytes = Base64UrlUnpadded::decode_vec(signature).expect("base64url signature");
        bytes[0] ^= 0x01;
        let tampered = format!("{input}.{}", b64(&bytes));
        assert_eq!(verify(&tampered), Err(TokenError::Signature));
    }

    #[test]
    fn jwt_with_truncated_signature_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let truncated = format!("{input}.{}", &signature[..20]);
        assert_eq!(verify(&truncated), Err(TokenError::Signature));
    }

    #[test]
    fn jwt_with_tampered_payload_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = with(valid_claims(), "sub", json!("admin"));
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(forged_payload.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(verify(&tampered), Err(TokenError::Signature));
    }

    #[test]
    fn jwt_signed_with_another_secret_is_rejected() {
        let other = TokenSigner::new(&[7u8; 32], ISSUER, AUDIENCE, TTL).expect("32-byte secret");
        let token = other.issue("user-1", "session-1", NOW);
        assert_eq!(verify(&token), Err(TokenError::Signature));
    }

    #[test]
    fn expired_jwt_is_rejected_with_the_expired_code() {
        let token = signer().issue("user-1", "session-1", NOW);
        let after_leeway = NOW + TTL + LEEWAY_SECS + 1;
        let error = signer().verify(&token, after_leeway).unwrap_err();
        assert_eq!(error, TokenError::Expired);
        assert_eq!(error.code(), "token_expired");
    }

    #[test]
    fn jwt_expired_within_the_leeway_is_accepted() {
        let token = signer().issue("user-1", "session-1", NOW);
        assert!(signer().verify(&token, NOW + TTL + LEEWAY_SECS).is_ok());
    }

    #[test]
    fn jwt_without_exp_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "exp"));
        assert_eq!(verify(&token), Err(TokenError::MissingExpiry));
    }

    #[test]
    fn jwt_not_yet_valid_is_rejected() {
        let claims = with(valid_claims(), "nbf", json!(NOW + LEEWAY_SECS + 1));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::NotYetValid));
    }

    #[test]
    fn jwt_valid_from_within_the_leeway_is_accepted() {
        let claims = with(valid_claims(), "nbf", json!(NOW + LEEWAY_SECS));
        assert!(verify(&forge_claims(&claims)).is_ok());
    }

    #[test]
    fn jwt_without_nbf_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "nbf"));
        assert_eq!(verify(&token), Err(TokenError::MissingNotBefore));
    }

    #[test]
    fn jwt_from_another_issuer_is_rejected() {
        let claims = with(valid_claims(), "iss", json!("https://evil.example"));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Issuer));
    }

    #[test]
    fn jwt_without_issuer_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "iss"));
        assert_eq!(verify(&token), Err(TokenError::Issuer));
    }

    #[test]
    fn jwt_for_another_audience_is_rejected() {
        let claims = with(valid_claims(), "aud", json!("another-api"));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Audience));
    }

    #[test]
    fn jwt_without_audience_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "aud"));
        assert_eq!(verify(&token), Err(TokenError::Audience));
    }

    #[test]
    fn jwt_with_an_audience_array_is_rejected() {
        let claims = with(valid_claims(), "aud", json!([AUDIENCE]));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Malformed));
    }

    #[test]
    fn refresh_typed_jwt_presented_as_access_token_is_rejected() {
        let claims = with(valid_claims(), "typ", json!("refresh"));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Type));
    }

    #[test]
    fn mfa_token_presented_as_access_token_is_rejected() {
        let token = signer().issue_with_type("user-1", "", TokenType::Mfa, MFA_TOKEN_TTL_SECS, NOW);
        assert_eq!(verify(&token), Err(TokenError::Type));
    }

    #[test]
    fn access_token_presented_as_mfa_token_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        assert_eq!(
            signer().verify_type(&token, TokenType::Mfa, NOW),
            Err(TokenError::Type)
        );
    }

    #[test]
    fn jwt_without_typ_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "typ"));
        assert_eq!(verify(&token), Err(TokenError::Type));
    }

    #[test]
    fn jwt_without_subject_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "sub"));
        assert_eq!(verify(&token), Err(TokenError::Subject));
    }

    #[test]
    fn access_token_without_session_id_is_rejected() {
        let token = forge_claims(&without(valid_claims(), "sid"));
        assert_eq!(verify(&token), Err(TokenError::Subject));
    }

    #[test]
    fn mfa_token_without_session_verifies_as_mfa() {
        let token = signer().issue_with_type("user-1", "", TokenType::Mfa, MFA_TOKEN_TTL_SECS, NOW);
        let claims = signer()
            .verify_type(&token, TokenType::Mfa, NOW + 60)
            .expect("valid MFA token");
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.sid, "");
        assert_eq!(claims.typ, "mfa");
        assert_eq!(claims.exp, NOW + MFA_TOKEN_TTL_SECS);
    }

    #[test]
    fn mfa_token_expires_after_five_minutes() {
        let token = signer().issue_with_type("user-1", "", TokenType::Mfa, MFA_TOKEN_TTL_SECS, NOW);
        let later = NOW + MFA_TOKEN_TTL_SECS + LEEWAY_SECS + 1;
        assert_eq!(
            signer().verify_type(&token, TokenType::Mfa, later),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn jwt_without_three_parts_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        let (two_parts, _) = token.rsplit_once('.').expect("three parts");
        assert_eq!(verify(two_parts), Err(TokenError::Malformed));
        assert_eq!(
            verify(&format!("{token}.extra")),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn jwt_with_invalid_base64_is_rejected() {
        let token = signer().issue("user-1", "session-1", NOW);
        let parts: Vec<&str> = token.split('.').collect();
        let bad_payload = format!("{}.{}!.{}", parts[0], parts[1], parts[2]);
        assert_eq!(verify(&bad_payload), Err(TokenError::Malformed));
        let padded_header = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
        assert_eq!(verify(&padded_header), Err(TokenError::Malformed));
    }

    #[test]
    fn jwt_whose_header_is_not_json_is_rejected() {
        let token = format!("{}.{}.sig", b64(b"not json"), b64(b"{}"));
        assert_eq!(verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn jwt_whose_payload_is_not_json_is_rejected() {
        let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(b"not json"));
        let token = format!("{input}.{}", hs256_signature(&input, SECRET));
        assert_eq!(verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn jwt_with_claims_of_the_wrong_type_is_rejected() {
        let claims = with(valid_claims(), "sub", json!(42));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Malformed));
        let claims = with(valid_claims(), "exp", json!("tomorrow"));
        assert_eq!(verify(&forge_claims(&claims)), Err(TokenError::Malformed));
    }

    #[test]
    fn oversized_jwt_is_rejected_before_parsing() {
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLarge)
        );
        let padded = with(
            valid_claims(),
            "padding",
            json!("x".repeat(MAX_TOKEN_BYTES)),
        );
        assert_eq!(verify(&forge_claims(&padded)), Err(TokenError::TooLarge));
    }

    #[test]
    fn rejections_other_than_expiry_share_one_generic_client_message() {
        for error in [
            TokenError::TooLarge,
            TokenError::Malformed,
            TokenError::Algorithm,
            TokenError::Signature,
            TokenError::Issuer,
            TokenError::Audience,
            TokenError::Type,
            TokenError::NotYetValid,
        ] {
            assert_eq!(error.code(), "token_invalid");
            assert_eq!(error.message(), "The token is invalid.");
        }
    }

    #[test]
    fn absurd_clock_values_do_not_panic() {
        // Timestamps beyond chrono's range saturate instead of overflowing.
        let token = signer().issue("user-1", "session-1", u64::MAX);
        let _ = signer().verify(&token, u64::MAX);
        assert_eq!(verify(&token), Err(TokenError::NotYetValid));
    }
}
