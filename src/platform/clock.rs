//! The clock: the one time seam. Logic that depends on the time takes a [`Clock`] (or a time
//! read from one) as an argument, so expiry, backoff and latency are tested natively with a
//! [`FixedClock`].

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
