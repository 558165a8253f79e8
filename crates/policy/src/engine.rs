//! The resident engine: a parsed policy bundle, sliced per action, answering
//! single checks and batches.
//!
//! Why sliced: a users page asks 50 × 12 questions per render. Each action's
//! policies are grouped once at load, so a cell evaluates only the policies
//! whose scope can match its action — the answer is the same as with the
//! whole set (a policy whose action scope does not match is never satisfied
//! and never errors), the work is a fraction.
//!
//! Why one evaluation per cell: Cedar evaluates every policy of the set it
//! is given, so asking the gates, the permits and the forbids apart paid
//! the request's setup three times. A cell is asked once over its action's
//! whole set and the policies that hold (or error) are classified into the
//! phases of a decision afterwards ([`Engine::evaluate`]); only a cell that
//! a forbid denies asks its permits again, to tell "forbidden" from "not
//! permitted". In a batch, each column's context is built once per target
//! account and cells with equal observed inputs share one evaluation
//! ([`crate::memo`]); reasons are rendered from each cell's own facts.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, EntityUid, EvalResult, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression, SchemaFragment,
};
use sha2::{Digest, Sha256};

use crate::bundle::Bundle;
use crate::error::EngineError;
use crate::facts::RequestedRole;
use crate::memo::{Cell, Input, Plan};
use crate::request::{
    ActionCall, Actor, Batch, BatchDecision, Check, Decision, Outcome, Params, Reason, Source,
    Target,
};
use crate::template::{Root, Segment, Template};
use crate::world::{Types, World};

/// Context attributes the engine knows how to fill (see the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CtxAttr {
    Now,
    Source,
    Role,
    RoleName,
    Quantity,
    Email,
    EmailPending,
    EmailMember,
    EmailDomainVerified,
    Domain,
    DomainProven,
    Target,
    To,
    Credential,
    SignedInAt,
    LifetimeDays,
    PublishAuthor,
    PublishStatus,
    PublishExpiresAt,
}

impl CtxAttr {
    fn from_name(name: &str) -> Option<CtxAttr> {
        Some(match name {
            "now" => CtxAttr::Now,
            "source" => CtxAttr::Source,
            "role" => CtxAttr::Role,
            "role_name" => CtxAttr::RoleName,
            "quantity" => CtxAttr::Quantity,
            "email" => CtxAttr::Email,
            "email_pending" => CtxAttr::EmailPending,
            "email_member" => CtxAttr::EmailMember,
            "email_domain_verified" => CtxAttr::EmailDomainVerified,
            "domain" => CtxAttr::Domain,
            "domain_proven" => CtxAttr::DomainProven,
            "target" => CtxAttr::Target,
            "to" => CtxAttr::To,
            "credential" => CtxAttr::Credential,
            "signed_in_at" => CtxAttr::SignedInAt,
            "lifetime_days" => CtxAttr::LifetimeDays,
            "publish_author" => CtxAttr::PublishAuthor,
            "publish_status" => CtxAttr::PublishStatus,
            "publish_expires_at" => CtxAttr::PublishExpiresAt,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CtxAttr::Now => "now",
            CtxAttr::Source => "source",
            CtxAttr::Role => "role",
            CtxAttr::RoleName => "role_name",
            CtxAttr::Quantity => "quantity",
            CtxAttr::Email => "email",
            CtxAttr::EmailPending => "email_pending",
            CtxAttr::EmailMember => "email_member",
            CtxAttr::EmailDomainVerified => "email_domain_verified",
            CtxAttr::Domain => "domain",
            CtxAttr::DomainProven => "domain_proven",
            CtxAttr::Target => "target",
            CtxAttr::To => "to",
            CtxAttr::Credential => "credential",
            CtxAttr::SignedInAt => "signed_in_at",
            CtxAttr::LifetimeDays => "lifetime_days",
            CtxAttr::PublishAuthor => "publish_author",
            CtxAttr::PublishStatus => "publish_status",
            CtxAttr::PublishExpiresAt => "publish_expires_at",
        }
    }

    /// The request parameter this attribute is computed from.
    fn param(self) -> Option<&'static str> {
        match self {
            CtxAttr::Now | CtxAttr::Source => None,
            CtxAttr::Role | CtxAttr::RoleName => Some("role"),
            CtxAttr::Quantity => Some("quantity"),
            CtxAttr::Email
            | CtxAttr::EmailPending
            | CtxAttr::EmailMember
            | CtxAttr::EmailDomainVerified => Some("email"),
            CtxAttr::Domain | CtxAttr::DomainProven => Some("domain"),
            CtxAttr::Target => Some("user"),
            CtxAttr::To => Some("to"),
            CtxAttr::Credential | CtxAttr::SignedInAt => Some("credential"),
            CtxAttr::LifetimeDays => Some("lifetime_days"),
            CtxAttr::PublishAuthor | CtxAttr::PublishStatus | CtxAttr::PublishExpiresAt => {
                Some("publish")
            }
        }
    }
}

/// The kind of thing an action's resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    Account,
    User,
    Membership,
    Invitation,
    Request,
    Device,
}

impl ResourceKind {
    fn from_type(name: &str) -> Option<ResourceKind> {
        Some(match name {
            "Account" => ResourceKind::Account,
            "User" => ResourceKind::User,
            "Membership" => ResourceKind::Membership,
            "Invitation" => ResourceKind::Invitation,
            "OwnerRemovalRequest" => ResourceKind::Request,
            "Device" => ResourceKind::Device,
            _ => return None,
        })
    }

    fn target_name(self) -> &'static str {
        match self {
            ResourceKind::Account => "account",
            ResourceKind::User => "user",
            ResourceKind::Membership => "membership",
            ResourceKind::Invitation => "invitation",
            ResourceKind::Request => "owner_removal_request",
            ResourceKind::Device => "device",
        }
    }
}

