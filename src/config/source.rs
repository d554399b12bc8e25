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
    name: &str,
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
                warnings.push(format!(
                    "{name}={raw:?} is not a number from {min} to {max}; using {default}"
                ));
                default
            }
        },
    }
}
