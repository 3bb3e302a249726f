//! The one table of every operation the API serves: method, path, metric label and the access
//! it needs. The guard (`super::guard`) looks each request up here and refuses anything not
//! listed, so a route added without an entry is unreachable rather than unprotected.

use axum::http::Method;
use graven_auth::access::Access;

/// One operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `GET` or `POST` (a `HEAD` is served as its `GET`).
    pub method: &'static str,
    /// The router's path pattern.
    pub path: &'static str,
    /// `METHOD /route`: the label of its metrics and of its denied records.
    pub label: &'static str,
    pub access: Access,
}

const fn route(method: &'static str, path: &'static str, label: &'static str, access: Access) -> Route {
    Route { method, path, label, access }
}

/// Every route and method the API serves, and the access it needs. No entry updates or
/// deletes an event: there is no such operation.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/events", "POST /v1/events", Access::Append),
    route("GET", "/v1/events", "GET /v1/events", Access::Read),
    route("GET", "/v1/events/{index}", "GET /v1/events/{index}", Access::Read),
    route("POST", "/v1/sources/kubernetes", "POST /v1/sources/kubernetes", Access::Source),
    route("POST", "/v1/sources/openbao", "POST /v1/sources/openbao", Access::Source),
    route("POST", "/v1/sources/cloudtrail", "POST /v1/sources/cloudtrail", Access::Source),
    route("POST", "/v1/logs", "POST /v1/logs", Access::Source),
    route("GET", "/v1/proofs/inclusion", "GET /v1/proofs/inclusion", Access::Read),
    route("GET", "/v1/proofs/consistency", "GET /v1/proofs/consistency", Access::Read),
    route("GET", "/v1/stream", "GET /v1/stream", Access::Read),
    route("GET", "/v1/inventory", "GET /v1/inventory", Access::Read),
    route("GET", "/v1/log", "GET /v1/log", Access::ReadPath),
    route("GET", "/checkpoint", "GET /checkpoint", Access::ReadPath),
    route("GET", "/tile/{*path}", "GET /tile", Access::ReadPath),
    route("GET", "/graven/timestamp/{size}", "GET /graven/timestamp/{size}", Access::ReadPath),
    route("GET", "/graven/checkpoint/{size}", "GET /graven/checkpoint/{size}", Access::ReadPath),
    route("GET", "/v1/timestamps", "GET /v1/timestamps", Access::ReadPath),
    route("GET", "/healthz", "GET /healthz", Access::Public),
    route("GET", "/readyz", "GET /readyz", Access::Public),
    route("GET", "/metrics", "GET /metrics", Access::Public),
    route("GET", "/openapi.json", "GET /openapi.json", Access::Public),
    route("POST", "/v1/identities", "POST /v1/identities", Access::Admin),
    route("GET", "/v1/identities", "GET /v1/identities", Access::Admin),
    route("GET", "/v1/identities/{id}", "GET /v1/identities/{id}", Access::Admin),
    route("POST", "/v1/identities/{id}/disable", "POST /v1/identities/{id}/disable", Access::Admin),
    route("POST", "/v1/identities/{id}/enable", "POST /v1/identities/{id}/enable", Access::Admin),
    route("POST", "/v1/identities/{id}/revoke", "POST /v1/identities/{id}/revoke", Access::Admin),
    route("GET", "/v1/identities/{id}/keys", "GET /v1/identities/{id}/keys", Access::Admin),
    route("POST", "/v1/identities/{id}/keys", "POST /v1/identities/{id}/keys", Access::Admin),
    route("POST", "/v1/identities/{id}/keys/rotate", "POST /v1/identities/{id}/keys/rotate", Access::Admin),
    route(
        "POST",
        "/v1/identities/{id}/keys/{key_id}/revoke",
        "POST /v1/identities/{id}/keys/{key_id}/revoke",
        Access::Admin,
    ),
    route("GET", "/v1/identities/{id}/public-keys", "GET /v1/identities/{id}/public-keys", Access::Admin),
    route("POST", "/v1/identities/{id}/public-keys", "POST /v1/identities/{id}/public-keys", Access::Admin),
    route(
        "POST",
        "/v1/identities/{id}/public-keys/{key_id}/revoke",
        "POST /v1/identities/{id}/public-keys/{key_id}/revoke",
        Access::Admin,
    ),
];

/// The `ROUTES` entry for a request, as (label, access). HEAD is GET.
pub fn route_entry(method: &Method, path: &str) -> Option<(&'static str, Access)> {
    let m = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|r| r.method == m && r.path == path).map(|r| (r.label, r.access))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access table, the served routes and the OpenAPI document name the same operations,
    /// and none of them is a PUT, PATCH or DELETE.
    #[test]
    fn the_route_table_matches_the_openapi_document() {
        let api: serde_json::Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in api["paths"].as_object().unwrap() {
            for m in ops.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
        let table: std::collections::BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|r| r.path != "/openapi.json")
            .map(|r| (r.method.to_string(), r.path.replace("{*path}", "{path}")))
            .collect();
        assert_eq!(table, documented);
        assert!(ROUTES.iter().all(|r| r.method == "GET" || r.method == "POST"));
        for r in ROUTES {
            assert!(
                r.label.starts_with(r.method)
                    && r.path.starts_with(&r.label[r.method.len() + 1..].replace("{*path}", "")),
                "{}",
                r.label
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        assert!(ROUTES.iter().all(|r| seen.insert((r.method, r.path))), "each operation once");
    }
}
