//! Who is calling `/v1`: every `/v1` route authenticates the same way (an API key or an
//! access token) and spends one request of the caller's `RATE_LIMIT_V1` window.

use crate::auth::guard::{authenticate, Principal};
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;
use crate::rate_limit::kv as rate_limit;

/// Authenticates the caller and spends one request of their `/v1` window.
pub async fn v1_caller(cx: &Ctx) -> ApiResult<Principal> {
    let principal = authenticate(cx).await?;
    rate_limit::enforce(
        cx,
        "v1",
        &principal.user_id,
        cx.config.rate_limits.v1_per_user,
    )
    .await?;
    Ok(principal)
}
