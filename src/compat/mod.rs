//! What the clients of each service Threadline replaces get: one table per service, with
//! every route its README documents and every setting its `.env` carries, and what each one
//! is here.
//!
//! | service | file | clients call |
//! |---|---|---|
//! | ThreadFlow | [`threadflow`] | `/chat`, `/models`, `/health`, `/debug/logs` |
//! | LLM_MODES | [`llm_modes`] | `/api/auth/*`, `/api/chats/*` |
//! | Web+ | [`web_plus`] | `/auth/*`, `/models/available`, `/conversations/*`, `/chat/completions` |
//! | Chatflow | [`chatflow`] | `/auth/*`, `/conversations/*`, `/conversations/chat` |
//! | ChronoChat | [`chronochat`] | `/api/auth/*`, `/api/chat/*`, `/api/users/*` |
//!
//! A route is either one of ours under the same path ([`Serves::Native`]), one of ours under
//! the service's path ([`Serves::Same`]: the very handler, so the two cannot drift apart), a
//! handler of its own where the service's route does more than one of ours
//! ([`Serves::Own`]), or a feature not built yet ([`Serves::Later`], answered 404 until it
//! is). Resource modules declare only Threadline's own routes; every alias is here.
//!
//! Settings are read through [`AliasedSource`]: our name wins when both are set, and a message
//! about a setting names the one the operator used.

use crate::config::source::{AliasedSource, ConfigSource, Convert, SettingAlias, Treatment};
use crate::http::router::{BodyLimit, Handler, Method, Route};

pub mod chatflow;
pub mod chronochat;
pub mod llm_modes;
pub mod threadflow;
pub mod web_plus;

/// One replaced service: its routes and settings, as its README documents them.
pub struct Service {
    pub name: &'static str,
    pub routes: &'static [SeedRoute],
    pub settings: &'static [SettingAlias],
}

/// A route a service's clients call. Paths use our parameter names (`{id}`); the service's
/// own names (`{chat_id}`, `{thread_id}`) are only names.
pub struct SeedRoute {
    pub method: Method,
    pub path: &'static str,
    pub serves: Serves,
}

