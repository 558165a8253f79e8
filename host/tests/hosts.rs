//! Two real `gatehouse serve` processes on one store (see
//! `common::cluster`), racing what the rules must survive across hosts:
//!
//! * the two owners of each of many accounts take owners away at the same
//!   instant, one through each host, in every way there is (demote, remove,
//!   suspend, step down, leave, SCIM deactivation): every account keeps an
//!   active owner, and every attempt that reached a decision has exactly
//!   one audit record (identical denials counted in one record's `repeats`);
//! * a session or token made through one host works on the other, and its
//!   revocation on one host holds on the other at the very next request.
//!
//! On PostgreSQL (`GATEHOUSE_TEST_PG`) the two hosts share nothing but the
//! database, so only the store's locks keep R12; on SQLite the two
//! processes share the file and its write lock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axum::http::Method;
use common::cluster::{self, Answer, Auth, Cluster, Req};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::json;

/// How many accounts race (`GATEHOUSE_HOSTS_ACCOUNTS`; 100 accounts are
/// 1,200 attempts).
const ACCOUNTS: usize = 100;
/// How many moments are in flight at once.
const WORKERS: usize = 8;
/// The fixed seed of the shuffles.
const SEED: u64 = 0x2b05_75e5_0fd3_1100;

/// The ways an owner tries to take an owner away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Change the other owner's role to admin (R5: never for an owner).
    Demote,
    /// Remove the other owner (R8: owners only through R10 requests).
    Remove,
    /// Suspend the other owner (R7).
    Suspend,
    /// Step down to admin (R11).
    StepDown,
    /// Leave the account (R16).
    Leave,
    /// The account's identity provider deactivates the other owner (R17).
    ScimDeactivate,
}

const KINDS: [Kind; 6] = [
    Kind::Demote,
    Kind::Remove,
    Kind::Suspend,
    Kind::StepDown,
    Kind::Leave,
    Kind::ScimDeactivate,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Demote => "demote_other",
            Kind::Remove => "remove_other",
            Kind::Suspend => "suspend_other",
            Kind::StepDown => "step_down",
            Kind::Leave => "leave",
            Kind::ScimDeactivate => "scim_deactivate_other",
        }
    }
}

/// One attempt: who, through which host, what.
#[derive(Debug, Clone)]
struct Act {
    account: usize,
    actor: String,
    other: String,
    host: usize,
    kind: Kind,
}

impl Act {
    fn req(&self, tokens: &BTreeMap<String, String>) -> Req {
        let account = format!("/v1/accounts/h{:03}", self.account);
        let token = &tokens[&self.actor];
        let other = &self.other;
        let (method, path, body) = match self.kind {
            Kind::Demote => (
                Method::PUT,
                format!("{account}/members/{other}/role"),
                json!({"role": "admin"}),
            ),
            Kind::Remove => (
                Method::DELETE,
                format!("{account}/members/{other}"),
                json!({}),
            ),
            Kind::Suspend => (
                Method::POST,
                format!("{account}/members/{other}/suspend"),
                json!({}),
            ),
            Kind::StepDown => (
                Method::POST,
                format!("{account}/step-down"),
                json!({"role": "admin"}),
            ),
            Kind::Leave => (Method::POST, format!("{account}/leave"), json!({})),
            Kind::ScimDeactivate => {
                return Req::new(self.host, Method::PATCH, format!("/scim/v2/Users/{other}"))
                    .bearer(&tokens[&idp(self.account)])
                    .scim(json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": false}],
                    }));
            }
        };
        Req::new(self.host, method, path).bearer(token).json(body)
    }

    fn label(&self) -> String {
        format!(
            "{} by {} via host {}",
            self.kind.name(),
            self.actor,
            self.host + 1
        )
    }
}

/// The key of account `i`'s SCIM token in the token map.
fn idp(i: usize) -> String {
    format!("idp:h{i:03}")
}

/// The owner of account `i` its identity provider provisioned: SCIM
/// manages only such memberships (R17), so in every account one owner is
/// IdP-managed (a in even accounts, b in odd ones) and the other owner's
/// SCIM deactivation of them is a real race; the SCIM attempt on the
/// other, locally made owner is a decided denial.
fn managed(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "a" } else { "b" }
}

