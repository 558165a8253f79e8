//! The OpenAPI sub-document of SCIM 2.0 (`/scim/v2/Users`, [`crate::scim`]),
//! merged into `/openapi.json` by [`crate::openapi::document`]. A minimal
//! description of today's routes, kept apart from `scim.rs`: the SCIM work
//! replaces it with its own `scim::openapi()`.
//!
//! Every answer is `application/scim+json`; errors are SCIM errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

/// A SCIM 2.0 User as identity providers send it; attributes other than
/// these are ignored.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    /// The schemas the body claims.
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    /// The user's email address.
    pub user_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Name parts.
    #[serde(default)]
    pub name: Option<ScimName>,
}

/// Name parts as sent.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimName {
    /// Whole name.
    #[serde(default)]
    pub formatted: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
}

/// The formatted name of a resource.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimFormattedName {
    /// Whole name.
    pub formatted: String,
}

/// An address of a resource.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimEmail {
    /// The address.
    pub value: String,
    /// Always true (one address).
    pub primary: bool,
}

/// A resource's metadata.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScimMeta {
    /// `User`.
    pub resource_type: String,
    /// Its URL.
    pub location: String,
}

/// A member of the token's account as a SCIM User.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScimUserResource {
    /// `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub schemas: Vec<String>,
    /// The user id.
    pub id: String,
    /// The email address.
    pub user_name: String,
    /// Name.
    pub display_name: String,
    /// Name.
    pub name: ScimFormattedName,
    /// The one address.
    pub emails: Vec<ScimEmail>,
    /// False while the membership is suspended.
    pub active: bool,
    /// Metadata.
    pub meta: ScimMeta,
}

/// A list of users.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimListResponse {
    /// `urn:ietf:params:scim:api:messages:2.0:ListResponse`.
    pub schemas: Vec<String>,
    /// Matches.
    #[serde(rename = "totalResults")]
    pub total_results: i64,
    /// 1-based.
    #[serde(rename = "startIndex")]
    pub start_index: i64,
    /// On this page.
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: i64,
    /// The page.
    #[serde(rename = "Resources")]
    pub resources: Vec<ScimUserResource>,
}

/// One PATCH operation.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimPatchOperation {
    /// `replace` (or `add`).
    pub op: String,
    /// `active`, or absent with `value` an object holding `active`.
    #[serde(default)]
    pub path: Option<String>,
    /// true/false (also as strings) for path active, or an object such as `{"active": false}`.
    #[serde(default)]
    pub value: Value,
}

/// A SCIM PATCH (`urn:ietf:params:scim:api:messages:2.0:PatchOp`).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimPatchOp {
    /// The schemas the body claims.
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    /// Operations.
    #[serde(rename = "Operations")]
    pub operations: Vec<ScimPatchOperation>,
}

/// A SCIM error (RFC 7644 §3.12).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimError {
    /// `urn:ietf:params:scim:api:messages:2.0:Error`.
    pub schemas: Vec<String>,
    /// The HTTP status as a string, e.g. "403".
    pub status: String,
    /// What went wrong.
    pub detail: String,
    /// `uniqueness` for an existing member.
    #[serde(rename = "scimType", default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// For a denial: the determining policies.
    #[serde(
        rename = "gatehouse:reasons",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reasons: Option<Vec<gatehouse_api::Reason>>,
}

/// The list's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScimListQuery {
    /// `userName eq "…"` (the whole RFC 7644 grammar parses; other filters are a 400).
    pub filter: Option<String>,
    /// 1-based index of the first result.
    #[serde(rename = "startIndex")]
    #[param(rename = "startIndex")]
    pub start_index: Option<i64>,
    /// At most this many.
    pub count: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scim_list_users",
    summary = "The token's account's members as SCIM Users",
    params(ScimListQuery),
    responses(
        (status = 200, description = "A page", body = ScimListResponse, content_type = "application/scim+json"),
        (status = 400, description = "An unsupported or malformed filter, a bad query", body = ScimError, content_type = "application/scim+json"),
        (status = 401, description = "Missing or invalid SCIM token", body = ScimError, content_type = "application/scim+json"),
        (status = 429, description = "Too many requests from this address", body = ScimError, content_type = "application/scim+json"),
        (status = 500, description = "Internal error", body = ScimError, content_type = "application/scim+json"),
        (status = 503, description = "Time limit or a busy store", body = ScimError, content_type = "application/scim+json"),
    ),
    security(("scimToken" = [])),
)]
#[expect(dead_code, reason = "described here, served by crate::scim")]
fn scim_list_users() {}

