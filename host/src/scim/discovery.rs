//! SCIM discovery (RFC 7644 §4, RFC 7643 §5–§7): what this service
//! provider supports, said exactly. The User schema is built from the same
//! attribute tables that decide what is stored ([`super::resource`]), so
//! the two cannot disagree. Discovery documents hold no tenant data and
//! need no token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::resource::{CORE, ENTERPRISE, Kind};
use super::{
    DENIAL_SCHEMA, ENTERPRISE_SCHEMA, LIST_SCHEMA, MAX_RESULTS, Path, ScimError, USER_SCHEMA,
    scim_json,
};
use crate::Host;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// Gatehouse's extension of the ServiceProviderConfig: the resource types
/// it does not serve.
pub const SPC_EXTENSION: &str =
    "urn:gatehouse:params:scim:schemas:extension:1.0:ServiceProviderConfig";

fn base(host: &Host) -> String {
    format!("{}/scim/v2", host.settings.public_url)
}

/// The ServiceProviderConfig document.
pub fn service_provider_config_json(host: &Host) -> Value {
    json!({
        "schemas": [SPC_SCHEMA, SPC_EXTENSION],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "SCIM token",
            "description": "The account's SCIM token (`gatehouse scim-token ACCOUNT`) sent as Authorization: Bearer",
            "primary": true,
        }],
        SPC_EXTENSION: {
            "resourceTypes": ["User"],
            "unsupportedResourceTypes": ["Group"],
        },
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base(host)),
        },
    })
}

#[utoipa::path(
    get,
    path = "/scim/v2/ServiceProviderConfig",
    tag = "scim",
    operation_id = "scim_service_provider_config",
    summary = "What this service provider supports, exactly (RFC 7644 §4)",
    responses(
        (status = 200, description = "The document", body = super::doc::ScimDocument, content_type = "application/scim+json"),
        super::doc::DiscoveryErrors,
    ),
    security(),
)]
pub(super) async fn service_provider_config(State(host): State<Host>) -> Response {
    scim_json(StatusCode::OK, &service_provider_config_json(&host))
}

fn user_type(host: &Host) -> Value {
    json!({
        "schemas": [RT_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A member of the account, as its identity provider provisioned them. The only resource type: Groups are not supported.",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/User", base(host))},
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes",
    tag = "scim",
    operation_id = "scim_resource_types",
    summary = "Resource types: User only",
    responses(
        (status = 200, description = "The document", body = super::doc::ScimDocument, content_type = "application/scim+json"),
        super::doc::DiscoveryErrors,
    ),
    security(),
)]
pub(super) async fn resource_types(State(host): State<Host>) -> Response {
    scim_json(StatusCode::OK, &list(vec![user_type(&host)]))
}

#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes/{id}",
    tag = "scim",
    operation_id = "scim_resource_type",
    summary = "One resource type",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The document", body = super::doc::ScimDocument, content_type = "application/scim+json"),
        super::doc::DiscoveryErrors,
    ),
    security(),
)]
pub(super) async fn resource_type(
    State(host): State<Host>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    if id == "User" {
        return Ok(scim_json(StatusCode::OK, &user_type(&host)));
    }
    Err(ScimError::new(
        StatusCode::NOT_FOUND,
        None,
        format!("no resource type `{id}`: this service provider serves User only"),
    ))
}

/// One attribute's definition (RFC 7643 §7).
fn attribute(name: &str, kind: &str, extra: Value) -> Value {
    let mut a = json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": "",
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    });
    if let (Value::Object(a), Value::Object(extra)) = (&mut a, extra) {
        a.extend(extra);
    }
    a
}

fn sub_attributes(subs: &[&str]) -> Vec<Value> {
    subs.iter()
        .map(|s| match *s {
            "primary" => attribute(s, "boolean", json!({})),
            "$ref" => attribute(s, "reference", json!({"referenceTypes": ["User"]})),
            _ => attribute(s, "string", json!({})),
        })
        .collect()
}