/// One action as the schema declares it.
#[derive(Debug, Clone)]
pub(crate) struct ActionDecl {
    name: String,
    by_user: bool,
    by_idp: bool,
    resource: ResourceKind,
    context: Vec<CtxAttr>,
}

/// The actions of a schema, in declaration order.
#[derive(Debug, Clone)]
pub(crate) struct Catalogue {
    actions: Vec<ActionDecl>,
}

impl Catalogue {
    /// Reads the actions, their principal and resource types and their context
    /// attributes from the schema text: the schema is the one action list.
    pub(crate) fn from_schema_text(text: &str) -> Result<Catalogue, String> {
        if let Some((offset, problem)) = crate::bundle::too_deep(text, true) {
            return Err(format!("schema: at byte {offset}: {problem}"));
        }
        let (fragment, _) =
            SchemaFragment::from_cedarschema_str(text).map_err(|e| format!("schema: {e}"))?;
        let json = fragment
            .to_json_value()
            .map_err(|e| format!("schema to JSON: {e}"))?;
        let empty = serde_json::Map::new();
        let actions = json
            .get("")
            .and_then(|ns| ns.get("actions"))
            .and_then(|a| a.as_object())
            .unwrap_or(&empty);
        let mut out = Vec::new();
        for (name, decl) in actions {
            let applies = decl
                .get("appliesTo")
                .ok_or_else(|| format!("action `{name}` has no appliesTo"))?;
            let types = |key: &str| -> Vec<String> {
                applies
                    .get(key)
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let principals = types("principalTypes");
            let resources = types("resourceTypes");
            let [resource] = resources.as_slice() else {
                return Err(format!(
                    "action `{name}` must apply to exactly one resource type"
                ));
            };
            let resource = ResourceKind::from_type(resource)
                .ok_or_else(|| format!("action `{name}`: unknown resource type `{resource}`"))?;
            let mut context = Vec::new();
            if let Some(attrs) = applies
                .get("context")
                .and_then(|c| c.get("attributes"))
                .and_then(|a| a.as_object())
            {
                for attr in attrs.keys() {
                    let known = CtxAttr::from_name(attr).ok_or_else(|| {
                        format!(
                            "action `{name}`: the engine cannot fill context attribute `{attr}`"
                        )
                    })?;
                    context.push(known);
                }
            }
            out.push(ActionDecl {
                name: name.clone(),
                by_user: principals.iter().any(|p| p == "User"),
                by_idp: principals.iter().any(|p| p == "IdentityProvider"),
                resource,
                context,
            });
        }
        Ok(Catalogue { actions: out })
    }

    /// The action names.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.name.as_str())
    }
}

/// The action names a policy's scope can match.
pub(crate) fn actions_of(policy: &Policy, catalogue: &Catalogue) -> Vec<String> {
    let name = |uid: &EntityUid| uid.id().unescaped().to_owned();
    match policy.action_constraint() {
        ActionConstraint::Any => catalogue.names().map(str::to_owned).collect(),
        ActionConstraint::Eq(uid) => vec![name(&uid)],
        ActionConstraint::In(uids) => uids.iter().map(name).collect(),
    }
}

/// False when the policy's `principal is T` or `resource is T` scope names a
/// type the action never has: such a policy is never satisfied and never
/// errors for that action, so leaving it out of the slice changes no answer.
fn scope_can_match(policy: &Policy, decl: &ActionDecl) -> bool {
    use cedar_policy::{PrincipalConstraint as P, ResourceConstraint as R};
    let principal_ok = |ty: &cedar_policy::EntityTypeName| match ty.to_string().as_str() {
        "User" => decl.by_user,
        "IdentityProvider" => decl.by_idp,
        _ => false,
    };
    let principal = match policy.principal_constraint() {
        P::Is(ty) | P::IsIn(ty, _) => principal_ok(&ty),
        P::Any | P::In(_) | P::Eq(_) => true,
    };
    let resource = match policy.resource_constraint() {
        R::Is(ty) | R::IsIn(ty, _) => {
            ResourceKind::from_type(&ty.to_string()) == Some(decl.resource)
        }
        R::Any | R::In(_) | R::Eq(_) => true,
    };
    principal && resource
}

#[derive(Debug)]
struct Meta {
    reason: Template,
    unmet: Option<Template>,
    kind: Kind,
}

/// Which phase of a decision a policy belongs to (see [`Engine::evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `@gate` forbid.
    Gate(GateKind),
    /// Any other forbid.
    Forbid,
    /// A permit.
    Permit,
}

/// What a holding `@gate` forbid makes of a decision, by its `@outcome`.
/// Checked in this order: a stranger learns nothing (not even that the
/// thing is inapplicable), a member's standing comes before the state of
/// the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum GateKind {
    /// `@outcome("hidden")`: [`Outcome::Hidden`].
    Hidden,
    /// No `@outcome`: the actor's standing, [`Outcome::Forbidden`].
    Standing,
    /// `@outcome("inapplicable")`: [`Outcome::Inapplicable`].
    Inapplicable,
}

impl GateKind {
    /// The kind an `@outcome` annotation names; `None` for an unknown word.
    pub(crate) fn from_annotation(outcome: Option<&str>) -> Option<GateKind> {
        match outcome {
            None => Some(GateKind::Standing),
            Some("hidden") => Some(GateKind::Hidden),
            Some("inapplicable") => Some(GateKind::Inapplicable),
            Some(_) => None,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            GateKind::Hidden => Outcome::Hidden,
            GateKind::Standing => Outcome::Forbidden,
            GateKind::Inapplicable => Outcome::Inapplicable,
        }
    }
}

