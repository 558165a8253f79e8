//! Facts → Cedar entities, built once per call or per batch.
//!
//! Why here: the derivations (effective role through agency ancestors as a
//! role-group hierarchy, active-owner counts, seats in use, owned resources)
//! must be computed by the same bytes in the browser and on the server. They
//! are counts and relations, never permissions: policies decide what they
//! mean. The schema in `policies/gatehouse.cedarschema` documents every
//! attribute built here.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use cedar_policy::{
    Entities, Entity, EntityId, EntityTypeName, EntityUid, EvalResult, RestrictedExpression,
};

use crate::error::EngineError;
use crate::facts::{
    Account, AccountSummary, Device, Facts, Invitation, InvitationStatus, Membership,
    MembershipStatus, OwnerRemovalRequest, RequestStatus, ResourceKind, Role, User, UserSummary,
};

/// Whether a pending invitation holds a seat at `now` (R4: until it expires).
fn invitation_holds_seat(inv: &Invitation, now: i64) -> bool {
    inv.status == InvitationStatus::Pending && inv.expires_at > now
}

/// Seats in use in `account` at `facts.now`: every membership (active or
/// suspended) and every pending, unexpired invitation. The one definition:
/// the `seats_in_use` attribute policies see and the seat count a host
/// shows both come from here.
pub fn seats_in_use(facts: &Facts, account: &str) -> usize {
    if let Some(d) = facts
        .derived
        .accounts
        .iter()
        .find(|d| d.account.as_str() == account)
    {
        return usize::try_from(d.seats_in_use).unwrap_or(0);
    }
    facts
        .memberships
        .iter()
        .filter(|m| m.account.as_str() == account)
        .count()
        + facts
            .invitations
            .iter()
            .filter(|i| i.account.as_str() == account && invitation_holds_seat(i, facts.now))
            .count()
}

/// The entity type names, parsed once per engine.
#[derive(Debug, Clone)]
pub(crate) struct Types {
    pub user: EntityTypeName,
    pub account: EntityTypeName,
    pub role: EntityTypeName,
    pub membership: EntityTypeName,
    pub invitation: EntityTypeName,
    pub request: EntityTypeName,
    pub device: EntityTypeName,
    pub idp: EntityTypeName,
    pub action: EntityTypeName,
}

impl Types {
    pub(crate) fn new() -> Result<Types, EngineError> {
        let t = |name: &str| {
            name.parse::<EntityTypeName>()
                .map_err(|e| EngineError::Bundle(format!("entity type `{name}`: {e}")))
        };
        Ok(Types {
            user: t("User")?,
            account: t("Account")?,
            role: t("Role")?,
            membership: t("Membership")?,
            invitation: t("Invitation")?,
            request: t("OwnerRemovalRequest")?,
            device: t("Device")?,
            idp: t("IdentityProvider")?,
            action: t("Action")?,
        })
    }

    pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    pub(crate) fn user_uid(&self, user: &str) -> EntityUid {
        Self::uid(&self.user, user)
    }

    pub(crate) fn account_uid(&self, account: &str) -> EntityUid {
        Self::uid(&self.account, account)
    }

    /// The group "at least `role` on `account`"; `None` is the suspended group.
    /// Ids are `role@account`: the role word never contains `@`, so ids of any
    /// account cannot collide.
    pub(crate) fn role_uid(&self, account: &str, role: Option<&str>) -> EntityUid {
        Self::uid(
            &self.role,
            &format!("{}@{account}", role.unwrap_or("suspended")),
        )
    }

    /// Membership ids are length-prefixed so no pair of ids can collide.
    pub(crate) fn membership_uid(&self, account: &str, user: &str) -> EntityUid {
        Self::uid(
            &self.membership,
            &format!("{}:{account}/{user}", account.len()),
        )
    }
}

