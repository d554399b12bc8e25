//! Password storage with argon2id, following the OWASP Password Storage Cheat Sheet.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so each one carries the
//! parameters it was made with: we can raise the cost later and upgrade old hashes on the
//! next successful login ([`needs_rehash`]) without a migration.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory (time cost).
    pub t: u32,
    /// Lanes (parallelism). Always 1 in OWASP's sets, and Workers run one thread anyway.
    pub p: u32,
}

impl Argon2Params {
    /// OWASP's first-choice set: 19 MiB, 2 passes. About the most a Worker's 128 MB isolate
    /// and CPU budget allow per login while staying at OWASP's bar.
    pub const OWASP_DEFAULT: Self = Self::new(19_456, 2, 1);
    /// OWASP equivalent: 46 MiB, 1 pass.
    pub const OWASP_M47104_T1: Self = Self::new(47_104, 1, 1);
    /// OWASP equivalent: 12 MiB, 3 passes.
    pub const OWASP_M12288_T3: Self = Self::new(12_288, 3, 1);
    /// OWASP equivalent: 9 MiB, 4 passes.
    pub const OWASP_M9216_T4: Self = Self::new(9_216, 4, 1);
    /// OWASP equivalent: 7 MiB, 5 passes.
    pub const OWASP_M7168_T5: Self = Self::new(7_168, 5, 1);

    /// All of OWASP's equivalent sets; they trade memory for passes at roughly equal cost.
    pub const OWASP_EQUIVALENTS: [Self; 5] = [
        Self::OWASP_M47104_T1,
        Self::OWASP_DEFAULT,
        Self::OWASP_M12288_T3,
        Self::OWASP_M9216_T4,
        Self::OWASP_M7168_T5,
    ];

    pub const fn new(m_kib: u32, t: u32, p: u32) -> Self {
        Self { m_kib, t, p }
    }

    /// Whether these parameters are at least as strong as one of OWASP's sets (at least its
    /// memory and at least its passes).
    pub fn meets_owasp_minimum(&self) -> bool {
        self.p >= 1
            && Self::OWASP_EQUIVALENTS
                .iter()
                .any(|set| self.m_kib >= set.m_kib && self.t >= set.t)
    }

    /// Whether the parameters are within what we are willing to compute (see [`MAX_M_KIB`]).
    pub fn within_limits(&self) -> bool {
        self.m_kib <= MAX_M_KIB && self.t <= MAX_T && self.p <= MAX_P
    }

    fn to_argon2(self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.m_kib, self.t, self.p, None)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP_DEFAULT
    }
}

impl fmt::Display for Argon2Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

/// Largest memory cost we will configure or verify against: 64 MiB. A Worker isolate has
/// 128 MB, and a corrupted or planted stored hash asking for gigabytes must fail cleanly
/// instead of aborting the isolate.
pub const MAX_M_KIB: u32 = 65_536;
/// Largest time cost we will configure or verify against, to bound CPU per login.
pub const MAX_T: u32 = 10;
/// Largest parallelism we will configure or verify against (lanes run sequentially in wasm).
pub const MAX_P: u32 = 4;

/// A PHC hash of a random value nobody knows, with [`Argon2Params::OWASP_DEFAULT`].
///
/// When a login names an unknown email we still verify the password against this, so the
/// response takes as long as for a real account and timing does not reveal which emails are
/// registered. It must keep the default parameters, or the timing would differ again.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$XCTjsfXbILQ/zmTkkjF68w$\
                              Q0r4i0BDp75ZSwoAxMMxgZNKpmlV3KGLHnVcC9jAdTU";

/// Why a parameter setting from configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// Not `default`, `m=…,t=…,p=…` or `m,t,p`.
    Malformed,
    /// Weaker than every OWASP set.
    BelowOwaspMinimum(Argon2Params),
    /// Above [`MAX_M_KIB`], [`MAX_T`] or [`MAX_P`].
    AboveLimits(Argon2Params),
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str(
                "argon2 parameters must be \"default\", \"m=19456,t=2,p=1\" or \"19456,2,1\"",
            ),
            Self::BelowOwaspMinimum(params) => write!(
                f,
                "argon2 parameters {params} are weaker than every OWASP recommended set \
                 (e.g. m=19456,t=2,p=1); refusing to store passwords with them"
            ),
            Self::AboveLimits(params) => write!(
                f,
                "argon2 parameters {params} exceed the limits m<={MAX_M_KIB},t<={MAX_T},\
                 p<={MAX_P} that fit a Worker's memory and CPU budget"
            ),
        }
    }
}

impl std::error::Error for ParamsError {}