/// One action's share of the bundle. Its policy sets and memo plan are
/// built the first time the action is asked ([`Slice::built`]), not at
/// load: a page's first decision needs a few of the 41 actions, and
/// deriving every plan at load was most of the load's time (33–52 ms
/// natively, about 15 times that in a browser's baseline tier).
#[derive(Debug)]
struct Slice {
    decl: ActionDecl,
    uid: EntityUid,
    /// Every policy whose scope can match the action, in bundle order.
    members: Vec<Policy>,
    /// Permit policy ids with their `@unmet`, sorted by id.
    permits: Vec<PolicyId>,
    built: OnceLock<Built>,
}

/// What a slice builds on first use; a pure function of its policies.
#[derive(Debug)]
struct Built {
    /// Every policy whose scope can match the action: the one evaluation.
    policies: PolicySet,
    /// Its permits alone: asked only when a forbid holds.
    permit_set: PolicySet,
    /// What the policies can observe of a cell (`None`: no memo).
    plan: Option<Plan>,
}

impl Slice {
    /// The slice's policy sets and plan, built on first use. Building
    /// cannot fail: the ids are unique (the bundle's parse checked them).
    fn built(&self) -> &Built {
        self.built.get_or_init(|| {
            let mut policies = PolicySet::new();
            let mut permit_set = PolicySet::new();
            for policy in &self.members {
                if policy.effect() == cedar_policy::Effect::Permit {
                    // Unique ids (parse_policies) make `add` infallible here.
                    let _ = permit_set.add(policy.clone());
                }
                let _ = policies.add(policy.clone());
            }
            let plan = Plan::derive(policies.policies());
            Built {
                policies,
                permit_set,
                plan,
            }
        })
    }

    /// What the policies can observe of a cell (`None`: no memo).
    fn plan(&self) -> Option<&Plan> {
        self.built().plan.as_ref()
    }
}

/// Whether the cells of a batch column share evaluations ([`crate::memo`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Memo {
    /// Cells with equal observed inputs share one evaluation (the default).
    #[default]
    On,
    /// Every cell is evaluated on its own.
    Off,
    /// For the memo's soundness test only: the memo leaves input `n` of
    /// every action's key out, which must change some answers.
    WithoutInput(usize),
}

/// A loaded policy bundle, ready to answer. Immutable: a new bundle means a
/// new engine, swapped in whole by whoever holds it.
#[derive(Debug)]
pub struct Engine {
    types: Types,
    slices: HashMap<String, Slice>,
    meta: HashMap<PolicyId, Meta>,
    policy_hash: String,
    action_names: Vec<String>,
    authorizer: Authorizer,
    memo: Memo,
}

impl Engine {
    /// Loads the bytes of a `gatehouse.policies` section. The policy hash is
    /// the sha256 of exactly these bytes.
    pub fn from_bundle_bytes(bytes: &[u8]) -> Result<Engine, EngineError> {
        let bundle = Bundle::from_bytes(bytes).map_err(EngineError::Bundle)?;
        let hash = hex(&Sha256::digest(bytes));
        Engine::new(&bundle, hash)
    }

    /// Loads a bundle under the given policy hash.
    pub fn new(bundle: &Bundle, policy_hash: String) -> Result<Engine, EngineError> {
        let types = Types::new()?;
        let catalogue = Catalogue::from_schema_text(&bundle.schema).map_err(EngineError::Bundle)?;
        let policies = bundle.parse_policies().map_err(EngineError::Bundle)?;
        let mut meta = HashMap::new();
        let mut slices: HashMap<String, Slice> = catalogue
            .actions
            .iter()
            .map(|decl| {
                let slice = Slice {
                    decl: decl.clone(),
                    uid: Types::uid(&types.action, &decl.name),
                    members: Vec::new(),
                    permits: Vec::new(),
                    built: OnceLock::new(),
                };
                (decl.name.clone(), slice)
            })
            .collect();
        for policy in policies.policies() {
            let id = policy.id().clone();
            let parse = |key: &str| -> Result<Option<Template>, EngineError> {
                policy
                    .annotation(key)
                    .map(Template::parse)
                    .transpose()
                    .map_err(|e| EngineError::Bundle(format!("{id}: @{key}: {e}")))
            };
            let reason = parse("reason")?
                .ok_or_else(|| EngineError::Bundle(format!("{id}: no @reason annotation")))?;
            let unmet = parse("unmet")?;
            let gate =
                GateKind::from_annotation(policy.annotation("outcome")).ok_or_else(|| {
                    EngineError::Bundle(format!(
                        "{id}: @outcome must be \"hidden\" or \"inapplicable\""
                    ))
                })?;
            let kind = if policy.effect() == cedar_policy::Effect::Permit {
                Kind::Permit
            } else if policy.annotation("gate").is_some() {
                Kind::Gate(gate)
            } else {
                Kind::Forbid
            };
            for action in actions_of(policy, &catalogue) {
                let slice = slices.get_mut(&action).ok_or_else(|| {
                    EngineError::Bundle(format!("{id} names action `{action}` the schema lacks"))
                })?;
                // `action in [A, A]` names A twice: one member.
                let again = slice.members.last().is_some_and(|p| p.id() == &id);
                if again || !scope_can_match(policy, &slice.decl) {
                    continue;
                }
                if kind == Kind::Permit {
                    slice.permits.push(id.clone());
                }
                slice.members.push(policy.clone());
            }
            meta.insert(
                id,
                Meta {
                    reason,
                    unmet,
                    kind,
                },
            );
        }
        for slice in slices.values_mut() {
            slice.permits.sort_by_key(ToString::to_string);
        }
        Ok(Engine {
            types,
            slices,
            meta,
            policy_hash,
            action_names: catalogue.names().map(str::to_owned).collect(),
            authorizer: Authorizer::new(),
            memo: Memo::On,
        })
    }

    /// Switches the batch memo ([`Memo`]); answers never depend on it.
    pub fn set_memo(&mut self, memo: Memo) {
        self.memo = memo;
    }

