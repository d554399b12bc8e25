//! Where settings come from, and how a number setting is read.
//!
//! Each feature's settings (`auth::settings`, `chat::settings`, `providers::settings`,
//! `rate_limit`) read their own variables through [`ConfigSource`]; only this small module
//! is shared, so a feature's settings never depend on the whole [`super::Config`].

use std::collections::BTreeMap;

/// Where settings come from: the Worker `Env` in production, a map in tests.
pub trait ConfigSource {
    /// A var or secret by name; `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String>;

    /// The name the operator actually set for setting `name`, so a message about it names
    /// what they will find in their own configuration (`SECRET_KEY` rather than `JWT_SECRET`).
    fn provided_by(&self, name: &'static str) -> &'static str {
        name
    }

    /// Notes about the source itself (settings that are set but not used), logged as
    /// configuration warnings.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How a replaced service's setting is treated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Read under this very name (one of ours, shared with the service).
    Ours,
    /// Stands for our setting of that name when ours is not set, its value converted.
    StandsFor(&'static str, Convert),
    /// Has no meaning on Workers; the reason, logged as a warning when it is set.
    NotUsed(&'static str),
}

/// How an alias's value becomes the value of the setting it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// Taken as it is.
    Same,
    /// A whole number of hours, as minutes (`JWT_EXPIRATION_HOURS=24` → `1440`).
    HoursToMinutes,
    /// A boolean flag: true means `debug`; false says nothing (`DEBUG=true` → `LOG_LEVEL=debug`).
    TrueMeansDebug,
}

impl Convert {
    fn apply(self, raw: &str) -> Option<String> {
        let raw = raw.trim();
        match self {
            Convert::Same => Some(raw.to_string()),
            // A value that is not hours passes through unchanged, so the setting's own
            // parser refuses it with its usual warning.
            Convert::HoursToMinutes => Some(match raw.parse::<u64>() {
                Ok(hours) => hours.saturating_mul(60).to_string(),
                Err(_) => raw.to_string(),
            }),
            Convert::TrueMeansDebug => matches!(
                raw.to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
            .then(|| "debug".to_string()),
        }
    }
}

/// One setting name that clients of a replaced service know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingAlias {
    pub name: &'static str,
    pub treatment: Treatment,
}

/// A source that also understands the replaced services' setting names: our own name wins
/// when both are set; otherwise the first alias that is set stands in for it.
pub struct AliasedSource<'a> {
    inner: &'a dyn ConfigSource,
    aliases: Vec<SettingAlias>,
}

impl<'a> AliasedSource<'a> {
    pub fn new(inner: &'a dyn ConfigSource, aliases: Vec<SettingAlias>) -> Self {
        AliasedSource { inner, aliases }
    }

    /// The alias that provides `name`, with its converted value, when `name` itself is unset.
    fn aliased_value(&self, name: &str) -> Option<(&'static str, String)> {
        if self.inner.get(name).is_some() {
            return None;
        }
        self.aliases.iter().find_map(|alias| match alias.treatment {
            Treatment::StandsFor(ours, convert) if ours == name => self
                .inner
                .get(alias.name)
                .and_then(|raw| convert.apply(&raw))
                .map(|value| (alias.name, value)),
            _ => None,
        })
    }
}

impl ConfigSource for AliasedSource<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.inner
            .get(name)
            .or_else(|| self.aliased_value(name).map(|(_, value)| value))
    }

    fn provided_by(&self, name: &'static str) -> &'static str {
        self.aliased_value(name).map_or(name, |(alias, _)| alias)
    }

    fn notices(&self) -> Vec<String> {
        let mut notices = Vec::new();
        for alias in &self.aliases {
            if let Treatment::NotUsed(reason) = alias.treatment {
                let note = format!("{} is set but not used: {reason}", alias.name);
                if self.inner.get(alias.name).is_some() && !notices.contains(&note) {
                    notices.push(note);
                }
            }
        }
        notices
    }
}

impl ConfigSource for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

