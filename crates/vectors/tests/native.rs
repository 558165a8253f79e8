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
