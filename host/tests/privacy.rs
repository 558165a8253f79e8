//! Need to know: for every persona and every read endpoint, every user id,
//! email, name, invitation email, resource name and device label anywhere in
//! the response body is one the policies let that persona see.
//!
//! What a persona may see is asked of the module on the full facts, not
//! written here: members and resources of the accounts where `view_members`
//! holds, invitations where `view_invitations` holds, owner-removal requests
//! where `view_owner_removal_requests` holds, the people an account's audit
//! log names where `read_audit` holds, and always the persona's own profile
//! and devices. The rows and bytes of every handed-out question are printed
//! (`cargo test -p gatehouse-host --test privacy -- --nocapture`).
//!
//! The policy editor is open to the agency's owners: `GET /v1/policies` is
//! scanned like every read (its policy text and decision tables are the
//! repository's, the same on every host, and left out), and the impact
//! report, which replays every tenant's audit log, may name no user, email,
//! invitation email or resource at all, not even one its author may see;
//! everyone else gets 403 or 404 and no report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use gatehouse_policy::facts::{AccountId, UserId};
use gatehouse_policy::{ActionCall, Actor, Batch, Facts, Params, Source, Target};
use serde_json::{Value, json};

/// Owner, admin, basic of the agency; owner of a sub-account only; basic on
/// the agency with a higher role on a sub-account; suspended; IdP-managed;
/// a stranger.
const PERSONAS: [&str; 8] = [
    "olivia", "ada", "bea", "nina", "bob", "sue", "ivan", "stranger",
];
const ACCOUNTS: [&str; 4] = ["agency", "east", "east-1", "solo"];
const VIEWS: [&str; 4] = [
    "view_members",
    "view_invitations",
    "view_owner_removal_requests",
    "read_audit",
];

/// Everything identifying in the store: (what, text), user ids matched
/// whole, the rest as substrings.
fn sensitive(facts: &Facts) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for u in &facts.users {
        out.push(("user id", u.id.0.clone()));
        out.push(("email", u.email.clone()));
        out.push(("name", u.name.clone()));
    }
    for i in &facts.invitations {
        out.push(("invitation email", i.email.clone()));
    }
    for r in &facts.resources {
        out.push(("resource name", r.name.clone()));
    }
    for d in &facts.devices {
        out.push(("device label", d.label.clone()));
    }
    out
}