/// Accounts with two active owners each; API tokens for both owners and a
/// SCIM token for each account.
async fn seed(t: &common::T, accounts: usize) -> BTreeMap<String, String> {
    let mut stmts = Vec::new();
    let mut owners = Vec::new();
    for i in 0..accounts {
        stmts.push(format!(
            "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ('h{i:03}', 'Account {i}', NULL, 10, 0)"
        ));
        for who in ["a", "b"] {
            let user = format!("o{who}{i:03}");
            stmts.push(cluster::user_row(&user));
            stmts.push(format!(
                "INSERT INTO memberships (account_id, user_id, role, status, managed_by_idp, created_at) VALUES ('h{i:03}', '{user}', 'owner', 'active', {}, 0)",
                i64::from(managed(i) == who)
            ));
            if managed(i) == who {
                // The identity provider's record of the member it manages.
                stmts.push(format!(
                    "INSERT INTO scim_users (account_id, user_id, user_name, user_name_lower, resource, created_at, last_modified, version) \
                     VALUES ('h{i:03}', '{user}', '{user}@cluster.test', '{user}@cluster.test', '{{}}', 0, 0, 1)"
                ));
            }
            owners.push(user);
        }
    }
    cluster::seed(t, &stmts).await;
    let mut tokens = cluster::api_tokens(t, &owners).await;
    for i in 0..accounts {
        let secret = gatehouse_host::scim::create_token(&t.host, &format!("h{i:03}"))
            .await
            .unwrap();
        tokens.insert(idp(i), secret);
    }
    tokens
}

