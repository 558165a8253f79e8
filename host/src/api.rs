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
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use gatehouse_policy::Source;
use gatehouse_policy::facts::{RequestedRole, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::audit::AuditQuery;
use crate::auth::{self, Principal};
use crate::change::{Attempt, Change};
use crate::error::{ApiError, ApiResult};
use crate::{Host, scim};

/// The largest request body accepted: room for every policy file of a
/// publish from the editor (the repository's are about 40 KB as JSON).
pub const MAX_BODY: usize = 256 * 1024;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

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

async fn run(host: &Host, p: &Principal, change: Change) -> ApiResult<Json<Value>> {
    let applied = host.perform(change, attempt(p)).await?;
    Ok(Json(json!({
        "ok": true,
        "result": applied.result,
        "audit_id": applied.audit_id,
        "reasons": applied.decision.reasons,
    })))
}

/// Builds the router.
pub fn router(host: Host) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/module", get(module))
        .route("/v1/module/{file}", get(module_by_hash))
        .route("/v1/auth/sign-in", post(sign_in))
        .route("/v1/auth/redeem", post(redeem))
        .route("/v1/auth/link", post(link))
        .route("/v1/auth/sign-out", post(sign_out))
        .route("/v1/tokens", post(create_token))
        .route("/v1/me", get(me).patch(update_me).delete(delete_me))
        .route("/v1/me/notifications", put(notifications))
        .route("/v1/me/devices", get(devices))
        .route("/v1/me/devices/{id}", delete(sign_out_device))
        .route("/v1/accounts", get(accounts))
        .route("/v1/accounts/{account}/members", get(members))
        .route(
            "/v1/accounts/{account}/members/{user}",
            delete(remove_member),
        )
        .route(
            "/v1/accounts/{account}/members/{user}/role",
            put(change_role),
        )
        .route(
            "/v1/accounts/{account}/members/{user}/nickname",
            put(nickname),
        )
        .route(
            "/v1/accounts/{account}/members/{user}/suspend",
            post(suspend),
        )
        .route(
            "/v1/accounts/{account}/members/{user}/unsuspend",
            post(unsuspend),
        )
        .route(
            "/v1/accounts/{account}/members/{user}/reassign",
            post(reassign),
        )
        .route("/v1/accounts/{account}/leave", post(leave))
        .route("/v1/accounts/{account}/step-down", post(step_down))
        .route("/v1/accounts/{account}/seats/buy", post(buy_seats))
        .route("/v1/accounts/{account}/seats/remove", post(remove_seats))
        .route("/v1/accounts/{account}/invitations", get(invitations))
        .route(
            "/v1/accounts/{account}/owner-removal-requests",
            get(requests).post(request_owner_removal),
        )
        .route(
            "/v1/accounts/{account}/bulk-removals",
            get(bulk_candidates).post(bulk_remove),
        )
        .route("/v1/accounts/{account}/audit", get(audit))
        .route("/v1/invitations", post(invite))
        .route("/v1/invitations/accept", post(accept))
        .route("/v1/invitations/{id}/resend", post(resend))
        .route("/v1/invitations/{id}/revoke", post(revoke))
        .route("/v1/owner-removal-requests/{id}/approve", post(approve))
        .route("/v1/owner-removal-requests/{id}/decline", post(decline))
        .route("/v1/owner-removal-requests/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/demo/mailbox", get(demo_mailbox))
        .route("/v1/policies", get(crate::editor::policies))
        .route("/v1/policies/check", post(crate::editor::check_draft))
        .route("/v1/policies/impact", post(crate::editor::impact))
        .route("/v1/policies/publish", post(crate::editor::publish))
        .route(
            "/v1/policies/publish-requests",
            get(crate::editor::publish_requests),
        )
        .route(
            "/v1/policies/publish-requests/{id}/approve",
            post(crate::editor::approve),
        )
        .route(
            "/v1/policies/publish-requests/{id}/decline",
            post(crate::editor::decline),
        )
        .route(
            "/v1/policies/publish-requests/{id}/cancel",
            post(crate::editor::cancel),
        )
        .merge(scim::router())
        .merge(crate::domains::router())
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxQuery {
    to: Option<String>,
}

/// Demo mode only: the newest mails, so a newcomer signs in without SMTP;
/// fenced to a demo store and loopback peers ([`crate::demo::mailbox_open`]).
async fn demo_mailbox(
    State(host): State<Host>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<MailboxQuery>,
) -> ApiResult<Json<Value>> {
    let peer = peer.map(|axum::Extension(ConnectInfo(addr))| addr);
    crate::demo::mailbox_open(&host, peer, &headers).await?;
    let mails = crate::outbox::list(&host.store, 50).await?;
    let mails: Vec<Value> = mails
        .into_iter()
        .filter(|m| {
            q.to.as_deref().is_none_or(|to| {
                m["to"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(to.trim()))
            })
        })
        .collect();
    Ok(Json(json!({"mails": mails})))
}

/// `/metrics`, Prometheus text: to loopback peers with no proxy header, or
/// with the `--metrics-token` bearer ([`crate::metrics::open`]).
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
        Json(json!({"error": {"code": "method_not_allowed", "message": "this endpoint does not take that method: see /openapi.json"}})),
    )
        .into_response()
}