    /// How many inputs the memo's key has for `action` (0 when its cells
    /// are not memoized).
    pub fn memo_inputs(&self, action: &str) -> usize {
        self.slices
            .get(action)
            .and_then(Slice::plan)
            .map_or(0, Plan::len)
    }

    /// The sha256 of the bundle this engine was loaded from.
    pub fn policy_hash(&self) -> &str {
        &self.policy_hash
    }

    /// The actions the schema declares, in declaration order.
    pub fn actions(&self) -> &[String] {
        &self.action_names
    }

    /// The shape of an action as the schema declares it: its target kind
    /// (`account`, `membership`, …), the request parameters it takes, and
    /// whether a user and an identity provider may be its actor.
    pub fn action_shape(&self, action: &str) -> Option<ActionShape> {
        let decl = &self.slices.get(action)?.decl;
        let mut params: Vec<&'static str> = Vec::new();
        for p in decl.context.iter().filter_map(|c| c.param()) {
            if !params.contains(&p) {
                params.push(p);
            }
        }
        Some(ActionShape {
            target: decl.resource.target_name(),
            params,
            by_user: decl.by_user,
            by_identity_provider: decl.by_idp,
        })
    }

    /// Answers one question.
    ///
    /// Only the neighbourhood of the question is made into entities: the
    /// actor, the target, the entities the context names and the policies'
    /// literals, with everything they reach through attributes and parents
    /// (their accounts, ancestors, role groups). The facts are checked
    /// whole, and the counts are taken over every row.
    pub fn authorize(&self, check: &Check) -> Result<Decision, EngineError> {
        let slice = self.slice(&check.action)?;
        let world = match slice.plan() {
            Some(plan) => World::build_around(&check.facts, &self.types, &|world| {
                let mut roots = plan.literals().to_vec();
                roots.push(self.principal(world, &check.actor, &slice.decl)?);
                roots.push(self.resource(
                    world,
                    &check.target,
                    slice.decl.resource,
                    &slice.decl.name,
                )?);
                let context =
                    self.context(world, slice, &check.target, &check.params, check.source)?;
                roots.extend(context.into_iter().filter_map(|(_, v)| match v {
                    Value::Uid(uid) => Some(uid),
                    _ => None,
                }));
                Ok(roots)
            })?,
            None => World::build(&check.facts, &self.types)?,
        };
        let principal = self.principal(&world, &check.actor, &slice.decl)?;
        let resource =
            self.resource(&world, &check.target, slice.decl.resource, &slice.decl.name)?;
        self.decide(
            &world,
            &principal,
            slice,
            &resource,
            &check.target,
            &check.params,
            check.source,
        )
    }

    /// Answers every (target, action) cell for one actor: the entities
    /// built once, each column's context once per target account, and the
    /// cells of a column whose observed inputs are equal evaluated once
    /// ([`crate::memo`]).
    pub fn allowed_actions(&self, batch: &Batch) -> Result<BatchDecision, EngineError> {
        let world = World::build(&batch.facts, &self.types)?;
        let mut columns: Vec<Column<'_, '_>> = batch
            .actions
            .iter()
            .map(|call| {
                let slice = self.slice(&call.action)?;
                let principal = self.principal(&world, &batch.actor, &slice.decl)?;
                Ok(Column {
                    slice,
                    call,
                    principal,
                    contexts: Vec::new(),
                    memo: BTreeMap::new(),
                })
            })
            .collect::<Result<_, EngineError>>()?;
        let drop = match self.memo {
            Memo::On => None,
            Memo::Off => Some(None),
            Memo::WithoutInput(n) => Some(Some(n)),
        };
        let mut cells = Vec::with_capacity(batch.targets.len());
        for target in &batch.targets {
            let mut row = Vec::with_capacity(columns.len());
            let mut target_uid = None;
            let account = Self::target_account(&world, target);
            for column in &mut columns {
                let slice = column.slice;
                // Resolved at the first column (a batch without columns
                // asks nothing of its targets).
                if target_uid.is_none() {
                    target_uid = Some(self.target_uid(&world, target)?);
                }
                let Some((kind, resource)) = target_uid.as_ref() else {
                    continue;
                };
                Self::check_kind(*kind, slice.decl.resource, &slice.decl.name)?;
                let at = match column.contexts.iter().position(|(a, _)| *a == account) {
                    Some(at) => at,
                    None => {
                        let context = self.cell_context(
                            &world,
                            slice,
                            target,
                            &column.call.params,
                            batch.source,
                        )?;
                        column.contexts.push((account, context));
                        column.contexts.len() - 1
                    }
                };
                let context = &column.contexts[at].1;
                let key = match (slice.plan(), drop) {
                    (Some(plan), None | Some(Some(_))) => Some(plan.key(
                        &Cell {
                            entities: &world.entities,
                            attrs: &world.attrs,
                            principal: &column.principal,
                            action: &slice.uid,
                            resource,
                            context: &context.evals,
                        },
                        drop.flatten(),
                    )),
                    _ => None,
                };
                let shared = key.as_ref().and_then(|k| column.memo.get(k)).cloned();
                let verdict = match shared {
                    Some(verdict) => verdict,
                    None => {
                        let verdict =
                            self.evaluate(&world, &column.principal, slice, resource, context)?;
                        if let Some(key) = key
                            && !matches!(verdict, Verdict::Error(_))
                        {
                            column.memo.insert(key, verdict.clone());
                        }
                        verdict
                    }
                };
                row.push(self.render(&world, &column.principal, slice, resource, context, verdict));
            }
            cells.push(row);
        }
        Ok(BatchDecision { cells })
    }

    /// The entity type names.
    pub(crate) fn types(&self) -> &Types {
        &self.types
    }

