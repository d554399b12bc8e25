//! The guard of admin-only routes.
//!
//! The role is read from D1 on every admin-only request (one primary-key read) rather than
//! kept with the cached credential: a grant or a revoke therefore takes effect at once in
//! every isolate, with nothing cached to forget. Ordinary routes never read it, so they cost
//! exactly what they did before roles existed.

use crate::admin::role::Role;
use crate::admin::store;
use crate::auth::guard::{self, Principal};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1;

/// An authenticated admin.
pub struct Admin {
    pub principal: Principal,
    pub email: String,
}

/// 401 without a credential, 403 `admin_required` for anyone but an admin.
pub async fn require_admin(cx: &Ctx) -> ApiResult<Admin> {
    let principal = guard::authenticate(cx).await?;
    let row = store::role_of(&d1::database(cx)?, &principal.user_id)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("unauthorized", "The account of this credential is gone.")
        })?;
    match cx
        .config
        .admin
        .effective(Role::from_stored(&row.role), &row.email)
    {
        Role::Admin => Ok(Admin {
            principal,
            email: row.email,
        }),
        Role::User => Err(ApiError::forbidden(
            "admin_required",
            "Only an admin may do this: model management, roles and every user's usage are for operators.",
        )),
    }
}