async fn health(State(host): State<Host>) -> ApiResult<Json<Value>> {
    sqlx::query("SELECT 1").execute(host.store.pool()).await?;
    let sha = host.gate.module_sha256();
    Ok(Json(json!({
        "status": "ok",
        "module_url": crate::wire::url(&sha),
        "module_sha256": sha,
        "policy_hash": host.gate.policy_hash(),
        "demo": host.settings.demo,
    })))
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// The live module, for clients that predate its hash URL: revalidated
/// every time (`no-cache`, an ETag per encoding), compressed as the request
/// accepts, with the hashes of exactly the bytes it sends.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
}

/// `POST /v1/auth/sign-in`: the same answer, at once, whether or not the
/// address has an account; the link (if any) goes out from the mailer,
/// bound to this browser by the cookie set here ([`auth::request_link`]).
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
        Json(json!({"message": "if this address has an account, a sign-in link is on its way (one a minute at most): open it in this browser"})),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redeem {
    token: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    token: String,
}

/// `POST /v1/auth/link`: the confirm step's question, whose address a link
/// signs in, asked only by the browser that asked for the link. Uses
/// nothing up.
async fn link(
    State(host): State<Host>,
    headers: HeaderMap,
    Body(b): Body<LinkBody>,
) -> ApiResult<Json<Value>> {
    let binding = auth::binding_of(&headers, host.settings.secure_cookies);
    let email = auth::link_email(&host, &b.token, binding.as_deref()).await?;
    Ok(Json(json!({"email": email})))
}

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
    let mut response = Json(json!({
        "user": session.user,
        "session": session.id,
        "csrf": session.csrf,
    }))
    .into_response();
    set_cookie(&mut response, &auth::session_cookie(&session.token, secure));
    set_cookie(&mut response, &auth::cleared_binding_cookie(secure));
    Ok(response)
}

async fn sign_out(State(host): State<Host>, p: Principal) -> ApiResult<Response> {
    let body = auth::sign_out(&host, &p.session).await?;
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::cleared_cookie(host.settings.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    label: String,
    accounts: Vec<String>,
    access: TokenAccess,
    #[serde(default = "default_lifetime")]
    lifetime_days: i64,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum TokenAccess {
    Read,
    Write,
}

fn default_lifetime() -> i64 {
    30
}

/// `POST /v1/tokens`: whether the caller may mint is `mint_token`'s
/// question (R15: from a fresh browser sign-in, never from a token, 1 to
/// 90 days); the body's shape is checked here.
async fn create_token(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
        lifetime_days: b.lifetime_days,
        credential,
    };
    let applied = host.perform(change, attempt(&p)).await?;
    let mut body = applied.result;
    body["audit_id"] = json!(applied.audit_id);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn me(State(host): State<Host>, p: Principal) -> ApiResult<Json<Value>> {
    let mut me = host.me(&p.user).await?;
    me["csrf"] = json!(p.csrf);
    me["session"] = json!(p.session);
    Ok(Json(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

async fn update_me(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<ProfileBody>,
) -> ApiResult<Json<Value>> {
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

async fn delete_me(State(host): State<Host>, p: Principal) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::DeleteProfile).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Notifications {
    email: bool,
    sms: bool,
}

async fn notifications(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<Notifications>,
) -> ApiResult<Json<Value>> {
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

async fn devices(State(host): State<Host>, p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(host.devices(&p.user, &p.session).await?))
}

async fn sign_out_device(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::SignOutDevice { device: id }).await
}

async fn accounts(State(host): State<Host>, p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(host.accounts(&p.user, p.scope.as_ref()).await?))
}

/// The members list's query: `limit` (1 to 500, default 100) and `after`
/// (the previous page's `next`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl MembersQuery {
    /// The page asked for, or why it cannot be served.
    fn page(self) -> ApiResult<crate::read::MembersPage> {
        use crate::read::{MEMBERS_PAGE_DEFAULT, MEMBERS_PAGE_MAX};
        let limit = match self.limit {
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
        if self.after.as_deref() == Some("") {
            return Err(ApiError::BadRequest(
                "after is the `next` of the previous page, not empty".into(),
            ));
        }
        Ok(crate::read::MembersPage {
            limit,
            after: self.after,
        })
    }
}

async fn members(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    q: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    let page = q.page()?;
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.members(&p.user, &account, &page).await?))
}

async fn invitations(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.invitations(&p.user, &account).await?))
}

