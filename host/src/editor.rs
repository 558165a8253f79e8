//! The policy editor's API: `GET /v1/policies`, `POST /v1/policies/check`,
//! `POST /v1/policies/impact` and `POST /v1/policies/publish`.
//!
//! Why here and thin: who may author policies is itself a policy
//! (`author_policies` on the account the host names with
//! `serve --policy-account`); the checks a publish runs are the CLI's
//! ([`crate::authoring::prepare`]: validate, decision tables, proofs, bake);
//! the impact report is [`crate::impact::replay`]. The browser validates and
//! runs the decision tables itself, through its own copy of the module; the
//! host does what needs the store or the solver. A publish records the new
//! version and its audit record in one transaction, then swaps this host's
//! module at once (other hosts follow within their poll interval).

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use gatehouse_policy::bundle::{BUNDLE_FORMAT, Bundle, Checked, PolicyFile, check};
use gatehouse_policy::facts::{AccountId, UserId};
use gatehouse_policy::{
    Actor, Check, Credential, CredentialKind, Decision, Outcome, Params, PublishRequest,
    PublishStatus, Source, Target,
};
use serde_json::{Value, json};

use crate::api::{Body, Path};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::{Host, facts};
use gatehouse_api::ErrorBody;

/// Policy authoring in the browser, as `gatehouse serve` sets it up.
#[derive(Debug, Clone)]
pub struct Authoring {
    /// The account whose owners write the rules (asked `author_policies`).
    pub account: String,
    /// The policy directory whose `properties/` a publish proves.
    pub policies: PathBuf,
    /// The decision tables a publish runs (and the editor shows).
    pub tables: PathBuf,
}

fn authoring(host: &Host) -> ApiResult<&Authoring> {
    host.settings.authoring.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "policy editing is off on this host: start it with --policy-account ACCOUNT".into(),
        )
    })
}

/// Asks `action` about the policy account for `p`, with the facts of the
/// credential making the request (and of a publish request's author): the
/// question and the module's answer.
async fn decide(
    host: &Host,
    p: &Principal,
    account: &str,
    action: &str,
    publish: Option<PublishRequest>,
) -> ApiResult<(Check, crate::gate::Decided<Decision>)> {
    let mut tx = host.store.begin_read().await?;
    let mut scope = facts::Scope::default();
    scope.accounts.insert(account.to_owned());
    if let Some(r) = &publish {
        scope.users.insert(r.author.0.clone());
    }
    let facts = facts::load(&mut tx, host.clock.now(), &scope, Some(&p.user)).await?;
    tx.commit().await?;
    let check = Check {
        facts,
        actor: Actor::User(UserId(p.user.clone())),
        action: action.into(),
        target: Target::Account(AccountId(account.to_owned())),
        params: Params {
            credential: Some(credential(p)),
            publish,
            ..Params::default()
        },
        source: if p.cookie { Source::Ui } else { Source::Api },
    };
    let decided = host.authorize(&check)?;
    Ok((check, decided))
}

/// The facts of the credential `p` signed in with.
fn credential(p: &Principal) -> Credential {
    Credential {
        kind: if p.cookie {
            CredentialKind::Session
        } else {
            CredentialKind::Token
        },
        signed_in_at: p.signed_in_at,
    }
}

/// What a caller the module hides the policy account from gets (R1.stranger:
/// `Outcome::Hidden`): the same as on a host without an editor.
fn no_editor() -> ApiError {
    ApiError::NotFound("no policy editor here".into())
}

/// A denial as the module decided it: hidden → 404, otherwise 403 (or 409)
/// with the reasons.
fn refuse(decision: &Decision, audit_id: Option<i64>) -> ApiError {
    if decision.outcome == Outcome::Hidden {
        return no_editor();
    }
    ApiError::refused(decision.clone(), audit_id)
}

/// The editor's settings, when the module allows `p` to author policies.
async fn allowed<'h>(host: &'h Host, p: &Principal) -> ApiResult<&'h Authoring> {
    let a = authoring(host)?;
    // A read: the same question, stranger rule and refusal as every read.
    host.ask(
        &p.user,
        "author_policies",
        &a.account,
        facts::Scope::default(),
    )
    .await
    .map_err(|e| match e {
        // Not the policy account's id either.
        ApiError::NotFound(_) => no_editor(),
        other => other,
    })?;
    Ok(a)
}