/// Indexes over the facts plus the Cedar entities built from them.
pub(crate) struct World<'f> {
    pub facts: &'f Facts,
    pub entities: Entities,
    pub users: HashMap<&'f str, usize>,
    pub accounts: HashMap<&'f str, &'f Account>,
    pub memberships: HashMap<(&'f str, &'f str), &'f Membership>,
    pub invitations: HashMap<&'f str, &'f Invitation>,
    pub requests: HashMap<&'f str, &'f OwnerRemovalRequest>,
    pub devices: HashSet<&'f str>,
    /// (account, lower-cased email) with a pending, unexpired invitation.
    pub pending_invites: HashSet<(&'f str, String)>,
    /// (account, lower-cased email) of members.
    pub member_emails: HashSet<(&'f str, String)>,
    /// Attribute values as the memo and the reasons read them.
    pub attrs: Attrs,
}

/// The attribute values of a world's entities, each converted to Cedar's
/// [`EvalResult`] once and shared. Why: `Entity::attr` converts the stored
/// value afresh on every call, and the cells of a batch read the same few
/// attributes (an account's admins, owners, counts) hundreds of times — it
/// was a fifth of a 50 × 12 batch. A read-through cache of a pure function
/// of the world's entities, which never change after the world is built.
#[derive(Debug, Default)]
pub(crate) struct Attrs(RefCell<AttrMap>);

/// Keyed with a fixed-seed hash: the module has no randomness, and SipHash
/// was most of the cache's cost. The keys are the host's ids and the
/// policies' attribute names; a batch's map lives for one call.
type AttrMap = HashMap<EntityUid, HashMap<String, Option<Rc<EvalResult>>, Fixed>, Fixed>;
type Fixed = foldhash::fast::FixedState;

impl Attrs {
    /// `entities[uid].attr`, as `Entity::attr` gives it (`None` for a
    /// missing entity or attribute, or a value that is not one).
    pub(crate) fn get(
        &self,
        entities: &Entities,
        uid: &EntityUid,
        attr: &str,
    ) -> Option<Rc<EvalResult>> {
        if let Some(known) = self.0.borrow().get(uid).and_then(|m| m.get(attr)) {
            return known.clone();
        }
        let value = entities
            .get(uid)
            .and_then(|e| e.attr(attr))
            .and_then(Result::ok)
            .map(Rc::new);
        self.0
            .borrow_mut()
            .entry(uid.clone())
            .or_default()
            .insert(attr.to_owned(), value.clone());
        value
    }
}

fn dup(kind: &str, id: &str) -> EngineError {
    EngineError::BadFacts(format!("{kind} `{id}` appears twice"))
}

fn missing(kind: &'static str, id: &str, from: String) -> EngineError {
    EngineError::BadFacts(format!(
        "{from} names {kind} `{id}`, which is not in the facts"
    ))
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_owned())
}

fn n(v: usize) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(v).unwrap_or(i64::MAX))
}

fn summary(counts: &BTreeMap<ResourceKind, usize>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(kind, count)| {
            let (one, many) = kind.nouns();
            format!("{count} {}", if *count == 1 { one } else { many })
        })
        .collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// How many accounts one chain of parents may hold, the account itself
/// included: agencies nest a few levels; every level multiplies the role
/// groups each user inherits through.
pub const MAX_AGENCY_DEPTH: usize = 32;

impl<'f> World<'f> {
    /// Indexes the facts, checks their consistency and builds the entities.
    pub(crate) fn build(facts: &'f Facts, types: &Types) -> Result<World<'f>, EngineError> {
        Self::build_in(facts, types, None)
    }

    /// Like [`World::build`], making only the entities that the `roots`
    /// (read from the indexed, checked facts) reach through attributes and
    /// parents, transitively: everything a question about them can read.
    pub(crate) fn build_around(
        facts: &'f Facts,
        types: &Types,
        roots: Roots<'_, 'f>,
    ) -> Result<World<'f>, EngineError> {
        Self::build_in(facts, types, Some(roots))
    }

