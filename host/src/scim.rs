//! SCIM 2.0 `/scim/v2/Users` for an account's identity provider (R17).
//!
//! Each account has its own bearer tokens (`gatehouse scim-token`). Every
//! change goes through the same [`Change`] path as the UI, with the identity
//! provider as the actor and `scim` as the source, so the last-owner rule
//! holds here too; a refusal is a SCIM error carrying the reasons.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_policy::facts::AccountId;
use gatehouse_policy::{Actor, Source};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::Row;

use crate::api::Body;
use crate::change::{Attempt, Change};
use crate::error::ApiError;
use crate::{Host, token};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The SCIM routes.
pub fn router() -> Router<Host> {
    Router::new()
        .route("/scim/v2/Users", get(list).post(create))
        .route("/scim/v2/Users/{id}", get(read).patch(patch).delete(remove))
}

/// An error in SCIM's shape.
#[derive(Debug)]
pub struct ScimError(ApiError);

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> ScimError {
        ScimError(e)
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> ScimError {
        ScimError(e.into())
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = self.0.body();
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": status.as_u16().to_string(),
            "detail": body["error"]["message"],
        });
        if matches!(self.0, ApiError::Conflict(_)) {
            v["scimType"] = json!("uniqueness");
        }
        if let ApiError::Denied { reasons, .. } | ApiError::Inapplicable { reasons, .. } = &self.0 {
            v["gatehouse:reasons"] = json!(reasons);
        }
        scim_json(status, v)
    }
}

fn scim_json(status: StatusCode, v: Value) -> Response {
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

/// A JSON body whose errors are SCIM errors (the identity provider reads
/// those, not the API's shape).
#[derive(Debug)]
pub struct ScimBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ScimBody<T> {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<ScimBody<T>, ScimError> {
        let Body(v) = Body::<T>::from_request(req, state).await?;
        Ok(ScimBody(v))
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
            .map_err(|e| ScimError(ApiError::BadRequest(format!("query: {}", e.body_text()))))
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
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "send the account's SCIM token as Authorization: Bearer".into(),
                )
            })?;
        let account: String =
            sqlx::query_scalar("SELECT account_id FROM scim_tokens WHERE token_hash = $1")
                .bind(token::hash(secret))
                .fetch_optional(host.store.pool())
                .await?
                .ok_or_else(|| ApiError::Unauthenticated("this SCIM token is not valid".into()))?;
        Ok(Idp { account })
    }
}

/// Creates a SCIM token for an account; the secret is returned once.
pub async fn create_token(host: &Host, account: &str) -> Result<String, ApiError> {
    let exists = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_optional(host.store.pool())
        .await?;
    if exists.is_none() {
        return Err(ApiError::NotFound(format!("no account `{account}`")));
    }
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

async fn resource(host: &Host, account: &str, user: &str) -> Result<Value, ScimError> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, m.status FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.account_id = $1 AND m.user_id = $2",
    )
    .bind(account)
    .bind(user)
    .fetch_optional(host.store.pool())
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no user `{user}` in this account")))?;
    Ok(user_json(&row)?)
}

fn user_json(row: &crate::store::StoreRow) -> Result<Value, ApiError> {
    let id: String = row.try_get("id")?;
    let email: String = row.try_get("email")?;
    let name: String = row.try_get("name")?;
    let status: String = row.try_get("status")?;
    Ok(json!({
        "schemas": [USER_SCHEMA],
        "id": id,
        "userName": email,
        "displayName": name,
        "name": {"formatted": name},
        "emails": [{"value": email, "primary": true}],
        "active": status == "active",
        "meta": {"resourceType": "User", "location": format!("/scim/v2/Users/{id}")},
    }))
}

#[derive(Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
}

/// `userName eq "x"` — the one filter IdPs send to find a user — as the
/// lower-cased address. The filter is parsed with the whole SCIM grammar
/// (`gatehouse-scim-filter`): a syntax error says where it is; a filter
/// that parses but asks for anything else is refused as unsupported.
fn parse_filter(f: &str) -> Result<String, ApiError> {
    use gatehouse_scim_filter::{CompValue, CompareOp, Filter};
    let parsed = gatehouse_scim_filter::parse(f)
        .map_err(|e| ApiError::BadRequest(format!("invalid filter `{f}`: {e}")))?;
    match parsed {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(v),
        } if path.is(USER_SCHEMA, "userName") => Ok(v.to_lowercase()),
        _ => Err(ApiError::BadRequest(format!(
            "unsupported filter `{f}`: only userName eq \"address\" is supported"
        ))),
    }
}

