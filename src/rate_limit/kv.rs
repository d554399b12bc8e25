//! Counting requests against a [`Limit`]: the isolate's own count ([`super::local`]), shared
//! through KV (the `KV` binding) — one fixed-window counter per bucket and key, read when the
//! isolate first sees the window and reconciled after responses at most once per
//! `RATE_LIMIT_SYNC_MS`. A warm request decides without a storage round trip.

use std::cell::RefCell;

use super::local::{Counted, LocalWindows, Reconcile};
use super::{refusal, Decision, Limit};
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::{LogLevel, LogLine};

thread_local! {
    static WINDOWS: RefCell<LocalWindows> = RefCell::new(LocalWindows::default());
}

/// Counts one request for `bucket`/`key`; 429 when the window is full.
/// `key` is hashed into the KV key so emails and IPs are not stored in clear.
pub async fn enforce(cx: &Ctx, bucket: &str, key: &str, limit: Limit) -> ApiResult<Decision> {
    let now_ms = SystemClock.now_ms();
    let window = now_ms / 1000 / limit.window_secs;
    let kv_key = format!(
        "rl:{bucket}:{}:{window}",
        &crate::auth::crypto::secrets::sha256_hex(key)[..32]
    );
    let sync_ms = cx.config.rate_limits.sync_ms;
    let mut counted = WINDOWS.with(|w| w.borrow_mut().count(&kv_key, limit, now_ms, sync_ms));
    if counted == Counted::Unknown {
        // The first request of a window in this isolate learns what the others have counted.
        let shared = read_count(&cx.env.kv("KV")?, &kv_key).await?;
        counted = WINDOWS.with(|w| {
            w.borrow_mut()
                .start(&kv_key, limit, shared, now_ms, sync_ms)
        });
    }
    let Counted::Decided {
        decision,
        reconcile,
    } = counted
    else {
        return Err(crate::http::error::ApiError::internal(
            "rate-limit window not started",
        ));
    };
    if let Some(reconcile) = reconcile {
        spawn_reconcile(cx, reconcile, decision.reset_secs, bucket);
    }
    if !decision.allowed {
        return Err(refusal(&decision));
    }
    Ok(decision)
}

/// A window's shared count (0 when KV has none).
async fn read_count(kv: &worker::kv::KvStore, kv_key: &str) -> Result<u32, worker::kv::KvError> {
    Ok(kv
        .get(kv_key)
        .text()
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// After the response: reads the shared count again and writes it plus this isolate's
/// requests since the last write. A KV write is a round trip to central storage in
/// production and the count is approximate anyway, so none of this is on the request's
/// path; KV takes about one write per second per key, which the interval respects. A failed
/// write is logged and its requests wait for the next reconcile. KV's minimum TTL is 60 s, so
/// the key outlives its window a little (harmless).
fn spawn_reconcile(cx: &Ctx, reconcile: Reconcile, reset_secs: u64, bucket: &str) {
    let Ok(kv) = cx.env.kv("KV") else { return };
    let ttl = reset_secs.max(60);
    let request_id = cx.request_id.clone();
    let log_level = cx.config.log_level;
    let bucket = bucket.to_string();
    cx.worker_ctx.wait_until(async move {
        let Reconcile { key, add } = reconcile;
        let result = async {
            let total = read_count(&kv, &key).await?.saturating_add(add);
            kv.put(&key, total.to_string())?
                .expiration_ttl(ttl)
                .execute()
                .await?;
            Ok::<u32, worker::kv::KvError>(total)
        }
        .await;
        match result {
            Ok(total) => WINDOWS.with(|w| w.borrow_mut().reconciled(&key, total)),
            Err(err) => {
                WINDOWS.with(|w| w.borrow_mut().reconcile_failed(&key, add));
                LogLine::new(
                    LogLevel::Warn,
                    SystemClock.now_ms(),
                    "rate-limit counter not written",
                )
                .field("request_id", request_id.as_str())
                .field("bucket", bucket.as_str())
                .field("error_detail", err.to_string())
                .emit(log_level);
            }
        }
    });
}

/// The client's IP as Cloudflare reports it; locally there is none, and all clients share one
/// bucket.
pub fn client_ip(cx: &Ctx) -> String {
    cx.header("cf-connecting-ip")
        .unwrap_or_else(|| "unknown".to_string())
}
