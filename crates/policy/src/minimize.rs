//! Need to know: the smallest question that decides exactly like the full
//! facts, holding only rows the asker may see.
//!
//! Why in the engine: what the left-out rows contributed (counts, roles
//! inherited through an agency) is the engine's own derivation, made by the
//! same bytes that decide. A host asks a read's question only about what
//! its viewer may see (the policies decide: `view_members`,
//! `view_invitations`, `view_owner_removal_requests`) and hands the page the
//! minimized question; the page decides on it byte for byte like the server
//! on the full facts, and never holds another account's roster, invitees or
//! resources.
//!
//! What is kept, and only what the cells need:
//! * the rows of one kind of an account whose rows of that kind are the
//!   cells' targets (a members list keeps that account's members and their
//!   resources, not its invitations);
//! * for an invite column, the account's members and invitations where the
//!   answer counts them or the actor may see them (`view_invitations`: a
//!   page checks addresses typed later);
//! * the accounts and users the cells are about, the users the kept rows
//!   name, and the devices asked about;
//! * in place of everything else, [`Derived`] values: account and user
//!   counts, the role groups users hold through accounts left out (agency
//!   inheritance), pending owner removals.
//!
//! The result is checked before it is returned: every entity it builds must
//! have the attributes and (kept) ancestors it has under the full facts, and
//! refer only to entities it holds. A question that cannot be minimized so
//! is refused, never handed out approximately.

use std::collections::{BTreeSet, HashSet};

use cedar_policy::{Entities, EntityUid, EvalResult};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::facts::{
    AccountSummary, Derived, Facts, Grant, GrantGroup, MemberRef, Role, UserSummary,
};
use crate::request::{Actor, Batch, Target};
use crate::world::{Types, World};

/// The action that decides who may see an account's invitations (and so
/// check addresses against them).
const VIEW_INVITATIONS: &str = "view_invitations";

/// Accounts whose rows of one kind are kept.
#[derive(Default)]
struct Open<'f> {
    members: BTreeSet<&'f str>,
    invitations: BTreeSet<&'f str>,
    requests: BTreeSet<&'f str>,
}