/// The live bundle: the policy section of the module this host runs.
fn live(host: &Host) -> ApiResult<Bundle> {
    let (_, bytes) = host.gate.module();
    let section = gatehouse_policy::module::policy_section(&bytes).map_err(ApiError::internal)?;
    Bundle::from_bytes(section).map_err(ApiError::internal)
}

/// `GET /v1/policies`: what the editor starts from.
#[utoipa::path(
    get,
    path = "/v1/policies",
    tag = "policies",
    operation_id = "policies",
    summary = "The live policies, schema and decision tables, for the editor",
    responses(
        (status = 200, description = "Policies", body = gatehouse_api::Policies),
        (status = 404, description = "No policy editor here, or not the caller's", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
pub async fn policies(
    State(host): State<Host>,
    p: Principal,
) -> ApiResult<Json<gatehouse_api::Policies>> {
    let a = allowed(&host, &p).await?;
    let bundle = live(&host)?;
    let tables = match gatehouse_vectors::load_hand(&a.tables) {
        Ok(vectors) => vectors
            .iter()
            .map(|v| {
                Ok(gatehouse_api::PolicyTable {
                    name: v.name.clone(),
                    rule: v.rule.clone(),
                    // The exact bytes every runtime is handed (some
                    // tables send malformed JSON on purpose).
                    input: String::from_utf8_lossy(&v.input).into_owned(),
                    // What the page hands its module (`{"op":"tables",…}`).
                    expect: serde_json::to_value(&v.expect).map_err(ApiError::internal)?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?,
        Err(e) => {
            crate::logging::warn(&format!("the policy editor has no decision tables: {e}"));
            Vec::new()
        }
    };
    let newest = crate::versions::newest(&host.store).await?;
    Ok(Json(gatehouse_api::Policies {
        account: a.account.clone(),
        policy_hash: host.gate.policy_hash(),
        module_sha256: host.gate.module_sha256(),
        version: newest.map(|v| gatehouse_api::VersionSummary {
            version: v.version,
            author: v.author,
            message: v.message,
            published_at: v.published_at,
            policy_hash: v.policy_hash,
        }),
        schema: bundle.schema,
        policies: bundle
            .policies
            .into_iter()
            .map(|f| gatehouse_api::PolicyFile {
                file: f.file,
                text: f.text,
            })
            .collect(),
        tables,
    }))
}

/// The edited policy files (the schema is the live one: the engine builds
/// entities for it, so it changes with the host, not in the editor).
pub use gatehouse_api::PolicyDraft as Draft;

/// A draft to publish, and why (`base`: the policy hash the draft was begun
/// on: when given and no longer the live one, someone published meanwhile
/// and the publish is refused (409) rather than silently undoing their
/// change).
pub use gatehouse_api::PolicyPublish as PublishBody;

/// The engine's policy files from the API's.
fn files(policies: Vec<gatehouse_api::PolicyFile>) -> Vec<PolicyFile> {
    policies
        .into_iter()
        .map(|f| PolicyFile {
            file: f.file,
            text: f.text,
        })
        .collect()
}

/// The draft as a bundle: the live schema and the edited files, by name.
fn bundle_of(host: &Host, policies: Vec<PolicyFile>) -> ApiResult<Bundle> {
    let mut policies = policies;
    policies.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Bundle {
        format: BUNDLE_FORMAT,
        schema: live(host)?.schema,
        policies,
    })
}

/// The draft as a bundle that passes the strict check.
fn draft(host: &Host, policies: Vec<PolicyFile>) -> ApiResult<Bundle> {
    let bundle = bundle_of(host, policies)?;
    if let Err(problems) = check(&bundle) {
        return Err(ApiError::BadRequest(format!(
            "the policies do not validate: {}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.location, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(bundle)
}

/// `POST /v1/policies/check`: the strict check of a draft, with Cedar's type
/// validation (which the module leaves out for its size; the page lints and
/// runs the tables itself).
#[utoipa::path(
    post,
    path = "/v1/policies/check",
    tag = "policies",
    operation_id = "check_draft",
    summary = "The strict check of a draft",
    request_body = gatehouse_api::PolicyDraft,
    responses(
        (status = 200, description = "Valid or the problems", body = gatehouse_api::CheckedDraft),
        (status = 404, description = "No policy editor here, or not the caller's", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn check_draft(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<Draft>,
) -> ApiResult<Json<gatehouse_api::CheckedDraft>> {
    allowed(&host, &p).await?;
    let bundle = bundle_of(&host, files(body.policies))?;
    Ok(Json(gatehouse_api::CheckedDraft(
        serde_json::to_value(Checked::strict(&bundle)).map_err(ApiError::internal)?,
    )))
}

/// `POST /v1/policies/impact`: every recorded decision the draft would flip.
#[utoipa::path(
    post,
    path = "/v1/policies/impact",
    tag = "policies",
    operation_id = "impact",
    summary = "Every recorded decision a draft would flip",
    request_body = gatehouse_api::PolicyDraft,
    responses(
        (status = 200, description = "The report", body = gatehouse_api::ImpactReport),
        (status = 404, description = "No policy editor here, or not the caller's", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn impact(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<Draft>,
) -> ApiResult<Json<gatehouse_api::ImpactReport>> {
    allowed(&host, &p).await?;
    let bundle = draft(&host, files(body.policies))?;
    let engine = gatehouse_policy::Engine::from_bundle_bytes(&bundle.to_bytes())
        .map_err(|e| ApiError::BadRequest(format!("the policies do not load: {e}")))?;
    let report = crate::impact::replay(&host.store, &engine, None)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(gatehouse_api::ImpactReport(
        serde_json::to_value(&report).map_err(ApiError::internal)?,
    )))
}

/// A publish request lives this long: a week, shorter than an owner-removal
/// request's 14 days, because its author judged the draft's impact on the
/// audit log of that day and its proofs on that day's policies.
pub const PUBLISH_REQUEST_SECONDS: i64 = 7 * 24 * 3600;

/// The audit record of an attempt on the policy account.
fn entry<'d>(
    host: &Host,
    p: &Principal,
    account: &str,
    check: &Check,
    decided: &'d crate::gate::Decided<Decision>,
    before: Value,
    after: Value,
) -> AuditEntry<'d> {
    AuditEntry {
        at: host.clock.now(),
        actor: format!("user:{}", p.user),
        action: check.action.clone(),
        account: Some(account.to_owned()),
        target: format!("policies:{account}"),
        decision: &decided.answer,
        policy_hash: decided.policy_hash.clone(),
        module_hash: decided.module_hash.clone(),
        before,
        after,
        source: check.source,
        envelope: decided.envelope.clone(),
        job: None,
    }
}

/// A denial: audited (a stranger's attempt in the host's log, not the
/// account's), then 404 or 403 with the reasons.
async fn deny(
    host: &Host,
    p: &Principal,
    account: &str,
    check: &Check,
    decided: &crate::gate::Decided<Decision>,
) -> ApiError {
    let recorded = async {
        let mut e = entry(host, p, account, check, decided, Value::Null, Value::Null);
        if decided.answer.outcome == Outcome::Hidden {
            e.account = None;
        }
        let mut tx = host.store.begin_write().await?;
        let id = audit::record(&mut tx, &e).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match recorded {
        Ok(id) => refuse(&decided.answer, Some(id)),
        Err(e) => e,
    }
}

/// The active owners of `account` and their addresses, from the facts (who
/// is mailed, not who may).
fn owner_emails(check: &Check, account: &str) -> Vec<(String, String)> {
    use gatehouse_policy::facts::MembershipStatus;
    crate::facts::owners(&check.facts, account)
        .filter(|m| m.status == MembershipStatus::Active)
        .filter_map(|m| crate::facts::user(&check.facts, m.user.as_str()))
        .map(|u| (u.id.0.clone(), u.email.clone()))
        .collect()
}

fn user_email(check: &Check, user: &str) -> String {
    crate::facts::user(&check.facts, user).map_or_else(|| user.to_owned(), |u| u.email.clone())
}

/// `POST /v1/policies/publish`: asks for a publish (`publish_policies`: an
/// owner of the policy account, from a browser session signed in within 15
/// minutes), runs the CLI's checks (validate, tables, proofs, bake) and
/// records a pending publish request with the baked module; the other
/// owners are mailed. Nothing is live until a second owner approves
/// ([`approve`]).
#[utoipa::path(
    post,
    path = "/v1/policies/publish",
    tag = "policies",
    operation_id = "publish",
    summary = "Ask to publish a draft (a second owner approves)",
    request_body = gatehouse_api::PolicyPublish,
    responses(
        (status = 202, description = "Waiting for a second owner", body = gatehouse_api::PublishPending),
        (status = 404, description = "No policy editor here, or not the caller's", body = ErrorBody),
        (status = 409, description = "Someone published meanwhile, or a request is pending (code conflict)", body = ErrorBody),
        (status = 422, description = "The draft fails validation, its tables or its proofs (code unprocessable)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn publish(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<PublishBody>,
) -> ApiResult<(axum::http::StatusCode, Json<gatehouse_api::PublishPending>)> {
    let a = authoring(&host)?.clone();
    let message = body.message.trim().to_owned();
    if message.is_empty() {
        return Err(ApiError::BadRequest(
            "say why in `message`: it is recorded with the version".into(),
        ));
    }
    let live_hash = host.gate.policy_hash();
    if let Some(base) = &body.base
        && *base != live_hash
    {
        return Err(ApiError::Conflict(format!(
            "the live policies changed since this draft was begun (now policy {live_hash}): review the draft and its impact against them, then publish again"
        )));
    }
    let (check, decided) = decide(&host, &p, &a.account, "publish_policies", None).await?;
    if !decided.answer.allowed {
        return Err(deny(&host, &p, &a.account, &check, &decided).await);
    }
    let bundle = draft(&host, files(body.policies))?;
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-editor-{}-{}",
        std::process::id(),
        crate::token::random_hex(6)
    ));
    crate::authoring::write_dir(&bundle, Some(&a.policies), &dir).map_err(ApiError::BadRequest)?;
    let (_, engine) = host.gate.module();
    let prepared = crate::authoring::prepare(&dir, &a.tables, &engine).await;
    let _ = std::fs::remove_dir_all(&dir);
    // The checks name the temporary directory; the author knows it as the draft.
    let tidy = |text: &str| text.replace(&dir.display().to_string(), "draft");
    let mut prepared = prepared
        .map_err(|why| ApiError::Unprocessable(format!("not published: {}", tidy(&why))))?;
    prepared.log = prepared.log.iter().map(|l| tidy(l)).collect();
    if prepared.module_sha256 == host.gate.module_sha256() {
        return Err(ApiError::Conflict(
            "nothing to publish: the host already runs these policies".into(),
        ));
    }
    let now = host.clock.now();
    let id = crate::token::new_id("pub");
    let expires_at = now + PUBLISH_REQUEST_SECONDS;
    let author_email = user_email(&check, &p.user);
    let mut tx = host.store.begin_write().await?;
    sqlx::query(
        "INSERT INTO publish_requests (id, account_id, author, message, base_policy_hash, module, module_br, module_gz, module_sha256, policy_hash, log, status, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13)",
    )
    .bind(&id)
    .bind(&a.account)
    .bind(&p.user)
    .bind(&message)
    .bind(&live_hash)
    .bind(&prepared.module)
    .bind(&prepared.precompressed.br)
    .bind(&prepared.precompressed.gz)
    .bind(&prepared.module_sha256)
    .bind(&prepared.policy_hash)
    .bind(serde_json::to_string(&prepared.log).map_err(ApiError::internal)?)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    let after = json!({"publish_request": id, "policy_hash": prepared.policy_hash, "module_sha256": prepared.module_sha256, "message": message, "status": "pending"});
    let before = json!({"policy_hash": live_hash, "module_sha256": host.gate.module_sha256()});
    let audit_id = audit::record(
        &mut tx,
        &entry(&host, &p, &a.account, &check, &decided, before, after),
    )
    .await?;
    for (user, email) in owner_emails(&check, &a.account) {
        if user == p.user {
            continue;
        }
        crate::outbox::enqueue(
            &mut tx,
            &crate::outbox::Mail {
                to: email,
                subject: format!("{author_email} asks to publish new policies"),
                body: format!(
                    "{author_email} asks to publish new policies for every account: \"{message}\".\n\
                     A second owner must approve it within 7 days: {}/#/policies",
                    host.settings.public_url
                ),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(gatehouse_api::PublishPending {
            ok: true,
            pending: gatehouse_api::PendingPublish {
                id,
                author: p.user,
                message,
                policy_hash: prepared.policy_hash,
                expires_at,
            },
            audit_id,
            log: prepared.log,
        }),
    ))
}

/// A stored publish request.
struct Stored {
    id: String,
    author: String,
    message: String,
    base: String,
    policy_hash: String,
    module_sha256: String,
    status: PublishStatus,
    created_at: i64,
    expires_at: i64,
    decided_by: Option<String>,
    version: Option<i64>,
}

impl Stored {
    fn question(&self) -> PublishRequest {
        PublishRequest {
            author: UserId(self.author.clone()),
            status: self.status,
            expires_at: self.expires_at,
        }
    }

    fn shown(&self, now: i64) -> gatehouse_api::PublishRequest {
        use gatehouse_api::RequestStatus as S;
        let status = match self.status {
            PublishStatus::Pending if self.expires_at <= now => S::Expired,
            PublishStatus::Pending => S::Pending,
            PublishStatus::Approved => S::Approved,
            PublishStatus::Declined => S::Declined,
            PublishStatus::Cancelled => S::Cancelled,
        };
        gatehouse_api::PublishRequest {
            id: self.id.clone(),
            author: self.author.clone(),
            message: self.message.clone(),
            base: self.base.clone(),
            policy_hash: self.policy_hash.clone(),
            module_sha256: self.module_sha256.clone(),
            status,
            created_at: self.created_at,
            expires_at: self.expires_at,
            decided_by: self.decided_by.clone(),
            version: self.version,
            decisions: None,
        }
    }

    fn json(&self, now: i64) -> Value {
        serde_json::to_value(self.shown(now)).unwrap_or(Value::Null)
    }
}

const STORED_COLUMNS: &str = "id, author, message, base_policy_hash, policy_hash, module_sha256, status, created_at, expires_at, decided_by, version";

fn stored(row: &crate::store::StoreRow) -> ApiResult<Stored> {
    use sqlx::Row;
    let status: String = row.try_get("status")?;
    Ok(Stored {
        id: row.try_get("id")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        base: row.try_get("base_policy_hash")?,
        policy_hash: row.try_get("policy_hash")?,
        module_sha256: row.try_get("module_sha256")?,
        status: match status.as_str() {
            "pending" => PublishStatus::Pending,
            "approved" => PublishStatus::Approved,
            "declined" => PublishStatus::Declined,
            "cancelled" => PublishStatus::Cancelled,
            other => return Err(ApiError::internal(format!("publish status `{other}`"))),
        },
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        decided_by: row.try_get("decided_by")?,
        version: row.try_get("version")?,
    })
}

async fn load_request(host: &Host, account: &str, id: &str) -> ApiResult<Stored> {
    let row = sqlx::query(&format!(
        "SELECT {STORED_COLUMNS} FROM publish_requests WHERE id = $1 AND account_id = $2"
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(host.store.pool())
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no publish request `{id}`")))?;
    stored(&row)
}

/// `GET /v1/policies/publish-requests`: the publish requests, newest first,
/// each with the module's answers for the caller (approve, decline,
/// cancel), so the editor disables what is denied with the reasons.
#[utoipa::path(
    get,
    path = "/v1/policies/publish-requests",
    tag = "policies",
    operation_id = "publish_requests",
    summary = "The newest publish requests",
    responses(
        (status = 200, description = "Requests", body = gatehouse_api::PublishRequests),
        (status = 404, description = "No policy editor here, or not the caller's", body = ErrorBody),
    ),
    security(("cookieSession" = []), ("apiToken" = [])),
)]
pub async fn publish_requests(
    State(host): State<Host>,
    p: Principal,
) -> ApiResult<Json<gatehouse_api::PublishRequests>> {
    let a = allowed(&host, &p).await?;
    let rows = sqlx::query(&format!(
        "SELECT {STORED_COLUMNS} FROM publish_requests WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50"
    ))
    .bind(&a.account)
    .fetch_all(host.store.pool())
    .await?;
    let now = host.clock.now();
    let mut out = Vec::new();
    for row in &rows {
        let r = stored(row)?;
        let mut item = r.shown(now);
        if r.status == PublishStatus::Pending && r.expires_at > now {
            let mut answers = std::collections::BTreeMap::new();
            for action in ["approve_publish", "decline_publish", "cancel_publish"] {
                let (_, decided) =
                    decide(&host, &p, &a.account, action, Some(r.question())).await?;
                answers.insert(action.to_owned(), crate::shapes::decision(&decided.answer));
            }
            item.decisions = Some(answers);
        }
        out.push(item);
    }
    Ok(Json(gatehouse_api::PublishRequests { requests: out }))
}

/// `POST /v1/policies/publish-requests/{id}/approve`: a second owner of the
/// policy account approves (`approve_publish`); the version lands, every
/// owner of the policy account is mailed, this host swaps at once.
#[utoipa::path(
    post,
    path = "/v1/policies/publish-requests/{id}/approve",
    tag = "policies",
    operation_id = "approve_publish",
    summary = "Approve a publish request",
    params(("id" = String, Path, description = "Publish request id")),
    responses(
        (status = 200, description = "Answered", body = gatehouse_api::PublishAnswered),
        (status = 404, description = "No such request, or no policy editor here", body = ErrorBody),
        (status = 409, description = "Not pending, or someone published meanwhile (code conflict)", body = ErrorBody),
        (status = 422, description = "The version does not load (code unprocessable)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn approve(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<gatehouse_api::PublishAnswered>> {
    answer(host, p, id, "approve_publish").await
}

/// `POST /v1/policies/publish-requests/{id}/decline`: another owner declines.
#[utoipa::path(
    post,
    path = "/v1/policies/publish-requests/{id}/decline",
    tag = "policies",
    operation_id = "decline_publish",
    summary = "Decline a publish request",
    params(("id" = String, Path, description = "Publish request id")),
    responses(
        (status = 200, description = "Answered", body = gatehouse_api::PublishAnswered),
        (status = 404, description = "No such request, or no policy editor here", body = ErrorBody),
        (status = 409, description = "Not pending, or someone published meanwhile (code conflict)", body = ErrorBody),
        (status = 422, description = "The version does not load (code unprocessable)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn decline(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<gatehouse_api::PublishAnswered>> {
    answer(host, p, id, "decline_publish").await
}

/// `POST /v1/policies/publish-requests/{id}/cancel`: its author withdraws it.
#[utoipa::path(
    post,
    path = "/v1/policies/publish-requests/{id}/cancel",
    tag = "policies",
    operation_id = "cancel_publish",
    summary = "Cancel a publish request",
    params(("id" = String, Path, description = "Publish request id")),
    responses(
        (status = 200, description = "Answered", body = gatehouse_api::PublishAnswered),
        (status = 404, description = "No such request, or no policy editor here", body = ErrorBody),
        (status = 409, description = "Not pending, or someone published meanwhile (code conflict)", body = ErrorBody),
        (status = 422, description = "The version does not load (code unprocessable)", body = ErrorBody),
    ),
    security(("cookieSession" = [], "csrfToken" = []), ("apiToken" = [])),
)]
pub async fn cancel(
    State(host): State<Host>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<gatehouse_api::PublishAnswered>> {
    answer(host, p, id, "cancel_publish").await
}

async fn answer(
    host: Host,
    p: Principal,
    id: String,
    action: &str,
) -> ApiResult<Json<gatehouse_api::PublishAnswered>> {
    let a = authoring(&host)?.clone();
    let r = load_request(&host, &a.account, &id).await?;
    let (check, decided) = decide(&host, &p, &a.account, action, Some(r.question())).await?;
    if !decided.answer.allowed {
        return Err(match deny(&host, &p, &a.account, &check, &decided).await {
            ApiError::NotFound(_) => ApiError::NotFound(format!("no publish request `{id}`")),
            other => other,
        });
    }
    let now = host.clock.now();
    let before = r.json(now);
    if action != "approve_publish" {
        let status = if action == "decline_publish" {
            "declined"
        } else {
            "cancelled"
        };
        let mut tx = host.store.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE publish_requests SET status = $1, decided_by = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status)
        .bind(&p.user)
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            return Err(ApiError::Conflict(
                "this publish request was answered meanwhile".into(),
            ));
        }
        let after = json!({"id": id, "status": status, "decided_by": p.user});
        let audit_id = audit::record(
            &mut tx,
            &entry(&host, &p, &a.account, &check, &decided, before, after),
        )
        .await?;
        if action == "decline_publish" {
            crate::outbox::enqueue(
                &mut tx,
                &crate::outbox::Mail {
                    to: user_email(&check, &r.author),
                    subject: "Your policy publish was declined".into(),
                    body: format!(
                        "{} declined your publish \"{}\". Nothing changed.",
                        user_email(&check, &p.user),
                        r.message
                    ),
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        return Ok(Json(gatehouse_api::PublishAnswered {
            ok: true,
            id,
            status: serde_json::from_value(json!(status)).map_err(ApiError::internal)?,
            version: None,
            policy_hash: None,
            module_sha256: None,
            audit_id,
        }));
    }
    // Approval: the draft was checked against the policies live when it
    // was asked for; someone else's publish since then would be undone.
    if r.base != host.gate.policy_hash() {
        return Err(ApiError::Conflict(format!(
            "the live policies changed since this publish was asked for (now policy {}): decline it and publish the draft again",
            host.gate.policy_hash()
        )));
    }
    let stored =
        sqlx::query("SELECT module, module_br, module_gz FROM publish_requests WHERE id = $1")
            .bind(&id)
            .fetch_one(host.store.pool())
            .await?;
    let (module, precompressed) = crate::versions::stored(&stored)?;
    let author = user_email(&check, &r.author);
    let approver = user_email(&check, &p.user);
    let mut tx = host.store.begin_write().await?;
    let changed = sqlx::query(
        "UPDATE publish_requests SET status = 'approved', decided_by = $1, decided_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(&p.user)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() != 1 {
        return Err(ApiError::Conflict(
            "this publish request was answered meanwhile".into(),
        ));
    }
    let v = crate::versions::insert(
        &mut tx,
        &crate::versions::NewVersion {
            module: &module,
            module_sha256: &r.module_sha256,
            policy_hash: &r.policy_hash,
            author: &author,
            message: &format!("{} (approved by {approver})", r.message),
            at: now,
            rollback_of: None,
            precompressed: precompressed.as_ref(),
            seen: crate::versions::Seen::PolicyHash(&r.base),
        },
    )
    .await
    .map_err(|e| match e {
        crate::versions::Refused::Moved(v) => ApiError::Conflict(format!(
            "the live policies changed since this publish was asked for (version {} by {}, policy {}): decline it and publish the draft again",
            v.version, v.author, v.policy_hash
        )),
        crate::versions::Refused::Store(e) => e.into(),
    })?;
    sqlx::query("UPDATE publish_requests SET version = $1 WHERE id = $2")
        .bind(v.version)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let after = json!({"id": id, "status": "approved", "decided_by": p.user, "version": v.version, "policy_hash": v.policy_hash, "module_sha256": v.module_sha256});
    let audit_id = audit::record(
        &mut tx,
        &entry(&host, &p, &a.account, &check, &decided, before, after),
    )
    .await?;
    for (_, email) in owner_emails(&check, &a.account) {
        crate::outbox::enqueue(
            &mut tx,
            &crate::outbox::Mail {
                to: email,
                subject: format!("New policies are live (version {})", v.version),
                body: format!(
                    "Version {} of the policies is live for every account: \"{}\".\n\
                     Asked for by {author}, approved by {approver}. Policy hash {}.",
                    v.version, r.message, v.policy_hash
                ),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    // This host serves the new version now (compiling it is seconds of
    // CPU, off the async workers); other hosts within their poll interval.
    let gate = host.gate.clone();
    let swapped = tokio::task::spawn_blocking(move || gate.swap(module, precompressed))
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = swapped {
        crate::logging::error(&format!(
            "published version {} does not load here: {e}",
            v.version
        ));
    }
    Ok(Json(gatehouse_api::PublishAnswered {
        ok: true,
        id,
        status: gatehouse_api::RequestStatus::Approved,
        version: Some(v.version),
        policy_hash: Some(v.policy_hash),
        module_sha256: Some(v.module_sha256),
        audit_id,
    }))
}
