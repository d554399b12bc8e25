//! Random secrets handed to clients (refresh, email-verification and reset tokens, API keys)
//! and the one-way digests we keep of them instead.
//!
//! Randomness comes in through [`RandomSource`] so this module never touches the platform:
//! the worker passes `SystemRandom` (backed by `crypto.getRandomValues`), tests a
//! deterministic counter. When no secure bytes can be had, every function here fails.

use std::fmt::Write as _;

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::platform::random::RandomSource;
use crate::platform::random::RandomUnavailable;

/// Bytes of entropy in refresh, email-verification and password-reset tokens.
///
/// 256 bits: far beyond guessing online or offline, which is what lets us store them under a
/// fast hash (see [`sha256_hex`]).
pub const TOKEN_BYTES: usize = 32;

/// Prefix that marks a Threadline API key, so leaked keys are recognisable by secret scanners
/// and by people.
pub const API_KEY_PREFIX: &str = "tl_";

/// Number of random base62 characters after [`API_KEY_PREFIX`]; 40 × log2(62) ≈ 238 bits.
pub const API_KEY_RANDOM_CHARS: usize = 40;

/// Number of characters after [`API_KEY_PREFIX`] that are stored in clear and shown in lists,
/// so a user can tell their keys apart and the server can find the row to check.
pub const API_KEY_DISPLAY_PREFIX_CHARS: usize = 8;

const BASE62_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Returns `n_bytes` random bytes encoded as unpadded base64url (URL- and header-safe).
///
/// Use [`TOKEN_BYTES`] for anything that grants access.
pub fn random_token(
    rng: &(impl RandomSource + ?Sized),
    n_bytes: usize,
) -> Result<String, RandomUnavailable> {
    let mut bytes = vec![0u8; n_bytes];
    rng.fill(&mut bytes)?;
    Ok(Base64UrlUnpadded::encode_string(&bytes))
}

/// Lowercase hex SHA-256 of `s`, for storing tokens we hand out (refresh, verification,
/// reset, API keys).
///
/// A fast hash is the right tool here and a password hash would be wrong: these tokens carry
/// 128+ bits of entropy from a CSPRNG, so even a stolen table of digests cannot be reversed by
/// brute force, while argon2's deliberate slowness would only cost CPU on every request.
/// Storing the digest rather than the token means a database leak does not hand out live
/// sessions.
pub fn sha256_hex(s: &str) -> String {
    hex_lower(&Sha256::digest(s.as_bytes()))
}

/// Compares two byte strings without an early exit on the first differing byte, so response
/// timing does not reveal how much of a secret an attacker has guessed. (The length may
/// leak; every secret we compare has a public, fixed length.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Creates a new API key, returning `(full_key, display_prefix)`.
///
/// The full key (`tl_` + 40 base62 characters) is shown to the user once and stored only as
/// [`sha256_hex`]; the display prefix (the first 8 characters after `tl_`) is stored in clear
/// to list keys and to find the row to compare against.
pub fn generate_api_key(
    rng: &(impl RandomSource + ?Sized),
) -> Result<(String, String), RandomUnavailable> {
    let mut key = String::with_capacity(API_KEY_PREFIX.len() + API_KEY_RANDOM_CHARS);
    key.push_str(API_KEY_PREFIX);
    push_unbiased_chars(rng, BASE62_ALPHABET, API_KEY_RANDOM_CHARS, &mut key)?;
    let prefix =
        key[API_KEY_PREFIX.len()..API_KEY_PREFIX.len() + API_KEY_DISPLAY_PREFIX_CHARS].to_owned();
    Ok((key, prefix))
}