impl Engine {
    /// The batch with its facts reduced to what its actor may see plus what
    /// its cells are about; answers to it equal the answers to `batch`.
    /// A batch whose actor is an identity provider, or that does not
    /// resolve (its answer is an error either way), comes back unchanged.
    pub fn minimize(&self, batch: &Batch) -> Result<Batch, EngineError> {
        let Actor::User(actor) = &batch.actor else {
            return Ok(batch.clone());
        };
        let facts = &batch.facts;
        let types = self.types();
        let full = World::build(facts, types)?;
        let Ok(named) = self.context_users(&full, batch) else {
            return Ok(batch.clone());
        };

        // What the cells are about, and the rows of one kind they count.
        let mut open = Open::default();
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        let mut users: BTreeSet<&str> = BTreeSet::from([actor.as_str()]);
        let mut devices: BTreeSet<&str> = BTreeSet::new();
        let emails: Vec<String> = batch
            .actions
            .iter()
            .filter(|c| self.uses_email(&c.action))
            .filter_map(|c| c.params.email.as_ref().map(|e| e.to_lowercase()))
            .collect();
        for target in &batch.targets {
            match target {
                Target::Account(id) => {
                    let id = id.as_str();
                    accounts.insert(id);
                    // `email_member` and `email_pending` count the account's
                    // members and invitations: kept where the cell's answer
                    // depends on them, or where the actor may see them (a
                    // page checks addresses typed later on these rows).
                    let counted = emails.iter().any(|e| {
                        full.member_emails.contains(&(id, e.clone()))
                            || full.pending_invites.contains(&(id, e.clone()))
                    });
                    if !emails.is_empty()
                        && (counted
                            || self.allows_on_account(&full, &batch.actor, VIEW_INVITATIONS, id)?)
                    {
                        open.members.insert(id);
                        open.invitations.insert(id);
                    }
                }
                Target::User(id) => {
                    users.insert(id.as_str());
                }
                Target::Membership { account, .. } => {
                    open.members.insert(account.as_str());
                }
                Target::Invitation(id) => {
                    if let Some(i) = full.invitations.get(id.as_str()) {
                        open.invitations.insert(i.account.as_str());
                    }
                }
                Target::OwnerRemovalRequest(id) => {
                    if let Some(r) = full.requests.get(id.as_str()) {
                        open.requests.insert(r.account.as_str());
                    }
                }
                Target::Device(id) => {
                    devices.insert(id.as_str());
                }
            }
        }
        // Whoever a cell's context names (`context.target`, `context.to`'s
        // user comes with its membership's account, kept above).
        users.extend(named.iter().map(String::as_str));

        let mut out = Facts {
            now: facts.now,
            ..Facts::default()
        };
        let keep_invitation =
            |i: &crate::facts::Invitation| open.invitations.contains(i.account.as_str());
        let keep_request =
            |r: &crate::facts::OwnerRemovalRequest| open.requests.contains(r.account.as_str());
        let request_targets: HashSet<(&str, &str)> = facts
            .owner_removal_requests
            .iter()
            .filter(|r| keep_request(r))
            .map(|r| (r.account.as_str(), r.target.as_str()))
            .collect();
        for m in &facts.memberships {
            let key = (m.account.as_str(), m.user.as_str());
            if open.members.contains(key.0) || request_targets.contains(&key) {
                out.memberships.push(m.clone());
            }
        }
        out.invitations = facts
            .invitations
            .iter()
            .filter(|i| keep_invitation(i))
            .cloned()
            .collect();
        out.owner_removal_requests = facts
            .owner_removal_requests
            .iter()
            .filter(|r| keep_request(r))
            .cloned()
            .collect();
        let kept_members: HashSet<(&str, &str)> = out
            .memberships
            .iter()
            .map(|m| (m.account.as_str(), m.user.as_str()))
            .collect();
        out.resources = facts
            .resources
            .iter()
            .filter(|r| kept_members.contains(&(r.account.as_str(), r.owner.as_str())))
            .cloned()
            .collect();
        out.devices = facts
            .devices
            .iter()
            .filter(|d| devices.contains(d.id.as_str()))
            .cloned()
            .collect();

        for m in &out.memberships {
            accounts.insert(m.account.as_str());
            users.insert(m.user.as_str());
        }
        for i in &out.invitations {
            accounts.insert(i.account.as_str());
            users.insert(i.invited_by.as_str());
        }
        for r in &out.owner_removal_requests {
            accounts.insert(r.account.as_str());
            users.insert(r.requested_by.as_str());
            users.insert(r.target.as_str());
        }
        for r in &out.resources {
            users.insert(r.owner.as_str());
        }
        for d in &out.devices {
            users.insert(d.user.as_str());
        }
        out.users = facts
            .users
            .iter()
            .filter(|u| users.contains(u.id.as_str()))
            .cloned()
            .collect();
        // Kept accounts hang from their nearest kept ancestor.
        for a in &facts.accounts {
            if !accounts.contains(a.id.as_str()) {
                continue;
            }
            let mut kept = a.clone();
            kept.parent = None;
            let mut cur = a.parent.as_ref();
            let mut steps = 0;
            while let Some(p) = cur {
                if accounts.contains(p.as_str()) {
                    kept.parent = Some(p.clone());
                    break;
                }
                steps += 1;
                if steps > facts.accounts.len() {
                    break;
                }
                cur = full
                    .accounts
                    .get(p.as_str())
                    .and_then(|x| x.parent.as_ref());
            }
            out.accounts.push(kept);
        }

        out.derived = derive(&full, &out, types)?;
        let minimized = Batch {
            facts: out,
            actor: batch.actor.clone(),
            targets: batch.targets.clone(),
            actions: batch.actions.clone(),
            source: batch.source,
        };
        same_entities(
            &full.entities,
            &World::build(&minimized.facts, types)?.entities,
        )?;
        Ok(minimized)
    }
}

fn long(entities: &Entities, uid: &EntityUid, attr: &str) -> Option<i64> {
    match entities.get(uid)?.attr(attr)?.ok()? {
        EvalResult::Long(n) => Some(n),
        _ => None,
    }
}

fn boolean(entities: &Entities, uid: &EntityUid, attr: &str) -> Option<bool> {
    match entities.get(uid)?.attr(attr)?.ok()? {
        EvalResult::Bool(b) => Some(b),
        _ => None,
    }
}

/// The highest role group of `account` that `user` is in, and whether they
/// are in its suspended group.
fn standing(
    entities: &Entities,
    types: &Types,
    user: &EntityUid,
    account: &str,
) -> (Option<GrantGroup>, bool) {
    let groups = [
        (Role::Owner, GrantGroup::Owner),
        (Role::Admin, GrantGroup::Admin),
        (Role::Standard, GrantGroup::Standard),
        (Role::Basic, GrantGroup::Basic),
    ];
    let highest = groups.iter().find_map(|(role, group)| {
        entities
            .is_ancestor_of(&types.role_uid(account, Some(role.as_str())), user)
            .then_some(*group)
    });
    let suspended = entities.is_ancestor_of(&types.role_uid(account, None), user);
    (highest, suspended)
}