    fn build_in(
        facts: &'f Facts,
        types: &Types,
        roots: Option<Roots<'_, 'f>>,
    ) -> Result<World<'f>, EngineError> {
        let now = facts.now;
        let mut users = HashMap::with_capacity(facts.users.len());
        for (i, u) in facts.users.iter().enumerate() {
            if users.insert(u.id.as_str(), i).is_some() {
                return Err(dup("user", u.id.as_str()));
            }
        }
        let mut accounts = HashMap::with_capacity(facts.accounts.len());
        for a in &facts.accounts {
            if accounts.insert(a.id.as_str(), a).is_some() {
                return Err(dup("account", a.id.as_str()));
            }
        }
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for a in &facts.accounts {
            if let Some(p) = &a.parent {
                if !accounts.contains_key(p.as_str()) {
                    return Err(missing(
                        "account",
                        p.as_str(),
                        format!("account `{}`", a.id),
                    ));
                }
                children.entry(p.as_str()).or_default().push(a.id.as_str());
            }
        }
        // Parent chains must end: a cycle would make every role inherit
        // itself. And they must be short: the role groups inherit along the
        // whole chain, and a chain of 2,000 accounts exhausted the module's
        // stack (the fuzz corpus's facts_entities/regress-agency-chain).
        for a in &facts.accounts {
            let mut seen = HashSet::new();
            let mut cur = Some(a);
            while let Some(acc) = cur {
                if !seen.insert(acc.id.as_str()) {
                    return Err(EngineError::BadFacts(format!(
                        "account `{}` is its own ancestor",
                        a.id
                    )));
                }
                if seen.len() > MAX_AGENCY_DEPTH {
                    return Err(EngineError::BadFacts(format!(
                        "account `{}` is nested more than {MAX_AGENCY_DEPTH} accounts deep: agencies nest at most {MAX_AGENCY_DEPTH} levels",
                        a.id
                    )));
                }
                cur = acc
                    .parent
                    .as_ref()
                    .and_then(|p| accounts.get(p.as_str()).copied());
            }
        }

        let mut memberships = HashMap::with_capacity(facts.memberships.len());
        let mut members_of: HashMap<&str, usize> = HashMap::new();
        let mut active_owners: HashMap<&str, usize> = HashMap::new();
        let mut member_emails = HashSet::new();
        for m in &facts.memberships {
            let from = || format!("membership of `{}` in `{}`", m.user, m.account);
            let Some(&ui) = users.get(m.user.as_str()) else {
                return Err(missing("user", m.user.as_str(), from()));
            };
            if !accounts.contains_key(m.account.as_str()) {
                return Err(missing("account", m.account.as_str(), from()));
            }
            if memberships
                .insert((m.account.as_str(), m.user.as_str()), m)
                .is_some()
            {
                return Err(EngineError::BadFacts(format!("{} appears twice", from())));
            }
            *members_of.entry(m.account.as_str()).or_default() += 1;
            if m.role == Role::Owner && m.status == MembershipStatus::Active {
                *active_owners.entry(m.account.as_str()).or_default() += 1;
            }
            member_emails.insert((m.account.as_str(), facts.users[ui].email.to_lowercase()));
        }

        let mut invitations = HashMap::with_capacity(facts.invitations.len());
        let mut pending_invites = HashSet::new();
        let mut pending_seats: HashMap<&str, usize> = HashMap::new();
        // (account, email) -> how many pending, unexpired invitations.
        let mut pending_count: HashMap<(&str, String), usize> = HashMap::new();
        for inv in &facts.invitations {
            if !accounts.contains_key(inv.account.as_str()) {
                return Err(missing(
                    "account",
                    inv.account.as_str(),
                    format!("invitation `{}`", inv.id),
                ));
            }
            if invitations.insert(inv.id.as_str(), inv).is_some() {
                return Err(dup("invitation", inv.id.as_str()));
            }
            if invitation_holds_seat(inv, now) {
                pending_invites.insert((inv.account.as_str(), inv.email.to_lowercase()));
                *pending_count
                    .entry((inv.account.as_str(), inv.email.to_lowercase()))
                    .or_default() += 1;
                *pending_seats.entry(inv.account.as_str()).or_default() += 1;
            }
        }

