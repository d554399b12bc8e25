//! The few things that differ between the Workers runtime and a native test: the clock and
//! the source of randomness. Logic takes these as arguments so it runs under `cargo test`.

/// Milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> u64;

    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The runtime's clock: `Date.now()` in workerd, the system clock natively.
///
/// In production `Date.now()` only advances across I/O (a Spectre mitigation), which is fine
/// for expiry checks and means per-request CPU durations must be measured around I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(target_arch = "wasm32")]
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that stands still unless told to move, for tests of expiry logic.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::cell::Cell<u64>);

impl FixedClock {
    pub fn at_secs(secs: u64) -> Self {
        FixedClock(std::cell::Cell::new(secs * 1000))
    }

    pub fn advance_secs(&self, secs: u64) {
        self.0.set(self.0.get() + secs * 1000);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// Cryptographically secure random bytes from the runtime (`crypto.getRandomValues` in
/// workerd, the OS natively). Failure is not recoverable for a security service, so it is
/// reported as an error rather than papered over.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], crate::error::ApiError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf)
        .map_err(|e| crate::error::ApiError::internal(format!("getrandom: {e}")))?;
    Ok(buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encodes_every_nibble() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        let a = random_bytes::<16>().expect("random");
        let b = random_bytes::<16>().expect("random");
        assert_ne!(a, b);
    }

    #[test]
    fn fixed_clock_moves_only_when_advanced() {
        let clock = FixedClock::at_secs(100);
        assert_eq!(clock.now_secs(), 100);
        clock.advance_secs(5);
        assert_eq!(clock.now_secs(), 105);
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn system_clock_reads_the_js_clock() {
        let now = SystemClock.now_ms();
        // After 2020-01-01 and before 2100-01-01: a real wall clock, not zero.
        assert!(now > 1_577_836_800_000 && now < 4_102_444_800_000, "{now}");
    }

    #[wasm_bindgen_test]
    fn random_bytes_come_from_js_crypto() {
        let a = random_bytes::<32>().expect("random");
        let b = random_bytes::<32>().expect("random");
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }
}
