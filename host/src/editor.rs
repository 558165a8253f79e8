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
use gatehouse_policy::{Actor, Check, Decision, Source, Target};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Body;
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::{Host, facts};

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

/// Asks `author_policies` for `user`: the question and the module's answer.
async fn decide(
    host: &Host,
    p: &Principal,
    account: &str,
) -> ApiResult<(Check, crate::gate::Decided<Decision>)> {
    let mut tx = host.store.begin_read().await?;
    let mut scope = facts::Scope::default();
    scope.accounts.insert(account.to_owned());
    let facts = facts::load(&mut tx, host.clock.now(), &scope, Some(&p.user)).await?;
    tx.commit().await?;
    let check = Check {
        facts,
        actor: Actor::User(UserId(p.user.clone())),
        action: "author_policies".into(),
        target: Target::Account(AccountId(account.to_owned())),
        params: Default::default(),
        source: if p.cookie { Source::Ui } else { Source::Api },
    };
    let decided = host.gate.authorize(&check)?;
    Ok((check, decided))
}

/// Is `user` a stranger to `account` (no membership there or above)?
fn stranger(check: &Check, account: &str, user: &str) -> bool {
    facts::first_membership(&check.facts, &facts::lineage(&check.facts, account), user).is_none()
}

/// A stranger to the policy account learns nothing (404); a member who may
/// not author is told why (403).
fn refuse(
    check: &Check,
    account: &str,
    user: &str,
    reasons: Vec<gatehouse_policy::Reason>,
    audit_id: Option<i64>,
) -> ApiError {
    if stranger(check, account, user) {
        return ApiError::NotFound(
            "no policy editor for you here: only the owners of the policy account may edit the policies".into(),
        );
    }
    ApiError::Denied { reasons, audit_id }
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
    .await?;
    Ok(a)
}

/// The live bundle: the policy section of the module this host runs.
fn live(host: &Host) -> ApiResult<Bundle> {
    let (_, bytes) = host.gate.module();
    let section = gatehouse_policy::module::policy_section(&bytes).map_err(ApiError::internal)?;
    Bundle::from_bytes(section).map_err(ApiError::internal)
}

/// `GET /v1/policies`: what the editor starts from.
pub async fn policies(State(host): State<Host>, p: Principal) -> ApiResult<Json<Value>> {
    let a = allowed(&host, &p).await?;
    let bundle = live(&host)?;
    let tables = match gatehouse_vectors::load_hand(&a.tables) {
        Ok(vectors) => vectors
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "rule": v.rule,
                    // The exact bytes every runtime is handed (some
                    // tables send malformed JSON on purpose).
                    "input": String::from_utf8_lossy(&v.input),
                    // What the page hands its module (`{"op":"tables",…}`).
                    "expect": v.expect,
                })
            })
            .collect::<Vec<Value>>(),
        Err(e) => {
            eprintln!("gatehouse: the policy editor has no decision tables: {e}");
            Vec::new()
        }
    };
    let newest = crate::versions::newest(&host.store).await?;
    Ok(Json(json!({
        "account": a.account,
        "policy_hash": host.gate.policy_hash(),
        "module_sha256": host.gate.module_sha256(),
        "version": newest.map(|v| json!({
            "version": v.version, "author": v.author, "message": v.message,
            "published_at": v.published_at, "policy_hash": v.policy_hash,
        })),
        "schema": bundle.schema,
        "policies": bundle.policies,
        "tables": tables,
    })))
}

/// The edited policy files (the schema is the live one: the engine builds
/// entities for it, so it changes with the host, not in the editor).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    policies: Vec<PolicyFile>,
}

/// A draft to publish, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    policies: Vec<PolicyFile>,
    message: String,
    /// The policy hash the draft was begun on: when given and no longer the
    /// live one, someone published meanwhile and the publish is refused
    /// (409) rather than silently undoing their change.
    #[serde(default)]
    base: Option<String>,
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
pub async fn check_draft(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<Draft>,
) -> ApiResult<Json<Value>> {
    allowed(&host, &p).await?;
    let bundle = bundle_of(&host, body.policies)?;
    Ok(Json(
        serde_json::to_value(Checked::strict(&bundle)).map_err(ApiError::internal)?,
    ))
}

