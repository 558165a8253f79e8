//! `host/openapi.json` against the code: every `.route(…)` in api.rs and
//! scim.rs is documented with the same path and methods (and nothing else
//! is), request bodies list the fields of the serde structs the handlers
//! take, every `$ref` resolves, and the router answers each documented
//! operation (never 405 or the "no such endpoint" fallback) the way the
//! document says (401 where a security requirement is declared).

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("host/openapi.json");
    let doc: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    assert_eq!(
        doc,
        gatehouse_host::api::OPENAPI.parse::<Value>().unwrap(),
        "the served document is not host/openapi.json"
    );
    doc
}

fn source(file: &str) -> String {
    std::fs::read_to_string(format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The text from just after an opening `(` at `open` to its matching `)`.
fn parens(s: &str, open: usize) -> &str {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut prev = ' ';
    for (i, c) in s[open..].char_indices() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return &s[open + 1..open + i];
                }
            }
            _ => {}
        }
        prev = c;
    }
    panic!("unbalanced parentheses after {}", &s[open..open + 40]);
}

/// Calls at the top level of a method-router expression such as
/// `get(me).patch(update_me)`: `[("get", "me"), ("patch", "update_me")]`.
fn calls(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let name = expr[start..i].rsplit("::").next().unwrap().to_owned();
            if i < b.len() && b[i] == b'(' {
                let inner = parens(expr, i);
                out.push((name, inner.trim().to_owned()));
                i += inner.len() + 2;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// One route of the source: path, method (lower case), handler, file.
#[derive(Debug, Clone)]
struct Route {
    path: String,
    method: String,
    handler: String,
    file: &'static str,
}

/// The source file of a handler module a route names (`crate::editor`).
fn module_file(module: &str) -> &'static str {
    match module.rsplit("::").next() {
        Some("editor") => "editor.rs",
        Some("discovery") => "scim/discovery.rs",
        other => panic!("routes name handlers in module {other:?}: add its file here"),
    }
}

fn routes() -> Vec<Route> {
    let mut out = Vec::new();
    for file in ["api.rs", "scim/mod.rs", "domains.rs"] {
        let src = source(file);
        let mut found = 0;
        for (at, _) in src.match_indices(".route(") {
            let args = parens(&src, at + ".route".len());
            let args = args.trim_start();
            assert!(
                args.starts_with('"'),
                "{file}: a route path that is not a literal: {args}"
            );
            let end = args[1..].find('"').unwrap() + 1;
            let path = args[1..end].to_owned();
            let rest = args[end + 1..].trim_start();
            let expr = rest.strip_prefix(',').expect("route(path, methods)");
            let calls = calls(expr);
            assert!(!calls.is_empty(), "{file}: no methods for {path}");
            // `any(h)`: every method this test sends.
            let calls: Vec<(String, String)> = calls
                .into_iter()
                .flat_map(|(m, h)| {
                    if m == "any" {
                        ["get", "post", "put", "patch", "delete"]
                            .map(|m| (m.to_owned(), h.clone()))
                            .to_vec()
                    } else {
                        vec![(m, h)]
                    }
                })
                .collect();
            for (method, handler) in calls {
                assert!(
                    METHODS.contains(&method.as_str()),
                    "{file}: {path}: `{method}(…)` is not a method router this test knows"
                );
                // `crate::editor::publish`: a handler in another module.
                let (file, handler) = match handler.rsplit_once("::") {
                    Some((module, name)) => (module_file(module), name.to_owned()),
                    None => (file, handler),
                };
                out.push(Route {
                    path: path.clone(),
                    method,
                    handler,
                    file,
                });
            }
            found += 1;
        }
        assert!(found > 0, "no routes found in {file}");
    }
    out
}

fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (k, op) in item.as_object().unwrap() {
            if METHODS.contains(&k.as_str()) {
                out.insert((path.clone(), k.clone()), op.clone());
            }
        }
    }
    out
}

/// Follows a local `$ref`.
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

#[test]
fn document_is_openapi_3_1_with_paths_schemes_and_error_shape() {
    let doc = doc();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));

    // Every $ref resolves.
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
    assert!(refs > 50, "{refs} refs");

    // The security schemes the host implements.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let has = |f: &dyn Fn(&Value) -> bool| schemes.values().filter(|s| f(s)).count();
    assert_eq!(
        has(&|s| s["type"] == "apiKey" && s["in"] == "cookie" && s["name"] == "gh_session"),
        1
    );
    assert_eq!(
        has(&|s| s["type"] == "apiKey"
            && s["in"] == "header"
            && s["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("x-csrf-token"))),
        1
    );
    assert_eq!(
        has(&|s| s["type"] == "http" && s["scheme"] == "bearer"),
        2,
        "API token and SCIM token"
    );

    // The error shape.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let inner = &error["properties"]["error"];
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

    // Operations: summary, unique operationId, responses, path parameters
    // that match the template, known security schemes.
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
        assert!(!responses.is_empty(), "{at}");
        for code in responses.keys() {
            assert!(
                code == "default" || (code.len() == 3 && code.parse::<u16>().is_ok()),
                "{at}: {code}"
            );
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
        let security = op["security"].as_array().expect("explicit security");
        for req in security {
            for name in req.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{at}: unknown scheme {name}");
            }
        }
        // SCIM's discovery documents and its Groups refusal need no token.
        if path.starts_with("/scim/") && !security.is_empty() {
            assert_eq!(security.len(), 1, "{at}");
            let s = &schemes[security[0].as_object().unwrap().keys().next().unwrap()];
            assert_eq!(s["scheme"], "bearer", "{at}");
        }
    }
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = doc();
    let routes = routes();
    assert!(routes.len() > 30, "{} routes", routes.len());
    let in_source: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.path.clone(), r.method.clone()))
        .collect();
    assert_eq!(in_source.len(), routes.len(), "a route is registered twice");
    let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let undocumented: Vec<_> = in_source.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

