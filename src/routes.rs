//! Every route of the API: the one place that names every resource. Each resource module
//! declares its own routes; this merges them, and the replaced services' aliases
//! ([`crate::compat`]), into the table the router matches against.
//!
//! The tests below keep the table honest: no route is declared twice, and `openapi.json`
//! documents exactly the routes that exist (both directions).

use crate::http::router::Route;

/// Every route of the API: ours, then the replaced services' aliases of them.
pub fn routes() -> Vec<Route> {
    let mut all = own_routes();
    let aliases = crate::compat::routes(&all);
    all.extend(aliases);
    all
}

/// Threadline's own routes, merged from the resource modules.
pub fn own_routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend(crate::meta::docs::routes());
    all.extend(crate::meta::health::routes());
    all.extend(crate::meta::debug::routes());
    all.extend(crate::auth::routes::login::routes());
    all.extend(crate::auth::routes::email_links::routes());
    all.extend(crate::auth::routes::mfa::routes());
    all.extend(crate::auth::routes::users::routes());
    all.extend(crate::auth::routes::api_keys::routes());
    all.extend(crate::providers::routes::routes());
    all.extend(crate::openai::routes::routes());
    all.extend(crate::conversations::routes::routes());
    all.extend(crate::chat::routes::routes());
    all.extend(crate::modes::routes::routes());
    all.extend(crate::live::routes::routes());
    all.extend(crate::files::routes::routes());
    all.extend(crate::admin::routes::routes());
    all.extend(crate::providers::ollama::routes::routes());
    all.extend(crate::pipelines::routes::routes());
    all
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::routes;
    use crate::http::router::Method;
    use crate::meta::docs::OPENAPI_DOCUMENT;

    fn document() -> Value {
        serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is valid JSON")
    }

    fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths object") {
            for (method, _) in item.as_object().expect("path item object") {
                if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    fn routed_operations() -> BTreeSet<(String, String)> {
        routes()
            .iter()
            .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
            .collect()
    }

    #[test]
    fn every_route_of_the_api_is_unique() {
        let mut seen = BTreeSet::new();
        for r in &routes() {
            assert!(seen.insert((r.method, r.path)), "duplicate route {r:?}");
        }
    }

    #[test]
    fn document_is_openapi_3_1() {
        let doc = document();
        assert!(doc["openapi"].as_str().expect("openapi").starts_with("3.1"));
        assert!(doc["info"]["title"].is_string());
    }

    #[test]
    fn every_route_is_documented() {
        let documented = documented_operations(&document());
        let missing: Vec<_> = routed_operations()
            .difference(&documented)
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi.json: {missing:?}"
        );
    }

    #[test]
    fn every_documented_operation_is_routed() {
        let routed = routed_operations();
        let stale: Vec<_> = documented_operations(&document())
            .difference(&routed)
            .cloned()
            .collect();
        assert!(
            stale.is_empty(),
            "openapi.json documents routes that do not exist: {stale:?}"
        );
    }

    #[test]
    fn every_operation_has_an_id_a_summary_and_responses() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    continue;
                }
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: operationId"));
                assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
                assert!(op["summary"].is_string(), "{method} {path}: summary");
                assert!(op["responses"].is_object(), "{method} {path}: responses");
            }
        }
    }

    #[test]
    fn every_alias_is_documented_as_its_target_and_marked() {
        use crate::compat::{Serves, SERVICES};
        let doc = document();
        let op = |method: Method, path: &str| {
            doc["paths"][path][method.as_str().to_ascii_lowercase()].clone()
        };
        for service in SERVICES {
            for seed in service.routes {
                let documented = op(seed.method, seed.path);
                let compat = documented["x-compat"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                match seed.serves {
                    Serves::Same(method, path) => {
                        let target = op(method, path);
                        let name = format!("{} {}", method.as_str(), path);
                        assert_eq!(documented["x-alias-of"], name.as_str(), "{}", seed.path);
                        for part in ["parameters", "requestBody", "responses", "security"] {
                            assert_eq!(
                                documented[part],
                                target[part],
                                "{} {}: {part} differs from {name}",
                                seed.method.as_str(),
                                seed.path
                            );
                        }
                    }
                    Serves::Own(..) => assert!(documented.is_object(), "{}", seed.path),
                    Serves::Native | Serves::Later(_) => continue,
                }
                assert!(
                    compat.iter().any(|s| s == service.name),
                    "{} {}: x-compat does not name {}",
                    seed.method.as_str(),
                    seed.path,
                    service.name
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external ref {r}"));
            assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
            _ => {}
        }
    }
}
