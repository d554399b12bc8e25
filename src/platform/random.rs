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
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

/// The runtime's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::getrandom(buf).map_err(|e| RandomUnavailable(e.to_string()))
    }
}

/// `N` bytes from [`SystemRandom`].
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut buf = [0u8; N];
    SystemRandom.fill(&mut buf)?;
    Ok(buf)
}

/// A number in `[0, 1)` from 53 random bits (backoff jitter).
pub fn unit_interval(rng: &dyn RandomSource) -> Result<f64, RandomUnavailable> {
    let mut bytes = [0u8; 8];
    rng.fill(&mut bytes)?;
    Ok((u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64)
}

/// A deterministic [`RandomSource`] for tests: emits 0, 1, 2, … (wrapping), continuing where
/// the previous `fill` stopped. Predictable on purpose; never use it outside tests.
#[cfg(test)]
pub(crate) struct CountingRandomSource {
    next: std::cell::Cell<u8>,
}

#[cfg(test)]
impl CountingRandomSource {
    pub(crate) fn starting_at(first: u8) -> Self {
        Self {
            next: std::cell::Cell::new(first),
        }
    }
}

#[cfg(test)]
impl RandomSource for CountingRandomSource {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        for byte in buf {
            *byte = self.next.get();
            self.next.set(byte.wrapping_add(1));
        }
        Ok(())
    }
}

/// A [`RandomSource`] that always fails, for testing the failure policy.
#[cfg(test)]
pub(crate) struct BrokenRandomSource;

#[cfg(test)]
impl RandomSource for BrokenRandomSource {
    fn fill(&self, _buf: &mut [u8]) -> Result<(), RandomUnavailable> {
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
    fn unit_interval_spans_zero_to_just_under_one() {
        struct Fixed(u8);
        impl RandomSource for Fixed {
            fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
                buf.fill(self.0);
                Ok(())
            }
        }
        assert_eq!(unit_interval(&Fixed(0)).unwrap(), 0.0);
        let top = unit_interval(&Fixed(0xff)).unwrap();
        assert!(top < 1.0 && top > 0.999_999);
        assert!(unit_interval(&BrokenRandomSource).is_err());
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