/// Parses operator configuration: `default` (or `owasp`), `m=19456,t=2,p=1`, or `19456,2,1`.
///
/// Refuses settings weaker than OWASP's sets rather than silently weakening storage.
pub fn parse_params(text: &str) -> Result<Argon2Params, ParamsError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("default") || text.eq_ignore_ascii_case("owasp") {
        return Ok(Argon2Params::OWASP_DEFAULT);
    }
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [m, t, p] = fields.as_slice() else {
        return Err(ParamsError::Malformed);
    };
    let number = |field: &str, name: &str| -> Result<u32, ParamsError> {
        let digits = field
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .unwrap_or(field);
        digits.trim().parse().map_err(|_| ParamsError::Malformed)
    };
    let params = Argon2Params::new(number(m, "m")?, number(t, "t")?, number(p, "p")?);
    if !params.meets_owasp_minimum() {
        return Err(ParamsError::BelowOwaspMinimum(params));
    }
    if !params.within_limits() {
        return Err(ParamsError::AboveLimits(params));
    }
    Ok(params)
}

/// Hashing failed: the parameters were invalid for argon2 (the message says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHashError(String);

impl fmt::Display for PasswordHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "argon2 hashing failed: {}", self.0)
    }
}

impl std::error::Error for PasswordHashError {}

/// Hashes `password` with argon2id into a PHC string.
///
/// `salt` must be 16 fresh random bytes per hash (the caller draws them from its
/// `RandomSource`): a unique salt makes equal passwords hash differently, so one cracked hash
/// says nothing about another account.
pub fn hash_password(
    password: &str,
    salt: &[u8; 16],
    params: Argon2Params,
) -> Result<String, PasswordHashError> {
    let hasher = params
        .to_argon2()
        .map_err(|err| PasswordHashError(err.to_string()))?;
    let salt = SaltString::encode_b64(salt).map_err(|err| PasswordHashError(err.to_string()))?;
    hasher
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordHashError(err.to_string()))
}

/// Whether `password` matches the stored PHC string.
///
/// Anything other than a well-formed argon2id v19 hash within [`MAX_M_KIB`]/[`MAX_T`]/
/// [`MAX_P`] is simply a mismatch: a corrupted row must not panic or exhaust memory.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Some(stored) = parse_argon2id(phc) else {
        return false;
    };
    // The verifier takes algorithm, version and costs from the stored hash itself.
    Argon2::default()
        .verify_password(password.as_bytes(), &stored.hash)
        .is_ok()
}

/// Verifies against the user's stored hash, or against [`DUMMY_HASH`] when there is no user,
/// so both paths cost the same argon2 work. Returns `false` whenever `stored` is `None`.
pub fn verify_password_or_dummy(password: &str, stored: Option<&str>) -> bool {
    match stored {
        Some(phc) => verify_password(password, phc),
        None => {
            let _ = verify_password(password, DUMMY_HASH);
            false
        }
    }
}

/// Whether a hash should be replaced (after a successful login, while the plaintext is at
/// hand) because it was not made with exactly `params` as argon2id v19, or cannot be read.
///
/// "Exactly", not "at least": moving to any other OWASP set, even a cheaper-in-memory one,
/// is a deliberate operator decision that should apply to every account.
pub fn needs_rehash(phc: &str, params: Argon2Params) -> bool {
    parse_argon2id(phc).is_none_or(|stored| stored.params != params)
}

struct StoredHash<'a> {
    hash: PasswordHash<'a>,
    params: Argon2Params,
}

