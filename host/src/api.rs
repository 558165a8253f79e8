//! The HTTP API, versioned under `/v1`, JSON in and out. Handlers only
//! translate: authenticate, turn the request into a [`Change`] or a read,
//! and turn the result or [`ApiError`] into a response.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use gatehouse_api::{
    Accept, Accounts, AuditLog, AuditQuery, BulkBody, BulkCandidates, ChangeResult, CreatedToken,
    Devices, ErrorBody, Health, Invitations, Invite, InviteCreated, InviteResult, InviteResults,
    Job, LinkEmail, LinkQuery, Mailbox, MailboxQuery, Me, Members, MembersQuery, Message, NewToken,
    NicknameBody, Notifications, OwnerRemovalBody, OwnerRemovalRequests, Profile, Quantity,
    Reassign, Redeem, RoleBody, Session, SignIn, SignedOut, TokenAccess,
};
use gatehouse_policy::Source;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Principal};
use crate::change::{Attempt, Change};
use crate::error::{ApiError, ApiResult};
use crate::{Host, scim};

pub use crate::openapi::{ApiDoc, document, openapi_json};

/// The largest request body accepted: room for every policy file of a
/// publish from the editor (the repository's are about 40 KB as JSON).
pub const MAX_BODY: usize = 256 * 1024;

/// A JSON body with errors in the API's own shape.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body<T>, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || v.eq_ignore_ascii_case("application/scim+json")
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::TooLarge(MAX_BODY))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body does not fit: {e}")))
    }
}

/// Path parameters with errors in the API's own shape (axum's own
/// rejection is plain text).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) if e.status() == StatusCode::BAD_REQUEST => Err(ApiError::BadRequest(format!(
                "the path does not fit: {}",
                e.body_text()
            ))),
            Err(e) => Err(ApiError::internal(format!("path: {}", e.body_text()))),
        }
    }
}

pub(crate) fn attempt(p: &Principal) -> Attempt {
    Attempt::user(
        &p.user,
        if p.cookie { Source::Ui } else { Source::Api },
        Some(p.session.clone()),
    )
}

async fn run(host: &Host, p: &Principal, change: Change) -> ApiResult<Json<ChangeResult>> {
    let applied = host.perform(change, attempt(p)).await?;
    Ok(Json(ChangeResult {
        ok: true,
        result: applied.result,
        audit_id: applied.audit_id,
        reasons: crate::shapes::reasons(&applied.decision.reasons),
    }))
}

/// Every route of the API and its description, from one list: each
/// `routes!` entry registers the handlers with the router and their
/// `#[utoipa::path]` with the document, so the two cannot disagree. (SCIM
/// is merged beside it: [`scim::routes`], its own list.)
pub fn routes() -> OpenApiRouter<Host> {
    use crate::editor;
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi))
        .routes(routes!(metrics))
        .routes(routes!(module))
        .routes(routes!(module_by_hash))
        .routes(routes!(sign_in))
        .routes(routes!(redeem))
        .routes(routes!(link))
        .routes(routes!(sign_out))
        .routes(routes!(create_token))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(notifications))
        .routes(routes!(devices))
        .routes(routes!(sign_out_device))
        .routes(routes!(accounts))
        .routes(routes!(members))
        .routes(routes!(remove_member))
        .routes(routes!(change_role))
        .routes(routes!(nickname))
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
        .routes(routes!(reassign))
        .routes(routes!(leave))
        .routes(routes!(step_down))
        .routes(routes!(buy_seats))
        .routes(routes!(remove_seats))
        .routes(routes!(invitations))
        .routes(routes!(requests, request_owner_removal))
        .routes(routes!(bulk_candidates, bulk_remove))
        .routes(routes!(audit))
        .routes(routes!(invite))
        .routes(routes!(accept))
        .routes(routes!(resend))
        .routes(routes!(revoke))
        .routes(routes!(approve))
        .routes(routes!(decline))
        .routes(routes!(cancel))
        .routes(routes!(job))
        .routes(routes!(demo_mailbox))
        .routes(routes!(editor::policies))
        .routes(routes!(editor::check_draft))
        .routes(routes!(editor::impact))
        .routes(routes!(editor::publish))
        .routes(routes!(editor::publish_requests))
        .routes(routes!(editor::approve))
        .routes(routes!(editor::decline))
        .routes(routes!(editor::cancel))
        .routes(routes!(crate::domains::list))
        .routes(routes!(crate::domains::verify))
}

