//! SCIM 2.0 for an account's identity provider (R17; RFC 7643, RFC 7644).
//!
//! Each account has its own bearer tokens (`gatehouse scim-token`). The
//! identity provider sees and edits only its own record of the members it
//! provisioned (`scim_users`): its userName, externalId and attributes,
//! never the person's global name or another tenant's anything. Every
//! change goes through the same [`Change`] path as the UI, with the
//! identity provider as the actor and `scim` as the source, so the
//! last-owner rule and seats hold here too; a refusal is a SCIM error
//! carrying the reasons under a declared extension schema.
//!
//! Every answer under `/scim/v2`, errors from routing, limits and time-outs
//! included, is `application/scim+json` in SCIM's shapes ([`scim_errors`]).

mod discovery;
pub mod doc;
pub mod patch;
mod query;
mod resource;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_policy::facts::AccountId;
use gatehouse_policy::{Actor, Reason, Source};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::Body;
use crate::change::{Attempt, Change, ScimRecord};
use crate::error::ApiError;
use crate::{Host, token};

use resource::Stored;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Gatehouse's extension of the Error message: the determining policies
/// and their reasons of a refusal.
pub const DENIAL_SCHEMA: &str = "urn:gatehouse:params:scim:api:messages:1.0:Denial";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The most resources one list answer holds (`filter.maxResults`).
pub const MAX_RESULTS: usize = 200;
/// How often a PATCH is tried again when a concurrent change moved the
/// record between its read and its write.
const PATCH_TRIES: usize = 3;

/// The SCIM routes and their description, from one list (as
/// [`crate::api::routes`]): each handler's `#[utoipa::path]` registers it.
pub fn routes() -> OpenApiRouter<Host> {
    OpenApiRouter::with_openapi(<doc::ScimSchemas as utoipa::OpenApi>::openapi())
        .routes(routes!(list, create))
        .routes(routes!(search))
        .routes(routes!(read, replace, patch, remove))
        .routes(routes!(discovery::service_provider_config))
        .routes(routes!(discovery::resource_types))
        .routes(routes!(discovery::resource_type))
        .routes(routes!(discovery::schemas))
        .routes(routes!(discovery::schema))
}

/// The SCIM routes.
pub fn router() -> Router<Host> {
    routes().split_for_parts().0
}

/// An error in SCIM's shape (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
    reasons: Option<Vec<Reason>>,
}

