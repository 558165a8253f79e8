//! SCIM 2.0 as RFC 7643 and RFC 7644 describe it, against the real host
//! served on a loopback port (issue 15): discovery, PUT, PATCH add /
//! replace / remove with and without paths, filters with every operator,
//! `attributes` / `excludedAttributes`, `POST /.search`, paging, `meta`
//! with ETags and `If-Match`, `Location`, errors in SCIM's shape from
//! routing too, Groups refused, and identity linking across tenants
//! (verified domains, accepted members, no other tenant's data).

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const DENIAL: &str = "urn:gatehouse:params:scim:api:messages:1.0:Denial";

/// The Acme host served on loopback, its public URL the served one.
struct S {
    t: common::T,
    base: String,
}

async fn serve() -> S {
    let mut t = common::acme().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    t.host = t.host.clone().with_settings(gatehouse_host::Settings {
        rate_limits: None,
        public_url: base.clone(),
        ..Default::default()
    });
    t.app = t.host.router();
    let app = t
        .app
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Room for new members in the agency (its 10 seats are in use).
    sqlx::query("UPDATE accounts SET extra_seats = 20 WHERE id = 'agency'")
        .execute(t.host.store.pool())
        .await
        .unwrap();
    S { t, base }
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl S {
    async fn token(&self, account: &str) -> String {
        format!(
            "Bearer {}",
            gatehouse_host::scim::create_token(&self.t.host, account)
                .await
                .unwrap()
        )
    }

    async fn req(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Res {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (status, headers, bytes) =
            common::http(method, &format!("{}{path}", self.base), &headers, body).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if !bytes.is_empty() {
            assert_eq!(
                headers["content-type"], "application/scim+json",
                "{path}: {body}"
            );
        }
        Res {
            status,
            headers,
            body,
        }
    }

    async fn create(&self, auth: &str, user: Value) -> Value {
        let r = self
            .req(Method::POST, "/scim/v2/Users", Some(auth), &[], Some(user))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

/// Asserts a SCIM error with `status` (and `scim_type`), returns it.
fn error(r: &Res, status: StatusCode, scim_type: Option<&str>) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == ERROR),
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status.as_u16().to_string(), "{}", r.body);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.body
    );
    match scim_type {
        Some(t) => assert_eq!(r.body["scimType"], t, "{}", r.body),
        None => assert!(r.body.get("scimType").is_none(), "{}", r.body),
    }
    r.body.clone()
}