/// Builds the router.
pub fn router(host: Host) -> Router {
    let (api, _) = routes().split_for_parts();
    api.merge(scim::router())
        .fallback(pages)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the router, where axum has matched the route: counts by
        // route template, never by raw path.
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            announce_module,
        ))
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            crate::timing::header,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        // Outermost last: a span per request (and one INFO line when it is
        // answered: status, latency in µs), headers on every answer, 429s
        // before any work, then the time limit around the wait for a slot
        // and the work.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            host.settings.max_concurrent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            crate::limits::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            crate::limits::budget,
        ))
        // Every error under /scim/v2 in SCIM's shape, whichever layer made it.
        .layer(axum::middleware::from_fn(scim::scim_errors))
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            crate::headers::add,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .with_state(host)
}

/// The `request` span around every request (method, route template,
/// path: the decisions it makes log inside it).
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path = %request.uri().path(),
    )
}

/// Every response names the module the host decides with, so a page that
/// loaded an older one notices and reloads it: the module and policy hash
/// its answers were made under when it asked the module, the live ones
/// otherwise. `/v1/module` names them itself, read with the bytes it sends
/// (a swap in between cannot make the header disagree with the body).
async fn announce_module(State(host): State<Host>, request: Request, next: Next) -> Response {
    let (mut response, answered) = crate::gate::answering(next.run(request)).await;
    let (module, policy) =
        answered.unwrap_or_else(|| (host.gate.module_sha256(), host.gate.policy_hash()));
    let h = response.headers_mut();
    for (name, value) in [
        ("x-gatehouse-module-sha256", module),
        ("x-gatehouse-policy-hash", policy),
    ] {
        if !h.contains_key(name)
            && let Ok(v) = HeaderValue::from_str(&value)
        {
            h.insert(name, v);
        }
    }
    response
}

/// The built pages (`www/dist`) for every path the API does not own.
async fn pages(State(host): State<Host>, request: Request) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/v1/") || path.starts_with("/scim/") || path == "/v1";
    match (&host.settings.www, api) {
        (Some(dir), false)
            if matches!(
                *request.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            ) =>
        {
            use tower::ServiceExt;
            // `cargo xtask www` writes a `.br` and a `.gz` beside every
            // file; ServeDir picks one by Accept-Encoding.
            let serve = tower_http::services::ServeDir::new(dir)
                .precompressed_br()
                .precompressed_gzip();
            let assets = path.starts_with("/assets/");
            match serve.oneshot(request).await {
                Ok(r) if r.status() == StatusCode::NOT_FOUND => not_found().await.into_response(),
                Ok(r) => {
                    let mut r = r.into_response();
                    let h = r.headers_mut();
                    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    // Pages revalidate (they name the module they expect);
                    // assets under /assets are named by their content hash
                    // (Vite) and never change.
                    if !h.contains_key(header::CACHE_CONTROL) {
                        h.insert(
                            header::CACHE_CONTROL,
                            HeaderValue::from_static(if assets {
                                "public, max-age=31536000, immutable"
                            } else {
                                "no-cache"
                            }),
                        );
                    }
                    r
                }
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        _ => not_found().await.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint: see /openapi.json".into())
}

/// Demo mode only: the newest mails, so a newcomer signs in without SMTP;
/// fenced to a demo store and loopback peers ([`crate::demo::mailbox_open`]).
#[utoipa::path(
    get,
    path = "/v1/demo/mailbox",
    tag = "demo",
    operation_id = "demo_mailbox",
    summary = "Demo mode only: the newest mails (loopback peers only)",
    params(MailboxQuery),
    responses(
        (status = 200, description = "Mails", body = Mailbox),
        (status = 400, description = "A query parameter that does not fit (code bad_request)", body = ErrorBody),
        (status = 403, description = "Asked from elsewhere than this machine (code loopback_only)", body = ErrorBody),
        (status = 404, description = "Not a demo host (code not_found)", body = ErrorBody),
    ),
)]
async fn demo_mailbox(
    State(host): State<Host>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
    q: Result<Query<MailboxQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Mailbox>> {
    let peer = peer.map(|axum::Extension(ConnectInfo(addr))| addr);
    crate::demo::mailbox_open(&host, peer, &headers).await?;
    // After the fence: elsewhere the mailbox is not there at all.
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    // The 50 newest to that address: a busy outbox does not push a
    // newcomer's link out of the answer.
    let mails = crate::outbox::mails(&host.store, 50, q.to.as_deref()).await?;
    Ok(Json(Mailbox { mails }))
}

/// `/metrics`, Prometheus text: to loopback peers with no proxy header, or
/// with the `--metrics-token` bearer ([`crate::metrics::open`]).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    operation_id = "metrics",
    summary = "Prometheus metrics (loopback peers, or the --metrics-token bearer)",
    responses(
        (status = 200, description = "Prometheus text", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 403, description = "Not from loopback and no metrics token (code loopback_only)", body = ErrorBody),
    ),
)]
async fn metrics(
    State(host): State<Host>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let peer = peer.map(|axum::Extension(ConnectInfo(addr))| addr);
    crate::metrics::open(&host, peer, &headers)?;
    let text = host.metrics().encode()?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: gatehouse_api::ErrorDetail {
                code: "method_not_allowed".into(),
                message: "this endpoint does not take that method: see /openapi.json".into(),
                reasons: None,
                audit_id: None,
            },
        }),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "host",
    operation_id = "health",
    summary = "The host is up: its module and policies",
    responses(
        (status = 200, description = "Up", body = Health),
    ),
)]
async fn health(State(host): State<Host>) -> ApiResult<Json<Health>> {
    sqlx::query("SELECT 1").execute(host.store.pool()).await?;
    let sha = host.gate.module_sha256();
    Ok(Json(Health {
        status: "ok".into(),
        module_url: crate::wire::url(&sha),
        policy_hash: host.gate.policy_hash(),
        module_sha256: sha,
        demo: host.settings.demo,
    }))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "host",
    operation_id = "openapi",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
    ),
)]
async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::api::openapi_json(),
    )
        .into_response()
}

