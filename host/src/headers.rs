//! Transport headers on every answer: what a browser may do with it.
//!
//! * Pages (HTML) carry a strict Content-Security-Policy: scripts and styles
//!   from this host only, never inline, nothing evaluated from strings; the
//!   one exception is `'wasm-unsafe-eval'`, which lets the page compile the
//!   module (`WebAssembly.compileStreaming`) and nothing else. Everything
//!   else carries `default-src 'none'`. Neither may be framed
//!   (`frame-ancestors 'none'`: no clickjacking of the action menus).
//! * `Strict-Transport-Security` on a host reached over https (the same
//!   setting that makes cookies `Secure`, [`crate::Settings::secure_cookies`]).
//! * `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
//!   everywhere: a page's URL (`#/…` holds ids) never leaves in a Referer.
//! * Every JSON answer under `/v1` and `/scim/v2` is `Cache-Control:
//!   no-store`: they carry names, emails, decisions, the CSRF value. An
//!   answer that set its own caching keeps it: the module's hash URL
//!   (`immutable`) and `/v1/module` (`no-cache`) send `application/wasm`
//!   anyway, and `/health` (not under `/v1`) names only hashes.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The pages' policy. `img-src data:` is the page's empty favicon
/// (`<link rel="icon" href="data:,">`); `connect-src 'self'` the API and
/// the module's download.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'";

/// Every other answer's policy: nothing may load from it or frame it.
pub const OTHER_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// What a host reached over https sends: browsers keep to https for a
/// year (not `includeSubDomains`: sibling hosts are not this host's to
/// promise).
pub const HSTS: &str = "max-age=31536000";

/// Adds the transport headers to the answer (the router's outermost layer).
pub async fn add(State(host): State<crate::Host>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let private = path.starts_with("/v1/") || path == "/v1" || path.starts_with("/scim/v2");
    let mut response = next.run(request).await;
    let status = response.status();
    let h = response.headers_mut();
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    // A 304 has no body and no content type, and a browser takes its
    // headers over the cached answer's: a policy here would replace the
    // cached page's own (a reload ran no script under `default-src 'none'`).
    if status != StatusCode::NOT_MODIFIED {
        let csp = if content_type == "text/html" {
            PAGE_CSP
        } else {
            OTHER_CSP
        };
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if host.settings.secure_cookies {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    let json = content_type == "application/json" || content_type.ends_with("+json");
    if private && json && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