fn parse_argon2id(phc: &str) -> Option<StoredHash<'_>> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(19) {
        return None;
    }
    hash.salt?;
    hash.hash?;
    let cost = |name: &str| hash.params.get_decimal(name);
    let params = Argon2Params::new(cost("m")?, cost("t")?, cost("p")?);
    if !params.within_limits() {
        return None;
    }
    Some(StoredHash { hash, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT_A: [u8; 16] = [1; 16];
    const SALT_B: [u8; 16] = [2; 16];

    fn hash(password: &str, salt: &[u8; 16]) -> String {
        hash_password(password, salt, Argon2Params::OWASP_DEFAULT).expect("default params hash")
    }

    #[test]
    fn hash_is_a_phc_string_for_argon2id_v19_with_default_params() {
        let phc = hash("correct horse battery staple", &SALT_A);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[test]
    fn same_password_with_different_salts_hashes_differently() {
        let password = "correct horse battery staple";
        assert_ne!(hash(password, &SALT_A), hash(password, &SALT_B));
    }

    #[test]
    fn right_password_verifies() {
        let phc = hash("correct horse battery staple", &SALT_A);
        assert!(verify_password("correct horse battery staple", &phc));
    }

    #[test]
    fn wrong_password_does_not_verify() {
        let phc = hash("correct horse battery staple", &SALT_A);
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("Correct horse battery staple", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn unicode_password_verifies_byte_for_byte() {
        let password = " pässwörd 🐎 私の ";
        let phc = hash(password, &SALT_A);
        assert!(verify_password(password, &phc));
        assert!(!verify_password(password.trim(), &phc));
    }

    #[test]
    fn malformed_stored_hash_is_a_mismatch_not_a_panic() {
        for stored in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=abc,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password", stored), "{stored:?}");
            assert!(
                needs_rehash(stored, Argon2Params::OWASP_DEFAULT),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn stored_hash_demanding_excessive_memory_is_refused_without_computing() {
        let planted = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$\
                       aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!verify_password("password", planted));
    }

    #[test]
    fn argon2i_and_argon2d_hashes_are_not_accepted() {
        let argon2id = hash("password", &SALT_A);
        let argon2i = argon2id.replacen("$argon2id$", "$argon2i$", 1);
        let argon2d = argon2id.replacen("$argon2id$", "$argon2d$", 1);
        assert!(!verify_password("password", &argon2i));
        assert!(!verify_password("password", &argon2d));
    }

    #[test]
    fn hash_made_with_current_params_needs_no_rehash() {
        let phc = hash("password", &SALT_A);
        assert!(!needs_rehash(&phc, Argon2Params::OWASP_DEFAULT));
    }

    #[test]
    fn hash_made_with_other_params_needs_rehash() {
        let older = hash_password("password", &SALT_A, Argon2Params::OWASP_M7168_T5)
            .expect("OWASP params hash");
        assert!(verify_password("password", &older));
        assert!(needs_rehash(&older, Argon2Params::OWASP_DEFAULT));
        assert!(!needs_rehash(&older, Argon2Params::OWASP_M7168_T5));
    }

    #[test]
    fn dummy_hash_is_a_valid_default_params_hash_that_matches_nothing() {
        assert!(!needs_rehash(DUMMY_HASH, Argon2Params::OWASP_DEFAULT));
        assert!(!verify_password("", DUMMY_HASH));
        assert!(!verify_password("password", DUMMY_HASH));
    }

    #[test]
    fn verifying_without_a_stored_hash_always_fails() {
        assert!(!verify_password_or_dummy("password", None));
        let phc = hash("password", &SALT_A);
        assert!(verify_password_or_dummy("password", Some(&phc)));
    }

    #[test]
    fn every_owasp_set_meets_the_minimum_and_the_limits() {
        for params in Argon2Params::OWASP_EQUIVALENTS {
            assert!(params.meets_owasp_minimum(), "{params}");
            assert!(params.within_limits(), "{params}");
        }
        assert_eq!(Argon2Params::default(), Argon2Params::OWASP_DEFAULT);
    }

    #[test]
    fn params_parse_from_plain_or_named_numbers_or_default() {
        let expected = Ok(Argon2Params::new(19_456, 2, 1));
        assert_eq!(parse_params("19456,2,1"), expected);
        assert_eq!(parse_params(" m=19456, t=2, p=1 "), expected);
        assert_eq!(parse_params("default"), expected);
        assert_eq!(parse_params("OWASP"), expected);
        assert_eq!(parse_params("47104,1,1"), Ok(Argon2Params::OWASP_M47104_T1));
        assert_eq!(
            parse_params("65536,3,1"),
            Ok(Argon2Params::new(65_536, 3, 1))
        );
    }

    #[test]
    fn params_weaker_than_owasp_are_refused() {
        assert_eq!(
            parse_params("4096,3,1"),
            Err(ParamsError::BelowOwaspMinimum(Argon2Params::new(
                4096, 3, 1
            )))
        );
        assert!(matches!(
            parse_params("19456,1,1"),
            Err(ParamsError::BelowOwaspMinimum(_))
        ));
        assert!(matches!(
            parse_params("19456,2,0"),
            Err(ParamsError::BelowOwaspMinimum(_))
        ));
    }

    #[test]
    fn params_beyond_the_worker_budget_are_refused() {
        assert!(matches!(
            parse_params("1048576,2,1"),
            Err(ParamsError::AboveLimits(_))
        ));
    }

    #[test]
    fn malformed_params_are_refused() {
        for text in [
            "",
            "19456",
            "19456,2",
            "19456,2,1,0",
            "m=x,t=2,p=1",
            "-1,2,1",
        ] {
            assert_eq!(parse_params(text), Err(ParamsError::Malformed), "{text:?}");
        }
    }
}