fn stored_attributes(table: &[(&str, Kind)]) -> Vec<Value> {
    table
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Simple => attribute(name, "string", json!({})),
            Kind::Complex(subs) => attribute(
                name,
                "complex",
                json!({"subAttributes": sub_attributes(subs)}),
            ),
            Kind::Multi(subs) => attribute(
                name,
                "complex",
                json!({"multiValued": true, "subAttributes": sub_attributes(subs)}),
            ),
        })
        .collect()
}

fn schema_doc(
    host: &Host,
    id: &str,
    name: &str,
    description: &str,
    attributes: Vec<Value>,
) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{}/Schemas/{id}", base(host))},
    })
}

fn all_schemas(host: &Host) -> Vec<Value> {
    let mut user = vec![
        attribute(
            "id",
            "string",
            json!({"caseExact": true, "mutability": "readOnly", "returned": "always", "uniqueness": "server"}),
        ),
        attribute(
            "userName",
            "string",
            json!({"required": true, "uniqueness": "server", "description": "Unique in the account, compared without case. Any string: the person's address comes from emails (the primary one), or from userName when it is an address."}),
        ),
        attribute("externalId", "string", json!({"caseExact": true})),
        attribute(
            "active",
            "boolean",
            json!({"description": "false suspends the member in the account; true brings them back."}),
        ),
    ];
    user.extend(stored_attributes(CORE));
    vec![
        schema_doc(
            host,
            USER_SCHEMA,
            "User",
            "A member of the account as its identity provider provisioned them. Stored per account: the person's global name and address are never changed by it.",
            user,
        ),
        schema_doc(
            host,
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Enterprise User (RFC 7643 §4.3), stored as sent.",
            stored_attributes(ENTERPRISE),
        ),
        schema_doc(
            host,
            DENIAL_SCHEMA,
            "Denial",
            "Extends the Error message of a refused change (403 or 409): the policies that decided it and their reasons.",
            vec![attribute(
                "reasons",
                "complex",
                json!({
                    "multiValued": true,
                    "mutability": "readOnly",
                    "subAttributes": [
                        attribute("policy", "string", json!({"caseExact": true, "mutability": "readOnly", "description": "The determining policy's @id."})),
                        attribute("message", "string", json!({"mutability": "readOnly", "description": "Its human-readable reason."})),
                    ],
                }),
            )],
        ),
        schema_doc(
            host,
            SPC_EXTENSION,
            "GatehouseServiceProviderConfig",
            "Which resource types this service provider serves and which it does not.",
            vec![
                attribute(
                    "resourceTypes",
                    "string",
                    json!({"multiValued": true, "mutability": "readOnly"}),
                ),
                attribute(
                    "unsupportedResourceTypes",
                    "string",
                    json!({"multiValued": true, "mutability": "readOnly"}),
                ),
            ],
        ),
    ]
}

#[utoipa::path(
    get,
    path = "/scim/v2/Schemas",
    tag = "scim",
    operation_id = "scim_schemas",
    summary = "The core and enterprise User schemas and Gatehouse extensions",
    responses(
        (status = 200, description = "The document", body = super::doc::ScimDocument, content_type = "application/scim+json"),
        super::doc::DiscoveryErrors,
    ),
    security(),
)]
pub(super) async fn schemas(State(host): State<Host>) -> Response {
    scim_json(StatusCode::OK, &list(all_schemas(&host)))
}

#[utoipa::path(
    get,
    path = "/scim/v2/Schemas/{id}",
    tag = "scim",
    operation_id = "scim_schema",
    summary = "One schema",
    params(("id" = String, Path, description = "Its id")),
    responses(
        (status = 200, description = "The document", body = super::doc::ScimDocument, content_type = "application/scim+json"),
        super::doc::DiscoveryErrors,
    ),
    security(),
)]
pub(super) async fn schema(
    State(host): State<Host>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    all_schemas(&host)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        })
        .map(|s| scim_json(StatusCode::OK, &s))
        .ok_or_else(|| {
            ScimError::new(
                StatusCode::NOT_FOUND,
                None,
                format!("no schema `{id}` (see /scim/v2/Schemas)"),
            )
        })
}