/// What an answer was, and whether it reached a decision; `None` for an
/// answer the race may not give. A SCIM answer names no audit record, so
/// `scim` holds the SCIM audit rows by target (one SCIM attempt per target).
fn classify(
    act: &Act,
    a: &Answer,
    scim: &BTreeMap<String, (String, i64)>,
) -> Option<(&'static str, bool)> {
    let message = a.message();
    if act.kind == Kind::ScimDeactivate {
        let row = scim.get(&format!("membership:h{:03}/{}", act.account, act.other));
        let row = row.map(|(d, n)| (d.as_str(), *n));
        return match (a.status, row) {
            // Deactivated now, or found inactive already (nothing to ask).
            (200, Some(("allowed", 1))) if a.body["active"] == false => Some(("allowed", true)),
            (200, None) if a.body["active"] == false => Some(("already inactive", false)),
            (403, Some(("denied", 1))) if !a.reasons().is_empty() => Some(("denied", true)),
            (404, None)
                if message.contains("in this account")
                    || message.contains("is not a member of") =>
            {
                Some(("gone", false))
            }
            _ => None,
        };
    }
    match a.status {
        200 | 201 if a.audit_id().is_some() => Some(("allowed", true)),
        403 | 409 if a.audit_id().is_some() && !a.reasons().is_empty() => Some(("denied", true)),
        // Suspended or gone: the session was signed out of the account first.
        401 if message.contains("signed out of") => Some(("signed out", false)),
        // Gone from the account: a stranger now, answered as one.
        404 if message.contains("that you can see") || message.contains("is not a member of") => {
            Some(("gone", false))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_racing_owners_away_keep_an_owner_in_every_account() {
    let started = std::time::Instant::now();
    let accounts = cluster::count_from_env("GATEHOUSE_HOSTS_ACCOUNTS", ACCOUNTS);
    let t = common::empty().await;
    let tokens = seed(&t, accounts).await;
    let cluster = Cluster::start(&t.db.location);

    // Per account one round per kind; in each, both owners fire at the
    // same instant, owner a through host 1 and owner b through host 2, each
    // trying to take an owner away (the other, or themselves), in an order
    // of kinds shuffled per owner.
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut moments: Vec<Vec<Act>> = Vec::new();
    for i in 0..accounts {
        let mut ka = KINDS;
        let mut kb = KINDS;
        ka.shuffle(&mut rng);
        kb.shuffle(&mut rng);
        for (ra, rb) in ka.into_iter().zip(kb) {
            moments.push(
                [(0, "a", "b", ra), (1, "b", "a", rb)]
                    .into_iter()
                    .map(|(host, me, other, kind)| Act {
                        account: i,
                        actor: format!("o{me}{i:03}"),
                        other: format!("o{other}{i:03}"),
                        host,
                        kind,
                    })
                    .collect(),
            );
        }
    }
    moments.shuffle(&mut rng);
    let attempts = moments.iter().map(Vec::len).sum::<usize>();
    let reqs = moments
        .iter()
        .map(|m| m.iter().map(|a| a.req(&tokens)).collect())
        .collect();
    let seeded = started.elapsed();
    let answers = cluster.api.race(reqs, WORKERS).await;
    let race_time = started.elapsed() - seeded;
    let outcomes: Vec<(Act, Answer)> = moments
        .into_iter()
        .flatten()
        .zip(answers.into_iter().flatten())
        .collect();
    assert_eq!(outcomes.len(), attempts);

    // ---- Every answer is an expected one; nothing broke (no 5xx). ----
    let scim: BTreeMap<String, (String, i64)> = t
        .rows("SELECT target, decision, repeats FROM audit WHERE source = 'scim'")
        .await
        .into_iter()
        .map(|r| {
            let target = r["target"].as_str().unwrap().to_owned();
            let decision = r["decision"].as_str().unwrap().to_owned();
            (target, (decision, r["repeats"].as_i64().unwrap()))
        })
        .collect();
    let mut decided = 0usize;
    let mut scim_decided = 0usize;
    let mut allowed: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected: Vec<String> = Vec::new();
    for (act, a) in &outcomes {
        let what = match classify(act, a, &scim) {
            Some((what, was_decided)) => {
                if was_decided {
                    decided += 1;
                    scim_decided += usize::from(act.kind == Kind::ScimDeactivate);
                }
                if what == "allowed" {
                    allowed.entry(act.account).or_default().push(act.label());
                }
                what
            }
            None => {
                unexpected.push(format!("{}: {} {}", act.label(), a.status, a.body));
                "unexpected"
            }
        };
        *by.entry(format!("{} {what}", act.kind.name())).or_default() += 1;
    }
    println!(
        "hosts: {accounts} accounts, {attempts} attempts over 2 hosts ({WORKERS} moments at once): \
         {decided} decided; {by:?}; seeded in {seeded:.1?}, raced in {race_time:.1?}"
    );

    // ---- R12 across hosts: every account keeps an active owner. ----
    let ownerless = t
        .rows(
            "SELECT a.id FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM memberships m \
             WHERE m.account_id = a.id AND m.role = 'owner' AND m.status = 'active') ORDER BY a.id",
        )
        .await;
    println!(
        "hosts: {} of {accounts} accounts without an active owner, {} unexpected answers",
        ownerless.len(),
        unexpected.len()
    );
    assert!(
        ownerless.is_empty(),
        "{} of {accounts} accounts left without an active owner: {ownerless:?}",
        ownerless.len()
    );
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    // And exactly one: nothing gives an owner back, and while both are
    // active owners each one's step-down goes through, so one loss always
    // happens; after it R12 refuses every other.
    let counts = t
        .rows(
            "SELECT account_id, COUNT(*) AS owners FROM memberships \
             WHERE role = 'owner' AND status = 'active' GROUP BY account_id HAVING COUNT(*) <> 1",
        )
        .await;
    assert!(
        counts.is_empty(),
        "accounts without exactly one active owner: {counts:?}"
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM memberships WHERE role = 'owner' AND status = 'active'")
            .await,
        i64::try_from(accounts).unwrap()
    );
    assert_eq!(
        allowed.len(),
        accounts,
        "every account saw an allowed change"
    );

    // ---- One audit record per decided attempt, from both hosts. ----
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE decision NOT IN ('allowed', 'denied')")
            .await,
        0,
        "failed changes were recorded"
    );
    assert_eq!(
        t.int("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit")
            .await,
        i64::try_from(decided).unwrap(),
        "SUM(repeats) over the audit log vs attempts that reached a decision"
    );
    let mut ids: Vec<i64> = outcomes.iter().filter_map(|(_, a)| a.audit_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        usize::try_from(
            t.int("SELECT COUNT(*) FROM audit WHERE source <> 'scim'")
                .await
        )
        .unwrap(),
        ids.len(),
        "every API audit record is named by an answer"
    );
    assert_eq!(
        scim.len(),
        scim_decided,
        "every SCIM audit record belongs to a SCIM attempt that reached a decision"
    );
    // The race raced: every kind was refused somewhere, and every kind
    // that can take an owner away did so somewhere.
    for kind in KINDS {
        let n = |what: &str| {
            by.get(&format!("{} {what}", kind.name()))
                .copied()
                .unwrap_or(0)
        };
        assert!(n("denied") > 0, "no {} was refused: {by:?}", kind.name());
        if !matches!(kind, Kind::Demote | Kind::Remove) {
            assert!(n("allowed") > 0, "no {} went through: {by:?}", kind.name());
        }
    }
    drop(cluster);
    println!("hosts: done in {:.1?}", started.elapsed());
}

/// How many users take their sessions and tokens from host to host.
const TRAVELLERS: usize = 10;

/// The sign-in link secret in the newest mail to `email` (the mailer
/// sends after the answer: waited for).
async fn sign_in_link(t: &common::T, email: &str) -> String {
    common::sign_in_link(&t.host.store, email).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_tokens_work_on_every_host_and_revocations_hold_at_once() {
    let started = std::time::Instant::now();
    let t = common::empty().await;
    let mut stmts = Vec::new();
    for i in 0..TRAVELLERS {
        stmts.push(format!(
            "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ('s{i:02}', 'Solo {i}', NULL, 10, 0)"
        ));
        stmts.push(cluster::user_row(&format!("u{i:02}")));
        stmts.push(format!(
            "INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ('s{i:02}', 'u{i:02}', 'owner', 'active', 0)"
        ));
    }
    cluster::seed(&t, &stmts).await;
    let cluster = Cluster::start(&t.db.location);
    let api = &cluster.api;
    let travelled = std::time::Instant::now();
    let (mut links_raced, mut revoked) = (0, 0);
    for i in 0..TRAVELLERS {
        // Half start on host 1, half on host 2.
        let (here, there) = (i % 2, 1 - i % 2);
        let email = format!("u{i:02}@hosts.test");
        let members = format!("/v1/accounts/s{i:02}/members");
        let a = api
            .send(&Req::new(here, Method::POST, "/v1/auth/sign-in").json(json!({"email": email})))
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        let binding = a.binding.clone().expect("the sign-in binding cookie");
        // The link redeemed on both hosts at the same instant, from the
        // browser that asked: one session.
        let link = sign_in_link(&t, &email).await;
        let redeem = |host| {
            Req::new(host, Method::POST, "/v1/auth/redeem")
                .cookie(&binding)
                .json(json!({"token": link}))
        };
        let mut answers = api
            .race(vec![vec![redeem(here), redeem(there)]], 1)
            .await
            .remove(0);
        answers.sort_by_key(|a| a.status);
        let [won, lost] = [&answers[0], &answers[1]];
        assert_eq!((won.status, lost.status), (200, 401), "{answers:?}");
        assert!(
            lost.message().contains("unknown, used or expired"),
            "{}",
            lost.body
        );
        links_raced += 1;
        let browser = Auth::Cookie {
            secret: won.cookie.clone().expect("the session cookie"),
            csrf: won.body["csrf"].as_str().unwrap().to_owned(),
        };
        let session = won.body["session"].as_str().unwrap().to_owned();
        // The session works on both hosts.
        for host in [here, there] {
            let a = api
                .send(&Req::new(host, Method::GET, "/v1/me").auth(&browser))
                .await;
            assert_eq!(
                (a.status, a.body["session"].as_str()),
                (200, Some(session.as_str())),
                "{}",
                a.body
            );
        }
        // A token minted through one host works on the other.
        let a = api
            .send(
                &Req::new(there, Method::POST, "/v1/tokens")
                    .auth(&browser)
                    .json(
                        json!({"label": "ci", "accounts": [format!("s{i:02}")], "access": "write"}),
                    ),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let (token, device) = (
            a.body["token"].as_str().unwrap().to_owned(),
            a.body["id"].as_str().unwrap().to_owned(),
        );
        let a = api
            .send(&Req::new(here, Method::GET, &members).bearer(&token))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        // Revoked on one host: the very next request on the other is refused.
        let a = api
            .send(
                &Req::new(here, Method::DELETE, format!("/v1/me/devices/{device}")).auth(&browser),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = api
            .send(&Req::new(there, Method::GET, &members).bearer(&token))
            .await;
        assert_eq!(
            a.status, 401,
            "a revoked token on the other host: {}",
            a.body
        );
        assert!(a.message().contains("not valid"), "{}", a.body);
        // Signed out on one host: the very next request on the other is refused.
        let a = api
            .send(&Req::new(there, Method::POST, "/v1/auth/sign-out").auth(&browser))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = api
            .send(&Req::new(here, Method::GET, "/v1/me").auth(&browser))
            .await;
        assert_eq!(
            a.status, 401,
            "a signed-out session on the other host: {}",
            a.body
        );
        assert!(a.message().contains("not valid"), "{}", a.body);
        revoked += 2;
    }
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions").await,
        0,
        "every session and token was revoked"
    );
    println!(
        "hosts: {TRAVELLERS} users: {links_raced} sign-in links redeemed on both hosts at once (one session each), \
         {revoked} revocations held on the other host at once; {:.1?} ({:.1?} in all)",
        travelled.elapsed(),
        started.elapsed()
    );
}
