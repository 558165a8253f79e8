//! Verified email domains (R17): where an account's identity provider may
//! provision people who already have a Gatehouse identity.
//!
//! A person's identity is global (one address, many accounts), so an
//! identity provider that could attach any existing address to its account
//! could reach into other tenants' people. It may, where its account proved
//! it owns the address's domain: an owner who signed in at that domain
//! verifies it (`PUT /v1/accounts/{account}/domains/{domain}`, decided by
//! the module as `verify_domain` and audited), or the operator does
//! (`gatehouse domain verify ACCOUNT DOMAIN`, like `gatehouse scim-token`).

use axum::Json;
use axum::extract::State;
use gatehouse_api::{ChangeResult, ErrorBody};
use serde::{Deserialize, Serialize};

use crate::Host;
use crate::api::Path;
use crate::auth::Principal;
use crate::change::Change;
use crate::error::{ApiError, ApiResult};

/// An account's verified email domains.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    /// The account.
    pub account: String,
    /// Its verified domains, lower case, sorted.
    pub domains: Vec<String>,
}

/// A domain as stored: lower case, no trailing dot, checked as a host name
/// with at least two labels.
pub fn normalize(domain: &str) -> Result<String, ApiError> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if d.len() > 253 || d.split('.').count() < 2 || !d.split('.').all(label_ok) {
        return Err(ApiError::BadRequest(format!(
            "`{domain}` is not a domain name such as example.com"
        )));
    }
    Ok(d)
}

/// The verified domains of an account, sorted.
pub async fn of(host: &Host, account: &str) -> Result<Vec<String>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT domain FROM account_domains WHERE account_id = $1 ORDER BY domain",
    )
    .bind(account)
    .fetch_all(host.store.pool())
    .await?)
}

/// An operator command's check that the account it names exists.
pub(crate) async fn require_account(host: &Host, account: &str) -> Result<(), ApiError> {
    let exists = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_optional(host.store.pool())
        .await?;
    match exists {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no account `{account}`"))),
    }
}

/// Verifies a domain for an account on the operator's word (the CLI).
pub async fn verify_by_operator(
    host: &Host,
    account: &str,
    domain: &str,
) -> Result<String, ApiError> {
    let domain = normalize(domain)?;
    require_account(host, account).await?;
    sqlx::query(
        "INSERT INTO account_domains (account_id, domain, verified_by, verified_at) VALUES ($1, $2, 'operator', $3) \
         ON CONFLICT (account_id, domain) DO NOTHING",
    )
    .bind(account)
    .bind(&domain)
    .bind(host.clock.now())
    .execute(host.store.pool())
    .await?;
    Ok(domain)
}

/// `GET /v1/accounts/{account}/domains`: for whoever may see the members.
#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/domains",
    tag = "accounts",
    operation_id = "domains",
    summary = "The account's verified email domains (R17), for whoever may see its members",
    params(("account" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "The domains", body = Domains),
        (status = 404, description = "No such account: an account the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
pub(crate) async fn list(
    State(host): State<Host>,
    p: Principal,
    Path(account): Path<String>,
) -> ApiResult<Json<Domains>> {
    crate::api::signed_in_to(&host, &p, &account).await?;
    host.ask(
        &p.user,
        "view_members",
        &account,
        crate::facts::Scope::default(),
    )
    .await?;
    let domains = of(&host, &account).await?;
    Ok(Json(Domains { account, domains }))
}

/// `PUT /v1/accounts/{account}/domains/{domain}`: an owner signed in at
/// the domain verifies it.
#[utoipa::path(
    put,
    path = "/v1/accounts/{account}/domains/{domain}",
    tag = "accounts",
    operation_id = "verify_domain",
    summary = "An owner signed in at a domain verifies it for the account's identity provider (R17)",
    params(
        ("account" = String, Path, description = "Account id"),
        ("domain" = String, Path, description = "The domain, e.g. example.com"),
    ),
    responses(
        (status = 200, description = "Applied: the change, its audit record and why it was allowed", body = ChangeResult),
        (status = 404, description = "No such account: an account the caller may not see gets the same answer as one that does not exist (R1)", body = ErrorBody),
        (status = 409, description = "Inapplicable as it stands (code inapplicable, with reasons)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub(crate) async fn verify(
    State(host): State<Host>,
    p: Principal,
    Path((account, domain)): Path<(String, String)>,
) -> ApiResult<Json<ChangeResult>> {
    let domain = normalize(&domain)?;
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(&p.user)
        .fetch_optional(host.store.pool())
        .await?;
    let proven = email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain));
    let applied = host
        .perform(
            Change::VerifyDomain {
                account,
                domain,
                proven,
            },
            crate::api::attempt(&p),
        )
        .await?;
    Ok(Json(ChangeResult {
        ok: true,
        result: applied.result,
        audit_id: applied.audit_id,
        reasons: crate::shapes::reasons(&applied.decision.reasons),
    }))
}