        let mut owned: HashMap<(&str, &str), BTreeMap<ResourceKind, usize>> = HashMap::new();
        let mut owned_total: HashMap<&str, usize> = HashMap::new();
        for r in &facts.resources {
            if !users.contains_key(r.owner.as_str()) {
                return Err(missing(
                    "user",
                    r.owner.as_str(),
                    format!("resource `{}`", r.id),
                ));
            }
            if !accounts.contains_key(r.account.as_str()) {
                return Err(missing(
                    "account",
                    r.account.as_str(),
                    format!("resource `{}`", r.id),
                ));
            }
            *owned
                .entry((r.account.as_str(), r.owner.as_str()))
                .or_default()
                .entry(r.kind)
                .or_default() += 1;
            *owned_total.entry(r.owner.as_str()).or_default() += 1;
        }

        let mut requests = HashMap::with_capacity(facts.owner_removal_requests.len());
        let mut pending_removal: HashSet<(&str, &str)> = HashSet::new();
        for r in &facts.owner_removal_requests {
            if !accounts.contains_key(r.account.as_str()) {
                return Err(missing(
                    "account",
                    r.account.as_str(),
                    format!("owner-removal request `{}`", r.id),
                ));
            }
            if requests.insert(r.id.as_str(), r).is_some() {
                return Err(dup("owner-removal request", r.id.as_str()));
            }
            if r.status == RequestStatus::Pending && r.expires_at > now {
                pending_removal.insert((r.account.as_str(), r.target.as_str()));
            }
        }

        let mut devices = HashSet::with_capacity(facts.devices.len());
        for d in &facts.devices {
            if !devices.insert(d.id.as_str()) {
                return Err(dup("device", d.id.as_str()));
            }
        }

        // What a minimized question carries instead of the rows it left out.
        let mut account_summary: HashMap<&str, &AccountSummary> = HashMap::new();
        for d in &facts.derived.accounts {
            if !accounts.contains_key(d.account.as_str()) {
                return Err(missing(
                    "account",
                    d.account.as_str(),
                    "a derived summary".into(),
                ));
            }
            if account_summary.insert(d.account.as_str(), d).is_some() {
                return Err(dup("account summary", d.account.as_str()));
            }
        }
        let mut user_summary: HashMap<&str, &UserSummary> = HashMap::new();
        for d in &facts.derived.users {
            if !users.contains_key(d.user.as_str()) {
                return Err(missing("user", d.user.as_str(), "a derived summary".into()));
            }
            if user_summary.insert(d.user.as_str(), d).is_some() {
                return Err(dup("user summary", d.user.as_str()));
            }
        }
        for g in &facts.derived.grants {
            if !users.contains_key(g.user.as_str()) {
                return Err(missing("user", g.user.as_str(), "a derived grant".into()));
            }
            if !accounts.contains_key(g.account.as_str()) {
                return Err(missing(
                    "account",
                    g.account.as_str(),
                    "a derived grant".into(),
                ));
            }
        }
        for m in &facts.derived.pending_owner_removal {
            pending_removal.insert((m.account.as_str(), m.user.as_str()));
        }

