//! Seeded random scenarios for the differential run: random facts (nested
//! agencies, every role and status, resources, invitations, requests),
//! random actors, actions, targets and parameters, single checks and
//! batches. Their answers are not known in advance; every runtime must give
//! the same bytes, and every answer must keep the invariants.

use gatehouse_policy::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::{Expect, Vector};

const DAY: i64 = 86_400;
const ROLES: [&str; 4] = ["owner", "admin", "standard", "basic"];

struct Scenario {
    facts: Value,
    accounts: Vec<String>,
    users: Vec<String>,
    memberships: Vec<(String, String)>,
    invitations: Vec<String>,
    requests: Vec<String>,
    devices: Vec<String>,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        Some(&items[rng.random_range(0..items.len())])
    }
}

fn scenario(rng: &mut StdRng) -> Scenario {
    let now: i64 = 1_767_225_600 + rng.random_range(0..365) * DAY;
    let n_accounts = rng.random_range(1..=4);
    let accounts: Vec<String> = (0..n_accounts).map(|i| format!("a{i}")).collect();
    let account_rows: Vec<Value> = accounts
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let parent = (i > 0 && rng.random_bool(0.6)).then(|| accounts[rng.random_range(0..i)].clone());
            json!({"id": id, "name": format!("Account {i}"), "parent": parent,
                   "included_seats": rng.random_range(1..=6), "extra_seats": rng.random_range(0..=3)})
        })
        .collect();
    let n_users = rng.random_range(2..=8);
    let users: Vec<String> = (0..n_users).map(|i| format!("u{i}")).collect();
    let user_rows: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "email": format!("user{i}@example.com"), "name": format!("User {i}")}))
        .collect();
    let mut memberships = Vec::new();
    let mut membership_rows = Vec::new();
    for a in &accounts {
        for u in &users {
            if rng.random_bool(0.5) {
                memberships.push((a.clone(), u.clone()));
                membership_rows.push(json!({
                    "user": u, "account": a,
                    "role": ROLES[rng.random_range(0..4)],
                    "status": if rng.random_bool(0.8) { "active" } else { "suspended" },
                    "managed_by_idp": rng.random_bool(0.15),
                }));
            }
        }
    }
    let kinds = ["number", "flow", "routing_rule", "team"];
    let resource_rows: Vec<Value> = (0..rng.random_range(0..=5))
        .filter_map(|i| {
            let (a, u) = pick(rng, &memberships)?.clone();
            Some(json!({"id": format!("r{i}"), "kind": kinds[rng.random_range(0..4)], "name": format!("Resource {i}"), "account": a, "owner": u}))
        })
        .collect();
    let invitations: Vec<String> = (0..rng.random_range(0..=3))
        .map(|i| format!("i{i}"))
        .collect();
    let invitation_rows: Vec<Value> = invitations
        .iter()
        .map(|id| {
            let sent = now - rng.random_range(0..30) * DAY;
            let email = if rng.random_bool(0.5) {
                format!("User{}@Example.com", rng.random_range(0..n_users + 2))
            } else {
                format!("guest{}@example.com", rng.random_range(0..3))
            };
            json!({"id": id, "email": email, "account": accounts[rng.random_range(0..n_accounts)],
                   "role": ROLES[rng.random_range(0..4)], "invited_by": users[rng.random_range(0..n_users)],
                   "sent_at": sent, "expires_at": sent + 14 * DAY,
                   "status": (["pending", "pending", "accepted", "revoked"][rng.random_range(0..4)])})
        })
        .collect();
    let requests: Vec<String> = (0..rng.random_range(0..=2))
        .map(|i| format!("q{i}"))
        .collect();
    let request_rows: Vec<Value> = requests
        .iter()
        .map(|id| {
            let created = now - rng.random_range(0..20) * DAY;
            json!({"id": id, "account": accounts[rng.random_range(0..n_accounts)],
                   "requested_by": users[rng.random_range(0..n_users)], "target": users[rng.random_range(0..n_users)],
                   "new_role": (["admin", "standard", "basic", "none"][rng.random_range(0..4)]),
                   "status": (["pending", "pending", "approved", "declined", "cancelled"][rng.random_range(0..5)]),
                   "created_at": created, "expires_at": created + 14 * DAY})
        })
        .collect();
    let devices: Vec<String> = (0..rng.random_range(0..=3))
        .map(|i| format!("d{i}"))
        .collect();
    let device_rows: Vec<Value> = devices
        .iter()
        .map(
            |id| json!({"id": id, "user": users[rng.random_range(0..n_users)], "label": "Browser"}),
        )
        .collect();
    Scenario {
        facts: json!({"now": now, "users": user_rows, "accounts": account_rows, "memberships": membership_rows,
                      "invitations": invitation_rows, "resources": resource_rows,
                      "owner_removal_requests": request_rows, "devices": device_rows}),
        accounts,
        users,
        memberships,
        invitations,
        requests,
        devices,
    }
}

/// The facts of the random scenario `seed` makes (nested agencies, every
/// role and status, resources, invitations of every status, requests,
/// devices): for tests that seed a store with them.
pub fn scenario_facts(seed: u64) -> Value {
    scenario(&mut StdRng::seed_from_u64(seed)).facts
}