async fn requests(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    signed_in_to(&host, &p, &account).await?;
    Ok(Json(host.owner_removal_requests(&p.user, &account).await?))
}

async fn audit(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
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

async fn remove_member(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::Remove { account, user }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Role,
}

async fn change_role(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
    Body(b): Body<RoleBody>,
) -> ApiResult<Json<Value>> {
    run(
        &host,
        &p,
        Change::ChangeRole {
            account,
            user,
            role: b.role,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NicknameBody {
    nickname: Option<String>,
}

async fn nickname(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
    Body(b): Body<NicknameBody>,
) -> ApiResult<Json<Value>> {
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

async fn suspend(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::Suspend { account, user }).await
}

async fn unsuspend(
    State(host): State<Host>,
    p: Principal,
    Path((account, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::Unsuspend { account, user }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassignBody {
    to: String,
}

async fn reassign(
    State(host): State<Host>,
    p: Principal,
    Path((account, from)): Path<(String, String)>,
    Body(b): Body<ReassignBody>,
) -> ApiResult<Json<Value>> {
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

async fn leave(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::Leave { account }).await
}

async fn step_down(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<RoleBody>,
) -> ApiResult<Json<Value>> {
    run(
        &host,
        &p,
        Change::StepDown {
            account,
            role: b.role,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quantity {
    quantity: i64,
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

async fn buy_seats(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<Quantity>,
) -> ApiResult<Json<Value>> {
    let quantity = check_quantity(b.quantity)?;
    run(&host, &p, Change::BuySeats { account, quantity }).await
}

async fn remove_seats(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<Quantity>,
) -> ApiResult<Json<Value>> {
    let quantity = check_quantity(b.quantity)?;
    run(&host, &p, Change::RemoveSeats { account, quantity }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerRemovalBody {
    target: String,
    new_role: RequestedRole,
}

async fn request_owner_removal(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<OwnerRemovalBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = run(
        &host,
        &p,
        Change::RequestOwnerRemoval {
            account,
            target: b.target,
            new_role: b.new_role,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, r))
}

async fn approve(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::ApproveOwnerRemoval { id }).await
}

async fn decline(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::DeclineOwnerRemoval { id }).await
}

async fn cancel(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::CancelOwnerRemoval { id }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    user: String,
}

async fn bulk_candidates(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(host.bulk_candidates(&p.user, &account).await?))
}

async fn bulk_remove(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
    Body(b): Body<BulkBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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

async fn job(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    emails: Vec<String>,
    accounts: Vec<InviteTo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteTo {
    account: String,
    role: Role,
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

async fn invite(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<InviteBody>,
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
                role: to.role,
            };
            match host.perform(change, attempt(&p)).await {
                Ok(a) => {
                    if single {
                        return Ok((
                            StatusCode::CREATED,
                            Json(json!({"ok": true, "result": a.result, "audit_id": a.audit_id})),
                        )
                            .into_response());
                    }
                    results.push(json!({"email": email, "account": to.account, "status": 201, "result": a.result}));
                }
                Err(e) => {
                    if single {
                        return Err(e);
                    }
                    results.push(json!({"email": email, "account": to.account, "status": e.status().as_u16(), "error": e.body()["error"]}));
                }
            }
        }
    }
    Ok((StatusCode::OK, Json(json!({"results": results}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: String,
}

async fn accept(
    State(host): State<Host>,
    p: Principal,
    Body(b): Body<AcceptBody>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::AcceptInvitation { token: b.token }).await
}

async fn resend(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::ResendInvitation { id }).await
}

async fn revoke(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(&host, &p, Change::RevokeInvitation { id }).await
}
