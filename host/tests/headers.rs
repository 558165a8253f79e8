//! Transport headers of a real `gatehouse serve` over a socket: a strict
//! Content-Security-Policy on the pages (the module compiles under
//! `'wasm-unsafe-eval'`, no inline script), no framing, no sniffing, no
//! referrer; `Cache-Control: no-store` on every `/v1` and `/scim/v2` JSON
//! answer (personal data, the CSRF value) while the module's hash URL stays
//! immutable and `/health` keeps its caching; `Secure` cookies named
//! `__Host-…` when the host is reached over https.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde_json::Value;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A pages directory with one page and one hashed asset.
fn pages(dir: &common::TempDir) -> String {
    let www = dir.0.join("www");
    std::fs::create_dir_all(www.join("assets")).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><html><head><script type=\"module\" src=\"/assets/app-1234.js\"></script></head><body></body></html>",
    )
    .unwrap();
    std::fs::write(www.join("assets/app-1234.js"), "console.log('hi');").unwrap();
    www.to_string_lossy().into_owned()
}

/// An Acme store served by a real host with pages and `extra` flags.
async fn acme_server(extra: &[&str]) -> (common::T, common::Server) {
    let t = common::acme().await;
    let www = pages(&t.dir);
    let module = common::module_path();
    let mut args = vec![
        "--db",
        &t.db.location,
        "--module",
        module.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--www",
        &www,
    ];
    args.extend_from_slice(extra);
    let server = common::serve("headers", &args);
    (t, server)
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no `{name}` header in {h:?}"))
}

