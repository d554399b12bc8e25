//! Randomness: the one seam through which every secret, id and salt gets its bytes.
//!
//! Pure code (tokens, API keys, TOTP secrets, recovery codes) takes a [`RandomSource`]; the
//! worker passes [`SystemRandom`] (`crypto.getRandomValues` in workerd, the OS natively), tests
//! a deterministic source. One failure policy everywhere: if the platform cannot give secure
//! bytes the operation fails with [`RandomUnavailable`] (a 500 for the client) — never a
//! fallback to zeros or to a predictable value, because every token's security rests on it.

use crate::http::error::ApiError;

/// The platform had no secure random bytes to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomUnavailable(pub String);

impl std::fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no secure random bytes: {}", self.0)
    }
}

impl From<RandomUnavailable> for ApiError {
    fn from(err: RandomUnavailable) -> Self {
        ApiError::internal(err.to_string())
    }
}

/// A source of cryptographically secure random bytes.
pub trait RandomSource {
    /// Fills `buf` entirely with random bytes, or fails without a partial result.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

/// The runtime's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::getrandom(buf).map_err(|e| RandomUnavailable(e.to_string()))
    }
}

/// `N` bytes from [`SystemRandom`].
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut buf = [0u8; N];
    SystemRandom.fill(&mut buf)?;
    Ok(buf)
}

/// A deterministic [`RandomSource`] for tests: emits 0, 1, 2, … (wrapping), continuing where
/// the previous `fill` stopped. Predictable on purpose; never use it outside tests.
#[cfg(test)]
pub(crate) struct CountingRandomSource {
    next: u8,
}

#[cfg(test)]
impl CountingRandomSource {
    pub(crate) fn starting_at(first: u8) -> Self {
        Self { next: first }
    }
}

#[cfg(test)]
impl RandomSource for CountingRandomSource {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        for byte in buf {
            *byte = self.next;
            self.next = self.next.wrapping_add(1);
        }
        Ok(())
    }
}

/// A [`RandomSource`] that always fails, for testing the failure policy.
#[cfg(test)]
pub(crate) struct BrokenRandomSource;

#[cfg(test)]
impl RandomSource for BrokenRandomSource {
    fn fill(&mut self, _buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        Err(RandomUnavailable("broken on purpose".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_calls() {
        let a = random_bytes::<16>().expect("random");
        let b = random_bytes::<16>().expect("random");
        assert_ne!(a, b);
    }

    #[test]
    fn unavailable_randomness_is_an_internal_error_not_a_value() {
        let err = ApiError::from(BrokenRandomSource.fill(&mut [0u8; 4]).unwrap_err());
        assert_eq!((err.status, err.code), (500, "internal_error"));
        assert!(err
            .internal
            .unwrap_or_default()
            .contains("broken on purpose"));
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn random_bytes_come_from_js_crypto() {
        let a = random_bytes::<32>().expect("random");
        let b = random_bytes::<32>().expect("random");
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }
}
