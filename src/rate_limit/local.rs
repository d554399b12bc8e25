//! The isolate's own count of each rate-limit window, so a warm request decides without a KV
//! round trip.
//!
//! KV stays the shared count (the design's choice: approximate across locations). An isolate
//! reads a window's KV count once, when it first sees the window, then counts its own
//! requests locally and reconciles with KV at most once per `RATE_LIMIT_SYNC_MS`, after the
//! response: it reads KV again (learning what other isolates added) and writes that plus its
//! own requests since the last write.
//!
//! **Tolerance.** Within one isolate the count is exact. Each isolate sees the others'
//! requests at most one sync interval late, so across `n` busy isolates a window can admit up
//! to `(n - 1) ×` the requests each admits in one interval beyond the limit; KV's own
//! eventual consistency across locations (up to ~60 s) adds to that, as before.
//!
//! Pure: the caller does the KV reads and writes; these types say when and what.

use std::collections::HashMap;

use super::{decide, Decision, Limit};

/// Windows kept at most per isolate; past windows are dropped first.
const CAPACITY: usize = 8192;

/// What the isolate knows about one window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WindowCount {
    /// Which window (`now / window_secs`).
    window: u64,
    /// The shared count at the last reconcile (or the first read).
    shared: u32,
    /// Requests admitted here since then, not yet in KV.
    unsynced: u32,
    /// Requests being written by a reconcile in flight.
    in_flight: u32,
    /// When the last reconcile started (ms).
    synced_at_ms: u64,
}

/// Every window this isolate counts, by its KV key.
#[derive(Debug, Default)]
pub struct LocalWindows {
    windows: HashMap<String, WindowCount>,
}

/// A reconcile to run after the response: read the key, then write the value read plus
/// `add` (this isolate's requests since the last write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    pub key: String,
    pub add: u32,
}

/// The outcome of counting one request locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// This isolate has not seen the window: read its KV count, then call
    /// [`LocalWindows::start`].
    Unknown,
    /// Decided; when `reconcile` is set, run it after the response.
    Decided {
        decision: Decision,
        reconcile: Option<Reconcile>,
    },
}

impl LocalWindows {
    /// Counts one request for `key` in the window of `now_ms`, if this isolate knows it.
    pub fn count(&mut self, key: &str, limit: Limit, now_ms: u64, sync_ms: u64) -> Counted {
        let now_secs = now_ms / 1000;
        let window = now_secs / limit.window_secs;
        match self.windows.get_mut(key) {
            Some(w) if w.window == window => admit(key, w, limit, now_ms, sync_ms),
            _ => Counted::Unknown,
        }
    }

    /// Starts counting a window from its KV count `shared`, and counts this request.
    pub fn start(
        &mut self,
        key: &str,
        limit: Limit,
        shared: u32,
        now_ms: u64,
        sync_ms: u64,
    ) -> Counted {
        let window = now_ms / 1000 / limit.window_secs;
        if self.windows.len() >= CAPACITY {
            self.windows.retain(|_, w| w.window >= window);
            if self.windows.len() >= CAPACITY {
                self.windows.clear();
            }
        }
        let fresh = WindowCount {
            window,
            shared,
            unsynced: 0,
            in_flight: 0,
            synced_at_ms: 0,
        };
        let w = self.windows.entry(key.to_string()).or_insert(fresh.clone());
        if w.window != window {
            *w = fresh;
        }
        w.shared = w.shared.max(shared);
        admit(key, w, limit, now_ms, sync_ms)
    }

    /// A reconcile wrote `shared_now` (the KV value read plus what it added).
    pub fn reconciled(&mut self, key: &str, shared_now: u32) {
        if let Some(w) = self.windows.get_mut(key) {
            w.shared = w.shared.max(shared_now);
            w.in_flight = 0;
        }
    }

    /// A reconcile failed: its requests are still unsynced, for the next one.
    pub fn reconcile_failed(&mut self, key: &str, add: u32) {
        if let Some(w) = self.windows.get_mut(key) {
            w.in_flight = w.in_flight.saturating_sub(add);
            w.unsynced += add;
            // Let the next request try again rather than wait a whole interval.
            w.synced_at_ms = 0;
        }
    }
}