/// The store's facts as the host reads them (everything, every account).
async fn full_facts(t: &T, accounts: &[&str]) -> Facts {
    let mut tx = t.host.store.begin_read().await.unwrap();
    let scope = gatehouse_host::facts::Scope {
        accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    let mut facts = gatehouse_host::facts::load(&mut tx, NOW, &scope, None)
        .await
        .unwrap();
    // Every user and every device, not only those the rows mention.
    facts.users = t
        .rows("SELECT id, email, name FROM users ORDER BY id")
        .await
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    facts.invitations = t
        .rows(
            "SELECT id, email, account_id AS account, role, invited_by, sent_at, expires_at, status \
             FROM invitations ORDER BY id",
        )
        .await
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    facts.devices = t
        .rows("SELECT id, user_id AS user, label FROM sessions ORDER BY id")
        .await
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    facts
}

/// What `persona` may see, as the policies define it.
async fn visible(t: &T, facts: &Facts, accounts: &[&str], persona: &str) -> BTreeSet<String> {
    let mut users: BTreeSet<String> = BTreeSet::from([persona.to_owned()]);
    let mut texts: BTreeSet<String> = BTreeSet::new();
    for d in facts.devices.iter().filter(|d| d.user.as_str() == persona) {
        texts.insert(d.label.clone());
    }
    let batch = Batch {
        facts: facts.clone(),
        actor: Actor::User(UserId(persona.to_owned())),
        targets: accounts
            .iter()
            .map(|a| Target::Account(AccountId((*a).to_owned())))
            .collect(),
        actions: VIEWS
            .iter()
            .map(|a| ActionCall {
                action: (*a).to_owned(),
                params: Params::default(),
            })
            .collect(),
        source: Source::Api,
    };
    let cells = t.host.gate.batch(&batch).unwrap().answer.cells;
    for (account, row) in accounts.iter().zip(&cells) {
        let may = |view: &str| {
            VIEWS
                .iter()
                .position(|v| *v == view)
                .is_some_and(|i| row[i].allowed)
        };
        if may("view_members") {
            for m in facts
                .memberships
                .iter()
                .filter(|m| m.account.as_str() == *account)
            {
                users.insert(m.user.0.clone());
            }
            for r in facts
                .resources
                .iter()
                .filter(|r| r.account.as_str() == *account)
            {
                texts.insert(r.name.clone());
            }
        }
        if may("view_invitations") {
            for i in facts
                .invitations
                .iter()
                .filter(|i| i.account.as_str() == *account)
            {
                texts.insert(i.email.clone());
                users.insert(i.invited_by.0.clone());
            }
        }
        if may("view_owner_removal_requests") {
            for r in facts
                .owner_removal_requests
                .iter()
                .filter(|r| r.account.as_str() == *account)
            {
                users.insert(r.requested_by.0.clone());
                users.insert(r.target.0.clone());
            }
        }
        if may("read_audit") {
            for r in t
                .rows(&format!(
                    "SELECT actor, target FROM audit WHERE account_id = '{account}'"
                ))
                .await
            {
                for who in [&r["actor"], &r["target"]] {
                    if let Some(id) = who.as_str().and_then(|s| s.strip_prefix("user:")) {
                        users.insert(id.to_owned());
                    }
                    if let Some(id) = who
                        .as_str()
                        .and_then(|s| s.strip_prefix("membership:"))
                        .and_then(|s| s.split('/').nth(1))
                    {
                        users.insert(id.to_owned());
                    }
                }
            }
        }
    }
    for u in facts.users.iter().filter(|u| users.contains(u.id.as_str())) {
        texts.insert(u.id.0.clone());
        texts.insert(u.email.clone());
        texts.insert(u.name.clone());
    }
    texts
}

/// Every string in a JSON value, object keys included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// Whether `token` (of kind `what`) appears in `texts`.
fn appears(what: &str, token: &str, texts: &[String]) -> bool {
    texts.iter().any(|s| {
        if what == "user id" {
            // Whole ids: a value, or a part of `user:ID`, `membership:A/ID`, `ID in A`.
            s == token
                || s.split([':', '/', ' ', ',']).any(|part| part == token)
                    && (s.starts_with("user:")
                        || s.starts_with("membership:")
                        || s.contains(" in "))
        } else {
            s.contains(token)
        }
    })
}

/// Rows and bytes of a question's facts.
fn question_size(q: &Value) -> (usize, usize) {
    let facts = &q["facts"];
    let rows = [
        "users",
        "accounts",
        "memberships",
        "invitations",
        "resources",
        "owner_removal_requests",
        "devices",
    ]
    .iter()
    .map(|k| facts[k].as_array().map_or(0, Vec::len))
    .sum();
    (rows, q.to_string().len())
}

/// The reads every user may try: their own (accounts, me, devices) and each
/// account's lists.
fn read_endpoints(accounts: &[&str]) -> Vec<String> {
    let mut endpoints = vec![
        "/v1/accounts".to_owned(),
        "/v1/me".to_owned(),
        "/v1/me/devices".to_owned(),
    ];
    for a in accounts {
        for what in [
            "members",
            "invitations",
            "owner-removal-requests",
            "bulk-removals",
            "audit",
        ] {
            endpoints.push(format!("/v1/accounts/{a}/{what}"));
        }
    }
    endpoints
}

/// The live policies and one more that forbids everything: every recorded
/// decision flips (allowed ones to denied, denied ones to other reasons).
fn forbid_everything(live: &Value) -> Value {
    let mut files = live["policies"].as_array().unwrap().clone();
    files.push(json!({
        "file": "zz_freeze.cedar",
        "text": "@id(\"ZZ.freeze\")\n@reason(\"nothing may change while the rules are reviewed\")\n@gate\nforbid (principal, action, resource);\n",
    }));
    json!({ "policies": files })
}

/// What the reads of `endpoints` showed each of `personas`: the strings
/// they should not have seen, the handed-out questions' sizes, and how
/// many reads were answered. A read that fails inside (5xx) fails the test.
struct Survey {
    leaks: Vec<String>,
    sizes: BTreeMap<(String, String), (u16, usize, usize)>,
    answered: usize,
}

async fn survey(
    t: &T,
    facts: &Facts,
    accounts: &[&str],
    personas: &[&str],
    endpoints: &[String],
) -> Survey {
    let universe = sensitive(facts);
    let mut leaks = Vec::new();
    let mut sizes: BTreeMap<(String, String), (u16, usize, usize)> = BTreeMap::new();
    let mut answered = 0;
    for p in personas {
        let p = *p;
        let seen = visible(t, facts, accounts, p).await;
        for path in endpoints {
            let (status, mut body) = t.get(p, path).await;
            assert!(!status.is_server_error(), "{p} GET {path}: {status} {body}");
            answered += usize::from(status.is_success());
            if path == "/v1/policies" {
                assert_eq!(status.is_success(), p == "olivia", "{p}: {status} {body}");
                // The repository's text: the same on every host.
                for key in ["schema", "policies", "tables"] {
                    assert_eq!(body.get(key).is_some(), p == "olivia", "{p} {key}");
                    body.as_object_mut().map(|o| o.remove(key));
                }
            }
            let mut texts = Vec::new();
            strings(&body, &mut texts);
            for (what, token) in &universe {
                if !seen.contains(token) && appears(what, token, &texts) {
                    leaks.push(format!("{p} GET {path} ({status}): {what} `{token}`"));
                }
            }
            for key in ["question", "invite_question"] {
                if body.get(key).is_some() {
                    let (rows, bytes) = question_size(&body[key]);
                    sizes.insert(
                        (p.to_owned(), format!("{path} {key}")),
                        (status.as_u16(), rows, bytes),
                    );
                }
            }
        }
    }
    Survey {
        leaks,
        sizes,
        answered,
    }
}

#[tokio::test]
async fn every_read_shows_each_persona_only_what_the_policies_let_them_see() {
    let t = editor().await;
    // Some history: an allowed change, a stranger's attempt, a bulk job,
    // and denials whose reasons render names and emails of two tenants.
    let (s, b) = t
        .call(
            Some("olivia"),
            axum::http::Method::PUT,
            "/v1/accounts/agency/members/sam/nickname",
            Some(json!({"nickname": "Sammy"})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, _) = t
        .post(
            "stranger",
            "/v1/accounts/agency/members/bea/suspend",
            json!({}),
        )
        .await;
    assert_eq!(s.as_u16(), 404);
    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "sam"}),
        )
        .await;
    assert_eq!(s.as_u16(), 202, "{b}");
    let job = b["result"]["job"].as_str().unwrap().to_owned();
    t.host.run_jobs().await.unwrap();
    let (s, b) = t
        .post(
            "ada",
            "/v1/accounts/agency/members/olivia/suspend",
            json!({}),
        )
        .await;
    assert_eq!(s.as_u16(), 403, "{b}");
    for (who, email, account) in [
        ("olivia", "bea@acme.test", "agency"),
        ("sola", "sola@solo.test", "solo"),
    ] {
        let (s, b) = t
            .post(
                who,
                "/v1/invitations",
                json!({"emails": [email], "accounts": [{"account": account, "role": "basic"}]}),
            )
            .await;
        assert_eq!(s.as_u16(), 403, "{b}");
        assert!(b.to_string().contains(email), "{b}");
    }
    // Every persona signs in (their devices are rows too).
    for p in PERSONAS {
        t.token(p).await;
    }

    let facts = full_facts(&t, &ACCOUNTS).await;
    let universe = sensitive(&facts);
    let mut endpoints = read_endpoints(&ACCOUNTS);
    endpoints.extend([
        format!("/v1/jobs/{job}"),
        "/v1/policies".to_owned(),
        "/v1/policies/publish-requests".to_owned(),
    ]);
    let Survey {
        mut leaks,
        sizes,
        answered,
    } = survey(&t, &facts, &ACCOUNTS, &PERSONAS, &endpoints).await;
    // The impact report spans every tenant's log: it names audit rows,
    // actions, accounts and policy ids, and nothing of anyone.
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let draft = forbid_everything(&live);
    let recorded = t.int("SELECT COUNT(*) FROM audit").await;
    for p in PERSONAS {
        let (status, body) = t.post(p, "/v1/policies/impact", draft.clone()).await;
        if p != "olivia" {
            assert!(matches!(status.as_u16(), 403 | 404), "{p}: {status} {body}");
            assert!(body.get("flips").is_none(), "{p}: {body}");
            continue;
        }
        assert!(status.is_success(), "{status} {body}");
        assert_eq!(body["replayed"], recorded, "{body}");
        assert!(
            body["unreplayable"].as_array().unwrap().is_empty(),
            "{body}"
        );
        let flips = body["flips"].as_array().unwrap();
        // Every decision flips but the stranger's attempt: it stays hidden
        // (R1.stranger holds before any plain gate, the freeze included).
        let strangers = t
            .int("SELECT COUNT(*) FROM audit WHERE account_id IS NULL")
            .await;
        assert_eq!(strangers, 1);
        assert_eq!(
            flips.len() as i64,
            recorded - strangers,
            "every decision flips: {body}"
        );
        assert!(
            flips.iter().any(|f| f["kind"] == "reasons_changed")
                && flips.iter().any(|f| f["kind"] == "allow_to_deny"),
            "{body}"
        );
        for f in flips {
            let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                BTreeSet::from([
                    "audit_id", "at", "repeats", "action", "account", "kind", "rule", "before",
                    "after"
                ]),
                "{f}"
            );
            assert!(
                f["after"]["policies"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("ZZ.freeze")),
                "{f}"
            );
        }
        let mut texts = Vec::new();
        strings(&body, &mut texts);
        for (what, token) in &universe {
            if appears(what, token, &texts) {
                leaks.push(format!("{p} POST /v1/policies/impact: {what} `{token}`"));
            }
        }
    }
    println!("persona  endpoint  status  question rows  question bytes");
    for ((p, e), (s, rows, bytes)) in &sizes {
        println!("{p}  {e}  {s}  {rows}  {bytes}");
    }
    leaks.sort();
    leaks.dedup();
    assert!(
        answered > 30,
        "only {answered} reads answered: the test sees too little"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// The same survey over random stores (the differential run's generated
/// scenarios: nested agencies, every role and status, resources,
/// invitations of every status, requests, devices), every user a persona.
#[tokio::test]
async fn generated_stores_show_each_user_only_what_the_policies_let_them_see() {
    let (mut stores, mut reads, mut answered) = (0, 0, 0);
    for seed in 0..40u64 {
        let facts: Facts =
            serde_json::from_value(gatehouse_vectors::generate::scenario_facts(seed)).unwrap();
        let t = empty().await;
        // A random store can break the store's own constraints (two pending
        // invitations for one address): such a seed is not a store.
        if gatehouse_host::demo::seed(&t.host, &facts).await.is_err() {
            continue;
        }
        stores += 1;
        let users: Vec<String> = facts.users.iter().map(|u| u.id.0.clone()).collect();
        for u in &users {
            t.token(u).await;
        }
        let accounts: Vec<&str> = facts.accounts.iter().map(|a| a.id.as_str()).collect();
        let endpoints = read_endpoints(&accounts);
        let full = full_facts(&t, &accounts).await;
        let personas: Vec<&str> = users.iter().map(String::as_str).collect();
        let found = survey(&t, &full, &accounts, &personas, &endpoints).await;
        reads += personas.len() * endpoints.len();
        answered += found.answered;
        assert!(
            found.leaks.is_empty(),
            "seed {seed}: {} leaks:\n{}",
            found.leaks.len(),
            found.leaks.join("\n")
        );
    }
    println!("{stores} generated stores, {reads} reads, {answered} answered");
    assert!(stores >= 20, "only {stores} of 40 seeds made a store");
    assert!(answered * 4 > reads, "{answered} of {reads} reads answered");
}
