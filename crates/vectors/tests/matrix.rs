//! The role × action × target-role matrix as an `insta` snapshot: a policy
//! change shows its exact decision diff in review
//! (`crates/vectors/tests/snapshots/matrix__role_action_matrix.snap`).

use std::fmt::Write;
use std::path::Path;

use gatehouse_policy::json::{self, Answer};
use serde_json::json;

const ROLES: [&str; 4] = ["owner", "admin", "standard", "basic"];

#[test]
fn role_action_matrix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (engine, _) = gatehouse_vectors::native_engine(&root.join("policies")).unwrap();
    // Two members of every role, so no cell is decided by the last-owner rule,
    // plus a suspended admin as an actor.
    let mut users = vec![];
    let mut memberships = vec![];
    for role in ROLES {
        for n in 1..=2 {
            let id = format!("{role}{n}");
            users.push(json!({"id": id, "email": format!("{id}@m.test"), "name": id}));
            memberships
                .push(json!({"user": id, "account": "acct", "role": role, "status": "active"}));
        }
    }
    users.push(json!({"id": "suspended", "email": "s@m.test", "name": "suspended"}));
    memberships.push(
        json!({"user": "suspended", "account": "acct", "role": "admin", "status": "suspended"}),
    );
    let facts = json!({"now": 1_767_225_600, "accounts": [{"id": "acct", "name": "Acct", "included_seats": 20}],
                       "users": users, "memberships": memberships});
    let actions = [
        json!({"action": "change_role", "params": {"role": "owner"}}),
        json!({"action": "change_role", "params": {"role": "admin"}}),
        json!({"action": "change_role", "params": {"role": "basic"}}),
        json!({"action": "edit_nickname"}),
        json!({"action": "suspend"}),
        json!({"action": "remove_member"}),
        json!({"action": "request_owner_removal", "params": {"role": "admin"}}),
    ];
    let targets: Vec<_> = ROLES
        .iter()
        .map(|r| json!({"membership": {"account": "acct", "user": format!("{r}2")}}))
        .collect();
    let mut table = String::new();
    for actor in ["owner1", "admin1", "standard1", "basic1", "suspended"] {
        let batch = json!({"op": "batch", "facts": facts, "actor": {"user": actor},
                           "targets": targets, "actions": actions});
        let out = json::handle(Some(&engine), &serde_json::to_vec(&batch).unwrap());
        let Answer::Success { batch: Some(b), .. } = serde_json::from_slice(&out).unwrap() else {
            panic!("{}", String::from_utf8_lossy(&out));
        };
        for (action, call) in actions.iter().enumerate() {
            let verb = call["action"].as_str().unwrap();
            let name = match call["params"]["role"].as_str() {
                Some(role) => format!("{verb}:{role}"),
                None => verb.to_owned(),
            };
            for (t, role) in ROLES.iter().enumerate() {
                let d = &b.cells[t][action];
                let ids: Vec<&str> = d.reasons.iter().map(|r| r.policy.as_str()).collect();
                let verdict = if d.allowed { "allow" } else { "deny " };
                writeln!(
                    table,
                    "{actor:<10} {name:<28} {role:<9} {verdict} {}",
                    ids.join(", ")
                )
                .unwrap();
            }
        }
    }
    insta::assert_snapshot!(table);
}
