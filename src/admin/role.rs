//! The two roles (`user`, `admin`) and the `ADMIN_EMAILS` setting.
//!
//! A user is an admin when their row says so (granted through the API) or when their address
//! is listed in `ADMIN_EMAILS` — which is how the first admin of a deployment exists. The
//! setting cannot be overridden through the API: an address listed there stays an admin until
//! the operator removes it, so a revoke of such a user is refused rather than silently undone.
//!
//! Pure: no storage, so every rule is tested natively.

use serde::{Deserialize, Serialize};

use crate::config::source::ConfigSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The stored value; anything unexpected is the lesser role.
    pub fn from_stored(value: &str) -> Role {
        if value == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// `ADMIN_EMAILS`: a comma list (or JSON array) of addresses, compared without case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSettings {
    pub admin_emails: Vec<String>,
}

impl AdminSettings {
    pub fn from_source(src: &dyn ConfigSource) -> AdminSettings {
        // The same list syntax as CORS_ORIGINS.
        let raw = src.get("ADMIN_EMAILS").unwrap_or_default();
        AdminSettings {
            admin_emails: crate::config::list::parse_origin_list(&raw)
                .into_iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `ADMIN_EMAILS` lists `email`.
    pub fn lists(&self, email: &str) -> bool {
        let email = email.trim().to_ascii_lowercase();
        self.admin_emails.contains(&email)
    }

    /// The role a user has: the stored one, raised to admin by `ADMIN_EMAILS`.
    pub fn effective(&self, stored: Role, email: &str) -> Role {
        if stored == Role::Admin || self.lists(email) {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(raw: &str) -> AdminSettings {
        let src: BTreeMap<String, String> = [("ADMIN_EMAILS".to_string(), raw.to_string())].into();
        AdminSettings::from_source(&src)
    }

    #[test]
    fn admin_emails_is_a_comma_list_or_json_array_compared_without_case() {
        for raw in [
            " Ops@Example.com , root@x.io,",
            r#"["ops@example.com","ROOT@x.io"]"#,
        ] {
            let s = settings(raw);
            assert!(s.lists("ops@example.com"), "{raw}");
            assert!(s.lists("OPS@EXAMPLE.COM"), "{raw}");
            assert!(s.lists("root@x.io"), "{raw}");
            assert!(!s.lists("ops@example.co"), "{raw}");
            assert!(!s.lists(""), "{raw}");
        }
        assert!(settings("").admin_emails.is_empty());
    }

    #[test]
    fn the_setting_raises_a_user_and_never_lowers_an_admin() {
        let s = settings("boss@x.io");
        assert_eq!(s.effective(Role::User, "boss@x.io"), Role::Admin);
        assert_eq!(s.effective(Role::User, "ada@x.io"), Role::User);
        assert_eq!(s.effective(Role::Admin, "ada@x.io"), Role::Admin);
    }

    #[test]
    fn an_unknown_stored_role_is_the_lesser_one() {
        assert_eq!(Role::from_stored("admin"), Role::Admin);
        assert_eq!(Role::from_stored("root"), Role::User);
        assert_eq!(Role::from_stored(""), Role::User);
    }
}