async fn list(
    State(host): State<Host>,
    idp: Idp,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(100).clamp(0, 500);
    let filter = q.filter.as_deref().map(parse_filter).transpose()?;
    let mut sql = String::from(
        "SELECT u.id, u.email, u.name, m.status FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.account_id = $1",
    );
    if filter.is_some() {
        sql.push_str(" AND u.email_lower = $2");
    }
    sql.push_str(" ORDER BY u.id");
    let mut query = sqlx::query(&sql).bind(&idp.account);
    if let Some(f) = &filter {
        query = query.bind(f);
    }
    let rows = query.fetch_all(host.store.pool()).await?;
    let total = rows.len();
    let skip = usize::try_from(start - 1).unwrap_or(0);
    let take = usize::try_from(count).unwrap_or(0);
    let resources = rows
        .iter()
        .skip(skip)
        .take(take)
        .map(user_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScimUser {
    user_name: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    name: Option<ScimName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScimName {
    #[serde(default)]
    formatted: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
}

async fn create(
    State(host): State<Host>,
    idp: Idp,
    ScimBody(u): ScimBody<ScimUser>,
) -> Result<Response, ScimError> {
    let email = u.user_name.trim().to_owned();
    if !email.contains('@') {
        return Err(
            ApiError::BadRequest("userName must be the user's email address".into()).into(),
        );
    }
    let name = u
        .display_name
        .or_else(|| u.name.as_ref().and_then(|n| n.formatted.clone()))
        .or_else(|| {
            u.name.as_ref().map(|n| {
                format!(
                    "{} {}",
                    n.given_name.clone().unwrap_or_default(),
                    n.family_name.clone().unwrap_or_default()
                )
                .trim()
                .to_owned()
            })
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.clone());
    let applied = host
        .perform(Change::ScimProvision { email, name }, attempt(&idp))
        .await?;
    let user = applied.result["user"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let body = resource(&host, &idp.account, &user).await?;
    Ok(scim_json(StatusCode::CREATED, body))
}

async fn read(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    Ok(scim_json(
        StatusCode::OK,
        resource(&host, &idp.account, &id).await?,
    ))
}

#[derive(Deserialize)]
struct PatchBody {
    #[serde(rename = "Operations")]
    operations: Vec<PatchOp>,
}

#[derive(Deserialize)]
struct PatchOp {
    op: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    value: Value,
}

/// The `active` value a PATCH sets, if any (both the `path` form and the
/// value-object form IdPs send; booleans may arrive as strings).
fn active_of(ops: &[PatchOp]) -> Result<Option<bool>, ApiError> {
    let mut active = None;
    for op in ops {
        if !op.op.eq_ignore_ascii_case("replace") && !op.op.eq_ignore_ascii_case("add") {
            return Err(ApiError::BadRequest(format!(
                "unsupported PATCH op `{}`: use replace",
                op.op
            )));
        }
        let v = match op.path.as_deref() {
            Some(p) if p.eq_ignore_ascii_case("active") => Some(&op.value),
            Some(_) => None,
            None => op.value.get("active"),
        };
        if let Some(v) = v {
            active = Some(match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(ApiError::BadRequest("active must be true or false".into())),
            });
        }
    }
    Ok(active)
}

async fn patch(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
    ScimBody(b): ScimBody<PatchBody>,
) -> Result<Response, ScimError> {
    let current = resource(&host, &idp.account, &id).await?;
    if let Some(active) = active_of(&b.operations)?
        && current["active"].as_bool() != Some(active)
    {
        let change = if active {
            Change::ScimActivate { user: id.clone() }
        } else {
            Change::ScimDeactivate { user: id.clone() }
        };
        host.perform(change, attempt(&idp)).await?;
    }
    Ok(scim_json(
        StatusCode::OK,
        resource(&host, &idp.account, &id).await?,
    ))
}

async fn remove(
    State(host): State<Host>,
    idp: Idp,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    host.perform(Change::ScimDelete { user: id }, attempt(&idp))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
