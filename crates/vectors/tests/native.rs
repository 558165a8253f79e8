//! Replays every hand vector natively and checks its expectation; the
//! cross-runtime comparison is `cargo xtask vectors`.

use std::path::{Path, PathBuf};

use gatehouse_policy::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_hand_vector_holds_natively() {
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    let vectors = gatehouse_vectors::load_hand(&root().join("tests/vectors")).unwrap();
    assert!(!vectors.is_empty());
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            let out = json::handle(Some(&engine), &v.input);
            gatehouse_vectors::check(v, &out)
                .err()
                .map(|e| format!("{}: {e}", v.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

/// The module's `tables` op (the policy editor's checker) agrees with the
/// per-vector check: every hand table passes, and a table whose row has
/// too few cells fails in both.
#[test]
fn the_tables_op_checks_as_the_vectors_do() {
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    let mut vectors = gatehouse_vectors::load_hand(&root().join("tests/vectors")).unwrap();
    let all = gatehouse_vectors::as_tables("all", &vectors);
    let out = json::handle(Some(&engine), &all.input);
    gatehouse_vectors::check(&all, &out).unwrap();
    assert_eq!(
        gatehouse_vectors::table_failures(&vectors, &out),
        Vec::<String>::new()
    );
    // Drop the last cell of the first row of the first batch table.
    let mut short = vectors
        .iter()
        .find(|v| matches!(v.expect, gatehouse_vectors::Expect::Cells { .. }))
        .unwrap()
        .clone();
    if let gatehouse_vectors::Expect::Cells { cells } = &mut short.expect {
        assert!(cells[0].len() > 1, "{}: a row of one cell", short.name);
        cells[0].pop();
    }
    let direct = gatehouse_vectors::check(&short, &json::handle(Some(&engine), &short.input));
    assert!(
        direct
            .as_ref()
            .is_err_and(|e| e.contains("row 0: expected")),
        "{direct:?}"
    );
    vectors.truncate(3);
    vectors.push(short);
    let out = json::handle(
        Some(&engine),
        &gatehouse_vectors::as_tables("short", &vectors).input,
    );
    let failed = gatehouse_vectors::table_failures(&vectors, &out);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].ends_with(&direct.unwrap_err()), "{failed:?}");
    // A table cannot run tables: its input is refused, not answered.
    let nested = gatehouse_vectors::Vector {
        name: "nested".into(),
        rule: None,
        input: gatehouse_vectors::as_tables("inner", &vectors).input,
        expect: gatehouse_vectors::Expect::Error {
            error: "bad_input".into(),
        },
    };
    let out = json::handle(
        Some(&engine),
        &gatehouse_vectors::as_tables("outer", std::slice::from_ref(&nested)).input,
    );
    assert_eq!(
        gatehouse_vectors::table_failures(&[nested], &out),
        Vec::<String>::new()
    );
}

#[test]
fn generated_scenarios_keep_the_invariants_natively() {
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    let vectors = gatehouse_vectors::generate::generate(&engine, 7, 300);
    let again = gatehouse_vectors::generate::generate(&engine, 7, 300);
    assert!(
        vectors.iter().zip(&again).all(|(a, b)| a.input == b.input),
        "generation is not reproducible"
    );
    let mut decided = 0;
    for v in &vectors {
        let out = json::handle(Some(&engine), &v.input);
        gatehouse_vectors::check(v, &out).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        decided += usize::from(out.starts_with(br#"{"type":"success""#));
    }
    // Most scenarios must reach a decision, or the generator tests only errors.
    assert!(
        decided * 10 > vectors.len() * 7,
        "only {decided} of {} reached a decision",
        vectors.len()
    );
}

#[test]
fn minimized_questions_answer_exactly_like_the_full_facts() {
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    let mut vectors = gatehouse_vectors::load_hand(&root().join("tests/vectors")).unwrap();
    vectors.extend(gatehouse_vectors::generate::generate(&engine, 7, 1_000));
    let twins = gatehouse_vectors::minimized(&engine, &vectors);
    let mut differ = Vec::new();
    let (mut before, mut after) = (0, 0);
    for t in &twins {
        let full = json::handle(Some(&engine), &t.full.input);
        let small = json::handle(Some(&engine), &t.question.input);
        if full != small {
            differ.push(format!(
                "{}:\n  full:      {}\n  minimized: {}",
                t.full.name,
                String::from_utf8_lossy(&full),
                String::from_utf8_lossy(&small)
            ));
        }
        before += t.rows.0;
        after += t.rows.1;
    }
    println!(
        "{} of {} vectors minimized; fact rows {before} -> {after}",
        twins.len(),
        vectors.len()
    );
    assert!(
        differ.is_empty(),
        "{} of {} minimized questions answer differently:\n{}",
        differ.len(),
        twins.len(),
        differ
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Most vectors decide, and minimizing leaves rows out.
    assert!(
        twins.len() * 2 > vectors.len(),
        "only {} twins",
        twins.len()
    );
    assert!(
        after * 2 < before,
        "little was left out: {before} -> {after} rows"
    );
}