#[utoipa::path(
    post,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scim_create_user",
    summary = "Provision a user into the token's account",
    request_body(content = ScimUser, content_type = "application/scim+json"),
    responses(
        (status = 201, description = "Created", body = ScimUserResource, content_type = "application/scim+json"),
        (status = 400, description = "Malformed body", body = ScimError, content_type = "application/scim+json"),
        (status = 401, description = "Missing or invalid SCIM token", body = ScimError, content_type = "application/scim+json"),
        (status = 403, description = "Denied by the module (the seat limit, …); audited with source scim", body = ScimError, content_type = "application/scim+json"),
        (status = 409, description = "Already a member (scimType uniqueness)", body = ScimError, content_type = "application/scim+json"),
        (status = 413, description = "The body is too large", body = ScimError, content_type = "application/scim+json"),
        (status = 415, description = "Not application/scim+json or application/json", body = ScimError, content_type = "application/scim+json"),
        (status = 429, description = "Too many requests from this address", body = ScimError, content_type = "application/scim+json"),
        (status = 500, description = "Internal error", body = ScimError, content_type = "application/scim+json"),
        (status = 503, description = "Time limit or a busy store", body = ScimError, content_type = "application/scim+json"),
    ),
    security(("scimToken" = [])),
)]
#[expect(dead_code, reason = "described here, served by crate::scim")]
fn scim_create_user() {}

#[utoipa::path(
    get,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_get_user",
    summary = "A member as a SCIM User",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = ScimUserResource, content_type = "application/scim+json"),
        (status = 400, description = "A path that does not fit", body = ScimError, content_type = "application/scim+json"),
        (status = 401, description = "Missing or invalid SCIM token", body = ScimError, content_type = "application/scim+json"),
        (status = 404, description = "No such user in this token's account", body = ScimError, content_type = "application/scim+json"),
        (status = 429, description = "Too many requests from this address", body = ScimError, content_type = "application/scim+json"),
        (status = 500, description = "Internal error", body = ScimError, content_type = "application/scim+json"),
        (status = 503, description = "Time limit or a busy store", body = ScimError, content_type = "application/scim+json"),
    ),
    security(("scimToken" = [])),
)]
#[expect(dead_code, reason = "described here, served by crate::scim")]
fn scim_get_user() {}

#[utoipa::path(
    patch,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_patch_user",
    summary = "Suspend or unsuspend a member (`active`)",
    params(("id" = String, Path, description = "User id")),
    request_body(content = ScimPatchOp, content_type = "application/scim+json"),
    responses(
        (status = 200, description = "The user", body = ScimUserResource, content_type = "application/scim+json"),
        (status = 400, description = "Malformed body or an unsupported operation", body = ScimError, content_type = "application/scim+json"),
        (status = 401, description = "Missing or invalid SCIM token", body = ScimError, content_type = "application/scim+json"),
        (status = 403, description = "Denied by the module (the last active owner, …); audited with source scim", body = ScimError, content_type = "application/scim+json"),
        (status = 404, description = "No such user in this token's account", body = ScimError, content_type = "application/scim+json"),
        (status = 409, description = "Inapplicable as it stands", body = ScimError, content_type = "application/scim+json"),
        (status = 413, description = "The body is too large", body = ScimError, content_type = "application/scim+json"),
        (status = 415, description = "Not application/scim+json or application/json", body = ScimError, content_type = "application/scim+json"),
        (status = 429, description = "Too many requests from this address", body = ScimError, content_type = "application/scim+json"),
        (status = 500, description = "Internal error", body = ScimError, content_type = "application/scim+json"),
        (status = 503, description = "Time limit or a busy store", body = ScimError, content_type = "application/scim+json"),
    ),
    security(("scimToken" = [])),
)]
#[expect(dead_code, reason = "described here, served by crate::scim")]
fn scim_patch_user() {}

#[utoipa::path(
    delete,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scim_delete_user",
    summary = "Remove a member from the token's account",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A path that does not fit", body = ScimError, content_type = "application/scim+json"),
        (status = 401, description = "Missing or invalid SCIM token", body = ScimError, content_type = "application/scim+json"),
        (status = 403, description = "Denied by the module (the last active owner, …); audited with source scim", body = ScimError, content_type = "application/scim+json"),
        (status = 404, description = "No such user in this token's account", body = ScimError, content_type = "application/scim+json"),
        (status = 409, description = "Inapplicable as it stands", body = ScimError, content_type = "application/scim+json"),
        (status = 429, description = "Too many requests from this address", body = ScimError, content_type = "application/scim+json"),
        (status = 500, description = "Internal error", body = ScimError, content_type = "application/scim+json"),
        (status = 503, description = "Time limit or a busy store", body = ScimError, content_type = "application/scim+json"),
    ),
    security(("scimToken" = [])),
)]
#[expect(dead_code, reason = "described here, served by crate::scim")]
fn scim_delete_user() {}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    scim_list_users,
    scim_create_user,
    scim_get_user,
    scim_patch_user,
    scim_delete_user
))]
struct ScimDoc;

/// SCIM's part of `/openapi.json`.
pub fn openapi() -> OpenApi {
    <ScimDoc as utoipa::OpenApi>::openapi()
}
