#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The lazy world changes no answer: a single check, which builds only the
//! entities its question reaches, answers every generated question exactly
//! as the same question asked as a one-cell batch, which builds every
//! entity of the facts.

use std::path::{Path, PathBuf};

use gatehouse_policy::json::{self, Answer, Envelope};
use gatehouse_policy::{ActionCall, Batch};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn single_checks_answer_as_one_cell_batches_over_the_whole_world() {
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    let mut vectors = gatehouse_vectors::load_hand(&root().join("tests/vectors")).unwrap();
    vectors.extend(gatehouse_vectors::generate::generate(&engine, 31, 3_000));
    let (mut compared, mut decided) = (0, 0);
    let mut differ = Vec::new();
    for v in &vectors {
        let Ok(Envelope::Authorize(check)) = json::parse_envelope(&v.input) else {
            continue;
        };
        let batch = Envelope::Batch(Batch {
            facts: check.facts.clone(),
            actor: check.actor.clone(),
            targets: vec![check.target.clone()],
            actions: vec![ActionCall {
                action: check.action.clone(),
                params: check.params.clone(),
            }],
            source: check.source,
        });
        let single = json::answer(Some(&engine), &Envelope::Authorize(check));
        let whole = json::answer(Some(&engine), &batch);
        compared += 1;
        let same = match (&single, &whole) {
            (
                Answer::Success {
                    decision: Some(d), ..
                },
                Answer::Success { batch: Some(b), .. },
            ) => {
                decided += 1;
                b.cells.len() == 1 && b.cells[0].len() == 1 && b.cells[0][0] == *d
            }
            (Answer::Failure { errors: a }, Answer::Failure { errors: b }) => a == b,
            _ => false,
        };
        if !same {
            differ.push(format!(
                "{}:\n  single: {single:?}\n  batch:  {whole:?}",
                v.name
            ));
        }
    }
    println!("{compared} single checks compared, {decided} decided");
    assert!(decided > 2_000, "only {decided} checks were decided");
    assert!(
        differ.is_empty(),
        "{} of {compared} single checks answer unlike their batch:\n{}",
        differ.len(),
        differ
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