impl ConfigSource for worker::Env {
    fn get(&self, name: &str) -> Option<String> {
        // Vars and secrets are both plain strings on `env`; `var` reads either.
        self.var(name)
            .ok()
            .map(|v| v.to_string())
            .filter(|v| !v.is_empty())
    }
}

/// Reads a whole number within `[min, max]`; anything else falls back to `default` with a warning.
pub fn parse_number<T>(
    src: &dyn ConfigSource,
    name: &'static str,
    default: T,
    min: T,
    max: T,
    warnings: &mut Vec<String>,
) -> T
where
    T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display,
{
    match src.get(name) {
        None => default,
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                let set_as = match src.provided_by(name) {
                    alias if alias != name => format!(" (set as {alias})"),
                    _ => String::new(),
                };
                warnings.push(format!(
                    "{name}={raw:?}{set_as} is not a number from {min} to {max}; using {default}"
                ));
                default
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ALIASES: [SettingAlias; 4] = [
        SettingAlias {
            name: "SECRET_KEY",
            treatment: Treatment::StandsFor("JWT_SECRET", Convert::Same),
        },
        SettingAlias {
            name: "JWT_EXPIRATION_HOURS",
            treatment: Treatment::StandsFor("ACCESS_TOKEN_EXPIRE_MINUTES", Convert::HoursToMinutes),
        },
        SettingAlias {
            name: "DEBUG",
            treatment: Treatment::StandsFor("LOG_LEVEL", Convert::TrueMeansDebug),
        },
        SettingAlias {
            name: "REDIS_URL",
            treatment: Treatment::NotUsed("sessions and rate limits are in KV"),
        },
    ];

    #[test]
    fn an_alias_stands_in_only_when_our_name_is_unset() {
        let env = map(&[("SECRET_KEY", "from-alias")]);
        let src = AliasedSource::new(&env, ALIASES.to_vec());
        assert_eq!(src.get("JWT_SECRET").as_deref(), Some("from-alias"));
        assert_eq!(src.provided_by("JWT_SECRET"), "SECRET_KEY");

        let env = map(&[("SECRET_KEY", "from-alias"), ("JWT_SECRET", "ours")]);
        let src = AliasedSource::new(&env, ALIASES.to_vec());
        assert_eq!(src.get("JWT_SECRET").as_deref(), Some("ours"));
        assert_eq!(src.provided_by("JWT_SECRET"), "JWT_SECRET");
    }

    #[test]
    fn values_are_converted_to_the_unit_of_our_setting() {
        let env = map(&[("JWT_EXPIRATION_HOURS", "24"), ("DEBUG", "True")]);
        let src = AliasedSource::new(&env, ALIASES.to_vec());
        assert_eq!(
            src.get("ACCESS_TOKEN_EXPIRE_MINUTES").as_deref(),
            Some("1440")
        );
        assert_eq!(src.get("LOG_LEVEL").as_deref(), Some("debug"));

        let env = map(&[("DEBUG", "false")]);
        let src = AliasedSource::new(&env, ALIASES.to_vec());
        assert_eq!(
            src.get("LOG_LEVEL"),
            None,
            "DEBUG=false leaves the level alone"
        );
    }

    #[test]
    fn a_bad_aliased_number_is_refused_under_both_names() {
        let env = map(&[("JWT_EXPIRATION_HOURS", "a day")]);
        let src = AliasedSource::new(&env, ALIASES.to_vec());
        let mut warnings = Vec::new();
        let minutes = parse_number(
            &src,
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            15u64,
            1,
            1440,
            &mut warnings,
        );
        assert_eq!(minutes, 15);
        assert!(
            warnings[0].contains("ACCESS_TOKEN_EXPIRE_MINUTES"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("JWT_EXPIRATION_HOURS"), "{warnings:?}");
    }

    #[test]
    fn settings_without_meaning_here_are_noticed_when_set() {
        let env = map(&[("REDIS_URL", "redis://localhost")]);
        let notices = AliasedSource::new(&env, ALIASES.to_vec()).notices();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].starts_with("REDIS_URL is set but not used"));
        assert!(AliasedSource::new(&map(&[]), ALIASES.to_vec())
            .notices()
            .is_empty());
    }
}