/// What answers a service's route here.
pub enum Serves {
    /// Our own route with this method and path.
    Native,
    /// Our route `(method, path)`, under the service's path.
    Same(Method, &'static str),
    /// A handler of the service's own; the string says what it does.
    Own(Handler, &'static str),
    /// Not available yet: the feature that will serve it.
    Later(&'static str),
}

/// One of our routes under the same path.
pub const fn native(method: Method, path: &'static str) -> SeedRoute {
    SeedRoute {
        method,
        path,
        serves: Serves::Native,
    }
}

/// Our route `(target_method, target)` under the service's `(method, path)`.
pub const fn alias(
    method: Method,
    path: &'static str,
    target_method: Method,
    target: &'static str,
) -> SeedRoute {
    SeedRoute {
        method,
        path,
        serves: Serves::Same(target_method, target),
    }
}

/// A handler of the service's own, and what it does.
pub const fn own(
    method: Method,
    path: &'static str,
    handler: Handler,
    does: &'static str,
) -> SeedRoute {
    SeedRoute {
        method,
        path,
        serves: Serves::Own(handler, does),
    }
}

/// A route whose feature is not built yet.
pub const fn later(method: Method, path: &'static str, feature: &'static str) -> SeedRoute {
    SeedRoute {
        method,
        path,
        serves: Serves::Later(feature),
    }
}

/// A setting read under this very name.
pub const fn ours(name: &'static str) -> SettingAlias {
    SettingAlias {
        name,
        treatment: Treatment::Ours,
    }
}

/// A setting that stands for one of ours.
pub const fn stands_for(name: &'static str, ours: &'static str, convert: Convert) -> SettingAlias {
    SettingAlias {
        name,
        treatment: Treatment::StandsFor(ours, convert),
    }
}

/// A setting with no meaning on Workers, and why.
pub const fn not_used(name: &'static str, reason: &'static str) -> SettingAlias {
    SettingAlias {
        name,
        treatment: Treatment::NotUsed(reason),
    }
}

/// Why a database setting means nothing here.
pub const STORED_IN_D1: &str = "users and conversations are stored in D1 (binding DB)";
/// Why a Redis setting means nothing here.
pub const KEPT_IN_KV: &str = "sessions and rate limits are kept in KV (binding KV)";

/// Every replaced service, in the order of the README's compatibility section.
pub const SERVICES: [&Service; 5] = [
    &threadflow::SERVICE,
    &llm_modes::SERVICE,
    &web_plus::SERVICE,
    &chatflow::SERVICE,
    &chronochat::SERVICE,
];

/// The routes the services add to ours: each [`Serves::Same`] with the handler of the route it
/// names, and each [`Serves::Own`]. Several services share a path (`/auth/login` is Web+'s and
/// Chatflow's); it is routed once. An alias whose target does not exist is left out, which
/// the tests below refuse.
pub fn routes(ours: &[Route]) -> Vec<Route> {
    let mut added: Vec<Route> = Vec::new();
    for service in SERVICES {
        for seed in service.routes {
            let handler = match seed.serves {
                Serves::Same(method, path) => ours
                    .iter()
                    .find(|r| r.method == method && r.path == path)
                    .map(|r| (r.handler, r.body)),
                Serves::Own(handler, _) => Some((handler, BodyLimit::Default)),
                Serves::Native | Serves::Later(_) => None,
            };
            let Some((handler, body)) = handler else {
                continue;
            };
            let known = added
                .iter()
                .any(|r| r.method == seed.method && r.path == seed.path);
            if !known {
                added.push(Route::new(seed.method, seed.path, handler).with_body(body));
            }
        }
    }
    added
}

/// Every setting name of every service, for [`AliasedSource`].
pub fn setting_aliases() -> Vec<SettingAlias> {
    SERVICES
        .iter()
        .flat_map(|s| s.settings.iter().copied())
        .collect()
}

/// The Worker's vars and secrets, with the services' setting names understood.
pub fn settings_source(env: &dyn ConfigSource) -> AliasedSource<'_> {
    AliasedSource::new(env, setting_aliases())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::config::Config;
    use crate::http::router::{find, RouteMatch};
    use crate::platform::logging::LogLevel;

    fn ours() -> Vec<Route> {
        crate::routes::own_routes()
    }

    fn resolved(seed: &SeedRoute) -> Option<Route> {
        let all = crate::routes::routes();
        match find(&all, Some(seed.method), seed.path) {
            RouteMatch::Found(route, _) => Some(*route),
            _ => None,
        }
    }

    #[test]
    fn every_seed_route_with_a_feature_behind_it_is_routed_under_its_own_path() {
        for service in SERVICES {
            for seed in service.routes {
                let route = resolved(seed);
                match seed.serves {
                    Serves::Later(_) => assert!(
                        route.is_none_or(|r| r.path != seed.path),
                        "{} {} {} is marked for later but routed",
                        service.name,
                        seed.method.as_str(),
                        seed.path
                    ),
                    _ => {
                        let route = route.unwrap_or_else(|| {
                            panic!(
                                "{}: {} {} is not routed",
                                service.name,
                                seed.method.as_str(),
                                seed.path
                            )
                        });
                        assert_eq!(
                            route.path, seed.path,
                            "{} matched another template",
                            seed.path
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_native_route_is_ours_and_an_alias_is_not() {
        let ours = ours();
        let is_ours = |m: Method, p: &str| ours.iter().any(|r| r.method == m && r.path == p);
        for service in SERVICES {
            for seed in service.routes {
                match seed.serves {
                    Serves::Native => assert!(
                        is_ours(seed.method, seed.path),
                        "{}: {} {} is not one of our routes",
                        service.name,
                        seed.method.as_str(),
                        seed.path
                    ),
                    Serves::Same(method, path) => {
                        assert!(
                            is_ours(method, path),
                            "{}: {} {} names missing {} {}",
                            service.name,
                            seed.method.as_str(),
                            seed.path,
                            method.as_str(),
                            path
                        );
                        assert!(
                            !is_ours(seed.method, seed.path),
                            "{}: {} {} is ours; mark it Native",
                            service.name,
                            seed.method.as_str(),
                            seed.path
                        );
                    }
                    Serves::Own(..) | Serves::Later(_) => {}
                }
            }
        }
    }

    #[test]
    fn an_alias_has_the_parameters_of_its_target() {
        fn params(path: &str) -> BTreeSet<&str> {
            path.split('/').filter(|s| s.starts_with('{')).collect()
        }
        for service in SERVICES {
            for seed in service.routes {
                if let Serves::Same(_, target) = seed.serves {
                    assert_eq!(params(seed.path), params(target), "{}", seed.path);
                }
            }
        }
    }

    #[test]
    fn services_that_share_a_path_mean_the_same_route_by_it() {
        let mut meaning: BTreeMap<(Method, &str), String> = BTreeMap::new();
        for service in SERVICES {
            for seed in service.routes {
                let what = match seed.serves {
                    Serves::Native => "native".to_string(),
                    Serves::Same(m, p) => format!("{} {p}", m.as_str()),
                    Serves::Own(_, what) => what.to_string(),
                    Serves::Later(what) => format!("later: {what}"),
                };
                if let Some(before) = meaning.insert((seed.method, seed.path), what.clone()) {
                    assert_eq!(before, what, "{} {}", seed.method.as_str(), seed.path);
                }
            }
        }
    }

    #[test]
    fn a_setting_stands_for_one_of_ours_that_exists() {
        // Our names, as the settings modules read them: a source that records every lookup.
        struct Recorder(std::cell::RefCell<BTreeSet<String>>);
        impl ConfigSource for Recorder {
            fn get(&self, name: &str) -> Option<String> {
                self.0.borrow_mut().insert(name.to_string());
                None
            }
        }
        let recorder = Recorder(Default::default());
        let _ = Config::from_source(&recorder, || Ok(vec![1; 32]));
        let read = recorder.0.into_inner();
        for alias in setting_aliases() {
            match alias.treatment {
                Treatment::Ours => assert!(read.contains(alias.name), "{} is not read", alias.name),
                Treatment::StandsFor(ours, _) => {
                    assert!(
                        read.contains(ours),
                        "{} stands for unread {ours}",
                        alias.name
                    );
                    assert!(
                        !read.contains(alias.name),
                        "{} is ours; mark it Ours",
                        alias.name
                    );
                }
                Treatment::NotUsed(_) => {
                    assert!(!read.contains(alias.name), "{} is read", alias.name)
                }
            }
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&settings_source(&env), || Ok(vec![1; 32]))
    }

    #[test]
    fn secret_key_and_jwt_secret_key_stand_for_jwt_secret_with_its_minimum() {
        let long = "s".repeat(32);
        for name in ["SECRET_KEY", "JWT_SECRET_KEY"] {
            let ok = config(&[(name, &long)]);
            assert!(ok.problems.is_empty(), "{name}: {:?}", ok.problems);
            assert_eq!(ok.jwt_secret, long.as_bytes());

            let short = config(&[(name, "short")]);
            assert_eq!(short.problems.len(), 1);
            assert_eq!(
                short.problems[0].setting, name,
                "the error names what was set"
            );
        }
    }

    #[test]
    fn jwt_expiration_hours_sets_the_access_token_lifetime() {
        let c = config(&[
            ("JWT_SECRET_KEY", &"s".repeat(32)),
            ("JWT_EXPIRATION_HOURS", "24"),
        ]);
        assert_eq!(c.auth.access_token_ttl_secs, 24 * 3600);
        // Our own name wins when both are set.
        let both = config(&[
            ("JWT_SECRET", &"s".repeat(32)),
            ("JWT_EXPIRATION_HOURS", "24"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "30"),
        ]);
        assert_eq!(both.auth.access_token_ttl_secs, 30 * 60);
    }

    #[test]
    fn debug_turns_on_debug_logs_and_nothing_else() {
        let c = config(&[("JWT_SECRET", &"s".repeat(32)), ("DEBUG", "True")]);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(
            !c.is_development(),
            "DEBUG never makes a development deployment"
        );
        let off = config(&[("JWT_SECRET", &"s".repeat(32)), ("DEBUG", "false")]);
        assert_eq!(off.log_level, LogLevel::Info);
    }

    #[test]
    fn settings_that_mean_nothing_here_are_warned_about_when_set() {
        let c = config(&[
            ("JWT_SECRET", &"s".repeat(32)),
            ("DATABASE_URL", "postgresql://x"),
        ]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("DATABASE_URL is set but not used")),
            "{:?}",
            c.warnings
        );
    }
}