impl ScimError {
    fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            reasons: None,
        }
    }

    /// 400 `invalidFilter`.
    pub(crate) fn invalid_filter(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }

    /// 400 `invalidSyntax`.
    pub(crate) fn invalid_syntax(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }

    /// 400 `invalidValue`.
    pub(crate) fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }

    /// 400 `invalidPath`.
    pub(crate) fn invalid_path(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }

    /// 400 `noTarget`.
    pub(crate) fn no_target(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }

    /// 400 `mutability`.
    pub(crate) fn mutability(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some("mutability"), detail)
    }

    fn not_found(id: &str) -> ScimError {
        ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("no User `{id}` provisioned in this account"),
        )
    }

    /// The detail, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> ScimError {
        let status = e.status();
        let scim_type = match &e {
            ApiError::Conflict(_) => Some("uniqueness"),
            ApiError::BadRequest(_) => Some("invalidValue"),
            ApiError::TooLarge(_) => Some("tooMany"),
            _ => None,
        };
        let detail = e.body()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let reasons = match e {
            ApiError::Denied { reasons, .. } | ApiError::Inapplicable { reasons, .. } => {
                Some(reasons)
            }
            _ => None,
        };
        ScimError {
            status,
            scim_type,
            detail,
            reasons,
        }
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> ScimError {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut schemas = vec![ERROR_SCHEMA];
        if self.reasons.is_some() {
            schemas.push(DENIAL_SCHEMA);
        }
        let mut v = json!({
            "schemas": schemas,
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        if let Some(reasons) = &self.reasons {
            v[DENIAL_SCHEMA] = json!({ "reasons": reasons });
        }
        let mut res = scim_json(self.status, &v);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        res
    }
}

/// A SCIM JSON answer.
fn scim_json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// Turns every error answered under `/scim/v2` that is not already in
/// SCIM's shape (no route, wrong method, a body too large, a JSON body in
/// the API's shape) into a SCIM error with the same status and message (a
/// router layer).
pub async fn scim_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !(path == "/scim/v2" || path.starts_with("/scim/v2/")) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let res = next.run(request).await;
    let status = res.status();
    let is_scim = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/scim+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_scim {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
    let detail = match status {
        // Groups are out of scope (the ServiceProviderConfig says so).
        StatusCode::NOT_FOUND if path.starts_with("/scim/v2/Groups") => {
            "Groups are not supported: this service provider manages Users only (see /scim/v2/ResourceTypes)".to_owned()
        }
        StatusCode::NOT_FOUND => {
            "no such SCIM endpoint: this service provider serves /Users, /ServiceProviderConfig, /ResourceTypes and /Schemas".to_owned()
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{method} is not supported here (see /scim/v2/ServiceProviderConfig)")
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => text,
    };
    let mut out = ScimError::new(status, None, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A JSON body whose errors are SCIM errors (the identity provider reads
/// those, not the API's shape).
#[derive(Debug)]
pub struct ScimBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ScimBody<T> {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<ScimBody<T>, ScimError> {
        match Body::<T>::from_request(req, state).await {
            Ok(Body(v)) => Ok(ScimBody(v)),
            Err(ApiError::BadRequest(m)) => Err(ScimError::invalid_syntax(m)),
            Err(e) => Err(e.into()),
        }
    }
}

/// A path parameter whose errors are SCIM errors.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ScimError> {
        let crate::api::Path(v) = crate::api::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

/// A query string whose errors are SCIM errors.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, ScimError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ScimError::invalid_value(format!("query: {}", e.body_text())))
    }
}

/// The identity provider of one account, authenticated by its SCIM token.
#[derive(Debug, Clone)]
pub struct Idp {
    /// The account it provisions.
    pub account: String,
}

impl FromRequestParts<Host> for Idp {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, host: &Host) -> Result<Idp, ScimError> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "send the account's SCIM token as Authorization: Bearer".into(),
                )
            })?;
        let account: String =
            sqlx::query_scalar("SELECT account_id FROM scim_tokens WHERE token_hash = $1")
                .bind(token::hash(secret.trim()))
                .fetch_optional(host.store.pool())
                .await?
                .ok_or_else(|| ApiError::Unauthenticated("this SCIM token is not valid".into()))?;
        Ok(Idp { account })
    }
}

/// Creates a SCIM token for an account; the secret is returned once.
pub async fn create_token(host: &Host, account: &str) -> Result<String, ApiError> {
    crate::domains::require_account(host, account).await?;
    let secret = token::new_secret("ghscim");
    sqlx::query("INSERT INTO scim_tokens (token_hash, account_id, created_at) VALUES ($1, $2, $3)")
        .bind(token::hash(&secret))
        .bind(account)
        .bind(host.clock.now())
        .execute(host.store.pool())
        .await?;
    Ok(secret)
}

fn attempt(idp: &Idp) -> Attempt {
    Attempt {
        actor: Actor::IdentityProvider(AccountId(idp.account.clone())),
        source: Source::Scim,
        session: None,
        job_item: None,
    }
}

const SELECT: &str = "SELECT s.user_id, s.user_name, s.external_id, s.resource, s.created_at, \
     s.last_modified, s.version, m.status FROM scim_users s \
     JOIN memberships m ON m.account_id = s.account_id AND m.user_id = s.user_id \
     WHERE s.account_id = $1";

fn stored(row: &crate::store::StoreRow) -> Result<Stored, ScimError> {
    let resource: String = row.try_get("resource")?;
    let attributes = match serde_json::from_str::<Value>(&resource) {
        Ok(Value::Object(o)) => o,
        _ => return Err(ApiError::internal("a stored SCIM record is not an object").into()),
    };
    let status: String = row.try_get("status")?;
    let version: i64 = row.try_get("version")?;
    Ok(Stored {
        id: row.try_get("user_id")?,
        record: ScimRecord {
            user_name: row.try_get("user_name")?,
            external_id: row.try_get("external_id")?,
            attributes,
            based_on: Some(version),
        },
        active: status == "active",
        created: row.try_get("created_at")?,
        last_modified: row.try_get("last_modified")?,
        version,
    })
}

/// The identity provider's record of one member, if it has one.
async fn find(host: &Host, account: &str, user: &str) -> Result<Option<Stored>, ScimError> {
    let row = sqlx::query(&format!("{SELECT} AND s.user_id = $2"))
        .bind(account)
        .bind(user)
        .fetch_optional(host.store.pool())
        .await?;
    row.as_ref().map(stored).transpose()
}

