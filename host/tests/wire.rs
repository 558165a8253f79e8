//! The module on the wire: `/v1/module/<sha256>.wasm` (immutable, content
//! negotiated, precompressed at bake time), `/v1/module` (the live one,
//! revalidated), 404 for a hash no version has, and a published version at
//! its own hash before and after the host swaps to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gatehouse_bake::Encoding;
use gatehouse_bake::wire::decodes_to;
use gatehouse_host::{Clock, Gate, Host};
use http_body_util::BodyExt;
use tower::ServiceExt;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn get(
    app: &axum::Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().method(Method::GET).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let h = res.headers().clone();
    (
        status,
        h,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn module_file() -> Vec<u8> {
    std::fs::read(common::module_path()).unwrap()
}

#[tokio::test]
async fn the_hash_url_is_immutable_and_sends_what_the_browser_accepts() {
    let t = common::acme().await;
    let module = module_file();
    let (s, health) = t.call(None, Method::GET, "/health", None).await;
    assert_eq!(s, StatusCode::OK);
    let sha = health["module_sha256"].as_str().unwrap().to_owned();
    let url = format!("/v1/module/{sha}.wasm");
    assert_eq!(health["module_url"], url.as_str(), "{health}");

    for (accept, encoding) in [
        ("gzip, deflate, br, zstd", Some(Encoding::Brotli)),
        ("br", Some(Encoding::Brotli)),
        ("gzip", Some(Encoding::Gzip)),
        ("br;q=0, gzip", Some(Encoding::Gzip)),
        ("identity", None),
        ("", None),
    ] {
        let (s, h, body) = get(&t.app, &url, &[("accept-encoding", accept)]).await;
        assert_eq!(s, StatusCode::OK, "{accept}");
        assert_eq!(h[header::CONTENT_TYPE], "application/wasm", "{accept}");
        assert_eq!(h[header::CACHE_CONTROL], IMMUTABLE, "{accept}");
        assert_eq!(h[header::VARY], "accept-encoding", "{accept}");
        assert_eq!(
            h[header::CONTENT_LENGTH].to_str().unwrap(),
            body.len().to_string(),
            "{accept}"
        );
        // The host still announces the live module on every response.
        assert_eq!(h["x-gatehouse-module-sha256"], sha.as_str(), "{accept}");
        match encoding {
            Some(e) => {
                assert_eq!(h[header::CONTENT_ENCODING], e.token(), "{accept}");
                assert!(decodes_to(e, &body, &module), "{accept}: not the module");
                assert!(
                    body.len() < module.len() / 3,
                    "{accept}: {} bytes",
                    body.len()
                );
                assert_eq!(
                    h[header::ETAG].to_str().unwrap(),
                    format!("\"{sha}.{}\"", e.extension())
                );
            }
            None => {
                assert!(!h.contains_key(header::CONTENT_ENCODING), "{accept}");
                assert_eq!(body.as_ref(), module.as_slice(), "{accept}");
                assert_eq!(h[header::ETAG].to_str().unwrap(), format!("\"{sha}\""));
            }
        }
    }
    // No Accept-Encoding at all: the bytes as they are.
    let (_, h, body) = get(&t.app, &url, &[]).await;
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    assert_eq!(body.as_ref(), module.as_slice());

    // A client holding the brotli copy revalidates to 304; the ETag of the
    // identity bytes does not match the brotli ones.
    let etag = format!("\"{sha}.br\"");
    let (s, h, body) = get(
        &t.app,
        &url,
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h[header::CACHE_CONTROL], IMMUTABLE);
    assert_eq!(h[header::VARY], "accept-encoding");
    let (s, _, _) = get(
        &t.app,
        &url,
        &[
            ("accept-encoding", "br"),
            ("if-none-match", &format!("\"{sha}\"")),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn v1_module_stays_the_live_module_revalidated_and_compressed_too() {
    let t = common::acme().await;
    let module = module_file();
    let sha = t.host.gate.module_sha256();
    let (s, h, body) = get(&t.app, "/v1/module", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    assert_eq!(h[header::CONTENT_ENCODING], "br");
    assert_eq!(h[header::VARY], "accept-encoding");
    assert_eq!(h["x-gatehouse-module-sha256"], sha.as_str());
    assert_eq!(
        h["x-gatehouse-policy-hash"],
        t.host.gate.policy_hash().as_str()
    );
    assert!(decodes_to(Encoding::Brotli, &body, &module));
    let (s, _, _) = get(
        &t.app,
        "/v1/module",
        &[
            ("accept-encoding", "gzip, br"),
            ("if-none-match", &format!("\"{sha}.br\"")),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn an_unknown_hash_is_a_404_in_the_api_shape() {
    let t = common::acme().await;
    let sha = t.host.gate.module_sha256();
    for path in [
        format!("/v1/module/{}.wasm", "0".repeat(64)),
        format!("/v1/module/{}.wasm", sha.to_uppercase()),
        format!("/v1/module/{sha}"),
        format!("/v1/module/{}.wasm", &sha[1..]),
        "/v1/module/gatehouse.wasm".to_owned(),
    ] {
        let (s, body) = t.call(None, Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("module_url"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_published_version_is_at_its_hash_before_and_after_the_host_swaps_to_it() {
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "wire.db");
    let store = db.open().await;
    // A gate of its own: this test swaps it.
    let gate = Gate::from_file(&common::module_path()).unwrap();
    let host = Host::new(store.clone(), gate.clone(), Clock::manual(common::NOW));
    let app = host.router();
    let old = module_file();
    let old_sha = gate.module_sha256();

    // Another policy set, baked and compressed as a publish does, recorded
    // as a version the host does not serve yet.
    let policies = common::policies_with("wire-comment", "r16_leave.cedar", |t| {
        format!("// Reviewed for the wire test.\n{t}")
    });
    let bundle = gatehouse_bake::read_policies(&policies).unwrap();
    let baked = gatehouse_bake::bake_bytes(&old, &bundle).unwrap();
    let precompressed = gatehouse_bake::precompress(&baked.module).unwrap();
    let new_sha = baked.module_sha256.clone();
    assert_ne!(new_sha, old_sha);
    let new_url = format!("/v1/module/{new_sha}.wasm");
    let (s, _, _) = get(&app, &new_url, &[("accept-encoding", "br")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing published yet");
    gatehouse_host::versions::record(
        &store,
        &gatehouse_host::versions::NewVersion {
            module: &baked.module,
            module_sha256: &new_sha,
            policy_hash: &baked.policy_hash,
            author: "wire test",
            message: "a comment",
            at: common::NOW,
            rollback_of: None,
            precompressed: Some(&precompressed),
            seen: gatehouse_host::versions::Seen::Version(None),
        },
    )
    .await
    .unwrap();

    // From the store, before any host runs it.
    let (s, h, body) = get(&app, &new_url, &[("accept-encoding", "br")]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_ENCODING], "br");
    assert_eq!(h[header::CACHE_CONTROL], IMMUTABLE);
    assert_eq!(body.as_ref(), precompressed.br.as_slice());
    assert_eq!(
        h["x-gatehouse-module-sha256"],
        old_sha.as_str(),
        "the live one is announced"
    );

    // The host swaps (as its watcher does): /health names the new URL, and
    // the old module stays at its own for pages that have not moved yet.
    let v = gatehouse_host::versions::refresh(&gate, &store, None)
        .await
        .unwrap();
    assert_eq!(v.map(|v| v.module_sha256), Some(new_sha.clone()));
    let (_, h, body) = get(&app, "/health", &[]).await;
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["module_url"], new_url.as_str());
    assert_eq!(h["x-gatehouse-module-sha256"], new_sha.as_str());
    let (s, h, body) = get(&app, &new_url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert!(decodes_to(Encoding::Gzip, &body, &baked.module));
    let (s, h, body) = get(
        &app,
        &format!("/v1/module/{old_sha}.wasm"),
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the module served before the swap");
    assert_eq!(h[header::CONTENT_ENCODING], "br");
    assert!(decodes_to(Encoding::Brotli, &body, &old));
    // /v1/module follows the swap.
    let (_, h, body) = get(&app, "/v1/module", &[]).await;
    assert_eq!(h["x-gatehouse-module-sha256"], new_sha.as_str());
    assert_eq!(body.as_ref(), baked.module.as_slice());
}