/// What the kept rows alone would get wrong, taken from the full facts.
fn derive(full: &World<'_>, out: &Facts, types: &Types) -> Result<Derived, EngineError> {
    let rows_only = World::build(out, types)?;
    let (f, m) = (&full.entities, &rows_only.entities);
    let mut derived = Derived::default();
    for a in &out.accounts {
        let uid = types.account_uid(a.id.as_str());
        let is_agency = boolean(f, &uid, "is_agency").unwrap_or(false);
        let seats_in_use = long(f, &uid, "seats_in_use").unwrap_or(0);
        let active_owners = long(f, &uid, "active_owners").unwrap_or(0);
        if boolean(m, &uid, "is_agency") != Some(is_agency)
            || long(m, &uid, "seats_in_use") != Some(seats_in_use)
            || long(m, &uid, "active_owners") != Some(active_owners)
        {
            derived.accounts.push(AccountSummary {
                account: a.id.clone(),
                is_agency,
                seats_in_use,
                active_owners,
            });
        }
    }
    for u in &out.users {
        let uid = types.user_uid(u.id.as_str());
        let owned_resources = long(f, &uid, "owned_resources").unwrap_or(0);
        let sole_owner_of = long(f, &uid, "sole_owner_of").unwrap_or(0);
        if long(m, &uid, "owned_resources") != Some(owned_resources)
            || long(m, &uid, "sole_owner_of") != Some(sole_owner_of)
        {
            derived.users.push(UserSummary {
                user: u.id.clone(),
                owned_resources,
                sole_owner_of,
            });
        }
        for a in &out.accounts {
            let account = a.id.as_str();
            let (want_role, want_suspended) = standing(f, types, &uid, account);
            let (have_role, have_suspended) = standing(m, types, &uid, account);
            if want_role != have_role
                && let Some(group) = want_role
            {
                derived.grants.push(Grant {
                    user: u.id.clone(),
                    account: a.id.clone(),
                    group,
                });
            }
            if want_suspended && !have_suspended {
                derived.grants.push(Grant {
                    user: u.id.clone(),
                    account: a.id.clone(),
                    group: GrantGroup::Suspended,
                });
            }
        }
    }
    for ms in &out.memberships {
        let uid = types.membership_uid(ms.account.as_str(), ms.user.as_str());
        if boolean(f, &uid, "pending_owner_removal") == Some(true)
            && boolean(m, &uid, "pending_owner_removal") != Some(true)
        {
            derived.pending_owner_removal.push(MemberRef {
                account: ms.account.clone(),
                user: ms.user.clone(),
            });
        }
    }
    Ok(derived)
}

/// Every entity of `small` is in `full` with the same attributes and the
/// same ancestors among `small`'s entities, and refers only to entities
/// `small` holds (or `full` lacks too).
fn same_entities(full: &Entities, small: &Entities) -> Result<(), EngineError> {
    let held: HashSet<EntityUid> = small.iter().map(cedar_policy::Entity::uid).collect();
    let wrong = |uid: &EntityUid, what: &str| {
        EngineError::BadFacts(format!(
            "the minimized question would change {uid}'s {what}: refusing it"
        ))
    };
    for e in small.iter() {
        let uid = e.uid();
        let Some(f) = full.get(&uid) else {
            return Err(wrong(&uid, "existence"));
        };
        let attrs = |x: &cedar_policy::Entity| {
            let mut v: Vec<(String, Option<EvalResult>)> =
                x.attrs().map(|(k, v)| (k.to_owned(), v.ok())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let mine = attrs(e);
        if mine != attrs(f) {
            return Err(wrong(&uid, "attributes"));
        }
        for (_, v) in &mine {
            if let Some(EvalResult::EntityUid(r)) = v
                && !held.contains(r)
                && full.get(r).is_some()
            {
                return Err(wrong(&uid, "references"));
            }
        }
        let ancestors = |es: &Entities| -> BTreeSet<String> {
            es.ancestors(&uid)
                .map(|it| {
                    it.filter(|a| held.contains(a))
                        .map(ToString::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        if ancestors(full) != ancestors(small) {
            return Err(wrong(&uid, "ancestors"));
        }
    }
    Ok(())
}