    /// The users the cells' contexts name (a bulk removal's target, a
    /// publish's author, …), or an error when a cell does not resolve
    /// (actor, targets, parameters); decides nothing.
    pub(crate) fn context_users(
        &self,
        world: &World<'_>,
        batch: &Batch,
    ) -> Result<Vec<String>, EngineError> {
        let mut users = Vec::new();
        for call in &batch.actions {
            let slice = self.slice(&call.action)?;
            self.principal(world, &batch.actor, &slice.decl)?;
            for target in &batch.targets {
                self.resource(world, target, slice.decl.resource, &slice.decl.name)?;
                for (_, value) in self.context(world, slice, target, &call.params, batch.source)? {
                    if let Value::Uid(uid) = value
                        && uid.type_name() == &self.types.user
                    {
                        users.push(uid.id().unescaped().to_owned());
                    }
                }
            }
        }
        Ok(users)
    }

    /// Whether `actor` may do `action` (without parameters) on `account`; an
    /// action the schema lacks, or one that takes parameters, allows nothing.
    pub(crate) fn allows_on_account(
        &self,
        world: &World<'_>,
        actor: &Actor,
        action: &str,
        account: &str,
    ) -> Result<bool, EngineError> {
        let Some(slice) = self.slices.get(action) else {
            return Ok(false);
        };
        if slice.decl.resource != ResourceKind::Account
            || slice.decl.context.iter().any(|c| c.param().is_some())
        {
            return Ok(false);
        }
        let Ok(principal) = self.principal(world, actor, &slice.decl) else {
            return Ok(false);
        };
        let target = Target::Account(crate::facts::AccountId(account.to_owned()));
        let resource = self.types.account_uid(account);
        Ok(self
            .decide(
                world,
                &principal,
                slice,
                &resource,
                &target,
                &Params::default(),
                Source::Api,
            )?
            .allowed)
    }

    /// Whether `action`'s context counts the target account's member and
    /// invitation emails.
    pub(crate) fn uses_email(&self, action: &str) -> bool {
        self.slices.get(action).is_some_and(|s| {
            s.decl
                .context
                .iter()
                .any(|c| matches!(c, CtxAttr::EmailPending | CtxAttr::EmailMember))
        })
    }

    fn slice(&self, action: &str) -> Result<&Slice, EngineError> {
        self.slices
            .get(action)
            .ok_or_else(|| EngineError::UnknownAction(action.to_owned()))
    }

    fn principal(
        &self,
        world: &World<'_>,
        actor: &Actor,
        decl: &ActionDecl,
    ) -> Result<EntityUid, EngineError> {
        match actor {
            Actor::User(id) => {
                if !world.users.contains_key(id.as_str()) {
                    return Err(EngineError::UnknownEntity {
                        kind: "user",
                        id: id.0.clone(),
                    });
                }
                if !decl.by_user {
                    return Err(EngineError::WrongShape {
                        action: decl.name.clone(),
                        problem: "is done only by an identity provider".into(),
                    });
                }
                Ok(self.types.user_uid(id.as_str()))
            }
            Actor::IdentityProvider(account) => {
                if !world.accounts.contains_key(account.as_str()) {
                    return Err(EngineError::UnknownEntity {
                        kind: "account",
                        id: account.0.clone(),
                    });
                }
                if !decl.by_idp {
                    return Err(EngineError::WrongShape {
                        action: decl.name.clone(),
                        problem: "is not done by an identity provider".into(),
                    });
                }
                Ok(Types::uid(&self.types.idp, account.as_str()))
            }
        }
    }

    fn resource(
        &self,
        world: &World<'_>,
        target: &Target,
        expected: ResourceKind,
        action: &str,
    ) -> Result<EntityUid, EngineError> {
        let (kind, uid) = self.target_uid(world, target)?;
        Self::check_kind(kind, expected, action)?;
        Ok(uid)
    }

    /// A target's entity, which must exist in the facts.
    fn target_uid(
        &self,
        world: &World<'_>,
        target: &Target,
    ) -> Result<(ResourceKind, EntityUid), EngineError> {
        let unknown = |kind: &'static str, id: String| EngineError::UnknownEntity { kind, id };
        Ok(match target {
            Target::Account(id) => {
                if !world.accounts.contains_key(id.as_str()) {
                    return Err(unknown("account", id.0.clone()));
                }
                (ResourceKind::Account, self.types.account_uid(id.as_str()))
            }
            Target::User(id) => {
                if !world.users.contains_key(id.as_str()) {
                    return Err(unknown("user", id.0.clone()));
                }
                (ResourceKind::User, self.types.user_uid(id.as_str()))
            }
            Target::Membership { account, user } => {
                if !world
                    .memberships
                    .contains_key(&(account.as_str(), user.as_str()))
                {
                    return Err(unknown("membership", format!("{user} in {account}")));
                }
                (
                    ResourceKind::Membership,
                    self.types.membership_uid(account.as_str(), user.as_str()),
                )
            }
            Target::Invitation(id) => {
                if !world.invitations.contains_key(id.as_str()) {
                    return Err(unknown("invitation", id.0.clone()));
                }
                (
                    ResourceKind::Invitation,
                    Types::uid(&self.types.invitation, id.as_str()),
                )
            }
            Target::OwnerRemovalRequest(id) => {
                if !world.requests.contains_key(id.as_str()) {
                    return Err(unknown("owner-removal request", id.0.clone()));
                }
                (
                    ResourceKind::Request,
                    Types::uid(&self.types.request, id.as_str()),
                )
            }
            Target::Device(id) => {
                if !world.devices.contains(id.as_str()) {
                    return Err(unknown("device", id.0.clone()));
                }
                (
                    ResourceKind::Device,
                    Types::uid(&self.types.device, id.as_str()),
                )
            }
        })
    }

