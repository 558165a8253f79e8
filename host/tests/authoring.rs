//! `gatehouse policy validate` and `gatehouse policy test`, run as a newcomer
//! would: the real binary on the repository's policies and on broken copies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::policies_with as broken;

/// Runs `gatehouse policy ARGS` from the repository root: (exit code, stdout + stderr).
fn policy(args: &[&str]) -> (i32, String) {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    common::gatehouse(&all)
}

#[test]
fn the_repository_policies_validate_and_pass_their_tables() {
    let (code, out) = policy(&["validate"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("103 policies in 21 files, 43 actions, 19 rules: valid"),
        "{out}"
    );
    let (code, out) = policy(&["test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("489 passed, 0 failed"), "{out}");
}

#[test]
fn a_parse_error_points_at_file_line_and_column() {
    let dir = broken("parse", "r05_roles.cedar", |t| {
        t.replacen("permit (", "permit (principal is User,,", 1)
    });
    let (code, out) = policy(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unexpected token `,`"), "{out}");
    assert!(out.contains("--> r05_roles.cedar:7:27"), "{out}");
    assert!(
        out.contains("|                           ^"),
        "the caret sits under column 27: {out}"
    );
}

#[test]
fn an_outcome_belongs_on_a_gate_and_names_a_known_outcome() {
    let dir = broken("outcome-word", "r01_members.cedar", |t| {
        t.replacen("@outcome(\"hidden\")", "@outcome(\"invisible\")", 1)
    });
    let (code, out) = policy(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("@outcome(\"invisible\"): must be \"hidden\" or \"inapplicable\""),
        "{out}"
    );
    let dir = broken("outcome-gate", "r01_members.cedar", |t| {
        t.replacen("@gate\n@outcome(\"hidden\")", "@outcome(\"hidden\")", 1)
    });
    let (code, out) = policy(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("R1.stranger")
            && out.contains("@outcome belongs on @gate forbid policies only"),
        "{out}"
    );
}

#[test]
fn an_unknown_attribute_is_a_validation_error_at_its_policy() {
    let dir = broken("attr", "r07_suspend.cedar", |t| {
        t.replacen("when {", "when { principal.nosuch == 1 &&", 1)
    });
    let (code, out) = policy(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("attribute `nosuch` on entity type `User` not found"),
        "{out}"
    );
    assert!(out.contains("--> r07_suspend.cedar:"), "{out}");
    // `test` refuses to run tables on policies that do not validate.
    let (code, _) = policy(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
}

#[test]
fn a_policy_that_allows_an_ownerless_account_is_caught_by_the_tables() {
    // An off-by-one: the last active owner could be suspended or removed.
    let dir = broken("ownerless", "r12_last_owner.cedar", |t| {
        t.replacen(
            "resource.account.active_owners <= 1",
            "resource.account.active_owners < 1",
            1,
        )
    });
    let (code, out) = policy(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "still valid Cedar: {out}");
    let (code, out) = policy(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(!failed.is_empty(), "{out}");
    assert!(
        failed.iter().any(|l| l.ends_with("(R12)")),
        "R12 tables fail: {out}"
    );
    assert!(
        out.contains("returned: allowed"),
        "the failure says what came back: {out}"
    );
}

#[test]
fn a_missing_directory_says_what_to_point_at() {
    let (code, out) = policy(&["validate", "no/such/dir"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hint: point at the directory holding gatehouse.cedarschema"),
        "{out}"
    );
}

#[test]
fn fmt_checks_and_rewrites_with_cedars_formatter() {
    // The repository's own policies are formatted.
    let (code, out) = policy(&["fmt", "--check"]);
    assert_eq!(code, 0, "{out}");
    let messy = broken("fmt", "r06_nickname.cedar", |t| {
        t.replace("permit (", "permit   (\n\n   ")
    });
    let dir = messy.to_str().unwrap();
    let (code, out) = policy(&["fmt", "--check", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not formatted: r06_nickname.cedar"), "{out}");
    assert!(out.contains("hint: run `gatehouse policy fmt"), "{out}");
    let (code, out) = policy(&["fmt", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reformatted r06_nickname.cedar"), "{out}");
    // Back to the repository's text, byte for byte, and still valid.
    assert_eq!(
        std::fs::read_to_string(messy.join("r06_nickname.cedar")).unwrap(),
        std::fs::read_to_string(common::root().join("policies/r06_nickname.cedar")).unwrap()
    );
    assert_eq!(policy(&["fmt", "--check", dir]).0, 0);
    assert_eq!(policy(&["validate", dir]).0, 0);
}

#[test]
fn prove_holds_on_the_repository_and_fails_with_a_counterexample_when_weakened() {
    let (code, out) = policy(&["prove"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HOLDS suspended-actor-powerless"), "{out}");
    assert!(out.contains("HOLDS never-zero-active-owners"), "{out}");
    assert!(out.contains(" 0 fail"), "{out}");
    // The ownerless off-by-one: refuted, with a request that shows it.
    let dir = broken("prove-r12", "r12_last_owner.cedar", |t| {
        t.replace(
            "resource.account.active_owners <= 1",
            "resource.account.active_owners < 1",
        )
    });
    let (code, out) = policy(&["prove", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILS never-zero-active-owners"), "{out}");
    assert!(out.contains("counterexample:"), "{out}");
    assert!(out.contains("active_owners: 1"), "{out}");
    assert!(out.contains("policies: ALLOW by ["), "{out}");
}

#[test]
fn the_policy_author_and_stranger_properties_fail_with_counterexamples_when_broken() {
    let (code, out) = policy(&["prove"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HOLDS only-owners-author-policies"), "{out}");
    assert!(out.contains("HOLDS stranger-permitted-nothing"), "{out}");
    // Admins may open the editor: only owners may author, no longer.
    let dir = broken("prove-pa", "pa_policy_authoring.cedar", |t| {
        t.replace(
            "when { principal in resource.owners };",
            "when { principal in resource.admins };",
        )
    });
    let (code, out) = policy(&["prove", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILS only-owners-author-policies"), "{out}");
    assert!(out.contains("counterexample:"), "{out}");
    assert!(out.contains("Action::\"author_policies\""), "{out}");
    assert!(
        out.contains("policies: ALLOW by [PA.author-policies]"),
        "{out}"
    );
    // The removal request's requester who has left the account could cancel it:
    // R1's stranger gate still stops that (defence in depth) ...
    let dir = broken("prove-stranger", "r10_owner_removal.cedar", |t| {
        t.replace(
            "resource.requested_by == principal &&\n  // a requester who has left the account is a stranger to it\n  principal in resource.account.basics",
            "resource.requested_by == principal",
        )
    });
    let (code, out) = policy(&["prove", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HOLDS stranger-permitted-nothing"), "{out}");
    // ... and without the gate, the property catches it.
    let r01 = dir.join("r01_members.cedar");
    let text = std::fs::read_to_string(&r01).unwrap();
    let cut = text.find("@id(\"R1.stranger-to-request\")").unwrap();
    std::fs::write(&r01, &text[..cut]).unwrap();
    let (code, out) = policy(&["prove", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILS stranger-permitted-nothing"), "{out}");
    assert!(out.contains("counterexample:"), "{out}");
    assert!(out.contains("Action::\"cancel_owner_removal\""), "{out}");
    assert!(out.contains("policies: ALLOW by [R10.cancel]"), "{out}");
}