/// The live module, for clients that predate its hash URL: revalidated
/// every time (`no-cache`, an ETag per encoding), compressed as the request
/// accepts, with the hashes of exactly the bytes it sends.
#[utoipa::path(
    get,
    path = "/v1/module",
    tag = "module",
    operation_id = "module",
    summary = "The live module (revalidated every time)",
    responses(
        (status = 200, description = "The module's bytes, compressed as accepted", body = String, content_type = "application/wasm"),
        (status = 304, description = "Not modified (If-None-Match)"),
    ),
)]
async fn module(State(host): State<Host>, headers: axum::http::HeaderMap) -> ApiResult<Response> {
    let (wire, policy_hash) = host
        .gate
        .live()
        .ok_or_else(|| ApiError::internal("no module loaded"))?;
    let mut response = wire.respond(&headers, crate::wire::Cache::Revalidate);
    let h = response.headers_mut();
    for (name, value) in [
        ("x-gatehouse-module-sha256", wire.sha256.as_str()),
        ("x-gatehouse-policy-hash", policy_hash.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    Ok(response)
}

/// `/v1/module/<sha256>.wasm`: the module with that sha256 — the live one,
/// one this host served lately, or any published version — cached for a
/// year (`immutable`): its bytes never change. Any other name is a 404.
#[utoipa::path(
    get,
    path = "/v1/module/{file}",
    tag = "module",
    operation_id = "module_by_hash",
    summary = "A module by its sha256, cached for good",
    params(("file" = String, Path, description = "`<sha256>.wasm`")),
    responses(
        (status = 200, description = "The module's bytes", body = String, content_type = "application/wasm"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No module with that sha256 here", body = ErrorBody),
    ),
)]
async fn module_by_hash(
    State(host): State<Host>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let unknown = || {
        ApiError::NotFound(format!(
            "no module `{file}` here: `/health` names the one this host serves (`module_url`)"
        ))
    };
    let sha = crate::wire::sha_of(&file).ok_or_else(unknown)?;
    let wire = match host.gate.wire_of(sha) {
        Some(w) => w,
        None => {
            let (bytes, precompressed) = crate::versions::module_by_sha256(&host.store, sha)
                .await?
                .ok_or_else(unknown)?;
            // Hashed and its copies decoded before they are served (ms).
            let wire =
                tokio::task::spawn_blocking(move || crate::wire::Wire::new(bytes, precompressed))
                    .await
                    .map_err(ApiError::internal)?;
            if wire.sha256 != sha {
                return Err(ApiError::internal(format!(
                    "the stored module for `{sha}` hashes to `{}`",
                    wire.sha256
                )));
            }
            let wire = std::sync::Arc::new(wire);
            host.gate.remember(wire.clone());
            wire
        }
    };
    Ok(wire.respond(&headers, crate::wire::Cache::Immutable))
}

/// `POST /v1/auth/sign-in`: the same answer, at once, whether or not the
/// address has an account; the link (if any) goes out from the mailer,
/// bound to this browser by the cookie set here ([`auth::request_link`]).
#[utoipa::path(
    post,
    path = "/v1/auth/sign-in",
    tag = "auth",
    operation_id = "sign_in",
    summary = "Ask for a sign-in link (the same answer whether or not the address has an account)",
    request_body = SignIn,
    responses(
        (status = 202, description = "A link is on its way if the address has an account; sets the browser-binding cookie", body = Message),
    ),
)]
async fn sign_in(
    State(host): State<Host>,
    headers: HeaderMap,
    Body(b): Body<SignIn>,
) -> ApiResult<Response> {
    check_email(&b.email)?;
    let secure = host.settings.secure_cookies;
    let binding = auth::binding_for(&headers, secure);
    auth::request_link(&host, &b.email, &binding);
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Message {
            message: "if this address has an account, a sign-in link is on its way (one a minute at most): open it in this browser".into(),
        }),
    )
        .into_response();
    set_cookie(&mut response, &auth::binding_cookie(&binding, secure));
    Ok(response)
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /v1/auth/link`: the confirm step's question, whose address a link
/// signs in, asked only by the browser that asked for the link. Uses
/// nothing up.
#[utoipa::path(
    post,
    path = "/v1/auth/link",
    tag = "auth",
    operation_id = "link",
    summary = "Which address a sign-in link signs in (uses nothing up)",
    request_body = LinkQuery,
    responses(
        (status = 200, description = "The address", body = LinkEmail),
        (status = 401, description = "The link is not valid, used or expired (code unauthenticated), or was asked for in another browser (code other_browser)", body = ErrorBody),
    ),
)]
async fn link(
    State(host): State<Host>,
    headers: HeaderMap,
    Body(b): Body<LinkQuery>,
) -> ApiResult<Json<LinkEmail>> {
    let binding = auth::binding_of(&headers, host.settings.secure_cookies);
    let email = auth::link_email(&host, &b.token, binding.as_deref()).await?;
    Ok(Json(LinkEmail { email }))
}

#[utoipa::path(
    post,
    path = "/v1/auth/redeem",
    tag = "auth",
    operation_id = "redeem",
    summary = "Redeem a sign-in link: a browser session (cookie)",
    request_body = Redeem,
    responses(
        (status = 200, description = "Signed in; sets the session cookie", body = Session),
        (status = 401, description = "The link is not valid, used or expired (code unauthenticated), or was asked for in another browser (code other_browser)", body = ErrorBody),
    ),
)]
async fn redeem(
    State(host): State<Host>,
    headers: HeaderMap,
    Body(b): Body<Redeem>,
) -> ApiResult<Response> {
    let secure = host.settings.secure_cookies;
    let binding = auth::binding_of(&headers, secure);
    let session = auth::redeem_link(
        &host,
        &b.token,
        binding.as_deref(),
        b.label.as_deref().unwrap_or("browser"),
    )
    .await?;
    let mut response = Json(Session {
        user: session.user,
        session: session.id,
        csrf: session.csrf,
    })
    .into_response();
    set_cookie(&mut response, &auth::session_cookie(&session.token, secure));
    set_cookie(&mut response, &auth::cleared_binding_cookie(secure));
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/v1/auth/sign-out",
    tag = "auth",
    operation_id = "sign_out",
    summary = "Sign this session out",
    responses(
        (status = 200, description = "Signed out; clears the cookie", body = SignedOut),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn sign_out(State(host): State<Host>, p: Principal) -> ApiResult<Response> {
    auth::sign_out(&host, &p.session).await?;
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::cleared_cookie(host.settings.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /v1/tokens`: whether the caller may mint is `mint_token`'s
/// question (R15: from a fresh browser sign-in, never from a token, 1 to
/// 90 days); the body's shape is checked here.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "auth",
    operation_id = "create_token",
    summary = "Mint an API token (mint_token decides)",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token, shown once", body = CreatedToken),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn create_token(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let label = b.label.trim();
    if label.is_empty() || label.len() > 100 {
        return Err(ApiError::BadRequest(
            "give the token a label of 1 to 100 characters".into(),
        ));
    }
    let mut accounts: Vec<String> = b.accounts.iter().map(|a| a.trim().to_owned()).collect();
    accounts.sort();
    accounts.dedup();
    if accounts.is_empty()
        || accounts.len() > 100
        || accounts.iter().any(|a| a.is_empty() || a.len() > 100)
    {
        return Err(ApiError::BadRequest(
            "name the accounts the token may be used on in `accounts`: 1 to 100 account ids".into(),
        ));
    }
    let credential = gatehouse_policy::Credential {
        kind: if p.cookie {
            gatehouse_policy::CredentialKind::Session
        } else {
            gatehouse_policy::CredentialKind::Token
        },
        signed_in_at: p.signed_in_at,
    };
    let change = Change::MintToken {
        label: label.to_owned(),
        accounts,
        read_only: b.access == TokenAccess::Read,
        lifetime_days: b.lifetime_days.unwrap_or(30),
        credential,
    };
    let applied = host.perform(change, attempt(&p)).await?;
    let mut body = applied.result;
    body["audit_id"] = applied.audit_id.into();
    let created: CreatedToken = serde_json::from_value(body).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "me",
    operation_id = "me",
    summary = "The signed-in user",
    responses(
        (status = 200, description = "The caller", body = Me),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn me(State(host): State<Host>, p: Principal) -> ApiResult<Json<Me>> {
    Ok(Json(host.me(&p.user, p.csrf.clone(), &p.session).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/me",
    tag = "me",
    operation_id = "update_me",
    summary = "Change the caller's profile",
    request_body = Profile,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn update_me(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<Profile>,
) -> ApiResult<Json<ChangeResult>> {
    if let Some(n) = &b.name
        && (n.trim().is_empty() || n.len() > 200)
    {
        return Err(ApiError::BadRequest(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if let Some(c) = &b.country
        && (c.len() != 2 || !c.chars().all(|c| c.is_ascii_uppercase()))
    {
        return Err(ApiError::BadRequest(
            "country is a two-letter code such as GB".into(),
        ));
    }
    run(
        &host,
        &p,
        Change::UpdateProfile {
            name: b.name,
            phone: b.phone,
            country: b.country,
        },
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/me",
    tag = "me",
    operation_id = "delete_me",
    summary = "Delete the caller's profile",
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn delete_me(State(host): State<Host>, p: Principal) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::DeleteProfile).await
}

#[utoipa::path(
    put,
    path = "/v1/me/notifications",
    tag = "me",
    operation_id = "notifications",
    summary = "Notification settings",
    request_body = Notifications,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn notifications(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<Notifications>,
) -> ApiResult<Json<ChangeResult>> {
    run(
        &host,
        &p,
        Change::UpdateNotifications {
            email: b.email,
            sms: b.sms,
        },
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/me/devices",
    tag = "me",
    operation_id = "devices",
    summary = "The caller's sessions and tokens",
    responses(
        (status = 200, description = "Devices", body = Devices),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn devices(State(host): State<Host>, p: Principal) -> ApiResult<Json<Devices>> {
    Ok(Json(host.devices(&p.user, &p.session).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/me/devices/{id}",
    tag = "me",
    operation_id = "sign_out_device",
    summary = "Sign a device out (a session or an API token)",
    params(("id" = String, Path, description = "Device id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such device of the caller: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn sign_out_device(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::SignOutDevice { device: id }).await
}

#[utoipa::path(
    get,
    path = "/v1/accounts",
    tag = "accounts",
    operation_id = "accounts",
    summary = "The account switcher",
    responses(
        (status = 200, description = "Accounts", body = Accounts),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn accounts(State(host): State<Host>, p: Principal) -> ApiResult<Json<Accounts>> {
    Ok(Json(host.accounts(&p.user, p.scope.as_ref()).await?))
}

/// The page the members list's query asks for (`limit`: 1 to 500,
/// default 100; `after`: the previous page's `next`), or why it cannot be
/// served.
fn page(q: MembersQuery) -> ApiResult<crate::read::MembersPage> {
    {
        use crate::read::{MEMBERS_PAGE_DEFAULT, MEMBERS_PAGE_MAX};
        let limit = match q.limit {
            None => MEMBERS_PAGE_DEFAULT,
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MEMBERS_PAGE_MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit is 1 to {MEMBERS_PAGE_MAX} members, not `{n}`"
                    ))
                })?,
        };
        if q.after.as_deref() == Some("") {
            return Err(ApiError::BadRequest(
                "after is the `next` of the previous page, not empty".into(),
            ));
        }
        Ok(crate::read::MembersPage {
            limit,
            after: q.after,
        })
    }
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/members",
    tag = "members",
    operation_id = "members",
    summary = "A page of members with the caller's allowed actions",
    params(("account" = String, Path, description = "Account id"), MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = Members),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn members(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    q: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Members>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    let page = page(q)?;
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.members(&p.user, &account, &page).await?))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/invitations",
    tag = "invitations",
    operation_id = "invitations",
    summary = "An account's invitations",
    params(("account" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "Invitations", body = Invitations),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn invitations(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Invitations>> {
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.invitations(&p.user, &account).await?))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/owner-removal-requests",
    tag = "owners",
    operation_id = "requests",
    summary = "An account's owner-removal requests",
    params(("account" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "Requests", body = OwnerRemovalRequests),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn requests(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<OwnerRemovalRequests>> {
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.owner_removal_requests(&p.user, &account).await?))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/audit",
    tag = "audit",
    operation_id = "audit",
    summary = "An account's audit log (and its sub-accounts')",
    params(("account" = String, Path, description = "Account id"), AuditQuery),
    responses(
        (status = 200, description = "A page of records", body = AuditLog),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn audit(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditLog>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    if let Some(d) = &q.decision
        && !["allowed", "denied", "failed"].contains(&d.as_str())
    {
        return Err(ApiError::BadRequest(
            "decision is allowed, denied or failed".into(),
        ));
    }
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.audit_log(&p.user, &account, &q).await?))
}

pub(crate) async fn signed_in_to(host: &Host, p: &Principal, account: &str) -> ApiResult<()> {
    let mut tx = host.store.begin_read().await?;
    crate::auth::check_not_signed_out(&mut tx, &p.session, account).await?;
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(
    delete,
    path = "/v1/accounts/{account}/members/{user}",
    tag = "members",
    operation_id = "remove_member",
    summary = "Remove a member",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn remove_member(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::Remove { account, user }).await
}

#[utoipa::path(
    put,
    path = "/v1/accounts/{account}/members/{user}/role",
    tag = "members",
    operation_id = "change_role",
    summary = "Change a member's role",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    request_body = RoleBody,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn change_role(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
    Body(b): Body<RoleBody>,
) -> ApiResult<Json<ChangeResult>> {
    run(
        &host,
        &p,
        Change::ChangeRole {
            account,
            user,
            role: crate::shapes::role_in(b.role),
        },
    )
    .await
}

#[utoipa::path(
    put,
    path = "/v1/accounts/{account}/members/{user}/nickname",
    tag = "members",
    operation_id = "nickname",
    summary = "Set or clear a member's nickname",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    request_body = NicknameBody,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn nickname(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
    Body(b): Body<NicknameBody>,
) -> ApiResult<Json<ChangeResult>> {
    let nickname = b
        .nickname
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if nickname.as_ref().is_some_and(|n| n.chars().count() > 64) {
        return Err(ApiError::BadRequest(
            "a nickname has at most 64 characters".into(),
        ));
    }
    run(
        &host,
        &p,
        Change::EditNickname {
            account,
            user,
            nickname,
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/members/{user}/suspend",
    tag = "members",
    operation_id = "suspend",
    summary = "Suspend a member",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn suspend(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::Suspend { account, user }).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/members/{user}/unsuspend",
    tag = "members",
    operation_id = "unsuspend",
    summary = "Unsuspend a member",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn unsuspend(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::Unsuspend { account, user }).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/members/{user}/reassign",
    tag = "members",
    operation_id = "reassign",
    summary = "Reassign a member's numbers and flows to another member",
    params(("account" = String, Path, description = "Account id"), ("user" = String, Path, description = "User id")),
    request_body = Reassign,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account or member: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn reassign(
    State(host): State<Host>,
    p: Principal,
    Path((account, from)): Path<(String, String)>,
    Body(b): Body<Reassign>,
) -> ApiResult<Json<ChangeResult>> {
    run(
        &host,
        &p,
        Change::Reassign {
            account,
            from,
            to: b.to,
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/leave",
    tag = "members",
    operation_id = "leave",
    summary = "Leave an account",
    params(("account" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn leave(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::Leave { account }).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/step-down",
    tag = "members",
    operation_id = "step_down",
    summary = "Step down to a lower role",
    params(("account" = String, Path, description = "Account id")),
    request_body = RoleBody,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn step_down(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<RoleBody>,
) -> ApiResult<Json<ChangeResult>> {
    run(
        &host,
        &p,
        Change::StepDown {
            account,
            role: crate::shapes::role_in(b.role),
        },
    )
    .await
}

fn check_quantity(q: i64) -> ApiResult<i64> {
    if (1..=10_000).contains(&q) {
        Ok(q)
    } else {
        Err(ApiError::BadRequest(
            "quantity is a whole number from 1 to 10000".into(),
        ))
    }
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/seats/buy",
    tag = "seats",
    operation_id = "buy_seats",
    summary = "Buy seats",
    params(("account" = String, Path, description = "Account id")),
    request_body = Quantity,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn buy_seats(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<Quantity>,
) -> ApiResult<Json<ChangeResult>> {
    let quantity = check_quantity(b.quantity)?;
    run(&host, &p, Change::BuySeats { account, quantity }).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/seats/remove",
    tag = "seats",
    operation_id = "remove_seats",
    summary = "Remove seats",
    params(("account" = String, Path, description = "Account id")),
    request_body = Quantity,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn remove_seats(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<Quantity>,
) -> ApiResult<Json<ChangeResult>> {
    let quantity = check_quantity(b.quantity)?;
    run(&host, &p, Change::RemoveSeats { account, quantity }).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/owner-removal-requests",
    tag = "owners",
    operation_id = "request_owner_removal",
    summary = "Ask that an owner lose the owner role",
    params(("account" = String, Path, description = "Account id")),
    request_body = OwnerRemovalBody,
    responses(
        (status = 201, description = "Requested", body = ChangeResult),
        (status = 404, description = "No such account or owner: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn request_owner_removal(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<OwnerRemovalBody>,
) -> ApiResult<(StatusCode, Json<ChangeResult>)> {
    let r = run(
        &host,
        &p,
        Change::RequestOwnerRemoval {
            account,
            target: b.target,
            new_role: crate::shapes::requested_in(b.new_role),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, r))
}

#[utoipa::path(
    post,
    path = "/v1/owner-removal-requests/{id}/approve",
    tag = "owners",
    operation_id = "approve",
    summary = "Approve an owner-removal request",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such request: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn approve(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::ApproveOwnerRemoval { id }).await
}

#[utoipa::path(
    post,
    path = "/v1/owner-removal-requests/{id}/decline",
    tag = "owners",
    operation_id = "decline",
    summary = "Decline an owner-removal request",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such request: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn decline(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::DeclineOwnerRemoval { id }).await
}

#[utoipa::path(
    post,
    path = "/v1/owner-removal-requests/{id}/cancel",
    tag = "owners",
    operation_id = "cancel",
    summary = "Cancel an owner-removal request",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such request: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn cancel(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::CancelOwnerRemoval { id }).await
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/bulk-removals",
    tag = "bulk",
    operation_id = "bulk_candidates",
    summary = "Who could be removed from an agency and its sub-accounts",
    params(("account" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "Candidates", body = BulkCandidates),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn bulk_candidates(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<BulkCandidates>> {
    Ok(Json(host.bulk_candidates(&p.user, &account).await?))
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/bulk-removals",
    tag = "bulk",
    operation_id = "bulk_remove",
    summary = "Start removing a user from an agency and its sub-accounts (a job)",
    params(("account" = String, Path, description = "Account id")),
    request_body = BulkBody,
    responses(
        (status = 202, description = "Started: `result.job` names the job", body = ChangeResult),
        (status = 404, description = "No such account, or no such user among the members the caller may see: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn bulk_remove(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<BulkBody>,
) -> ApiResult<(StatusCode, Json<ChangeResult>)> {
    signed_in_to(&host, &p, &account).await?;
    host.check_bulk_user(&p.user, &account, &b.user).await?;
    let r = run(
        &host,
        &p,
        Change::BulkRemove {
            account,
            user: b.user,
        },
    )
    .await?;
    host.wake_jobs();
    Ok((StatusCode::ACCEPTED, r))
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "bulk",
    operation_id = "job",
    summary = "A bulk removal's progress",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
async fn job(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    let (account, report) = host.job_report(&id).await?;
    host.ask(
        &p.user,
        "view_jobs",
        &account,
        crate::facts::Scope::default(),
    )
    .await
    .map_err(|e| match e {
        // Hidden from the caller (R1.stranger): not the account's id either.
        ApiError::NotFound(_) => ApiError::NotFound(format!("no job `{id}`")),
        other => other,
    })?;
    Ok(Json(report))
}

fn check_email(e: &str) -> ApiResult<()> {
    let e = e.trim();
    let ok = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{e}` is not an email address"
        )))
    }
}

#[utoipa::path(
    post,
    path = "/v1/invitations",
    tag = "invitations",
    operation_id = "invite",
    summary = "Invite addresses to accounts",
    request_body = Invite,
    responses(
        (status = 201, description = "One address to one account: the invitation", body = InviteCreated),
        (status = 200, description = "Several: one result per (address, account)", body = InviteResults),
        (status = 404, description = "No such account: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn invite(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<Invite>,
) -> ApiResult<Response> {
    if b.emails.is_empty() || b.accounts.is_empty() {
        return Err(ApiError::BadRequest(
            "give at least one email and one account".into(),
        ));
    }
    if b.emails.len() * b.accounts.len() > 200 {
        return Err(ApiError::BadRequest(
            "at most 200 invitations per request".into(),
        ));
    }
    for e in &b.emails {
        check_email(e)?;
    }
    let single = b.emails.len() == 1 && b.accounts.len() == 1;
    let mut results = Vec::new();
    for to in &b.accounts {
        for email in &b.emails {
            let change = Change::Invite {
                account: to.account.clone(),
                email: email.trim().to_owned(),
                role: crate::shapes::role_in(to.role),
            };
            match host.perform(change, attempt(&p)).await {
                Ok(a) => {
                    let result = serde_json::from_value(a.result).map_err(ApiError::internal)?;
                    if single {
                        return Ok((
                            StatusCode::CREATED,
                            Json(InviteCreated {
                                ok: true,
                                result,
                                audit_id: a.audit_id,
                            }),
                        )
                            .into_response());
                    }
                    results.push(InviteResult {
                        email: email.clone(),
                        account: to.account.clone(),
                        status: 201,
                        result: Some(result),
                        error: None,
                    });
                }
                Err(e) => {
                    if single {
                        return Err(e);
                    }
                    results.push(InviteResult {
                        email: email.clone(),
                        account: to.account.clone(),
                        status: e.status().as_u16(),
                        result: None,
                        error: Some(e.detail()),
                    });
                }
            }
        }
    }
    Ok((StatusCode::OK, Json(InviteResults { results })).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/invitations/accept",
    tag = "invitations",
    operation_id = "accept",
    summary = "Accept an invitation",
    request_body = Accept,
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such invitation: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn accept(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<Accept>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::AcceptInvitation { token: b.token }).await
}

#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/resend",
    tag = "invitations",
    operation_id = "resend",
    summary = "Resend an invitation (a new link)",
    params(("id" = String, Path, description = "Invitation id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such invitation: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn resend(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::ResendInvitation { id }).await
}

#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/revoke",
    tag = "invitations",
    operation_id = "revoke",
    summary = "Revoke an invitation",
    params(("id" = String, Path, description = "Invitation id")),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such invitation: an account or row the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable to its target as it stands (code inapplicable, with reasons) or refused by the stored state (code conflict)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
async fn revoke(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeResult>> {
    run(&host, &p, Change::RevokeInvitation { id }).await
}
