//! An isolate's short memory of the credentials it has checked, so a warm request makes no
//! storage round trip before its work: an API key's row (D1) and an access token's session
//! record (KV) are read once and then trusted for `AUTH_CACHE_SECS`.
//!
//! What that costs is bounded and stated in the README: a key revoked or a session ended
//! **through this isolate** stops working at once (the handler forgets it here); one revoked
//! through another isolate keeps working here for at most `AUTH_CACHE_SECS`. Expiry is checked
//! on every hit, so a cached credential never outlives its own expiry.
//!
//! Pure: the clock arrives as milliseconds, so every rule is tested natively.

use std::collections::HashMap;

/// Entries kept at most; beyond that the oldest checked are dropped first.
pub const CAPACITY: usize = 4096;

/// Credentials by key (the SHA-256 of an API key, or a session id), each with when it was
/// last read from storage.
#[derive(Debug)]
pub struct CredentialCache<V> {
    entries: HashMap<String, (V, u64)>,
    capacity: usize,
}

impl<V: Clone> Default for CredentialCache<V> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl<V: Clone> CredentialCache<V> {
    pub fn with_capacity(capacity: usize) -> Self {
        CredentialCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The value read less than `ttl_ms` ago, if any; `ttl_ms == 0` caches nothing.
    pub fn get(&self, key: &str, now_ms: u64, ttl_ms: u64) -> Option<V> {
        let (value, read_at) = self.entries.get(key)?;
        (now_ms.saturating_sub(*read_at) < ttl_ms).then(|| value.clone())
    }

    /// Remembers `value` as read from storage at `now_ms`.
    pub fn insert(&mut self, key: &str, value: V, now_ms: u64, ttl_ms: u64) {
        if ttl_ms == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.entries
                .retain(|_, (_, read_at)| now_ms.saturating_sub(*read_at) < ttl_ms);
            while self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, read_at))| *read_at)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => self.entries.remove(&k),
                    None => break,
                };
            }
        }
        self.entries.insert(key.to_string(), (value, now_ms));
    }

    /// Changes a cached value in place (bookkeeping such as a new `last_used_at`), keeping
    /// when it was read.
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut V)) {
        if let Some((value, _)) = self.entries.get_mut(key) {
            change(value);
        }
    }

    /// Forgets every entry `revoked` says is gone (a revoked key, an ended session, every
    /// credential of a deleted user).
    pub fn forget(&mut self, revoked: impl Fn(&str, &V) -> bool) {
        self.entries.retain(|key, (value, _)| !revoked(key, value));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 10_000;

    #[test]
    fn a_value_is_trusted_for_the_ttl_and_not_a_moment_longer() {
        let mut cache = CredentialCache::default();
        cache.insert("k", "alice", 1_000, TTL);
        assert_eq!(cache.get("k", 1_000, TTL), Some("alice"));
        assert_eq!(cache.get("k", 1_000 + TTL - 1, TTL), Some("alice"));
        assert_eq!(cache.get("k", 1_000 + TTL, TTL), None);
        assert_eq!(cache.get("other", 1_000, TTL), None);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let mut cache = CredentialCache::default();
        cache.insert("k", 1, 0, 0);
        assert!(cache.is_empty());
        assert_eq!(cache.get("k", 0, 0), None);
    }

    #[test]
    fn forgetting_removes_exactly_the_revoked_entries() {
        let mut cache = CredentialCache::default();
        cache.insert("a", ("alice", "s1"), 0, TTL);
        cache.insert("b", ("alice", "s2"), 0, TTL);
        cache.insert("c", ("bob", "s3"), 0, TTL);
        cache.forget(|_, (user, _)| *user == "alice");
        assert_eq!(cache.get("a", 1, TTL), None);
        assert_eq!(cache.get("b", 1, TTL), None);
        assert_eq!(cache.get("c", 1, TTL), Some(("bob", "s3")));
    }

    #[test]
    fn updating_keeps_the_time_it_was_read() {
        let mut cache = CredentialCache::default();
        cache.insert("k", 1u64, 0, TTL);
        cache.update("k", |v| *v = 2);
        assert_eq!(cache.get("k", TTL - 1, TTL), Some(2));
        assert_eq!(
            cache.get("k", TTL, TTL),
            None,
            "an update is not a fresh read"
        );
    }

    #[test]
    fn a_full_cache_drops_expired_then_oldest_entries_first() {
        let mut cache = CredentialCache::with_capacity(2);
        cache.insert("old", 1, 0, TTL);
        cache.insert("mid", 2, 5, TTL);
        cache.insert("new", 3, 10, TTL);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("old", 10, TTL), None);
        assert_eq!(cache.get("mid", 10, TTL), Some(2));
        assert_eq!(cache.get("new", 10, TTL), Some(3));
        // Re-inserting a key that is already there never evicts another.
        cache.insert("new", 4, 11, TTL);
        assert_eq!(cache.get("mid", 11, TTL), Some(2));
    }
}
