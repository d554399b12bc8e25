//! The operator role: who is an admin, granting and revoking it, and what only admins see.
//!
//! - [`role`]: the two roles and `ADMIN_EMAILS` (pure).
//! - [`store`]: the SQL of roles and of every user's usage totals.
//! - [`access`]: the guard admin-only routes call.
//! - [`routes`]: `GET /api/admin/usage`, `GET`/`PUT /api/admin/users/{id}/role`.

pub mod access;
pub mod role;
pub mod routes;
pub mod store;
