#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The batch memo never changes an answer: generated batches answered with
//! the memo on and off give the same bytes, over more than 10,000 cells;
//! and the comparison has teeth: a memo whose key leaves an input out
//! changes answers.

use std::path::{Path, PathBuf};

use gatehouse_policy::json::{self, Envelope};
use gatehouse_policy::{Engine, Memo};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Generated batches: each generated batch as it is, and each generated
/// single check widened to every target of its kind (so its cells can
/// share), as envelope bytes with their cell counts.
fn batches(engine: &Engine, seed: u64, count: usize) -> Vec<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    for v in gatehouse_vectors::generate::generate(engine, seed, count) {
        let batch = match json::parse_envelope(&v.input) {
            Ok(Envelope::Batch(batch)) => batch,
            Ok(Envelope::Authorize(check)) => gatehouse_vectors::widened(check),
            _ => continue,
        };
        let cells = batch.targets.len() * batch.actions.len();
        out.push((serde_json::to_vec(&Envelope::Batch(batch)).unwrap(), cells));
    }
    out
}

fn engine(memo: Memo) -> Engine {
    let (mut engine, _) = gatehouse_vectors::native_engine(&root().join("policies")).unwrap();
    engine.set_memo(memo);
    engine
}

/// The batches whose answers differ between the two engines, and the
/// cells decided (answers that succeeded).
fn differences(a: &Engine, b: &Engine, batches: &[(Vec<u8>, usize)]) -> (Vec<String>, usize) {
    let mut differ = Vec::new();
    let mut cells = 0;
    for (input, n) in batches {
        let x = json::handle(Some(a), input);
        let y = json::handle(Some(b), input);
        if x.starts_with(br#"{"type":"success""#) {
            cells += n;
        }
        if x != y {
            differ.push(format!(
                "  {}\n  vs {}",
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y)
            ));
        }
    }
    (differ, cells)
}

#[test]
fn the_memo_answers_every_generated_cell_as_without_it() {
    let on = engine(Memo::On);
    let off = engine(Memo::Off);
    let batches = batches(&on, 23, 3_000);
    let (differ, cells) = differences(&on, &off, &batches);
    println!("{cells} cells in {} batches decided", batches.len());
    assert!(cells >= 10_000, "only {cells} cells were decided");
    assert!(
        differ.is_empty(),
        "{} of {} batches answer differently with the memo:\n{}",
        differ.len(),
        batches.len(),
        differ
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The test above can fail: a memo whose key leaves one input out (the
/// test-only [`Memo::WithoutInput`]) changes answers of the same generated
/// batches, for many of the inputs (an input constant within a batch, such
/// as the actor's type, changes none).
#[test]
fn a_key_without_one_of_its_inputs_changes_answers() {
    let off = engine(Memo::Off);
    let batches = batches(&off, 23, 600);
    let most = off
        .actions()
        .iter()
        .map(|a| off.memo_inputs(a))
        .max()
        .unwrap_or(0);
    let mut caught = Vec::new();
    for n in 0..most {
        let dropped = engine(Memo::WithoutInput(n));
        let (differ, _) = differences(&dropped, &off, &batches);
        if !differ.is_empty() {
            caught.push(n);
        }
    }
    println!("keys of up to {most} inputs; dropping input n changes answers for n in {caught:?}");
    assert!(
        caught.len() >= 5,
        "dropping an input changed answers only for inputs {caught:?} of {most}"
    );
}
