//! The resident engine: a parsed policy bundle, sliced per action, answering
//! single checks and batches.
//!
//! Why sliced: a users page asks 50 × 12 questions per render. Each action's
//! policies are grouped once at load, so a cell evaluates only the policies
//! whose scope can match its action — the answer is the same as with the
//! whole set (a policy whose action scope does not match is never satisfied
//! and never errors), the work is a fraction.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, EntityUid, EvalResult, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression, SchemaFragment,
};
use sha2::{Digest, Sha256};

use crate::bundle::Bundle;
use crate::error::EngineError;
use crate::facts::RequestedRole;
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
            CtxAttr::Email | CtxAttr::EmailPending | CtxAttr::EmailMember => Some("email"),
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
    gate: GateKind,
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

#[derive(Debug)]
struct Slice {
    decl: ActionDecl,
    uid: EntityUid,
    gate_set: PolicySet,
    permit_set: PolicySet,
    forbid_set: PolicySet,
    /// Permit policy ids with their `@unmet`, sorted by id.
    permits: Vec<PolicyId>,
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
                    gate_set: PolicySet::new(),
                    permit_set: PolicySet::new(),
                    forbid_set: PolicySet::new(),
                    permits: Vec::new(),
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
            let is_permit = policy.effect() == cedar_policy::Effect::Permit;
            for action in actions_of(policy, &catalogue) {
                let slice = slices.get_mut(&action).ok_or_else(|| {
                    EngineError::Bundle(format!("{id} names action `{action}` the schema lacks"))
                })?;
                if !scope_can_match(policy, &slice.decl) {
                    continue;
                }
                let set = if is_permit {
                    slice.permits.push(id.clone());
                    &mut slice.permit_set
                } else if policy.annotation("gate").is_some() {
                    &mut slice.gate_set
                } else {
                    &mut slice.forbid_set
                };
                set.add(policy.clone())
                    .map_err(|e| EngineError::Bundle(format!("{id}: {e}")))?;
            }
            meta.insert(
                id,
                Meta {
                    reason,
                    unmet,
                    gate,
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
        })
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
    pub fn authorize(&self, check: &Check) -> Result<Decision, EngineError> {
        let slice = self.slice(&check.action)?;
        let world = World::build(&check.facts, &self.types)?;
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

    /// Answers every (target, action) cell for one actor, building the
    /// entities once.
    pub fn allowed_actions(&self, batch: &Batch) -> Result<BatchDecision, EngineError> {
        let world = World::build(&batch.facts, &self.types)?;
        let columns: Vec<(&Slice, &ActionCall, EntityUid)> = batch
            .actions
            .iter()
            .map(|call| {
                let slice = self.slice(&call.action)?;
                let principal = self.principal(&world, &batch.actor, &slice.decl)?;
                Ok((slice, call, principal))
            })
            .collect::<Result<_, EngineError>>()?;
        let mut cells = Vec::with_capacity(batch.targets.len());
        for target in &batch.targets {
            let mut row = Vec::with_capacity(columns.len());
            for (slice, call, principal) in &columns {
                let resource =
                    self.resource(&world, target, slice.decl.resource, &slice.decl.name)?;
                row.push(self.decide(
                    &world,
                    principal,
                    slice,
                    &resource,
                    target,
                    &call.params,
                    batch.source,
                )?);
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
        let unknown = |kind: &'static str, id: String| EngineError::UnknownEntity { kind, id };
        let (kind, uid) = match target {
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
        };
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
        Ok(uid)
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
        let context = self.context(world, slice, target, params, source)?;
        let cedar_context = Context::from_pairs(
            context
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_restricted())),
        )
        .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let request = Request::new(
            principal.clone(),
            slice.uid.clone(),
            resource.clone(),
            cedar_context,
            None,
        )
        .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let render = Render {
            world,
            principal,
            resource,
            context: &context,
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
        // The policies of `set` that hold, sorted; any evaluation error is
        // the answer (fail closed).
        let holding = |set: &PolicySet| -> Result<Vec<PolicyId>, Decision> {
            let response = self
                .authorizer
                .is_authorized(&request, set, &world.entities);
            if let Some(errors) = failed(&response) {
                return Err(errors);
            }
            let mut ids: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
            ids.sort_by_key(ToString::to_string);
            Ok(ids)
        };
        let decision = |allowed: bool, outcome: Outcome, reasons: Vec<Reason>| Decision {
            allowed,
            outcome,
            reasons,
        };

        // Three phases, each policy evaluated at most once. First the gates
        // (forbids annotated `@gate`, about the actor's standing, such as
        // "you are suspended"): when one holds, it is the answer. Then the
        // permits: when none holds, the answer is "not permitted" whatever
        // another forbid says, and the reasons are the unmet requirements —
        // the useful words for someone who may not do this at all. Only when
        // a permit holds do the other forbids run. `allowed` is exactly
        // Cedar's decision over the whole slice: permitted and not forbidden.
        let gated = match holding(&slice.gate_set) {
            Ok(ids) => ids,
            Err(error) => return Ok(error),
        };
        // Of the gates that hold, the first kind decides, with its own reasons.
        let kind_of = |id: &PolicyId| self.meta.get(id).map_or(GateKind::Standing, |m| m.gate);
        if let Some(first) = gated.iter().map(kind_of).min() {
            let ids: Vec<PolicyId> = gated
                .iter()
                .filter(|id| kind_of(id) == first)
                .cloned()
                .collect();
            return Ok(decision(false, first.outcome(), reasons_from(&ids, false)));
        }
        let held = match holding(&slice.permit_set) {
            Ok(ids) => ids,
            Err(error) => return Ok(error),
        };
        if held.is_empty() {
            let mut reasons = reasons_from(&slice.permits, true);
            if reasons.is_empty() {
                reasons.push(Reason {
                    policy: "default-deny".into(),
                    message: format!("no policy permits `{}`", slice.decl.name),
                });
            }
            return Ok(decision(false, Outcome::NotPermitted, reasons));
        }
        let forbidden = match holding(&slice.forbid_set) {
            Ok(ids) => ids,
            Err(error) => return Ok(error),
        };
        Ok(if forbidden.is_empty() {
            decision(true, Outcome::Permitted, reasons_from(&held, false))
        } else {
            decision(false, Outcome::Forbidden, reasons_from(&forbidden, false))
        })
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
                CtxAttr::Email | CtxAttr::EmailPending | CtxAttr::EmailMember => {
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

/// Fail closed: any evaluation error denies, the errors being the reasons
/// (Cedar skips an erroring policy, so an erroring forbid could otherwise
/// turn into an allow).
fn failed(response: &cedar_policy::Response) -> Option<Decision> {
    let mut errors: Vec<Reason> = response
        .diagnostics()
        .errors()
        .map(|e| {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            Reason {
                policy: e.policy_id().to_string(),
                message: format!(
                    "this rule could not be evaluated, so the change is refused: {}",
                    e.inner()
                ),
            }
        })
        .collect();
    if errors.is_empty() {
        return None;
    }
    errors.sort_by(|a, b| a.policy.cmp(&b.policy));
    Some(Decision {
        allowed: false,
        outcome: Outcome::Error,
        reasons: errors,
    })
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
                let value = match v {
                    Value::Long(n) => EvalResult::Long(*n),
                    Value::Bool(b) => EvalResult::Bool(*b),
                    Value::Str(s) => EvalResult::String(s.clone()),
                    Value::Uid(u) => EvalResult::EntityUid(u.clone()),
                };
                (value, rest)
            }
        };
        for attr in rest {
            let EvalResult::EntityUid(uid) = &current else {
                return format!("{{…{attr}}}");
            };
            match self
                .world
                .entities
                .get(uid)
                .and_then(|e| e.attr(attr))
                .and_then(Result::ok)
            {
                Some(v) => current = v,
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
                let entity = self.world.entities.get(uid);
                let attr = |name: &str| entity.and_then(|e| e.attr(name)).and_then(Result::ok);
                match (attr("name"), attr("user")) {
                    (Some(EvalResult::String(name)), _) => name,
                    (_, Some(user @ EvalResult::EntityUid(_))) => self.show(&user),
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