/// The decision for one more request in `w`, and the reconcile it is due, if any.
fn admit(key: &str, w: &mut WindowCount, limit: Limit, now_ms: u64, sync_ms: u64) -> Counted {
    let seen = w.shared + w.in_flight + w.unsynced;
    let (_, decision) = decide(limit, seen, now_ms / 1000);
    if decision.allowed {
        w.unsynced += 1;
    }
    let due = w.unsynced > 0
        && w.in_flight == 0
        && (w.synced_at_ms == 0 || now_ms.saturating_sub(w.synced_at_ms) >= sync_ms);
    let reconcile = due.then(|| {
        w.synced_at_ms = now_ms;
        w.in_flight = w.unsynced;
        let add = std::mem::take(&mut w.unsynced);
        Reconcile {
            key: key.to_string(),
            add,
        }
    });
    Counted::Decided {
        decision,
        reconcile,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const LIMIT: Limit = Limit::new(10, 60);
    const SYNC_MS: u64 = 1000;
    const T0: u64 = 1_800_000_000_000; // the start of a 60 s window

    /// One isolate against a shared KV map: counts a request, reading and reconciling KV
    /// as the pure part asks (reconciles at once, as if each response had just been sent).
    fn request(
        local: &mut LocalWindows,
        kv: &mut HashMap<String, u32>,
        now_ms: u64,
    ) -> (bool, u32) {
        let mut reads = 0;
        let mut counted = local.count("k", LIMIT, now_ms, SYNC_MS);
        if counted == Counted::Unknown {
            reads += 1;
            let shared = kv.get("k").copied().unwrap_or(0);
            counted = local.start("k", LIMIT, shared, now_ms, SYNC_MS);
        }
        let Counted::Decided {
            decision,
            reconcile,
        } = counted
        else {
            unreachable!()
        };
        if let Some(r) = reconcile {
            reads += 1;
            let now = kv.get(&r.key).copied().unwrap_or(0) + r.add;
            kv.insert(r.key.clone(), now);
            local.reconciled(&r.key, now);
        }
        (decision.allowed, reads)
    }

    #[test]
    fn one_isolate_counts_exactly_and_reads_kv_once_per_interval() {
        let (mut local, mut kv) = (LocalWindows::default(), HashMap::new());
        let mut kv_reads = 0;
        let mut allowed = 0;
        for i in 0..15 {
            let (ok, reads) = request(&mut local, &mut kv, T0 + i * 10);
            kv_reads += reads;
            allowed += ok as u32;
        }
        assert_eq!(allowed, 10, "exactly the limit");
        // The first request reads and writes; the others within the interval touch nothing.
        assert_eq!(kv_reads, 2);
        assert_eq!(kv["k"], 1, "only the first request has reached KV yet");
        // The next interval writes what was admitted since.
        request(&mut local, &mut kv, T0 + SYNC_MS + 1);
        assert_eq!(kv["k"], 10);
    }

    #[test]
    fn a_new_window_starts_from_its_own_kv_count() {
        let (mut local, mut kv) = (LocalWindows::default(), HashMap::new());
        for i in 0..10 {
            request(&mut local, &mut kv, T0 + i);
        }
        assert!(!request(&mut local, &mut kv, T0 + 20).0);
        // 60 s later is another window: a fresh budget.
        kv.clear();
        assert!(request(&mut local, &mut kv, T0 + 60_000).0);
    }

    #[test]
    fn two_isolates_overshoot_by_at_most_one_interval_of_each_other() {
        let mut kv = HashMap::new();
        let (mut a, mut b) = (LocalWindows::default(), LocalWindows::default());
        let mut admitted = 0;
        // Both isolates take requests in turn, a request every 50 ms each.
        for i in 0..100u64 {
            let now = T0 + i * 50;
            admitted += request(&mut a, &mut kv, now).0 as u32;
            admitted += request(&mut b, &mut kv, now + 1).0 as u32;
        }
        // Each isolate admits at most 20 requests per interval (1 per 50 ms); the other sees
        // them at the next reconcile, so the window admits at most the limit plus one
        // interval's worth from the other isolate.
        let per_interval = (SYNC_MS / 50) as u32;
        assert!(admitted >= LIMIT.max, "{admitted}");
        assert!(admitted <= LIMIT.max + per_interval, "{admitted}");
    }

    #[test]
    fn a_failed_reconcile_keeps_its_requests_for_the_next() {
        let mut local = LocalWindows::default();
        let Counted::Decided { reconcile, .. } = local.start("k", LIMIT, 0, T0, SYNC_MS) else {
            unreachable!()
        };
        let r = reconcile.expect("the first request reconciles");
        assert_eq!(r.add, 1);
        local.reconcile_failed("k", r.add);
        // The next request retries at once, carrying both.
        let Counted::Decided { reconcile, .. } = local.count("k", LIMIT, T0 + 1, SYNC_MS) else {
            unreachable!()
        };
        assert_eq!(reconcile.map(|r| r.add), Some(2));
    }

    #[test]
    fn a_refused_request_is_not_counted() {
        let mut local = LocalWindows::default();
        let mut kv = HashMap::new();
        kv.insert("k".to_string(), 10);
        let (ok, _) = request(&mut local, &mut kv, T0);
        assert!(!ok);
        assert_eq!(kv["k"], 10, "a refused request adds nothing");
    }
}
