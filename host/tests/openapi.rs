//! The generated OpenAPI document against the real router: the router and
//! the document come from one list (`api::routes()`, utoipa-axum's
//! `routes!`), and these tests walk both. Every documented operation is
//! routed (never 405 or the "no such endpoint" fallback), every other
//! method on a documented path is a 405 (the same methods, nothing else),
//! every path the router knows is documented, every `$ref` resolves, and
//! what the router answers an unauthenticated or an owner's request is a
//! status the document lists for that operation.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn doc() -> Value {
    serde_json::to_value(gatehouse_host::api::document()).unwrap()
}

fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (k, op) in item.as_object().unwrap() {
            if METHODS.contains(&k.as_str()) || ["head", "options", "trace"].contains(&k.as_str()) {
                out.insert((path.clone(), k.clone()), op.clone());
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let target = doc
                .pointer(r.strip_prefix('#').expect("a local $ref"))
                .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// A documented path with every parameter filled in.
fn uri(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn request(method: &Method, uri: &str, body: bool, scim: bool) -> Request<Body> {
    let req = Request::builder().method(method.clone()).uri(uri);
    if body {
        let ct = if scim {
            "application/scim+json"
        } else {
            "application/json"
        };
        req.header(header::CONTENT_TYPE, ct)
            .body(Body::from("{}"))
            .unwrap()
    } else {
        req.body(Body::empty()).unwrap()
    }
}

fn is_fallback(s: StatusCode, b: &Value) -> bool {
    s == StatusCode::NOT_FOUND
        && b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such endpoint"))
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let t = common::acme().await;
    let (s, served) = t
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(served, doc());
}

#[test]
fn document_is_openapi_3_1_with_schemes_refs_and_the_error_shape() {
    let doc = doc();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    fn walk(doc: &Value, v: &Value, n: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    resolve(doc, v);
                    assert!(r.starts_with("#/"), "{r}");
                    *n += 1;
                }
                m.values().for_each(|x| walk(doc, x, n));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(doc, x, n)),
            _ => {}
        }
    }
    let mut refs = 0;
    walk(&doc, &doc, &mut refs);
    assert!(refs > 100, "{refs} refs");

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let has = |f: &dyn Fn(&Value) -> bool| schemes.values().filter(|s| f(s)).count();
    assert_eq!(
        has(&|s| s["type"] == "apiKey" && s["in"] == "cookie" && s["name"] == "gh_session"),
        1
    );
    assert_eq!(
        has(&|s| s["type"] == "apiKey" && s["in"] == "header" && s["name"] == "X-CSRF-Token"),
        1
    );
    assert_eq!(
        has(&|s| s["type"] == "http" && s["scheme"] == "bearer"),
        2,
        "API token and SCIM token"
    );

    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], json!(["error"]));
    let inner = resolve(&doc, &error["properties"]["error"]);
    for p in ["code", "message", "reasons", "audit_id"] {
        assert!(inner["properties"][p].is_object(), "error.{p}");
    }
    let req: BTreeSet<&str> = inner["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(req, BTreeSet::from(["code", "message"]));

    let mut ids = BTreeSet::new();
    for ((path, method), op) in operations(&doc) {
        let at = format!("{method} {path}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}"
        );
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "{at}: duplicate operationId"
        );
        let responses = op["responses"].as_object().expect("responses");
        for code in ["500", "503"] {
            assert!(responses.contains_key(code), "{at}: no {code}");
        }
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p["in"] == "path")
                    .inspect(|p| assert_eq!(p["required"], true, "{at}: {p}"))
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(in_template, declared, "{at}: path parameters");
        let security = op["security"].as_array().cloned().unwrap_or_default();
        for req in &security {
            for name in req.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{at}: unknown scheme {name}");
            }
        }
        if !security.is_empty() {
            assert!(responses.contains_key("401"), "{at}: secured, no 401");
        }
        if let Some(body) = op.get("requestBody") {
            let body = resolve(&doc, body);
            assert_eq!(body["required"], true, "{at}: the body is required");
            for code in ["400", "413", "415"] {
                assert!(responses.contains_key(code), "{at}: a body and no {code}");
            }
            let content = body["content"].as_object().unwrap();
            let ct = if path.starts_with("/scim/") {
                "application/scim+json"
            } else {
                "application/json"
            };
            assert!(content.contains_key(ct), "{at}: {content:?}");
        }
        if path.starts_with("/scim/") {
            // /Users takes the account's SCIM token; the discovery
            // documents and the Groups refusal hold no tenant data.
            if path.starts_with("/scim/v2/Users") {
                assert_eq!(security, vec![json!({"scimToken": []})], "{at}");
            } else {
                assert!(security.is_empty(), "{at}: {security:?}");
            }
            for (code, r) in responses {
                let r = resolve(&doc, r);
                if let Some(c) = r["content"].as_object() {
                    assert!(
                        c.keys().all(|k| k == "application/scim+json"),
                        "{at} {code}: {c:?}"
                    );
                }
            }
        }
    }
    // The 65 operations of the API: 53 of /v1 and the host, 12 of SCIM.
    assert_eq!(ids.len(), 65, "{ids:?}");
    assert_eq!(
        ids.iter().filter(|i| i.starts_with("scim_")).count(),
        12,
        "{ids:?}"
    );
}