/// A serde struct's JSON fields: name → required.
struct Fields {
    fields: BTreeMap<String, bool>,
    deny_unknown: bool,
}

fn serde_struct(src: &str, name: &str) -> Fields {
    let at = src
        .find(&format!("struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    // The attributes right above it.
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let above: Vec<&str> = src[..line_start]
        .lines()
        .rev()
        .take_while(|l| {
            let l = l.trim();
            l.starts_with("#[") || l.starts_with("///")
        })
        .collect();
    let attrs = above.join("\n");
    let camel = attrs.contains("rename_all = \"camelCase\"");
    let deny_unknown = attrs.contains("deny_unknown_fields");
    let open = at + src[at..].find('{').unwrap();
    let close = open + src[open..].find('}').unwrap();
    let mut fields = BTreeMap::new();
    let mut field_attrs = String::new();
    for line in src[open + 1..close].lines() {
        let l = line.trim();
        if l.starts_with("#[") {
            field_attrs.push_str(l);
            continue;
        }
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        let l = l.strip_prefix("pub ").unwrap_or(l);
        let (ident, ty) = l.split_once(':').unwrap_or_else(|| panic!("{name}: {l}"));
        let ident = ident.trim();
        let json_name = if let Some(r) = field_attrs.split("rename = \"").nth(1) {
            r.split('"').next().unwrap().to_owned()
        } else if camel {
            let mut out = String::new();
            let mut up = false;
            for c in ident.chars() {
                if c == '_' {
                    up = true;
                } else if up {
                    out.extend(c.to_uppercase());
                    up = false;
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            ident.to_owned()
        };
        let optional = ty.trim().starts_with("Option<") || field_attrs.contains("default");
        fields.insert(json_name, !optional);
        field_attrs.clear();
    }
    assert!(!fields.is_empty(), "{name}: no fields");
    Fields {
        fields,
        deny_unknown,
    }
}

#[test]
fn request_bodies_match_the_structs_the_handlers_take() {
    let doc = doc();
    let ops = operations(&doc);
    let mut checked = 0;
    for r in routes() {
        let src = source(r.file);
        let at = src
            .find(&format!("async fn {}(", r.handler))
            .unwrap_or_else(|| panic!("no handler {} in {}", r.handler, r.file));
        let sig = &src[at..at + src[at..].find('{').unwrap()];
        let op = &ops[&(r.path.clone(), r.method.clone())];
        let at_op = format!("{} {} ({})", r.method, r.path, r.handler);
        let body_type = sig
            .split("Body<")
            .nth(1)
            .map(|t| t.split('>').next().unwrap().trim().to_owned());
        let Some(ty) = body_type else {
            assert!(
                op.get("requestBody").is_none(),
                "{at_op} takes no body but documents one"
            );
            continue;
        };
        let body = resolve(&doc, &op["requestBody"]);
        assert_eq!(body["required"], true, "{at_op}: the body is required");
        let content = body["content"].as_object().expect("content");
        assert!(content.contains_key("application/json"), "{at_op}");
        if r.path.starts_with("/scim/") {
            assert!(content.contains_key("application/scim+json"), "{at_op}");
        }
        let schema = resolve(&doc, &content["application/json"]["schema"]);
        // A SCIM User is read as JSON and checked attribute by attribute
        // (scim/resource.rs): the document says it is an object.
        if ty == "Value" {
            assert_eq!(schema["type"], "object", "{at_op}");
            checked += 1;
            continue;
        }
        // `patch::PatchBody`: a struct in a submodule of scim/.
        let (src, ty) = match ty.rsplit_once("::") {
            Some((module, t)) => (source(&format!("scim/{module}.rs")), t.to_owned()),
            None => (src, ty),
        };
        let want = serde_struct(&src, &ty);
        let props: BTreeSet<String> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{at_op}: no properties"))
            .keys()
            .cloned()
            .collect();
        let fields: BTreeSet<String> = want.fields.keys().cloned().collect();
        if want.deny_unknown {
            assert_eq!(props, fields, "{at_op}: properties of {ty}");
            assert_eq!(
                schema["additionalProperties"], false,
                "{at_op}: {ty} denies unknown fields"
            );
        } else {
            assert!(fields.is_subset(&props), "{at_op}: {fields:?} ⊄ {props:?}");
            assert_ne!(schema["additionalProperties"], false, "{at_op}");
        }
        let required: BTreeSet<String> = schema["required"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let must: BTreeSet<String> = want
            .fields
            .iter()
            .filter(|(_, req)| **req)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(required, must, "{at_op}: required fields of {ty}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} bodies checked");
}

#[tokio::test]
async fn the_router_answers_every_documented_operation_as_documented() {
    let t = common::acme().await;
    let doc = doc();
    for ((path, method), op) in operations(&doc) {
        let uri = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = Request::builder().method(m).uri(&uri);
        let req = if op.get("requestBody").is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
            req.body(Body::from("{}")).unwrap()
        } else {
            req.body(Body::empty()).unwrap()
        };
        let (s, b) = t.send(req).await;
        let at = format!("{method} {uri}");
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{at}: {b}");
        assert!(
            !(s == StatusCode::NOT_FOUND
                && b["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no such endpoint"))),
            "{at}: {b}"
        );
        let secured = !op["security"].as_array().unwrap().is_empty();
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