/// `POST /v1/policies/impact`: every recorded decision the draft would flip.
pub async fn impact(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<Draft>,
) -> ApiResult<Json<Value>> {
    allowed(&host, &p).await?;
    let bundle = draft(&host, body.policies)?;
    let engine = gatehouse_policy::Engine::from_bundle_bytes(&bundle.to_bytes())
        .map_err(|e| ApiError::BadRequest(format!("the policies do not load: {e}")))?;
    let report = crate::impact::replay(&host.store, &engine, None)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        serde_json::to_value(&report).map_err(ApiError::internal)?,
    ))
}

/// `POST /v1/policies/publish`: the CLI's checks, then the new version and
/// its audit record in one transaction, then this host swaps.
pub async fn publish(
    State(host): State<Host>,
    p: Principal,
    Body(body): Body<PublishBody>,
) -> ApiResult<Json<Value>> {
    let a = authoring(&host)?.clone();
    let message = body.message.trim().to_owned();
    if message.is_empty() {
        return Err(ApiError::BadRequest(
            "say why in `message`: it is recorded with the version".into(),
        ));
    }
    if let Some(base) = &body.base
        && *base != host.gate.policy_hash()
    {
        return Err(ApiError::Conflict(format!(
            "the live policies changed since this draft was begun (now policy {}): review the draft and its impact against them, then publish again",
            host.gate.policy_hash()
        )));
    }
    let (check, decided) = decide(&host, &p, &a.account).await?;
    let before =
        json!({"policy_hash": host.gate.policy_hash(), "module_sha256": host.gate.module_sha256()});
    let entry = |decision| AuditEntry {
        at: host.clock.now(),
        actor: format!("user:{}", p.user),
        action: "author_policies".into(),
        account: Some(a.account.clone()),
        target: format!("policies:{}", a.account),
        decision,
        policy_hash: decided.policy_hash.clone(),
        module_hash: decided.module_hash.clone(),
        before: before.clone(),
        after: Value::Null,
        source: check.source,
        request: serde_json::to_value(&check).unwrap_or(Value::Null),
        job: None,
    };
    if !decided.answer.allowed {
        let audit_id = if !stranger(&check, &a.account, &p.user) {
            let mut tx = host.store.begin_write().await?;
            let id = audit::record(&mut tx, &entry(&decided.answer)).await?;
            tx.commit().await?;
            Some(id)
        } else {
            None
        };
        return Err(refuse(
            &check,
            &a.account,
            &p.user,
            decided.answer.reasons.clone(),
            audit_id,
        ));
    }
    let bundle = draft(&host, body.policies)?;
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
    let author = check
        .facts
        .users
        .iter()
        .find(|u| u.id.as_str() == p.user)
        .map_or(p.user.clone(), |u| u.email.clone());
    let mut tx = host.store.begin_write().await?;
    let v = crate::versions::insert(
        &mut tx,
        &crate::versions::NewVersion {
            module: &prepared.module,
            module_sha256: &prepared.module_sha256,
            policy_hash: &prepared.policy_hash,
            author: &author,
            message: &message,
            at: host.clock.now(),
            rollback_of: None,
        },
    )
    .await?;
    let audit_id = audit::record(
        &mut tx,
        &AuditEntry {
            after: json!({"version": v.version, "policy_hash": v.policy_hash, "module_sha256": v.module_sha256, "message": message}),
            ..entry(&decided.answer)
        },
    )
    .await?;
    tx.commit().await?;
    // This host serves the new version now (compiling it is seconds of
    // CPU, off the async workers); other hosts within their poll interval.
    let gate = host.gate.clone();
    let swapped = tokio::task::spawn_blocking(move || gate.swap(prepared.module))
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = swapped {
        eprintln!(
            "gatehouse: published version {} does not load here: {e}",
            v.version
        );
    }
    Ok(Json(json!({
        "ok": true,
        "version": v.version,
        "policy_hash": v.policy_hash,
        "module_sha256": v.module_sha256,
        "audit_id": audit_id,
        "log": prepared.log,
    })))
}