/// The directives of a Content-Security-Policy, by name.
fn directives(csp: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

/// Headers every answer carries, page or API.
fn assert_everywhere(h: &HeaderMap, what: &str) {
    assert_eq!(get(h, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get(h, "referrer-policy"), "no-referrer", "{what}");
    let csp = directives(get(h, "content-security-policy"));
    assert_eq!(
        csp.get("frame-ancestors").map(Vec::as_slice),
        Some(&["'none'".to_owned()][..]),
        "{what}: {csp:?}"
    );
}

#[tokio::test]
async fn a_page_is_served_under_a_strict_content_security_policy() {
    let (_t, server) = acme_server(&[]).await;
    for path in ["/", "/index.html"] {
        let (s, h, _) =
            common::http(Method::GET, &format!("{}{path}", server.base), &[], None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(get(&h, "content-type").starts_with("text/html"), "{path}");
        assert_everywhere(&h, path);
        let csp = directives(get(&h, "content-security-policy"));
        // Scripts from the host only, and the module compiled from bytes:
        // nothing inline, nothing evaluated from strings.
        assert_eq!(
            csp["script-src"],
            ["'self'", "'wasm-unsafe-eval'"],
            "{path}: {csp:?}"
        );
        assert_eq!(csp["default-src"], ["'none'"], "{path}: {csp:?}");
        for (name, sources) in &csp {
            for bad in ["'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"] {
                assert!(
                    !sources.iter().any(|s| s == bad),
                    "{path}: {name} allows {bad}: {csp:?}"
                );
            }
        }
        assert_eq!(csp["object-src"], ["'none'"], "{path}: {csp:?}");
        assert_eq!(csp["base-uri"], ["'none'"], "{path}: {csp:?}");
        assert_eq!(csp["connect-src"], ["'self'"], "{path}: {csp:?}");
        // Pages revalidate; they carry nobody's data.
        assert_eq!(get(&h, "cache-control"), "no-cache", "{path}");
        // A revalidation (a reload) answers 304 without a body: a browser
        // takes its headers over the cached page's, so a CSP there would
        // replace the page's own (a reload once got `default-src 'none'`
        // and ran no script).
        let modified = get(&h, "last-modified").to_owned();
        let (s, h, _) = common::http(
            Method::GET,
            &format!("{}{path}", server.base),
            &[("if-modified-since", modified.as_str())],
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED, "{path} revalidated");
        assert!(
            h.get(header::CONTENT_SECURITY_POLICY).is_none(),
            "{path}: a 304 must not replace the page's CSP: {h:?}"
        );
    }
    // Hashed assets stay cached for good.
    let (s, h, _) = common::http(
        Method::GET,
        &format!("{}/assets/app-1234.js", server.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get(&h, "cache-control"), IMMUTABLE);
    assert_eq!(get(&h, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn json_with_personal_data_is_never_stored_and_the_module_stays_immutable() {
    let (t, server) = acme_server(&[]).await;
    let base = &server.base;
    let token = common::cluster::api_tokens(&t, &["olivia".to_owned()]).await["olivia"].clone();
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    // Reads with names and emails, errors, the SCIM face: all no-store.
    for (path, headers, status) in [
        ("/v1/accounts/agency/members", &auth[..], StatusCode::OK),
        ("/v1/me", &auth[..], StatusCode::OK),
        ("/v1/accounts", &[][..], StatusCode::UNAUTHORIZED),
        ("/v1/nothing-here", &[][..], StatusCode::NOT_FOUND),
        ("/scim/v2/Users", &[][..], StatusCode::UNAUTHORIZED),
    ] {
        let (s, h, body) = common::http(Method::GET, &format!("{base}{path}"), headers, None).await;
        assert_eq!(s, status, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(get(&h, "content-type").contains("json"), "{path}");
        assert_eq!(get(&h, "cache-control"), "no-store", "{path}");
        assert_everywhere(&h, path);
    }

    // The CSRF value comes back on redeem: no-store as well.
    let (s, h, body) = common::sign_in(base, &t.host.store, "olivia@acme.test").await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["csrf"].is_string());
    assert_eq!(get(&h, "cache-control"), "no-store", "redeem");

    // /health names the module and keeps no Cache-Control of ours.
    let (s, h, body) = common::http(Method::GET, &format!("{base}/health"), &[], None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get(header::CACHE_CONTROL).is_none(), "/health: {h:?}");
    assert_everywhere(&h, "/health");
    let health: Value = serde_json::from_slice(&body).unwrap();

    // The module's hash URL stays cached for a year; /v1/module revalidates.
    let url = health["module_url"].as_str().unwrap();
    let (s, h, _) = common::http(
        Method::GET,
        &format!("{base}{url}"),
        &[("accept-encoding", "br")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get(&h, "cache-control"), IMMUTABLE, "{url}");
    assert_eq!(get(&h, "content-type"), "application/wasm");
    assert_eq!(get(&h, "x-content-type-options"), "nosniff");
    let (s, h, _) = common::http(Method::GET, &format!("{base}/v1/module"), &[], None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get(&h, "cache-control"), "no-cache", "/v1/module");
}

/// Signs olivia in through the host: (status, every Set-Cookie, body).
async fn redeem(t: &common::T, base: &str) -> (StatusCode, Vec<String>, Value) {
    let (s, h, body) = common::sign_in(base, &t.host.store, "olivia@acme.test").await;
    let cookies = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (s, cookies, serde_json::from_slice(&body).unwrap())
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn cookies_are_secure_and_host_prefixed_behind_https() {
    for extra in [
        &["--public-url", "https://gatehouse.example"][..],
        &["--public-url", "HTTPS://gatehouse.example/"][..],
        &["--secure-cookies"][..],
    ] {
        let (t, server) = acme_server(extra).await;
        let (s, cookies, body) = redeem(&t, &server.base).await;
        assert_eq!(s, StatusCode::OK, "{extra:?}: {body}");
        assert_eq!(cookies.len(), 2, "{extra:?}: {cookies:?}");
        // The sign-in binding is cleared, under its own __Host- name.
        let binding = &cookies[1];
        assert!(
            binding.starts_with("__Host-gh_sign_in=;"),
            "{extra:?}: {binding}"
        );
        assert!(
            attributes(binding).iter().any(|a| a == "secure"),
            "{binding}"
        );
        let set = &cookies[0];
        assert!(set.starts_with("__Host-gh_session="), "{extra:?}: {set}");
        let attrs = attributes(set);
        for want in ["secure", "httponly", "samesite=strict", "path=/"] {
            assert!(
                attrs.iter().any(|a| a == want),
                "{extra:?}: no {want}: {set}"
            );
        }
        assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{set}");
        let secret = set
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("__Host-gh_session=")
            .unwrap();
        // The prefixed cookie signs in; the unprefixed name is not read.
        let me = format!("{}/v1/me", server.base);
        let prefixed = format!("__Host-gh_session={secret}");
        let (s, _, _) = common::http(Method::GET, &me, &[("cookie", &prefixed)], None).await;
        assert_eq!(s, StatusCode::OK, "{extra:?}");
        let plain = format!("gh_session={secret}");
        let (s, _, _) = common::http(Method::GET, &me, &[("cookie", &plain)], None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{extra:?}");
        // Signing out clears the same cookie, with the same attributes.
        let csrf = body["csrf"].as_str().unwrap();
        let (s, h, _) = common::http(
            Method::POST,
            &format!("{}/v1/auth/sign-out", server.base),
            &[("cookie", &prefixed), ("x-csrf-token", csrf)],
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{extra:?}");
        let cleared = get(&h, "set-cookie");
        assert!(cleared.starts_with("__Host-gh_session=;"), "{cleared}");
        let attrs = attributes(cleared);
        assert!(attrs.iter().any(|a| a == "secure"), "{cleared}");
        assert!(attrs.iter().any(|a| a == "max-age=0"), "{cleared}");
    }
}

#[tokio::test]
async fn cookies_over_plain_http_are_not_secure() {
    let (t, server) = acme_server(&["--public-url", "http://127.0.0.1:9"]).await;
    let (s, cookies, body) = redeem(&t, &server.base).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for set in &cookies {
        assert!(
            set.starts_with("gh_session=") || set.starts_with("gh_sign_in="),
            "{set}"
        );
        assert!(!attributes(set).iter().any(|a| a == "secure"), "{set}");
    }
    // And no promise to stay on https.
    let (_, h, _) = common::http(Method::GET, &format!("{}/health", server.base), &[], None).await;
    assert!(!h.contains_key("strict-transport-security"), "{h:?}");
}

#[tokio::test]
async fn a_host_behind_https_asks_browsers_to_stay_on_https() {
    let (_t, server) = acme_server(&["--public-url", "https://gatehouse.example"]).await;
    for path in ["/health", "/v1/accounts", "/"] {
        let (_, h, _) =
            common::http(Method::GET, &format!("{}{path}", server.base), &[], None).await;
        assert_eq!(
            get(&h, "strict-transport-security"),
            "max-age=31536000",
            "{path}"
        );
    }
}