fn ops(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

// ------------------------------------------------------------ discovery

#[tokio::test]
async fn discovery_says_exactly_what_is_supported() {
    let s = serve().await;
    let r = s
        .req(
            Method::GET,
            "/scim/v2/ServiceProviderConfig",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = &r.body;
    assert_eq!(c["patch"]["supported"], true, "{c}");
    assert_eq!(c["bulk"]["supported"], false, "{c}");
    assert_eq!(
        c["filter"],
        json!({"supported": true, "maxResults": 200}),
        "{c}"
    );
    assert_eq!(c["sort"]["supported"], false, "{c}");
    assert_eq!(c["etag"]["supported"], true, "{c}");
    assert_eq!(c["changePassword"]["supported"], false, "{c}");
    assert_eq!(
        c["authenticationSchemes"][0]["type"], "oauthbearertoken",
        "{c}"
    );
    let ext = "urn:gatehouse:params:scim:schemas:extension:1.0:ServiceProviderConfig";
    assert_eq!(c[ext]["unsupportedResourceTypes"], json!(["Group"]), "{c}");
    assert_eq!(
        c["meta"]["location"],
        format!("{}/scim/v2/ServiceProviderConfig", s.base)
    );

    let r = s
        .req(Method::GET, "/scim/v2/ResourceTypes", None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(r.body["totalResults"], 1, "only User: {}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], "User");
    assert_eq!(
        r.body["Resources"][0]["schemaExtensions"][0]["schema"],
        ENTERPRISE
    );
    let r = s
        .req(Method::GET, "/scim/v2/ResourceTypes/User", None, &[], None)
        .await;
    assert_eq!(r.body["endpoint"], "/Users");
    let r = s
        .req(Method::GET, "/scim/v2/ResourceTypes/Group", None, &[], None)
        .await;
    error(&r, StatusCode::NOT_FOUND, None);

    let r = s
        .req(Method::GET, "/scim/v2/Schemas", None, &[], None)
        .await;
    let ids: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for id in [USER, ENTERPRISE, DENIAL, ext] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let r = s
        .req(
            Method::GET,
            &format!("/scim/v2/Schemas/{USER}"),
            None,
            &[],
            None,
        )
        .await;
    let attrs = r.body["attributes"].as_array().unwrap();
    let attr = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert_eq!(attr("userName")["required"], true);
    assert_eq!(attr("userName")["uniqueness"], "server");
    assert_eq!(attr("externalId")["caseExact"], true);
    assert_eq!(attr("emails")["multiValued"], true);
    assert!(
        attr("name")["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "givenName")
    );
    let r = s
        .req(
            Method::GET,
            &format!("/scim/v2/Schemas/{DENIAL}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.body["attributes"][0]["name"], "reasons");
    let r = s
        .req(Method::GET, "/scim/v2/Schemas/urn:nope", None, &[], None)
        .await;
    error(&r, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn routing_errors_and_groups_are_scim_errors() {
    let s = serve().await;
    let auth = s.token("agency").await;
    let auth = Some(auth.as_str());
    for (m, p, status) in [
        (Method::GET, "/scim/v2/Groups", StatusCode::NOT_FOUND),
        (Method::POST, "/scim/v2/Groups", StatusCode::NOT_FOUND),
        (Method::GET, "/scim/v2/Groups/g1", StatusCode::NOT_FOUND),
        (Method::GET, "/scim/v2/Nothing", StatusCode::NOT_FOUND),
        (Method::GET, "/scim/v2", StatusCode::NOT_FOUND),
        (
            Method::PUT,
            "/scim/v2/Users",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::DELETE,
            "/scim/v2/ServiceProviderConfig",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/scim/v2/Users/.search",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let r = s.req(m.clone(), p, auth, &[], None).await;
        let e = error(&r, status, None);
        assert!(!e.to_string().contains("\"error\""), "{m} {p}: {e}");
    }
    let r = s.req(Method::GET, "/scim/v2/Groups", auth, &[], None).await;
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("Groups are not supported")
    );
    // No token, a wrong one: 401 with a challenge.
    let r = s.req(Method::GET, "/scim/v2/Users", None, &[], None).await;
    error(&r, StatusCode::UNAUTHORIZED, None);
    assert!(r.headers.contains_key("www-authenticate"));
    // A body too large for the host.
    let big = json!({"schemas": [USER], "userName": "x".repeat(300 * 1024)});
    let r = s
        .req(Method::POST, "/scim/v2/Users", auth, &[], Some(big))
        .await;
    error(&r, StatusCode::PAYLOAD_TOO_LARGE, Some("tooMany"));
}

// ------------------------------------------------ create, read, PUT, ETag

#[tokio::test]
async fn create_read_and_put_with_meta_location_and_etags() {
    let s = serve().await;
    let auth = s.token("agency").await;
    let a = Some(auth.as_str());
    // userName need not be an address: the address comes from emails.
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            a,
            &[],
            Some(json!({
                "schemas": [USER, ENTERPRISE],
                "userName": "zoe",
                "externalId": "00uZ",
                "name": {"givenName": "Zoe", "familyName": "Zed"},
                "emails": [{"value": "zoe@acme.test", "type": "work", "primary": true}],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
                "title": "Analyst",
                ENTERPRISE: {"department": "Sales", "employeeNumber": "42"},
                "password": "never stored",
                "id": "ignored",
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let u = r.body.clone();
    let id = u["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "ignored");
    let location = format!("{}/scim/v2/Users/{id}", s.base);
    assert_eq!(r.headers["location"], location.as_str());
    assert_eq!(u["meta"]["location"], location.as_str());
    assert_eq!(u["meta"]["resourceType"], "User");
    assert_eq!(u["meta"]["created"], "2026-01-01T00:00:00Z", "{u}");
    assert_eq!(u["meta"]["lastModified"], "2026-01-01T00:00:00Z");
    assert_eq!(u["meta"]["version"], "W/\"1\"");
    assert_eq!(r.headers["etag"], "W/\"1\"");
    assert_eq!(u["userName"], "zoe");
    assert_eq!(u["externalId"], "00uZ");
    assert_eq!(u["active"], true);
    assert_eq!(u[ENTERPRISE]["department"], "Sales");
    assert_eq!(u["schemas"], json!([USER, ENTERPRISE]));
    assert!(u.get("password").is_none(), "{u}");
    assert_eq!(
        s.t.rows(&format!("SELECT email, name FROM users WHERE id = '{id}'"))
            .await,
        vec![json!({"email": "zoe@acme.test", "name": "Zoe Zed"})]
    );

    // Read: the same resource; If-None-Match with its ETag: 304.
    let path = format!("/scim/v2/Users/{id}");
    let r = s.req(Method::GET, &path, a, &[], None).await;
    assert_eq!(r.body, u);
    let r = s
        .req(Method::GET, &path, a, &[("if-none-match", "W/\"1\"")], None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // PUT replaces the record: what it leaves out is gone; active kept.
    s.t.clock.advance(60);
    let put = json!({
        "schemas": [USER],
        "userName": "zoe.zed",
        "externalId": "00uZ2",
        "name": {"formatted": "Zoe Z."},
        "emails": [{"value": "zoe@acme.test", "primary": true}],
    });
    let r = s
        .req(
            Method::PUT,
            &path,
            a,
            &[("if-match", "W/\"1\"")],
            Some(put.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["userName"], "zoe.zed");
    assert_eq!(r.body["externalId"], "00uZ2");
    assert_eq!(r.body["name"], json!({"formatted": "Zoe Z."}));
    assert!(
        r.body.get("title").is_none() && r.body.get(ENTERPRISE).is_none(),
        "{}",
        r.body
    );
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    assert_eq!(r.body["meta"]["lastModified"], "2026-01-01T00:01:00Z");
    assert_eq!(r.body["meta"]["created"], "2026-01-01T00:00:00Z");
    let audit = s.t.last_audit().await;
    assert_eq!(audit["action"], "scim_update");
    assert_eq!(audit["decision"], "allowed");
    // The person's own name is theirs: the record changed, not the user.
    assert_eq!(
        s.t.rows(&format!("SELECT name FROM users WHERE id = '{id}'"))
            .await,
        vec![json!({"name": "Zoe Zed"})]
    );

    // A stale If-Match: 412, nothing changed; PUT, PATCH and DELETE alike.
    let r = s
        .req(Method::PUT, &path, a, &[("if-match", "W/\"1\"")], Some(put))
        .await;
    error(&r, StatusCode::PRECONDITION_FAILED, None);
    let r = s
        .req(
            Method::PATCH,
            &path,
            a,
            &[("if-match", "W/\"1\"")],
            Some(ops(json!([{"op": "add", "path": "title", "value": "x"}]))),
        )
        .await;
    error(&r, StatusCode::PRECONDITION_FAILED, None);
    let r = s
        .req(Method::DELETE, &path, a, &[("if-match", "W/\"1\"")], None)
        .await;
    error(&r, StatusCode::PRECONDITION_FAILED, None);
    let r = s.req(Method::GET, &path, a, &[], None).await;
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");

    // PUT with active false suspends (R17), and another id in the body is refused.
    let r = s
        .req(
            Method::PUT,
            &path,
            a,
            &[],
            Some(json!({"userName": "zoe.zed", "active": false})),
        )
        .await;
    assert_eq!(r.body["active"], false, "{}", r.body);
    assert_eq!(s.t.last_audit().await["action"], "scim_deactivate");
    assert_eq!(
        s.t.rows(&format!(
            "SELECT status FROM memberships WHERE user_id = '{id}'"
        ))
        .await,
        vec![json!({"status": "suspended"})]
    );
    let r = s
        .req(
            Method::PUT,
            &path,
            a,
            &[],
            Some(json!({"id": "other", "userName": "zoe.zed"})),
        )
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("mutability"));

    // A userName that is taken (without regard to case): 409 uniqueness.
    s.create(&auth, json!({"userName": "yan@acme.test"})).await;
    let r = s
        .req(
            Method::PUT,
            &path,
            a,
            &[],
            Some(json!({"userName": "YAN@acme.test"})),
        )
        .await;
    error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            a,
            &[],
            Some(json!({"userName": "Yan@Acme.test"})),
        )
        .await;
    error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    // No address anywhere: the person cannot be named.
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            a,
            &[],
            Some(json!({"userName": "no-address"})),
        )
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // No userName at all.
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            a,
            &[],
            Some(json!({"emails": [{"value": "q@acme.test"}]})),
        )
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // DELETE with the current ETag.
    let r = s.req(Method::GET, &path, a, &[], None).await;
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let r = s
        .req(Method::DELETE, &path, a, &[("if-match", &etag)], None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.req(Method::GET, &path, a, &[], None).await;
    error(&r, StatusCode::NOT_FOUND, None);
}

// ---------------------------------------------------------------- PATCH

#[tokio::test]
async fn patch_adds_replaces_and_removes_with_and_without_paths() {
    let s = serve().await;
    let auth = s.token("agency").await;
    let a = Some(auth.as_str());
    let u = s
        .create(
            &auth,
            json!({"userName": "pat@acme.test", "emails": [{"value": "pat@acme.test", "type": "work", "primary": true}]}),
        )
        .await;
    let path = format!("/scim/v2/Users/{}", u["id"].as_str().unwrap());
    let patch = |o: Value| {
        let path = path.clone();
        let s = &s;
        async move { s.req(Method::PATCH, &path, a, &[], Some(ops(o))).await }
    };

    let r = patch(json!([
        {"op": "add", "path": "title", "value": "Engineer"},
        {"op": "Replace", "path": "name.givenName", "value": "Pat"},
        {"op": "add", "path": "emails[type eq \"home\"].value", "value": "pat@home.test"},
        {"op": "replace", "path": "emails[type eq \"work\"].display", "value": "Work"},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0101", "type": "mobile"}]},
        {"op": "add", "path": format!("{ENTERPRISE}:department"), "value": "R&D"},
        {"op": "replace", "path": "externalId", "value": "ext-1"},
        {"op": "replace", "path": format!("{USER}:nickName"), "value": "P"},
    ]))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["title"], "Engineer");
    assert_eq!(b["name"], json!({"givenName": "Pat"}));
    assert_eq!(b["nickName"], "P");
    assert_eq!(b["externalId"], "ext-1");
    assert_eq!(b[ENTERPRISE]["department"], "R&D");
    assert_eq!(b["phoneNumbers"][0]["type"], "mobile");
    assert_eq!(
        b["emails"],
        json!([
            {"value": "pat@acme.test", "type": "work", "primary": true, "display": "Work"},
            {"value": "pat@home.test", "type": "home"},
        ]),
        "{b}"
    );
    assert_eq!(b["meta"]["version"], "W/\"2\"", "one change, one version");
    assert_eq!(s.t.last_audit().await["action"], "scim_update");

    // Without a path: a value object (keys may be paths), merged into complex attributes.
    let r = patch(json!([
        {"op": "replace", "value": {"displayName": "Pat P", "name.familyName": "Pike", "userName": "pat"}},
        {"op": "add", "value": {"emails": [{"value": "pat@else.test", "type": "other"}], ENTERPRISE: {"costCenter": "7"}}},
    ]))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "Pat P");
    assert_eq!(r.body["userName"], "pat");
    assert_eq!(
        r.body["name"],
        json!({"givenName": "Pat", "familyName": "Pike"})
    );
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 3);
    assert_eq!(
        r.body[ENTERPRISE],
        json!({"department": "R&D", "costCenter": "7"})
    );

    // Remove: a filtered value, a sub-attribute, a whole attribute.
    let r = patch(json!([
        {"op": "remove", "path": "emails[type eq \"other\"]"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "remove", "path": format!("{ENTERPRISE}:costCenter")},
        {"op": "remove", "path": "externalId"},
    ]))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["emails"].as_array().unwrap().len(), 2, "{b}");
    assert_eq!(b["name"], json!({"familyName": "Pike"}));
    for gone in ["title", "phoneNumbers", "externalId"] {
        assert!(b.get(gone).is_none(), "{gone}: {b}");
    }
    assert_eq!(b[ENTERPRISE], json!({"department": "R&D"}));

    // active, as the strings some identity providers send, suspends.
    let r = patch(json!([{"op": "replace", "value": {"active": "False"}}])).await;
    assert_eq!(r.body["active"], false, "{}", r.body);
    assert_eq!(s.t.last_audit().await["action"], "scim_deactivate");
    let r = patch(json!([{"op": "replace", "path": "active", "value": true}])).await;
    assert_eq!(r.body["active"], true, "{}", r.body);
    assert_eq!(s.t.last_audit().await["action"], "scim_activate");

    // Errors, each changing nothing.
    let before = s.req(Method::GET, &path, a, &[], None).await.body;
    for (o, t) in [
        (
            json!([{"op": "remove", "path": "emails[type eq \"fax\"]"}]),
            "noTarget",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
            "mutability",
        ),
        (json!([{"op": "remove", "path": "userName"}]), "mutability"),
        (
            json!([{"op": "add", "path": "shoeSize", "value": "9"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "emails[type eq]", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "add", "path": "name.shoe", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "move", "path": "title", "value": "x"}]),
            "invalidSyntax",
        ),
        (
            json!([{"op": "add", "path": "title", "value": 5}]),
            "invalidValue",
        ),
        (
            json!([{"op": "add", "path": "title", "value": "x"}, {"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
        ),
    ] {
        let r = patch(o.clone()).await;
        error(&r, StatusCode::BAD_REQUEST, Some(t));
    }
    let r = s
        .req(
            Method::PATCH,
            &path,
            a,
            &[],
            Some(json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]})),
        )
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    assert_eq!(s.req(Method::GET, &path, a, &[], None).await.body, before);
}

// ------------------------------------------------ filters, projection, paging

#[tokio::test]
async fn filters_projection_search_and_paging() {
    let s = serve().await;
    let auth = s.token("agency").await;
    let a = Some(auth.as_str());
    let mk = |n: &str, ext: &str, typ: &str| {
        json!({"userName": format!("{n}@acme.test"), "externalId": ext,
               "emails": [{"value": format!("{n}@acme.test"), "type": typ, "primary": true}], "title": n.to_uppercase()})
    };
    s.create(&auth, mk("fa", "E-1", "work")).await;
    s.t.clock.advance(3600);
    s.create(&auth, mk("fb", "e-2", "home")).await;
    s.t.clock.advance(3600);
    s.create(&auth, mk("gc", "E-3", "work")).await;
    // Ivan is the agency IdP's from the fixture; nobody else is listed.
    let all = s
        .req(Method::GET, "/scim/v2/Users", a, &[], None)
        .await
        .body;
    assert_eq!(all["totalResults"], 4, "{all}");

    let names = |r: &Value| -> Vec<String> {
        r["Resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u["userName"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let f = |filter: &str| {
        let s = &s;
        let q = format!("/scim/v2/Users?filter={}", common::enc(filter));
        async move { s.req(Method::GET, &q, a, &[], None).await }
    };
    for (filter, want) in [
        ("userName eq \"FA@acme.test\"", vec!["fa@acme.test"]),
        (
            "userName ne \"fa@acme.test\" and userName sw \"f\"",
            vec!["fb@acme.test"],
        ),
        ("userName co \"b@\"", vec!["fb@acme.test"]),
        ("userName sw \"g\"", vec!["gc@acme.test"]),
        ("userName ew \"C@ACME.TEST\"", vec!["gc@acme.test"]),
        ("externalId eq \"E-1\"", vec!["fa@acme.test"]),
        ("externalId eq \"e-1\"", vec![]),
        (
            "externalId pr",
            vec!["fa@acme.test", "fb@acme.test", "gc@acme.test"],
        ),
        ("not (externalId pr)", vec!["ivan@acme.test"]),
        ("emails.value eq \"fb@acme.test\"", vec!["fb@acme.test"]),
        ("emails eq \"fb@acme.test\"", vec!["fb@acme.test"]),
        (
            "emails[type eq \"work\" and value sw \"g\"]",
            vec!["gc@acme.test"],
        ),
        (
            "active eq true and (title eq \"FA\" or title eq \"GC\")",
            vec!["fa@acme.test", "gc@acme.test"],
        ),
        (
            "meta.lastModified gt \"2026-01-01T00:30:00Z\"",
            vec!["fb@acme.test", "gc@acme.test"],
        ),
        (
            "meta.lastModified ge \"2026-01-01T02:00:00.000Z\"",
            vec!["gc@acme.test"],
        ),
        (
            "meta.created lt \"2026-01-01T01:00:00+00:00\"",
            vec!["fa@acme.test", "ivan@acme.test"],
        ),
        (
            "meta.created le \"2026-01-01T01:00:00Z\" and userName sw \"f\"",
            vec!["fa@acme.test", "fb@acme.test"],
        ),
        (
            "userName gt \"fb\" and userName lt \"h\"",
            vec!["fb@acme.test", "gc@acme.test"],
        ),
    ] {
        let r = f(filter).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {}", r.body);
        let mut got = names(&r.body);
        got.sort();
        assert_eq!(got, want, "{filter}");
        assert_eq!(r.body["totalResults"], want.len(), "{filter}");
    }
    for bad in [
        "shoeSize eq \"9\"",
        "userName eq",
        "active gt true",
        "emails[shoe eq \"x\"]",
        "urn:nope:User:userName eq \"x\"",
        "userName co 5",
    ] {
        let r = f(bad).await;
        error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    }

    // attributes: only those, with id and schemas; excludedAttributes.
    let r = s
        .req(Method::GET, "/scim/v2/Users?filter=userName%20eq%20%22fa@acme.test%22&attributes=userName,emails.value", a, &[], None)
        .await;
    let u = &r.body["Resources"][0];
    let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["emails", "id", "schemas", "userName"], "{u}");
    assert_eq!(u["emails"], json!([{"value": "fa@acme.test"}]));
    let id = u["id"].as_str().unwrap().to_owned();
    let r = s
        .req(
            Method::GET,
            &format!("/scim/v2/Users/{id}?excludedAttributes=emails,meta,name"),
            a,
            &[],
            None,
        )
        .await;
    assert!(
        r.body.get("emails").is_none() && r.body.get("meta").is_none(),
        "{}",
        r.body
    );
    assert_eq!(r.body["userName"], "fa@acme.test");

    // POST /.search, paging by startIndex and count: pages of one, in id
    // order, cover the three exactly once.
    let search =
        |start: usize| {
            let s = &s;
            async move {
                s.req(
                Method::POST,
                "/scim/v2/Users/.search",
                a,
                &[],
                Some(json!({"schemas": [SEARCH], "filter": "userName sw \"f\" or userName sw \"g\"",
                            "startIndex": start, "count": 1, "attributes": ["userName"]})),
            )
            .await
            }
        };
    let mut pages = Vec::new();
    for start in 1..=3 {
        let r = search(start).await;
        assert_eq!(r.body["totalResults"], 3, "{}", r.body);
        assert_eq!(r.body["startIndex"], start);
        pages.extend(names(&r.body));
    }
    pages.sort();
    assert_eq!(pages, ["fa@acme.test", "fb@acme.test", "gc@acme.test"]);
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users/.search",
            a,
            &[],
            Some(
                json!({"schemas": [SEARCH], "filter": "userName sw \"f\" or userName sw \"g\"",
                        "startIndex": 2, "count": 1, "attributes": ["userName"]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(names(&r.body).len(), 1);
    let r = s
        .req(
            Method::GET,
            "/scim/v2/Users?startIndex=4&count=10",
            a,
            &[],
            None,
        )
        .await;
    assert_eq!(r.body["itemsPerPage"], 1);
    let r = s
        .req(Method::GET, "/scim/v2/Users?count=0", a, &[], None)
        .await;
    assert_eq!(r.body["totalResults"], 4);
    assert!(r.body.get("Resources").is_none(), "{}", r.body);
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users/.search",
            a,
            &[],
            Some(json!({"filter": "userName pr"})),
        )
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let r = s
        .req(Method::GET, "/scim/v2/Users?sortBy=userName", a, &[], None)
        .await;
    error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
}

// -------------------------------------------- identity linking, tenants

#[tokio::test]
async fn an_idp_links_existing_people_only_where_its_account_proved_the_domain() {
    let s = serve().await;
    let solo = s.token("solo").await;
    let a = Some(solo.as_str());
    sqlx::query("UPDATE accounts SET extra_seats = 5 WHERE id = 'solo'")
        .execute(s.t.host.store.pool())
        .await
        .unwrap();

    // Olivia is a person of another tenant (the agency); nobody@ is no one.
    // Solo has verified no domain: both are refused alike, with the reason,
    // audited; the answer cannot tell who exists elsewhere.
    let mut details = Vec::new();
    for who in ["olivia@acme.test", "nobody@acme.test"] {
        let audits = s.t.int("SELECT COUNT(*) FROM audit").await;
        let r = s
            .req(
                Method::POST,
                "/scim/v2/Users",
                a,
                &[],
                Some(json!({"userName": who, "displayName": "Mallory"})),
            )
            .await;
        let e = error(&r, StatusCode::FORBIDDEN, None);
        assert_eq!(e["schemas"], json!([ERROR, DENIAL]));
        assert_eq!(
            e[DENIAL]["reasons"][0]["policy"], "R17.scim-verified-domain",
            "{e}"
        );
        details.push(e["detail"].as_str().unwrap().replace(who, "ADDRESS"));
        assert_eq!(s.t.int("SELECT COUNT(*) FROM audit").await, audits + 1);
        assert_eq!(s.t.last_audit().await["decision"], "denied");
    }
    assert_eq!(details[0], details[1]);
    assert!(!details[0].contains("Olivia"), "{}", details[0]);

    // Verifying: an owner signed in at the domain may (over the API);
    // not at another domain, not a public mail service, not a non-owner.
    let (st, b) =
        s.t.call(
            Some("sola"),
            Method::PUT,
            "/v1/accounts/solo/domains/acme.test",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(
        b["error"]["reasons"][0]["policy"], "R17.domain-proof",
        "{b}"
    );
    let (st, b) =
        s.t.call(
            Some("sola"),
            Method::PUT,
            "/v1/accounts/solo/domains/gmail.com",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert!(
        b["error"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["policy"] == "R17.public-mail-domain"),
        "{b}"
    );
    let (st, b) =
        s.t.call(
            Some("bob"),
            Method::PUT,
            "/v1/accounts/east/domains/acme.test",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "an admin: {b}");
    let (st, b) =
        s.t.call(
            Some("sola"),
            Method::PUT,
            "/v1/accounts/solo/domains/not_a_domain",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) =
        s.t.call(
            Some("sola"),
            Method::PUT,
            "/v1/accounts/solo/domains/Solo.Test",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(s.t.last_audit().await["action"], "verify_domain");
    let (st, b) =
        s.t.call(Some("sola"), Method::GET, "/v1/accounts/solo/domains", None)
            .await;
    assert_eq!(
        (st, &b["domains"]),
        (StatusCode::OK, &json!(["solo.test"])),
        "{b}"
    );
    // A stranger sees nothing of solo's domains.
    let (st, _) =
        s.t.call(
            Some("olivia"),
            Method::GET,
            "/v1/accounts/solo/domains",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The operator verifies acme.test for solo (`gatehouse domain`).
    let db = s.t.db.location.clone();
    let (code, out) =
        common::gatehouse(&["domain", "--db", &db, "--account", "solo", "not a domain"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is not a domain name"), "{out}");
    let (code, out) =
        common::gatehouse(&["domain", "--db", &db, "--account", "solo", "ACME.test."]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("solo's verified domains: acme.test, solo.test"),
        "{out}"
    );
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            a,
            &[],
            Some(json!({"userName": "olivia@acme.test", "displayName": "Mallory", "name": {"givenName": "Mal"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The reply is solo's record: never the person's global name, never
    // anything of the agency.
    assert_eq!(r.body["id"], "olivia");
    assert_eq!(r.body["displayName"], "Mallory");
    let text = r.body.to_string();
    for other in ["Olivia Owner", "agency", "Acme Agency", "owner"] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    assert_eq!(
        s.t.rows("SELECT name FROM users WHERE id = 'olivia'").await,
        vec![json!({"name": "Olivia Owner"})],
        "the global name is never overwritten"
    );
    // Solo's IdP sees only its own records.
    let r = s.req(Method::GET, "/scim/v2/Users", a, &[], None).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = s
        .req(Method::GET, "/scim/v2/Users/ivan", a, &[], None)
        .await;
    error(&r, StatusCode::NOT_FOUND, None);

    // A person who accepted an invitation (Bob, admin of east) may be taken
    // over by east's IdP although east verified no acme.test.
    let east = s.token("east").await;
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            Some(&east),
            &[],
            Some(json!({"userName": "bob@acme.test", "externalId": "b-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        s.t.rows("SELECT role, status, managed_by_idp FROM memberships WHERE account_id = 'east' AND user_id = 'bob'").await,
        vec![json!({"role": "admin", "status": "active", "managed_by_idp": 1})]
    );
    // But not someone who is only in the agency (Sam).
    let r = s
        .req(
            Method::POST,
            "/scim/v2/Users",
            Some(&east),
            &[],
            Some(json!({"userName": "sam@acme.test"})),
        )
        .await;
    error(&r, StatusCode::FORBIDDEN, None);
}