        let index = Index {
            types,
            children,
            members_of,
            active_owners,
            pending_seats,
            pending_count,
            owned,
            owned_total,
            pending_removal,
            account_summary,
            user_summary,
        };
        let mut world = World {
            facts,
            entities: Entities::empty(),
            users,
            accounts,
            memberships,
            invitations,
            requests,
            devices,
            pending_invites,
            member_emails,
            attrs: Attrs::default(),
        };
        let out = match roots {
            None => world.every_entity(&index)?,
            Some(roots) => {
                let roots = roots(&world)?;
                world.neighbourhood(&index, &roots)?
            }
        };
        world.entities =
            Entities::from_entities(out, None).map_err(|e| EngineError::BadFacts(e.to_string()))?;
        Ok(world)
    }

    /// Every entity the facts make.
    fn every_entity(&self, index: &Index<'_, 'f>) -> Result<Vec<Entity>, EngineError> {
        let facts = self.facts;
        let mut groups = self.all_groups(index);
        let mut out: Vec<Entity> = Vec::with_capacity(
            facts.users.len()
                + facts.accounts.len() * 7
                + facts.memberships.len()
                + facts.invitations.len()
                + facts.owner_removal_requests.len()
                + facts.devices.len(),
        );
        let mut refs = Refs::default();
        for a in &facts.accounts {
            out.push(self.account(index, a, &mut refs)?);
            for role in Role::ALL {
                out.push(self.role(index, a.id.as_str(), Some(role), &mut refs)?);
            }
            out.push(self.role(index, a.id.as_str(), None, &mut refs)?);
            out.push(self.idp(index, a.id.as_str(), &mut refs)?);
        }
        for m in &facts.memberships {
            out.push(self.membership(index, m, &mut refs)?);
        }
        let sole = self.sole_owners(index, None);
        for u in &facts.users {
            let id = u.id.as_str();
            let parents = groups.remove(id).unwrap_or_default();
            let sole_here = sole.get(id).copied().unwrap_or(0);
            out.push(self.user(index, u, parents, sole_here, &mut refs)?);
        }
        for inv in &facts.invitations {
            out.push(self.invitation(index, inv, &mut refs)?);
        }
        for r in &facts.owner_removal_requests {
            out.push(self.request(index, r, &mut refs)?);
        }
        for d in &facts.devices {
            out.push(self.device(index, d, &mut refs)?);
        }
        Ok(out)
    }

    /// The entities `roots` reach through attributes and parents,
    /// transitively: everything a request about them can read.
    fn neighbourhood(
        &self,
        index: &Index<'_, 'f>,
        roots: &[EntityUid],
    ) -> Result<Vec<Entity>, EngineError> {
        let types = index.types;
        let mut seen: HashSet<EntityUid> = HashSet::new();
        let mut todo: Vec<EntityUid> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(uid) = todo.pop() {
            if !seen.insert(uid.clone()) {
                continue;
            }
            let mut refs = Refs::default();
            let id = uid.id().unescaped();
            let ty = uid.type_name();
            let entity = if *ty == types.user {
                self.users.get(id).map(|&i| {
                    let u = &self.facts.users[i];
                    let parents = self.groups_of(index, u.id.as_str());
                    let sole = self.sole_owners(index, Some(u.id.as_str()));
                    let sole_here = sole.get(u.id.as_str()).copied().unwrap_or(0);
                    self.user(index, u, parents, sole_here, &mut refs)
                })
            } else if *ty == types.account {
                self.accounts
                    .get(id)
                    .map(|a| self.account(index, a, &mut refs))
            } else if *ty == types.role {
                id.split_once('@').and_then(|(word, account)| {
                    let role = match word {
                        "suspended" => None,
                        other => Some(Role::ALL.into_iter().find(|r| r.as_str() == other)?),
                    };
                    let (account, _) = self.accounts.get_key_value(account)?;
                    Some(self.role(index, account, role, &mut refs))
                })
            } else if *ty == types.idp {
                self.accounts
                    .get_key_value(id)
                    .map(|(account, _)| self.idp(index, account, &mut refs))
            } else if *ty == types.membership {
                membership_key(id)
                    .and_then(|key| self.memberships.get(&key))
                    .map(|m| self.membership(index, m, &mut refs))
            } else if *ty == types.invitation {
                self.invitations
                    .get(id)
                    .map(|inv| self.invitation(index, inv, &mut refs))
            } else if *ty == types.request {
                self.requests
                    .get(id)
                    .map(|r| self.request(index, r, &mut refs))
            } else if *ty == types.device {
                self.facts
                    .devices
                    .iter()
                    .find(|d| d.id.as_str() == id)
                    .map(|d| self.device(index, d, &mut refs))
            } else {
                None
            };
            if let Some(entity) = entity {
                out.push(entity?);
                todo.extend(refs.0.into_iter().filter(|r| !seen.contains(r)));
            }
        }
        Ok(out)
    }

    /// The role groups of every user.
    fn all_groups(&self, index: &Index<'_, 'f>) -> HashMap<&'f str, HashSet<EntityUid>> {
        let types = index.types;
        let mut groups: HashMap<&str, HashSet<EntityUid>> = HashMap::new();
        for m in &self.facts.memberships {
            groups
                .entry(m.user.as_str())
                .or_default()
                .insert(membership_group(types, m));
        }
        for g in &self.facts.derived.grants {
            groups
                .entry(g.user.as_str())
                .or_default()
                .insert(types.role_uid(g.account.as_str(), g.group.role_word()));
        }
        groups
    }

    /// The role groups of one user.
    fn groups_of(&self, index: &Index<'_, 'f>, user: &str) -> HashSet<EntityUid> {
        let types = index.types;
        let mut groups: HashSet<EntityUid> = self
            .facts
            .memberships
            .iter()
            .filter(|m| m.user.as_str() == user)
            .map(|m| membership_group(types, m))
            .collect();
        for g in &self.facts.derived.grants {
            if g.user.as_str() == user {
                groups.insert(types.role_uid(g.account.as_str(), g.group.role_word()));
            }
        }
        groups
    }

    /// How many accounts each user (or only `only`) is the one active owner of.
    fn sole_owners(&self, index: &Index<'_, 'f>, only: Option<&str>) -> HashMap<&'f str, usize> {
        let mut sole_owner_of: HashMap<&str, usize> = HashMap::new();
        for m in &self.facts.memberships {
            if only.is_some_and(|u| u != m.user.as_str()) {
                continue;
            }
            if m.role == Role::Owner
                && m.status == MembershipStatus::Active
                && index
                    .active_owners
                    .get(m.account.as_str())
                    .copied()
                    .unwrap_or(0)
                    == 1
            {
                *sole_owner_of.entry(m.user.as_str()).or_default() += 1;
            }
        }
        sole_owner_of
    }

    fn account(
        &self,
        index: &Index<'_, 'f>,
        a: &Account,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let id = a.id.as_str();
        let kids = index.children.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let summary = index.account_summary.get(id);
        let in_use = summary.map_or_else(
            || {
                index.members_of.get(id).copied().unwrap_or(0)
                    + index.pending_seats.get(id).copied().unwrap_or(0)
            },
            |d| usize::try_from(d.seats_in_use).unwrap_or(0),
        );
        let is_agency = summary.map_or(!kids.is_empty(), |d| d.is_agency);
        let owners_active = summary.map_or_else(
            || index.active_owners.get(id).copied().unwrap_or(0),
            |d| usize::try_from(d.active_owners).unwrap_or(0),
        );
        let parents: HashSet<EntityUid> = a
            .parent
            .iter()
            .map(|p| refs.parent(types.account_uid(p.as_str())))
            .collect();
        entity(
            types.account_uid(id),
            vec![
                ("name", s(&a.name)),
                ("is_agency", RestrictedExpression::new_bool(is_agency)),
                (
                    "included_seats",
                    RestrictedExpression::new_long(a.included_seats),
                ),
                ("extra_seats", RestrictedExpression::new_long(a.extra_seats)),
                ("seats_in_use", n(in_use)),
                ("active_owners", n(owners_active)),
                ("owners", refs.uid(types.role_uid(id, Some("owner")))),
                ("admins", refs.uid(types.role_uid(id, Some("admin")))),
                ("standards", refs.uid(types.role_uid(id, Some("standard")))),
                ("basics", refs.uid(types.role_uid(id, Some("basic")))),
                ("suspended", refs.uid(types.role_uid(id, None))),
            ],
            parents,
        )
    }

    /// Role groups: "owner" ⊂ "admin" ⊂ "standard" ⊂ "basic" on this
    /// account, and each group ⊂ the same group on every child account;
    /// `None` is the account's suspended group (no parents).
    fn role(
        &self,
        index: &Index<'_, 'f>,
        account: &str,
        role: Option<Role>,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let Some(role) = role else {
            return entity(types.role_uid(account, None), vec![], HashSet::new());
        };
        let kids = index
            .children
            .get(account)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut parents: HashSet<EntityUid> = kids
            .iter()
            .map(|k| refs.parent(types.role_uid(k, Some(role.as_str()))))
            .collect();
        if let Some(lower) = role.lower() {
            parents.insert(refs.parent(types.role_uid(account, Some(lower.as_str()))));
        }
        entity(
            types.role_uid(account, Some(role.as_str())),
            vec![],
            parents,
        )
    }

    fn idp(
        &self,
        index: &Index<'_, 'f>,
        account: &str,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        entity(
            Types::uid(&types.idp, account),
            vec![("account", refs.uid(types.account_uid(account)))],
            HashSet::new(),
        )
    }

    fn membership(
        &self,
        index: &Index<'_, 'f>,
        m: &Membership,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let account = m.account.as_str();
        let user = m.user.as_str();
        let counts = index.owned.get(&(account, user));
        entity(
            types.membership_uid(account, user),
            vec![
                ("account", refs.uid(types.account_uid(account))),
                ("user", refs.uid(types.user_uid(user))),
                ("role", s(m.role.as_str())),
                (
                    "role_group",
                    refs.uid(types.role_uid(account, Some(m.role.as_str()))),
                ),
                (
                    "status",
                    s(match m.status {
                        MembershipStatus::Active => "active",
                        MembershipStatus::Suspended => "suspended",
                    }),
                ),
                (
                    "managed_by_idp",
                    RestrictedExpression::new_bool(m.managed_by_idp),
                ),
                ("owned_resources", n(counts.map_or(0, |c| c.values().sum()))),
                ("owned_summary", s(&counts.map(summary).unwrap_or_default())),
                (
                    "pending_owner_removal",
                    RestrictedExpression::new_bool(
                        index.pending_removal.contains(&(account, user)),
                    ),
                ),
            ],
            HashSet::new(),
        )
    }

    fn user(
        &self,
        index: &Index<'_, 'f>,
        u: &User,
        parents: HashSet<EntityUid>,
        sole_owner_of: usize,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let id = u.id.as_str();
        let summary = index.user_summary.get(id);
        let owned_here = summary.map_or_else(
            || index.owned_total.get(id).copied().unwrap_or(0),
            |d| usize::try_from(d.owned_resources).unwrap_or(0),
        );
        let sole_here = summary.map_or(sole_owner_of, |d| {
            usize::try_from(d.sole_owner_of).unwrap_or(0)
        });
        refs.0.extend(parents.iter().cloned());
        entity(
            types.user_uid(id),
            vec![
                ("name", s(&u.name)),
                ("email", s(&u.email.to_lowercase())),
                ("owned_resources", n(owned_here)),
                ("sole_owner_of", n(sole_here)),
            ],
            parents,
        )
    }

    fn invitation(
        &self,
        index: &Index<'_, 'f>,
        inv: &Invitation,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let now = self.facts.now;
        let account = inv.account.as_str();
        let live = inv.status == InvitationStatus::Pending && inv.expires_at > now;
        let pending_here = index
            .pending_count
            .get(&(account, inv.email.to_lowercase()))
            .copied()
            .unwrap_or(0);
        let another_pending = pending_here > usize::from(live);
        entity(
            Types::uid(&types.invitation, inv.id.as_str()),
            vec![
                ("account", refs.uid(types.account_uid(account))),
                ("email", s(&inv.email.to_lowercase())),
                (
                    "role",
                    refs.uid(types.role_uid(account, Some(inv.role.as_str()))),
                ),
                ("role_name", s(inv.role.as_str())),
                (
                    "invited_by",
                    refs.uid(types.user_uid(inv.invited_by.as_str())),
                ),
                (
                    "status",
                    s(match inv.status {
                        InvitationStatus::Pending => "pending",
                        InvitationStatus::Accepted => "accepted",
                        InvitationStatus::Revoked => "revoked",
                    }),
                ),
                ("expires_at", RestrictedExpression::new_long(inv.expires_at)),
                (
                    "another_pending",
                    RestrictedExpression::new_bool(another_pending),
                ),
            ],
            HashSet::new(),
        )
    }

    fn request(
        &self,
        index: &Index<'_, 'f>,
        r: &OwnerRemovalRequest,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        let account = r.account.as_str();
        entity(
            Types::uid(&types.request, r.id.as_str()),
            vec![
                ("account", refs.uid(types.account_uid(account))),
                (
                    "requested_by",
                    refs.uid(types.user_uid(r.requested_by.as_str())),
                ),
                ("target", refs.uid(types.user_uid(r.target.as_str()))),
                (
                    "target_membership",
                    refs.uid(types.membership_uid(account, r.target.as_str())),
                ),
                ("new_role", s(r.new_role.as_str())),
                (
                    "status",
                    s(match r.status {
                        RequestStatus::Pending => "pending",
                        RequestStatus::Approved => "approved",
                        RequestStatus::Declined => "declined",
                        RequestStatus::Cancelled => "cancelled",
                    }),
                ),
                ("expires_at", RestrictedExpression::new_long(r.expires_at)),
            ],
            HashSet::new(),
        )
    }

    fn device(
        &self,
        index: &Index<'_, 'f>,
        d: &Device,
        refs: &mut Refs,
    ) -> Result<Entity, EngineError> {
        let types = index.types;
        entity(
            Types::uid(&types.device, d.id.as_str()),
            vec![("user", refs.uid(types.user_uid(d.user.as_str())))],
            HashSet::new(),
        )
    }
}