    /// An action's target must be of its resource kind.
    fn check_kind(
        kind: ResourceKind,
        expected: ResourceKind,
        action: &str,
    ) -> Result<(), EngineError> {
        if kind != expected {
            return Err(EngineError::WrongShape {
                action: action.to_owned(),
                problem: format!(
                    "applies to a `{}` target, not a `{}`",
                    expected.target_name(),
                    kind.target_name()
                ),
            });
        }
        Ok(())
    }

    /// The account a target belongs to, for account-relative parameters.
    fn target_account<'w>(world: &World<'w>, target: &'w Target) -> Option<&'w str> {
        match target {
            Target::Account(id) => Some(id.as_str()),
            Target::Membership { account, .. } => Some(account.as_str()),
            Target::Invitation(id) => world
                .invitations
                .get(id.as_str())
                .map(|i| i.account.as_str()),
            Target::OwnerRemovalRequest(id) => {
                world.requests.get(id.as_str()).map(|r| r.account.as_str())
            }
            Target::User(_) | Target::Device(_) => None,
        }
    }

    /// Answers one cell: one Cedar evaluation (and the permits alone when
    /// a forbid holds), its reasons rendered.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        world: &World<'_>,
        principal: &EntityUid,
        slice: &Slice,
        resource: &EntityUid,
        target: &Target,
        params: &Params,
        source: Source,
    ) -> Result<Decision, EngineError> {
        let context = self.cell_context(world, slice, target, params, source)?;
        let verdict = self.evaluate(world, principal, slice, resource, &context)?;
        Ok(self.render(world, principal, slice, resource, &context, verdict))
    }

    /// The context of a cell, in the three forms the engine uses.
    fn cell_context(
        &self,
        world: &World<'_>,
        slice: &Slice,
        target: &Target,
        params: &Params,
        source: Source,
    ) -> Result<CellContext, EngineError> {
        let values = self.context(world, slice, target, params, source)?;
        let cedar = Context::from_pairs(
            values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_restricted())),
        )
        .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let evals = values.iter().map(|(k, v)| (*k, v.to_eval())).collect();
        Ok(CellContext {
            values,
            evals,
            cedar,
        })
    }

    /// One Cedar evaluation over the action's policies, classified.
    ///
    /// The policies that hold and those that error are sorted into three
    /// phases, each deciding before the next: the gates (forbids annotated
    /// `@gate`, the first kind that holds deciding with its own reasons);
    /// then the permits (none holds: not permitted, whatever another forbid
    /// says, with the unmet requirements as reasons — the useful words for
    /// someone who may not do this at all); then the other forbids. An
    /// error of a phase that is reached is the answer (fail closed).
    /// `allowed` is exactly Cedar's decision over the action's policies.
    fn evaluate(
        &self,
        world: &World<'_>,
        principal: &EntityUid,
        slice: &Slice,
        resource: &EntityUid,
        context: &CellContext,
    ) -> Result<Verdict, EngineError> {
        let request = Request::new(
            principal.clone(),
            slice.uid.clone(),
            resource.clone(),
            context.cedar.clone(),
            None,
        )
        .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let response =
            self.authorizer
                .is_authorized(&request, &slice.built().policies, &world.entities);
        let kind_of = |id: &PolicyId| self.meta.get(id).map_or(Kind::Forbid, |m| m.kind);
        let errors = |phase: &dyn Fn(Kind) -> bool| -> Option<Verdict> {
            failed(&response, &|id| phase(kind_of(id))).map(Verdict::Error)
        };
        let mut held: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
        held.sort_by_key(ToString::to_string);

        if let Some(error) = errors(&|k| matches!(k, Kind::Gate(_))) {
            return Ok(error);
        }
        let gate_of = |id: &PolicyId| match kind_of(id) {
            Kind::Gate(g) => Some(g),
            _ => None,
        };
        if let Some(first) = held.iter().filter_map(gate_of).min() {
            held.retain(|id| gate_of(id) == Some(first));
            return Ok(Verdict::Gate(first, held));
        }
        if let Some(error) = errors(&|k| k == Kind::Permit) {
            return Ok(error);
        }
        let forbid_error = || errors(&|k| k == Kind::Forbid);
        if response.decision() == cedar_policy::Decision::Allow {
            // `held` are the permits that hold, and no forbid holds.
            return Ok(forbid_error().unwrap_or(Verdict::Permitted(held)));
        }
        if held.is_empty() {
            return Ok(Verdict::NotPermitted);
        }
        // Forbids hold: whether a permit holds decides between "not
        // permitted" and "forbidden", so the permits alone are asked.
        let permitted = !slice.permits.is_empty()
            && self
                .authorizer
                .is_authorized(&request, &slice.built().permit_set, &world.entities)
                .decision()
                == cedar_policy::Decision::Allow;
        if !permitted {
            return Ok(Verdict::NotPermitted);
        }
        Ok(forbid_error().unwrap_or(Verdict::Forbidden(held)))
    }

    /// A verdict as a decision, its reasons rendered from the cell's facts.
    fn render(
        &self,
        world: &World<'_>,
        principal: &EntityUid,
        slice: &Slice,
        resource: &EntityUid,
        context: &CellContext,
        verdict: Verdict,
    ) -> Decision {
        let render = Render {
            world,
            principal,
            resource,
            context: &context.values,
        };
        let reasons_from = |ids: &[PolicyId], unmet: bool| -> Vec<Reason> {
            ids.iter()
                .filter_map(|id| {
                    let meta = self.meta.get(id)?;
                    let template = if unmet {
                        meta.unmet.as_ref()?
                    } else {
                        &meta.reason
                    };
                    Some(Reason {
                        policy: id.to_string(),
                        message: render.fill(template),
                    })
                })
                .collect()
        };
        let decision = |allowed: bool, outcome: Outcome, reasons: Vec<Reason>| Decision {
            allowed,
            outcome,
            reasons,
        };
        match verdict {
            Verdict::Error(reasons) => decision(false, Outcome::Error, reasons),
            Verdict::Gate(kind, ids) => decision(false, kind.outcome(), reasons_from(&ids, false)),
            Verdict::NotPermitted => {
                let mut reasons = reasons_from(&slice.permits, true);
                if reasons.is_empty() {
                    reasons.push(Reason {
                        policy: "default-deny".into(),
                        message: format!("no policy permits `{}`", slice.decl.name),
                    });
                }
                decision(false, Outcome::NotPermitted, reasons)
            }
            Verdict::Forbidden(ids) => {
                decision(false, Outcome::Forbidden, reasons_from(&ids, false))
            }
            Verdict::Permitted(ids) => {
                decision(true, Outcome::Permitted, reasons_from(&ids, false))
            }
        }
    }

    fn context<'w>(
        &self,
        world: &World<'w>,
        slice: &Slice,
        target: &'w Target,
        params: &Params,
        source: Source,
    ) -> Result<Vec<(&'static str, Value)>, EngineError> {
        let decl = &slice.decl;
        let shape = |problem: String| EngineError::WrongShape {
            action: decl.name.clone(),
            problem,
        };
        // Every given parameter must be used by the action.
        let given = [
            ("role", params.role.is_some()),
            ("quantity", params.quantity.is_some()),
            ("email", params.email.is_some()),
            ("user", params.user.is_some()),
            ("to", params.to.is_some()),
            ("credential", params.credential.is_some()),
            ("lifetime_days", params.lifetime_days.is_some()),
            ("publish", params.publish.is_some()),
            ("domain", params.domain.is_some()),
        ];
        for (name, set) in given {
            if set && !decl.context.iter().any(|c| c.param() == Some(name)) {
                return Err(shape(format!("takes no parameter `{name}`")));
            }
        }
        let need = |name: &str| shape(format!("needs the parameter `{name}`"));
        let account = Self::target_account(world, target);
        let mut out = Vec::with_capacity(decl.context.len());
        for attr in &decl.context {
            let value = match attr {
                CtxAttr::Now => Value::Long(world.facts.now),
                CtxAttr::Source => Value::Str(source.as_str().to_owned()),
                CtxAttr::Role => {
                    let role = params.role.ok_or_else(|| need("role"))?;
                    let account =
                        account.ok_or_else(|| shape("has no account for `role`".into()))?;
                    Value::Uid(self.types.role_uid(
                        account,
                        Some(match role {
                            RequestedRole::None => "none",
                            other => other.as_str(),
                        }),
                    ))
                }
                CtxAttr::RoleName => {
                    Value::Str(params.role.ok_or_else(|| need("role"))?.as_str().to_owned())
                }
                CtxAttr::Quantity => Value::Long(params.quantity.ok_or_else(|| need("quantity"))?),
                CtxAttr::Email
                | CtxAttr::EmailPending
                | CtxAttr::EmailMember
                | CtxAttr::EmailDomainVerified => {
                    let email = params
                        .email
                        .as_ref()
                        .ok_or_else(|| need("email"))?
                        .to_lowercase();
                    let account = account.unwrap_or("");
                    match attr {
                        CtxAttr::EmailPending => {
                            Value::Bool(world.pending_invites.contains(&(account, email)))
                        }
                        CtxAttr::EmailMember => {
                            Value::Bool(world.member_emails.contains(&(account, email)))
                        }
                        CtxAttr::EmailDomainVerified => {
                            let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
                            Value::Bool(world.accounts.get(account).is_some_and(|a| {
                                a.verified_domains
                                    .iter()
                                    .any(|v| v.eq_ignore_ascii_case(domain))
                            }))
                        }
                        _ => Value::Str(email),
                    }
                }
                CtxAttr::Target => {
                    let user = params.user.as_ref().ok_or_else(|| need("user"))?;
                    if !world.users.contains_key(user.as_str()) {
                        return Err(EngineError::UnknownEntity {
                            kind: "user",
                            id: user.0.clone(),
                        });
                    }
                    Value::Uid(self.types.user_uid(user.as_str()))
                }
                CtxAttr::To => {
                    let user = params.to.as_ref().ok_or_else(|| need("to"))?;
                    let account = account.ok_or_else(|| shape("has no account for `to`".into()))?;
                    if !world.memberships.contains_key(&(account, user.as_str())) {
                        return Err(EngineError::UnknownEntity {
                            kind: "membership",
                            id: format!("{user} in {account}"),
                        });
                    }
                    Value::Uid(self.types.membership_uid(account, user.as_str()))
                }
                CtxAttr::Credential | CtxAttr::SignedInAt => {
                    let credential = params.credential.ok_or_else(|| need("credential"))?;
                    match attr {
                        CtxAttr::Credential => Value::Str(credential.kind.as_str().to_owned()),
                        _ => Value::Long(credential.signed_in_at),
                    }
                }
                CtxAttr::Domain | CtxAttr::DomainProven => {
                    let domain = params.domain.as_ref().ok_or_else(|| need("domain"))?;
                    match attr {
                        CtxAttr::Domain => Value::Str(domain.name.to_lowercase()),
                        _ => Value::Bool(domain.proven),
                    }
                }
                CtxAttr::LifetimeDays => {
                    Value::Long(params.lifetime_days.ok_or_else(|| need("lifetime_days"))?)
                }
                CtxAttr::PublishAuthor | CtxAttr::PublishStatus | CtxAttr::PublishExpiresAt => {
                    let publish = params.publish.as_ref().ok_or_else(|| need("publish"))?;
                    match attr {
                        CtxAttr::PublishAuthor => {
                            if !world.users.contains_key(publish.author.as_str()) {
                                return Err(EngineError::UnknownEntity {
                                    kind: "user",
                                    id: publish.author.0.clone(),
                                });
                            }
                            Value::Uid(self.types.user_uid(publish.author.as_str()))
                        }
                        CtxAttr::PublishStatus => Value::Str(publish.status.as_str().to_owned()),
                        _ => Value::Long(publish.expires_at),
                    }
                }
            };
            out.push((attr.name(), value));
        }
        Ok(out)
    }
}

