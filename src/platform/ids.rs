//! Identifiers: row and session ids, and the request id every response carries.
//!
//! An id is 12 hex digits of milliseconds followed by 80 random bits (20 hex digits): ids sort
//! by creation time, so lists can page by id with a stable order, and they are unguessable.

use crate::platform::random::{random_bytes, RandomUnavailable};

/// A time-ordered random id (32 lowercase hex characters).
pub fn new_id(now_ms: u64) -> Result<String, RandomUnavailable> {
    let random = random_bytes::<10>()?;
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

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// A client-supplied request id is kept when it is a sane token (so ids can be traced across
/// services); anything else — too long, or with characters that could forge log lines or
/// headers — is replaced.
pub fn is_acceptable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: 128 random bits as hex.
pub fn new_request_id() -> Result<String, RandomUnavailable> {
    Ok(hex(&random_bytes::<16>()?))
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
    fn hex_encodes_every_nibble() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn sane_request_ids_are_kept_and_hostile_ones_refused() {
        assert!(is_acceptable_request_id("abc-123_X.y:z"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id(&"a".repeat(129)));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("a\r\nx-evil: 1"));
        assert!(!is_acceptable_request_id("{\"level\":\"error\"}"));
    }

    #[test]
    fn generated_request_ids_are_acceptable_and_unique() {
        let a = new_request_id().expect("random");
        assert_eq!(a.len(), 32);
        assert!(is_acceptable_request_id(&a));
        assert_ne!(a, new_request_id().expect("random"));
    }

    #[test]
    fn junk_is_not_an_id() {
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("1; drop table users"));
        assert!(!is_valid_id(&"A".repeat(32)));
        assert!(!is_valid_id(&"0".repeat(31)));
    }
}