async fn get_stored(host: &Host, account: &str, user: &str) -> Result<Stored, ScimError> {
    find(host, account, user)
        .await?
        .ok_or_else(|| ScimError::not_found(user))
}

/// `attributes` and `excludedAttributes`, as query parameters.
#[derive(Debug, Default, Deserialize)]
struct Projection {
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

/// One resource, with its `ETag` (and `Location` when it was created).
fn one(host: &Host, status: StatusCode, s: &Stored, p: &Projection) -> Response {
    let v = resource::project(
        s.to_json(&host.settings.public_url),
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    );
    let mut res = scim_json(status, &v);
    if let Ok(etag) = HeaderValue::from_str(&s.etag()) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED
        && let Ok(loc) = HeaderValue::from_str(&format!(
            "{}/scim/v2/Users/{}",
            host.settings.public_url, s.id
        ))
    {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

/// `If-Match`: the version the request is based on (`*` or absent: any).
/// A tag that is not this resource's current one is answered 412.
fn if_match(headers: &HeaderMap, current: &Stored) -> Result<bool, ScimError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(false);
    };
    let v = v.to_str().unwrap_or_default();
    if v.trim() == "*" {
        return Ok(false);
    }
    let tag = current.etag();
    let bare = tag.trim_start_matches("W/");
    if v.split(',')
        .map(str::trim)
        .any(|t| t == tag || t.trim_start_matches("W/") == bare)
    {
        return Ok(true);
    }
    Err(ScimError::new(
        StatusCode::PRECONDITION_FAILED,
        None,
        format!("If-Match {v} is not the current version {tag}: read the User again"),
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
    #[serde(rename = "sortBy")]
    sort_by: Option<String>,
}

/// An integer query parameter, leniently (RFC 7644 §3.4.2.4: values below
/// the minimum count as the minimum).
fn integer(name: &str, v: Option<&str>) -> Result<Option<i64>, ScimError> {
    v.map(|s| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
    })
    .transpose()
}

#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scim_list_users",
    summary = "The users this identity provider provisioned, filtered and paged",
    params(
        ("filter" = Option<String>, Query, description = "A SCIM filter (RFC 7644 §3.4.2.2) on any User attribute"),
        ("startIndex" = Option<i64>, Query, description = "1-based index of the first result"),
        ("count" = Option<i64>, Query, description = "At most this many (at most 200)"),
        ("attributes" = Option<String>, Query, description = "Only these attributes (and id, schemas), comma-separated"),
        ("excludedAttributes" = Option<String>, Query, description = "Not these attributes, comma-separated"),
        ("sortBy" = Option<String>, Query, description = "Not supported: a 400"),
    ),
    responses(
        (status = 200, description = "A page", body = doc::ScimList, content_type = "application/scim+json"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn list(
    State(host): State<Host>,
    idp: Idp,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let search = Search {
        filter: q.filter,
        start_index: integer("startIndex", q.start_index.as_deref())?,
        count: integer("count", q.count.as_deref())?,
        attributes: q.attributes,
        excluded_attributes: q.excluded_attributes,
        sort_by: q.sort_by,
    };
    answer_search(&host, &idp, search).await
}

/// A search (query parameters or a `SearchRequest` body).
#[derive(Debug, Default)]
struct Search {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    sort_by: Option<String>,
}

async fn answer_search(host: &Host, idp: &Idp, s: Search) -> Result<Response, ScimError> {
    if s.sort_by.is_some() {
        return Err(ScimError::invalid_value(
            "sorting is not supported (ServiceProviderConfig: sort.supported is false)",
        ));
    }
    let filter = s
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(query::parse)
        .transpose()?;
    let start = s.start_index.unwrap_or(1).max(1);
    let count = usize::try_from(s.count.unwrap_or(100).max(0))
        .unwrap_or(0)
        .min(MAX_RESULTS);
    let rows = sqlx::query(&format!("{SELECT} ORDER BY s.user_id"))
        .bind(&idp.account)
        .fetch_all(host.store.pool())
        .await?;
    let mut matched = Vec::new();
    for row in &rows {
        let v = stored(row)?.to_json(&host.settings.public_url);
        if filter.as_ref().is_none_or(|f| query::matches(f, &v)) {
            matched.push(v);
        }
    }
    let total = matched.len();
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let resources: Vec<Value> = matched
        .into_iter()
        .skip(skip)
        .take(count)
        .map(|v| resource::project(v, s.attributes.as_deref(), s.excluded_attributes.as_deref()))
        .collect();
    let mut body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
    });
    if count > 0 {
        body["Resources"] = Value::Array(resources);
    }
    Ok(scim_json(StatusCode::OK, &body))
}

/// `POST /Users/.search` (RFC 7644 §3.4.3).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    start_index: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    attributes: Option<Vec<String>>,
    #[serde(default)]
    excluded_attributes: Option<Vec<String>>,
    #[serde(default)]
    sort_by: Option<String>,
}

#[utoipa::path(
    post,
    path = "/scim/v2/Users/.search",
    tag = "scim",
    operation_id = "scim_search_users",
    summary = "Search (RFC 7644 §3.4.3)",
    params(

    ),
    request_body(content = SearchRequest, content_type = "application/scim+json"),
    responses(
        (status = 200, description = "A page", body = doc::ScimList, content_type = "application/scim+json"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn search(
    State(host): State<Host>,
    idp: Idp,
    ScimBody(b): ScimBody<SearchRequest>,
) -> Result<Response, ScimError> {
    if !b
        .schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(SEARCH_SCHEMA))
    {
        return Err(ScimError::invalid_syntax(format!(
            "a search names the schema {SEARCH_SCHEMA}"
        )));
    }
    let search = Search {
        filter: b.filter,
        start_index: b.start_index,
        count: b.count,
        attributes: b.attributes.map(|a| a.join(",")),
        excluded_attributes: b.excluded_attributes.map(|a| a.join(",")),
        sort_by: b.sort_by,
    };
    answer_search(&host, &idp, search).await
}

#[utoipa::path(
    get,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_get_user",
    summary = "One User; If-None-Match answers 304",
    params(
        ("id" = String, Path, description = "The user id"),
        ("attributes" = Option<String>, Query, description = "Only these attributes (and id, schemas), comma-separated"),
        ("excludedAttributes" = Option<String>, Query, description = "Not these attributes, comma-separated"),
    ),
    responses(
        (status = 200, description = "The User, with its ETag", body = doc::ScimUser, content_type = "application/scim+json"),
        (status = 304, description = "If-None-Match names the current version"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn read(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let s = get_stored(&host, &idp.account, &id).await?;
    if let Some(v) = headers.get(header::IF_NONE_MATCH)
        && v.to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim() == s.etag() || t.trim() == "*")
    {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&s.etag()) {
            res.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(res);
    }
    Ok(one(&host, StatusCode::OK, &s, &p))
}

#[utoipa::path(
    post,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scim_create_user",
    summary = "Provision a person into the account (R17: a verified domain, or a member already)",
    params(
        ("attributes" = Option<String>, Query, description = "Only these attributes (and id, schemas), comma-separated"),
        ("excludedAttributes" = Option<String>, Query, description = "Not these attributes, comma-separated"),
    ),
    request_body(content = doc::ScimUserWrite, content_type = "application/scim+json"),
    responses(
        (status = 201, description = "Created, with Location and ETag", body = doc::ScimUser, content_type = "application/scim+json"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn create(
    State(host): State<Host>,
    idp: Idp,
    Query(p): Query<Projection>,
    ScimBody(body): ScimBody<Value>,
) -> Result<Response, ScimError> {
    let (record, active) = resource::record_of(&body)?;
    let email = resource::address(&record).ok_or_else(|| {
        ScimError::invalid_value(
            "a User needs an email address: send emails (one primary) or an address as userName",
        )
    })?;
    let name = resource::display_name(&record, &email);
    let applied = host
        .perform(
            Change::ScimProvision {
                email,
                name,
                record,
                active: active.unwrap_or(true),
            },
            attempt(&idp),
        )
        .await?;
    let user = applied.result["user"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut s = get_stored(&host, &idp.account, &user).await?;
    if active == Some(false) && s.active {
        // A member taken over keeps their status: deactivating them is a
        // change of its own (R12 holds).
        host.perform(
            Change::ScimDeactivate {
                user: user.clone(),
                record: None,
            },
            attempt(&idp),
        )
        .await?;
        s = get_stored(&host, &idp.account, &user).await?;
    }
    Ok(one(&host, StatusCode::CREATED, &s, &p))
}

/// The change that makes the stored member look like `record` + `active`
/// (none when nothing differs).
fn change_to(current: &Stored, mut record: ScimRecord, active: Option<bool>) -> Option<Change> {
    let user = current.id.clone();
    record.based_on = Some(current.version);
    let same_record = record.user_name == current.record.user_name
        && record.external_id == current.record.external_id
        && record.attributes == current.record.attributes;
    match active {
        Some(false) if current.active => Some(Change::ScimDeactivate {
            user,
            record: Some(record),
        }),
        Some(true) if !current.active => Some(Change::ScimActivate {
            user,
            record: Some(record),
        }),
        _ if same_record => None,
        _ => Some(Change::ScimUpdate { user, record }),
    }
}

/// `PUT /Users/{id}`: the whole record replaced (RFC 7644 §3.5.1);
/// `active` left out keeps its value.
#[utoipa::path(
    put,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_replace_user",
    summary = "Replace the record (RFC 7644 §3.5.1); If-Match",
    params(
        ("id" = String, Path, description = "The user id"),
        ("attributes" = Option<String>, Query, description = "Only these attributes (and id, schemas), comma-separated"),
        ("excludedAttributes" = Option<String>, Query, description = "Not these attributes, comma-separated"),
    ),
    request_body(content = doc::ScimUserWrite, content_type = "application/scim+json"),
    responses(
        (status = 200, description = "The User", body = doc::ScimUser, content_type = "application/scim+json"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn replace(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
    headers: HeaderMap,
    ScimBody(body): ScimBody<Value>,
) -> Result<Response, ScimError> {
    let current = get_stored(&host, &idp.account, &id).await?;
    if_match(&headers, &current)?;
    if let Some(given) = body.get("id").and_then(Value::as_str)
        && given != id
    {
        return Err(ScimError::mutability(format!(
            "id is read-only: the body says `{given}`, the path `{id}`"
        )));
    }
    let (record, active) = resource::record_of(&body)?;
    if let Some(change) = change_to(&current, record, active) {
        host.perform(change, attempt(&idp)).await?;
    }
    let s = get_stored(&host, &idp.account, &id).await?;
    Ok(one(&host, StatusCode::OK, &s, &p))
}

/// `PATCH /Users/{id}` (RFC 7644 §3.5.2).
#[utoipa::path(
    patch,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_patch_user",
    summary = "add, replace, remove (RFC 7644 §3.5.2); If-Match",
    params(
        ("id" = String, Path, description = "The user id"),
        ("attributes" = Option<String>, Query, description = "Only these attributes (and id, schemas), comma-separated"),
        ("excludedAttributes" = Option<String>, Query, description = "Not these attributes, comma-separated"),
    ),
    request_body(content = patch::PatchBody, content_type = "application/scim+json"),
    responses(
        (status = 200, description = "The User", body = doc::ScimUser, content_type = "application/scim+json"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn patch(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
    headers: HeaderMap,
    ScimBody(b): ScimBody<patch::PatchBody>,
) -> Result<Response, ScimError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let current = get_stored(&host, &idp.account, &id).await?;
        let conditional = if_match(&headers, &current)?;
        let mut doc = current.document();
        patch::apply(&mut doc, &b)?;
        let (record, active) = resource::record_of(&doc)?;
        let Some(change) = change_to(&current, record, active) else {
            return Ok(one(&host, StatusCode::OK, &current, &p));
        };
        match host.perform(change, attempt(&idp)).await {
            Ok(_) => break,
            // Changed by someone else between the read and the write: an
            // unconditional PATCH applies to the new version.
            Err(ApiError::PreconditionFailed(_)) if !conditional && tries < PATCH_TRIES => continue,
            Err(ApiError::PreconditionFailed(m)) => {
                return Err(ScimError::new(StatusCode::PRECONDITION_FAILED, None, m));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let s = get_stored(&host, &idp.account, &id).await?;
    Ok(one(&host, StatusCode::OK, &s, &p))
}

#[utoipa::path(
    delete,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_delete_user",
    summary = "Remove the member (R17, R12); If-Match",
    params(
        ("id" = String, Path, description = "The user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        doc::UserErrors,
    ),
    security(("scimToken" = [])),
)]
async fn remove(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    if headers.contains_key(header::IF_MATCH) {
        let current = get_stored(&host, &idp.account, &id).await?;
        if_match(&headers, &current)?;
    }
    host.perform(Change::ScimDelete { user: id }, attempt(&idp))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