/// Whether `s` has the shape of a key from [`generate_api_key`]. A cheap filter before any
/// lookup, so garbage in an `Authorization` header never reaches storage.
pub fn is_api_key_format(s: &str) -> bool {
    match s.strip_prefix(API_KEY_PREFIX) {
        Some(rest) => {
            rest.len() == API_KEY_RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// The stored display prefix as the user sees the key begin (`tl_` and the stored
/// characters), so the listing's `prefix` is a literal prefix of the key shown at creation.
pub fn shown_prefix(stored: &str) -> String {
    format!("{API_KEY_PREFIX}{stored}")
}

/// The display prefix of a well-formed API key, for looking up its row; `None` otherwise.
pub fn api_key_display_prefix(s: &str) -> Option<&str> {
    if is_api_key_format(s) {
        let start = API_KEY_PREFIX.len();
        Some(&s[start..start + API_KEY_DISPLAY_PREFIX_CHARS])
    } else {
        None
    }
}

/// Appends `count` characters drawn uniformly from `alphabet`.
///
/// A byte taken modulo the alphabet size would favour the first `256 % len` symbols, so bytes
/// at or above the largest multiple of the alphabet size are thrown away and redrawn.
pub(crate) fn push_unbiased_chars(
    rng: &(impl RandomSource + ?Sized),
    alphabet: &[u8],
    count: usize,
    out: &mut String,
) -> Result<(), RandomUnavailable> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut pushed = 0;
    let mut buf = [0u8; 64];
    while pushed < count {
        rng.fill(&mut buf)?;
        for &byte in &buf {
            if pushed == count {
                break;
            }
            if usize::from(byte) < limit {
                out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
                pushed += 1;
            }
        }
    }
    Ok(())
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::random::{BrokenRandomSource, CountingRandomSource};

    #[test]
    fn random_token_of_32_bytes_is_43_base64url_characters_without_padding() {
        let token = random_token(&CountingRandomSource::starting_at(0), TOKEN_BYTES).unwrap();
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn random_token_encodes_the_bytes_from_the_random_source() {
        let token = random_token(&CountingRandomSource::starting_at(0xfb), 3).unwrap();
        // 0xfb 0xfc 0xfd in base64url: the last symbols of the alphabet show it is the URL one.
        assert_eq!(token, "-_z9");
    }

    #[test]
    fn successive_random_tokens_differ() {
        let rng = CountingRandomSource::starting_at(0);
        assert_ne!(
            random_token(&rng, TOKEN_BYTES).unwrap(),
            random_token(&rng, TOKEN_BYTES).unwrap()
        );
    }

    #[test]
    fn random_token_works_through_a_trait_object() {
        let rng = CountingRandomSource::starting_at(0);
        let dynamic: &dyn RandomSource = &rng;
        assert_eq!(random_token(dynamic, 1).unwrap(), "AA");
    }

    #[test]
    fn no_token_or_key_is_made_without_secure_randomness() {
        assert!(random_token(&BrokenRandomSource, TOKEN_BYTES).is_err());
        assert!(generate_api_key(&BrokenRandomSource).is_err());
    }

    #[test]
    fn the_shown_prefix_is_how_the_key_itself_begins() {
        let (key, stored) = generate_api_key(&CountingRandomSource::starting_at(0)).unwrap();
        let shown = shown_prefix(&stored);
        assert!(key.starts_with(&shown), "{key} does not start with {shown}");
        assert_eq!(
            shown.len(),
            API_KEY_PREFIX.len() + API_KEY_DISPLAY_PREFIX_CHARS
        );
        assert_eq!(api_key_display_prefix(&key), Some(stored.as_str()));
    }

    #[test]
    fn sha256_hex_matches_the_known_digest_of_abc() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_is_true_only_for_identical_bytes() {
        assert!(constant_time_eq(b"same secret", b"same secret"));
        assert!(!constant_time_eq(b"same secret", b"same secreT"));
        assert!(!constant_time_eq(b"short", b"shorter"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn api_key_is_tl_prefix_and_40_base62_characters() {
        let (key, _) = generate_api_key(&CountingRandomSource::starting_at(0)).unwrap();
        assert!(key.starts_with("tl_"));
        assert_eq!(key.len(), 43);
        assert!(key[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(is_api_key_format(&key));
    }

    #[test]
    fn api_key_display_prefix_is_the_first_8_characters_after_tl() {
        let (key, prefix) = generate_api_key(&CountingRandomSource::starting_at(0)).unwrap();
        assert_eq!(prefix.len(), 8);
        assert_eq!(&key[3..11], prefix);
        assert_eq!(api_key_display_prefix(&key), Some(prefix.as_str()));
    }

    #[test]
    fn api_key_generation_skips_bytes_that_would_bias_the_alphabet() {
        // Bytes 248..=255 must be redrawn; starting there, the first usable byte is 0 → '0'.
        let (key, _) = generate_api_key(&CountingRandomSource::starting_at(248)).unwrap();
        assert!(key.starts_with("tl_0123"));
    }

    #[test]
    fn successive_api_keys_differ() {
        let rng = CountingRandomSource::starting_at(0);
        assert_ne!(
            generate_api_key(&rng).unwrap().0,
            generate_api_key(&rng).unwrap().0
        );
    }

    #[test]
    fn strings_that_are_not_api_keys_are_recognised() {
        let valid = format!("tl_{}", "a".repeat(40));
        assert!(is_api_key_format(&valid));
        assert!(!is_api_key_format(""));
        assert!(!is_api_key_format(&format!("tl_{}", "a".repeat(39))));
        assert!(!is_api_key_format(&format!("tl_{}", "a".repeat(41))));
        assert!(!is_api_key_format(&format!("sk_{}", "a".repeat(40))));
        assert!(!is_api_key_format(&format!("tl_{}-", "a".repeat(39))));
        assert!(!is_api_key_format(&format!("tl_{}é", "a".repeat(38))));
        assert_eq!(api_key_display_prefix("tl_short"), None);
    }
}
