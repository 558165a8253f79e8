//! The OpenAPI document served at `/openapi.json`, generated: the paths
//! and schemas from the handlers' `#[utoipa::path]` and the request and
//! response types of `gatehouse-api` ([`crate::api::routes`]), SCIM's from
//! [`crate::scim::routes`], and the answers every operation can get
//! from the layers around the handlers (authentication, the body limits,
//! the per-peer budgets, the time limit, an internal error) added here from
//! what each operation is: secured, taking a body, behind a budgeted door.

use std::sync::OnceLock;

use axum::http::Method;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::Ref;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr};

/// The document's fixed parts: info, tags and security schemes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Who may do what to whom in a multi-account SaaS, with every denial explained. Every decision is the one WebAssembly module's (Cedar policies); the host gathers facts and applies allowed changes with their audit record. Generated from the Rust types and handlers: do not edit.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "host", description = "Health, this document, metrics"),
        (name = "module", description = "The one WebAssembly module the pages load"),
        (name = "auth", description = "Sign-in links, sessions, API tokens"),
        (name = "me", description = "The signed-in user"),
        (name = "accounts", description = "The account switcher"),
        (name = "members", description = "Members and what the caller may do to them"),
        (name = "seats", description = "Seats"),
        (name = "invitations", description = "Invitations"),
        (name = "owners", description = "Owner-removal requests"),
        (name = "bulk", description = "Bulk removals (jobs)"),
        (name = "audit", description = "The audit log"),
        (name = "demo", description = "Demo mode"),
        (name = "policies", description = "The policy editor"),
        (name = "scim", description = "SCIM 2.0 provisioning (RFC 7644)"),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookieSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "gh_session",
                "Browser session from POST /v1/auth/redeem (HttpOnly, SameSite=Strict). Named `__Host-gh_session` (and `Secure`) on a host reached over https; only the name the host sets is read.",
            ))),
        );
        components.add_security_scheme(
            "csrfToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's csrf value; required with the cookie on every state-changing call.",
            ))),
        );
        components.add_security_scheme(
            "apiToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ght_…")
                    .description(Some(
                        "An API token from POST /v1/tokens or `gatehouse token`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "scimToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ghscim_…")
                    .description(Some(
                        "An account's SCIM token (`gatehouse scim-token`); only for /scim/v2.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers the layers give, as `(status, component name, description)`.
const LAYER_ANSWERS: [(&str, &str, &str); 8] = [
    (
        "400",
        "BadRequest",
        "Malformed request: bad JSON, an unknown or missing field, a bad value, a path or query that does not fit (code bad_request).",
    ),
    (
        "401",
        "Unauthenticated",
        "No valid session or API token (code unauthenticated), or the session was signed out of this account.",
    ),
    (
        "403",
        "Forbidden",
        "Denied by the module with the determining policies' reasons (code denied, audited for changes), a cookie call without the X-CSRF-Token header (code csrf), or an API token used beyond its scope (code token_scope).",
    ),
    (
        "413",
        "TooLarge",
        "The body is larger than 256 KiB (code too_large).",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not sent as application/json (code unsupported_media_type).",
    ),
    (
        "429",
        "RateLimited",
        "Too many requests from this address at this door (code rate_limited); Retry-After says when to come back.",
    ),
    (
        "500",
        "Internal",
        "Something broke inside; nothing was applied; the message carries an incident token only (code internal).",
    ),
    (
        "503",
        "Unavailable",
        "The request ran past the host's time limit (code timeout) or the store was busy with conflicting changes (code busy): nothing was applied, try again.",
    ),
];

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

/// Adds the layers' answers to every operation of the `/v1` API and the
/// host's own paths (SCIM's document lists its own).
fn add_layer_answers(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description) in LAYER_ANSWERS {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(error_response(description)));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with("/scim/") {
            continue;
        }
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op.as_mut() else { continue };
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let body = op.request_body.is_some();
            let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let door = crate::limits::Door::of(&method, path).is_some();
            for (status, name, _) in LAYER_ANSWERS {
                let applies = match status {
                    "400" => body || params,
                    "401" | "403" => secured,
                    "413" | "415" => body,
                    "429" => door,
                    _ => true,
                };
                if applies {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The whole document: the API's routes, SCIM's, and the layers' answers.
pub fn document() -> OpenApi {
    let mut doc = crate::api::routes().into_openapi();
    doc.merge(crate::scim::routes().into_openapi());
    add_layer_answers(&mut doc);
    doc
}

/// [`document`] as the JSON `/openapi.json` serves, built once.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string_pretty(&document()).unwrap_or_else(|e| {
            crate::logging::error(&format!("the OpenAPI document does not serialize: {e}"));
            String::from("{}")
        })
    })
}