/// For every documented path, each method answers as documented: a
/// documented method is routed (never 405, never the fallback), any other
/// is the router's 405. A route with a method the document does not list
/// fails here as a 405 that is missing; one the router lacks as a 405 or
/// the fallback where the document promises an operation.
#[tokio::test]
async fn every_documented_path_has_exactly_the_documented_methods() {
    let t = common::acme().await;
    let doc = doc();
    let ops = operations(&doc);
    let paths: BTreeSet<String> = ops.keys().map(|(p, _)| p.clone()).collect();
    for path in &paths {
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let documented = ops.get(&(path.clone(), method.to_owned()));
            let body = documented.is_some_and(|op| op.get("requestBody").is_some());
            let (s, b) = t
                .send(request(&m, &uri(path), body, path.starts_with("/scim/")))
                .await;
            let at = format!("{method} {path}");
            if documented.is_some() {
                assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{at}: {b}");
                assert!(!is_fallback(s, &b), "{at}: {b}");
            } else {
                assert_eq!(
                    s,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{at} is routed but not documented: {b}"
                );
            }
        }
    }
    // A path nobody routes is the fallback, not an operation.
    let (s, b) = t
        .send(request(&Method::GET, "/v1/not-a-route", false, false))
        .await;
    assert!(is_fallback(s, &b), "{s} {b}");
}

/// The router's list and the document's are one: every route `routes()`
/// registers is a path of the document with the same operations, and the
/// SCIM sub-document is merged whole.
#[test]
fn the_router_list_is_the_document() {
    let (_, from_routes) = gatehouse_host::api::routes().split_for_parts();
    let routed = serde_json::to_value(from_routes).unwrap();
    let scim = serde_json::to_value(gatehouse_host::scim::routes().into_openapi()).unwrap();
    let doc = doc();
    let keys = |d: &Value| -> BTreeSet<(String, String)> { operations(d).into_keys().collect() };
    let all: BTreeSet<_> = keys(&routed).union(&keys(&scim)).cloned().collect();
    assert_eq!(keys(&doc), all);
    assert!(keys(&routed).len() >= 51);
    assert!(keys(&scim).len() >= 10);
}

#[tokio::test]
async fn unauthenticated_requests_get_a_documented_answer() {
    let t = common::acme().await;
    let doc = doc();
    for ((path, method), op) in operations(&doc) {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = op.get("requestBody").is_some();
        let (s, b) = t
            .send(request(&m, &uri(&path), body, path.starts_with("/scim/")))
            .await;
        let at = format!("{method} {path}");
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if secured {
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{at} declares security: {b}");
        } else {
            assert_ne!(
                s,
                StatusCode::UNAUTHORIZED,
                "{at} declares no security: {b}"
            );
        }
        assert!(
            op["responses"].get(s.as_str()).is_some(),
            "{at}: answered {s}, which is not documented"
        );
    }
}

/// Olivia (an owner of the agency) asks every `/v1` operation with an
/// empty body where one is taken: each answer's status is one the document
/// lists for that operation. (`cargo xtask api-fuzz` goes much further.)
#[tokio::test]
async fn an_owners_requests_get_documented_answers() {
    let t = common::acme().await;
    let doc = doc();
    let token = t.token("olivia").await;
    for ((path, method), op) in operations(&doc) {
        if path.starts_with("/scim/") {
            continue;
        }
        let path_filled = path
            .replace("{account}", "agency")
            .replace("{user}", "bea")
            .replace("{id}", "x")
            .replace("{file}", "x.wasm");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = op.get("requestBody").is_some().then(|| json!({}));
        let (s, b) = t.call_bearer(&token, m, &path_filled, body).await;
        let at = format!("{method} {path_filled}");
        assert!(
            op["responses"].get(s.as_str()).is_some(),
            "{at}: answered {s}, which is not documented: {b}"
        );
    }
}
