//! Identifiers for rows and sessions.
//!
//! An id is 12 hex digits of milliseconds followed by 80 random bits (20 hex digits): ids sort
//! by creation time, so lists can page by id with a stable order, and they are unguessable.

use crate::auth::secrets::RandomSource;
use crate::error::ApiResult;
use crate::platform::hex;

/// A time-ordered random id (32 lowercase hex characters).
pub fn new_id(now_ms: u64) -> ApiResult<String> {
    let random = crate::platform::random_bytes::<10>()?;
    Ok(format!(
        "{:012x}{}",
        now_ms & 0xffff_ffff_ffff,
        hex(&random)
    ))
}

/// Whether `s` has the shape of an id this service issued (guards queries from junk input).
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The runtime's cryptographic random source, for the pure auth code.
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // getrandom only fails when the platform has no secure source at all, in which case
        // no token this service could issue would be safe; refusing loudly is the only option.
        getrandom::getrandom(buf).expect("the runtime provides crypto.getRandomValues");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time_and_are_unique() {
        let a = new_id(1_000).expect("id");
        let b = new_id(2_000).expect("id");
        assert!(a < b);
        assert_ne!(new_id(5).expect("id"), new_id(5).expect("id"));
        assert!(is_valid_id(&a), "{a}");
    }

    #[test]
    fn junk_is_not_an_id() {
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("1; drop table users"));
        assert!(!is_valid_id(&"A".repeat(32)));
        assert!(!is_valid_id(&"0".repeat(31)));
    }
}