/// The entities a lazy world starts from, read from the indexed facts.
pub(crate) type Roots<'r, 'f> = &'r dyn Fn(&World<'f>) -> Result<Vec<EntityUid>, EngineError>;

/// The derivations over every row that entities are made from.
struct Index<'t, 'f> {
    types: &'t Types,
    children: HashMap<&'f str, Vec<&'f str>>,
    members_of: HashMap<&'f str, usize>,
    active_owners: HashMap<&'f str, usize>,
    pending_seats: HashMap<&'f str, usize>,
    pending_count: HashMap<(&'f str, String), usize>,
    owned: HashMap<(&'f str, &'f str), BTreeMap<ResourceKind, usize>>,
    owned_total: HashMap<&'f str, usize>,
    pending_removal: HashSet<(&'f str, &'f str)>,
    account_summary: HashMap<&'f str, &'f AccountSummary>,
    user_summary: HashMap<&'f str, &'f UserSummary>,
}

/// The entities an entity refers to (attributes) or descends from
/// (parents), collected while it is made.
#[derive(Default)]
struct Refs(Vec<EntityUid>);

impl Refs {
    fn uid(&mut self, uid: EntityUid) -> RestrictedExpression {
        self.0.push(uid.clone());
        RestrictedExpression::new_entity_uid(uid)
    }

    fn parent(&mut self, uid: EntityUid) -> EntityUid {
        self.0.push(uid.clone());
        uid
    }
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, EngineError> {
    Entity::new(
        uid,
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        parents,
    )
    .map_err(|e| EngineError::BadFacts(e.to_string()))
}

/// The role group a membership puts its user in.
fn membership_group(types: &Types, m: &Membership) -> EntityUid {
    match m.status {
        MembershipStatus::Active => types.role_uid(m.account.as_str(), Some(m.role.as_str())),
        MembershipStatus::Suspended => types.role_uid(m.account.as_str(), None),
    }
}

/// `(account, user)` of a membership id (`len:account/user`).
fn membership_key(id: &str) -> Option<(&str, &str)> {
    let (len, rest) = id.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let account = rest.get(..len)?;
    let user = rest.get(len..)?.strip_prefix('/')?;
    Some((account, user))
}
