//! Counting requests against a [`Limit`] in KV (the `KV` binding), one fixed-window counter
//! per bucket and key.

use super::{decide, refusal, Decision, Limit};
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::{LogLevel, LogLine};

/// Counts one request for `bucket`/`key`; 429 when the window is full.
/// `key` is hashed into the KV key so emails and IPs are not stored in clear.
pub async fn enforce(cx: &Ctx, bucket: &str, key: &str, limit: Limit) -> ApiResult<Decision> {
    let kv = cx.env.kv("KV")?;
    let now = SystemClock.now_secs();
    let (window, _) = decide(limit, 0, now);
    let kv_key = format!(
        "rl:{bucket}:{}:{window}",
        &crate::auth::crypto::secrets::sha256_hex(key)[..32]
    );
    let count: u32 = kv
        .get(&kv_key)
        .text()
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (_, decision) = decide(limit, count, now);
    if !decision.allowed {
        return Err(refusal(&decision));
    }
    // The increment is written after the response, off the request's critical path: a KV
    // write is a round trip to central storage in production, and the count is approximate
    // anyway. KV's minimum TTL is 60 s, so the key outlives its window a little (harmless).
    // KV also takes about one write per second per key: a refused write is logged, never a
    // failed request.
    let ttl = decision.reset_secs.max(60);
    let request_id = cx.request_id.clone();
    let log_level = cx.config.log_level;
    let bucket = bucket.to_string();
    cx.worker_ctx.wait_until(async move {
        let write = match kv.put(&kv_key, (count + 1).to_string()) {
            Ok(put) => put.expiration_ttl(ttl).execute().await,
            Err(e) => Err(e),
        };
        if let Err(err) = write {
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
    });
    Ok(decision)
}

/// The client's IP as Cloudflare reports it; locally there is none, and all clients share one
/// bucket.
pub fn client_ip(cx: &Ctx) -> String {
    cx.header("cf-connecting-ip")
        .unwrap_or_else(|| "unknown".to_string())
}