fn target(rng: &mut StdRng, s: &Scenario, kind: &str) -> Value {
    // One in twenty targets names something that does not exist.
    if rng.random_bool(0.05) {
        return match kind {
            "membership" => json!({"membership": {"account": "a0", "user": "nobody"}}),
            other => json!({ other: "missing" }),
        };
    }
    let id = |items: &[String], rng: &mut StdRng| {
        pick(rng, items)
            .cloned()
            .unwrap_or_else(|| "missing".into())
    };
    match kind {
        "account" => json!({"account": id(&s.accounts, rng)}),
        "user" => json!({"user": id(&s.users, rng)}),
        "membership" => match pick(rng, &s.memberships) {
            Some((a, u)) => json!({"membership": {"account": a, "user": u}}),
            None => json!({"membership": {"account": "a0", "user": "u0"}}),
        },
        "invitation" => json!({"invitation": id(&s.invitations, rng)}),
        "owner_removal_request" => json!({"owner_removal_request": id(&s.requests, rng)}),
        _ => json!({"device": id(&s.devices, rng)}),
    }
}

fn params(rng: &mut StdRng, s: &Scenario, names: &[&str], target: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for name in names {
        let value = match *name {
            "role" => {
                json!(["owner", "admin", "standard", "basic", "none"][rng.random_range(0..5)])
            }
            "quantity" => json!(rng.random_range(-1..=5)),
            "email" => json!(format!(
                "user{}@example.com",
                rng.random_range(0..s.users.len() + 3)
            )),
            "user" => json!(s.users[rng.random_range(0..s.users.len())]),
            "credential" => json!({
                "kind": (["session", "token"][rng.random_range(0..2)]),
                "signed_in_at": 1_767_225_600 - rng.random_range(0..3600_i64),
            }),
            "lifetime_days" => json!(rng.random_range(-1..=120)),
            "publish" => json!({
                "author": s.users[rng.random_range(0..s.users.len())],
                "status": (["pending", "approved", "declined", "cancelled"][rng.random_range(0..4)]),
                "expires_at": 1_767_225_600 + rng.random_range(-3600..=3600_i64),
            }),
            _ => {
                // `to`: prefer a member of the target's account.
                let account = target
                    .pointer("/membership/account")
                    .and_then(Value::as_str);
                let members: Vec<&String> = s
                    .memberships
                    .iter()
                    .filter(|(a, _)| Some(a.as_str()) == account)
                    .map(|(_, u)| u)
                    .collect();
                match pick(rng, &members) {
                    Some(u) => json!(u),
                    None => json!(s.users[0]),
                }
            }
        };
        out.insert((*name).to_owned(), value);
    }
    Value::Object(out)
}

/// `count` scenarios from `seed`: the same seed gives the same bytes.
pub fn generate(engine: &Engine, seed: u64, count: usize) -> Vec<Vector> {
    let mut rng = StdRng::seed_from_u64(seed);
    let actions: Vec<String> = engine.actions().to_vec();
    (0..count)
        .map(|n| {
            let s = scenario(&mut rng);
            let sources = ["ui", "api", "scim", "job"];
            let source = sources[rng.random_range(0..4)];
            let envelope = if rng.random_bool(0.1) {
                // A batch: one actor, the members of one account, several actions.
                let account = s.accounts[rng.random_range(0..s.accounts.len())].clone();
                let targets: Vec<Value> = s
                    .memberships
                    .iter()
                    .filter(|(a, _)| *a == account)
                    .map(|(a, u)| json!({"membership": {"account": a, "user": u}}))
                    .collect();
                let member_actions: Vec<&String> = actions
                    .iter()
                    .filter(|a| engine.action_shape(a).is_some_and(|sh| sh.target == "membership" && sh.by_user))
                    .collect();
                let columns: Vec<Value> = (0..rng.random_range(1..=12))
                    .filter_map(|_| {
                        let action = *pick(&mut rng, &member_actions)?;
                        let shape = engine.action_shape(action)?;
                        let first = targets.first().cloned().unwrap_or(Value::Null);
                        let p = params(&mut rng, &s, &shape.params, &first);
                        Some(json!({"action": action, "params": p}))
                    })
                    .collect();
                json!({"op": "batch", "facts": s.facts, "actor": {"user": s.users[rng.random_range(0..s.users.len())]},
                       "targets": targets, "actions": columns, "source": source})
            } else {
                let action = actions[rng.random_range(0..actions.len())].clone();
                let shape = engine.action_shape(&action);
                let kind = shape.as_ref().map_or("account", |sh| sh.target);
                let t = target(&mut rng, &s, kind);
                let names = shape.as_ref().map(|sh| sh.params.clone()).unwrap_or_default();
                let p = params(&mut rng, &s, &names, &t);
                let by_idp = shape.as_ref().is_some_and(|sh| sh.by_identity_provider);
                let actor = if by_idp && rng.random_bool(0.8) || rng.random_bool(0.03) {
                    json!({"identity_provider": s.accounts[rng.random_range(0..s.accounts.len())]})
                } else {
                    json!({"user": s.users[rng.random_range(0..s.users.len())]})
                };
                json!({"op": "authorize", "facts": s.facts, "actor": actor, "action": action,
                       "target": t, "params": p, "source": source})
            };
            Vector {
                name: format!("generated #{n} (seed {seed})"),
                rule: None,
                input: serde_json::to_vec(&envelope).unwrap_or_default(),
                expect: Expect::INVARIANTS,
            }
        })
        .collect()
}