/// See [`Engine::action_shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionShape {
    /// The target kind, as the `Target` JSON tag names it.
    pub target: &'static str,
    /// Request parameters, as `Params` names them.
    pub params: Vec<&'static str>,
    /// A user may be the actor.
    pub by_user: bool,
    /// An identity provider may be the actor.
    pub by_identity_provider: bool,
}

/// Fail closed: any evaluation error of a policy `in_phase` denies, the
/// errors being the reasons (Cedar skips an erroring policy, so an erroring
/// forbid could otherwise turn into an allow).
fn failed(
    response: &cedar_policy::Response,
    in_phase: &dyn Fn(&PolicyId) -> bool,
) -> Option<Vec<Reason>> {
    let mut errors: Vec<Reason> = response
        .diagnostics()
        .errors()
        .filter_map(|e| {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            in_phase(e.policy_id()).then(|| Reason {
                policy: e.policy_id().to_string(),
                message: format!(
                    "this rule could not be evaluated, so the change is refused: {}",
                    e.inner()
                ),
            })
        })
        .collect();
    if errors.is_empty() {
        return None;
    }
    errors.sort_by(|a, b| a.policy.cmp(&b.policy));
    Some(errors)
}

/// A cell's answer before its reasons are rendered: what a memo shares.
#[derive(Debug, Clone)]
enum Verdict {
    /// Gates of this kind hold (sorted ids).
    Gate(GateKind, Vec<PolicyId>),
    /// No permit holds.
    NotPermitted,
    /// A permit and these forbids hold.
    Forbidden(Vec<PolicyId>),
    /// These permits hold and no forbid.
    Permitted(Vec<PolicyId>),
    /// A policy could not be evaluated: Cedar's messages (never shared).
    Error(Vec<Reason>),
}

