//! The shapes SCIM answers in, for `/openapi.json` (the handlers build
//! their JSON from the attribute tables in [`super::resource`]; these types
//! describe it, with every other attribute allowed, as RFC 7643 does).
//! Request bodies the handlers parse into Rust types (PATCH, `.search`)
//! derive their schemas from those very types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::{ContentBuilder, RefOr, Response};

/// A SCIM User (RFC 7643 §4.1) as answered: `id`, `userName`, `active`,
/// `meta` always; every attribute the identity provider stored
/// (`externalId`, `name`, `emails`, …, the enterprise extension under its
/// URN) beside them; `attributes`/`excludedAttributes` may leave any out
/// but `id` and `schemas`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    /// The core schema, and the enterprise extension's when present.
    pub schemas: Vec<String>,
    /// The user id.
    pub id: String,
    /// The identity provider's userName (unique in the account, any string).
    #[serde(default)]
    pub user_name: Option<String>,
    /// The identity provider's id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// False while the member is suspended.
    #[serde(default)]
    pub active: Option<bool>,
    /// resourceType, created, lastModified, location, version (the ETag).
    #[serde(default)]
    pub meta: Option<ScimMeta>,
    /// Every other stored attribute.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub other: BTreeMap<String, Value>,
}

/// A resource's metadata (RFC 7643 §3.1).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimMeta {
    /// `User`.
    pub resource_type: String,
    /// When it was provisioned (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// When it last changed (RFC 3339).
    #[serde(default)]
    pub last_modified: Option<String>,
    /// Its URL.
    #[serde(default)]
    pub location: Option<String>,
    /// `W/"n"`, the ETag.
    #[serde(default)]
    pub version: Option<String>,
}

/// A User as written (POST, PUT): `userName` is required; read-only and
/// unknown attributes are ignored; the address comes from `emails` (the
/// primary one) or from `userName` when it is one.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimUserWrite {
    /// Unique in the account, compared without case.
    pub user_name: String,
    /// Every other attribute (RFC 7643 §4.1, §4.3).
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub other: BTreeMap<String, Value>,
}

/// A list (RFC 7644 §3.4.2): `Resources` is left out when `count` is 0.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimList {
    /// `urn:ietf:params:scim:api:messages:2.0:ListResponse`.
    pub schemas: Vec<String>,
    /// Matches in all.
    #[serde(rename = "totalResults")]
    pub total_results: i64,
    /// 1-based.
    #[serde(rename = "startIndex")]
    pub start_index: i64,
    /// On this page.
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: i64,
    /// The page.
    #[serde(rename = "Resources", default)]
    pub resources: Option<Vec<ScimUser>>,
}

/// A discovery document or a list of them (RFC 7644 §4).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimDocument {
    /// The document's schemas.
    pub schemas: Vec<String>,
    /// The rest of the document.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub other: BTreeMap<String, Value>,
}

/// A refusal's determining policy and its reason.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimReason {
    /// The policy's @id.
    pub policy: String,
    /// Its human-readable reason.
    pub message: String,
}

/// Gatehouse's Denial extension of an Error (see `/scim/v2/Schemas`).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimDenial {
    /// The determining policies and their reasons.
    pub reasons: Vec<ScimReason>,
}

/// A SCIM error (RFC 7644 §3.12).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScimError {
    /// The Error schema, and the Denial extension's for a refusal.
    pub schemas: Vec<String>,
    /// The HTTP status as a string.
    pub status: String,
    /// What went wrong, and what to do.
    pub detail: String,
    /// invalidFilter, invalidSyntax, invalidValue, invalidPath, noTarget,
    /// mutability, uniqueness or tooMany, where one applies.
    #[serde(rename = "scimType", default)]
    pub scim_type: Option<String>,
    /// A refusal's reasons.
    #[serde(rename = "urn:gatehouse:params:scim:api:messages:1.0:Denial", default)]
    pub denial: Option<ScimDenial>,
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/scim+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ScimError::name())))
                    .build(),
            )
            .build(),
    )
}

fn answers(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, d)| ((*status).to_owned(), error(d)))
        .collect()
}

const COMMON: [(&str, &str); 3] = [
    ("429", "Too many requests from this address"),
    ("500", "Internal error (an incident id)"),
    (
        "503",
        "The time limit, or a busy store: nothing was applied",
    ),
];

/// The errors of the `/Users` operations.
pub struct UserErrors;

impl utoipa::IntoResponses for UserErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = answers(&[
            (
                "400",
                "invalidFilter, invalidSyntax, invalidValue, invalidPath, noTarget or mutability",
            ),
            ("401", "Missing or invalid SCIM token"),
            (
                "403",
                "Refused by the module (R17, R12, R4): the reasons under the Denial extension; audited",
            ),
            ("404", "No User provisioned in this account with that id"),
            (
                "409",
                "uniqueness: the userName or the person is already provisioned here; or inapplicable",
            ),
            ("412", "If-Match is not the current version"),
            ("413", "The body is too large (tooMany)"),
            ("415", "Not application/scim+json or application/json"),
        ]);
        all.extend(answers(&COMMON));
        all
    }
}

/// The errors of the discovery documents and of Groups.
pub struct DiscoveryErrors;

impl utoipa::IntoResponses for DiscoveryErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = answers(&[(
            "404",
            "No such resource type or schema; Groups are not supported",
        )]);
        all.extend(answers(&COMMON));
        all
    }
}

/// Every schema the SCIM operations name, so each `$ref` resolves.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    ScimUser,
    ScimMeta,
    ScimUserWrite,
    ScimList,
    ScimDocument,
    ScimReason,
    ScimDenial,
    ScimError,
)))]
pub struct ScimSchemas;