/// One column of a batch: its action, principal, contexts by target
/// account, and memo.
struct Column<'b, 'w> {
    slice: &'b Slice,
    call: &'b ActionCall,
    principal: EntityUid,
    contexts: Vec<(Option<&'w str>, CellContext)>,
    memo: BTreeMap<Vec<Input>, Verdict>,
}

/// A cell's context: the values reasons name, as the memo reads them, and
/// as Cedar takes them.
struct CellContext {
    values: Vec<(&'static str, Value)>,
    evals: Vec<(&'static str, EvalResult)>,
    cedar: Context,
}

/// A context value, kept in Rust form so reasons can name it.
#[derive(Debug, Clone)]
enum Value {
    Long(i64),
    Bool(bool),
    Str(String),
    Uid(EntityUid),
}

impl Value {
    fn to_eval(&self) -> EvalResult {
        match self {
            Value::Long(n) => EvalResult::Long(*n),
            Value::Bool(b) => EvalResult::Bool(*b),
            Value::Str(s) => EvalResult::String(s.clone()),
            Value::Uid(u) => EvalResult::EntityUid(u.clone()),
        }
    }

    fn to_restricted(&self) -> RestrictedExpression {
        match self {
            Value::Long(v) => RestrictedExpression::new_long(*v),
            Value::Bool(v) => RestrictedExpression::new_bool(*v),
            Value::Str(v) => RestrictedExpression::new_string(v.clone()),
            Value::Uid(v) => RestrictedExpression::new_entity_uid(v.clone()),
        }
    }
}

struct Render<'a, 'w> {
    world: &'a World<'w>,
    principal: &'a EntityUid,
    resource: &'a EntityUid,
    context: &'a [(&'static str, Value)],
}

impl Render<'_, '_> {
    fn fill(&self, template: &Template) -> String {
        let mut out = String::new();
        for segment in &template.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Path(root, attrs) => out.push_str(&self.resolve(*root, attrs)),
            }
        }
        out
    }

    fn resolve(&self, root: Root, attrs: &[String]) -> String {
        let (mut current, rest) = match root {
            Root::Principal => (EvalResult::EntityUid(self.principal.clone()), attrs),
            Root::Resource => (EvalResult::EntityUid(self.resource.clone()), attrs),
            Root::Context => {
                let Some((first, rest)) = attrs.split_first() else {
                    return "?".into();
                };
                let Some((_, v)) = self.context.iter().find(|(k, _)| k == first) else {
                    return format!("{{context.{first}}}");
                };
                (v.to_eval(), rest)
            }
        };
        for attr in rest {
            let EvalResult::EntityUid(uid) = &current else {
                return format!("{{…{attr}}}");
            };
            match self.world.attrs.get(&self.world.entities, uid, attr) {
                Some(v) => current = (*v).clone(),
                None => return format!("{{…{attr}}}"),
            }
        }
        self.show(&current)
    }

    /// A value as a person reads it: entities by their name.
    fn show(&self, value: &EvalResult) -> String {
        match value {
            EvalResult::String(s) => s.clone(),
            EvalResult::Long(n) => n.to_string(),
            EvalResult::Bool(b) => b.to_string(),
            EvalResult::EntityUid(uid) => {
                let attr = |name: &str| self.world.attrs.get(&self.world.entities, uid, name);
                match (attr("name").as_deref(), attr("user").as_deref()) {
                    (Some(EvalResult::String(name)), _) => name.clone(),
                    (_, Some(user @ EvalResult::EntityUid(_))) => self.show(user),
                    _ => uid.id().unescaped().to_owned(),
                }
            }
            other => other.to_string(),
        }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Policy ids grouped by their rule prefix (`R8.owned-resources` → `R8`).
pub fn rule_of(policy_id: &str) -> &str {
    policy_id.split('.').next().unwrap_or(policy_id)
}
