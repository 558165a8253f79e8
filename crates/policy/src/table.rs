//! The decision-table checker: whether an answer meets a table's
//! expectation, and the invariants every answer keeps.
//!
//! Why here, in the engine crate: `gatehouse policy test`, `cargo xtask
//! vectors` and the policy editor's page all check decision tables. The
//! native callers call [`check`]; the page asks its copy of the module
//! (`{"op":"tables",…}`, answered by [`run`]), so there is one checker and
//! it cannot drift. The expectation format is `tests/vectors/README.md`'s.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::json::{self, Answer, Envelope};
use crate::request::{Decision, Outcome};

/// What one decision must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct CellExpect {
    /// Allowed or not.
    pub allowed: bool,
    /// How it came about, when the table says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub outcome: Option<Outcome>,
    /// The determining policy ids, exactly (order does not matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub reasons: Option<Vec<String>>,
    /// Fragments that must appear in the reasons' messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub messages: Vec<String>,
}

/// `true` and nothing else: the value of `{"invariants": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;

impl Serialize for True {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            Ok(True)
        } else {
            Err(serde::de::Error::custom(
                "`invariants` can only be `true`: give an expectation instead",
            ))
        }
    }
}

/// What an answer must be, in the tables' own shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged, deny_unknown_fields)]
pub enum Expect {
    /// A failure with this error code (`{"error": CODE}`).
    Error {
        /// An `EngineError::code`.
        error: String,
    },
    /// A batch: one row per target, one cell per action (`{"cells": …}`).
    Cells {
        /// The rows.
        cells: Vec<Vec<CellExpect>>,
    },
    /// Only the invariants (`{"invariants": true}`: generated scenarios,
    /// whose answers the runtimes compare).
    Invariants {
        /// Always `true`.
        #[cfg_attr(feature = "ts", ts(type = "true"))]
        invariants: True,
    },
    /// A single decision (`{"allowed": …}`).
    Decision(CellExpect),
}

impl Expect {
    /// `{"invariants": true}`.
    pub const INVARIANTS: Expect = Expect::Invariants { invariants: True };
}

/// One table for the `tables` op: the exact input text and its expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The envelope, as the text every runtime is handed (malformed on
    /// purpose in some tables).
    pub input: String,
    /// What its answer must be.
    pub expect: Expect,
}

/// The `tables` op: answer each table's input under the loaded policies and
/// check the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Tables {
    /// The tables, answered in order.
    pub tables: Vec<Table>,
}

/// How one table came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct TableResult {
    /// The answer met the expectation and the invariants.
    pub passed: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub mismatch: Option<String>,
    /// What came back, for people (a decision with its reasons), when it
    /// did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub returned: Option<String>,
}

/// Answers `table.input` with `engine` and checks the answer. A table's
/// input cannot itself be a `tables` envelope.
pub fn run(engine: &Engine, table: &Table) -> TableResult {
    let answer = match json::parse_envelope(table.input.as_bytes()) {
        Ok(Envelope::Tables(_)) => Answer::failure(&EngineError::BadInput(
            "a table's input cannot be a `tables` envelope".into(),
        )),
        Ok(envelope) => json::answer(Some(engine), &envelope),
        Err(e) => Answer::failure(&e),
    };
    match check(&table.expect, &answer) {
        Ok(()) => TableResult {
            passed: true,
            mismatch: None,
            returned: None,
        },
        Err(why) => TableResult {
            passed: false,
            mismatch: Some(why),
            returned: Some(returned(&answer)),
        },
    }
}

/// [`check`] on an answer's bytes, as any runtime returned them.
pub fn check_bytes(expect: &Expect, output: &[u8]) -> Result<(), String> {
    let answer: Answer =
        serde_json::from_slice(output).map_err(|e| format!("answer is not an Answer: {e}"))?;
    check(expect, &answer)
}

/// Checks one answer against an expectation and the invariants.
pub fn check(expect: &Expect, answer: &Answer) -> Result<(), String> {
    invariants(answer)?;
    match (expect, answer) {
        (Expect::Invariants { .. }, _) => Ok(()),
        (Expect::Error { error }, Answer::Failure { errors }) => {
            if errors.iter().any(|e| &e.code == error) {
                Ok(())
            } else {
                Err(format!("expected error `{error}`, got {errors:?}"))
            }
        }
        (
            Expect::Decision(e),
            Answer::Success {
                decision: Some(d), ..
            },
        ) => check_cell(d, e),
        (Expect::Cells { cells: rows }, Answer::Success { batch: Some(b), .. }) => {
            if rows.len() != b.cells.len() {
                return Err(format!(
                    "expected {} rows, got {}",
                    rows.len(),
                    b.cells.len()
                ));
            }
            for (r, (want, got)) in rows.iter().zip(&b.cells).enumerate() {
                if want.len() != got.len() {
                    return Err(format!(
                        "row {r}: expected {} cells, got {}",
                        want.len(),
                        got.len()
                    ));
                }
                for (c, (w, g)) in want.iter().zip(got).enumerate() {
                    check_cell(g, w).map_err(|e| format!("row {r} cell {c}: {e}"))?;
                }
            }
            Ok(())
        }
        (_, other) => Err(format!("unexpected answer {}", show(other))),
    }
}

fn check_cell(d: &Decision, e: &CellExpect) -> Result<(), String> {
    if d.allowed != e.allowed {
        return Err(format!("expected allowed={}, got {}", e.allowed, show(d)));
    }
    if let Some(outcome) = e.outcome.filter(|o| *o != d.outcome) {
        return Err(format!("expected outcome {outcome:?}, got {}", show(d)));
    }
    if let Some(reasons) = &e.reasons {
        let mut want = reasons.clone();
        want.sort();
        let mut got: Vec<String> = d.reasons.iter().map(|r| r.policy.clone()).collect();
        got.sort();
        if want != got {
            return Err(format!("expected reasons {want:?}, got {}", show(d)));
        }
    }
    for fragment in &e.messages {
        if !d
            .reasons
            .iter()
            .any(|r| r.message.contains(fragment.as_str()))
        {
            return Err(format!(
                "no reason message contains {fragment:?}: {}",
                show(d)
            ));
        }
    }
    Ok(())
}

fn show<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The invariants every answer keeps: a failure names an error, every
/// denial has at least one reason (default deny included), and `allowed`
/// is true exactly when the outcome is `permitted`.
fn invariants(answer: &Answer) -> Result<(), String> {
    let decisions: Vec<&Decision> = match answer {
        Answer::Success {
            decision, batch, ..
        } => decision
            .iter()
            .chain(batch.iter().flat_map(|b| b.cells.iter().flatten()))
            .collect(),
        Answer::Failure { errors } => {
            return if errors.is_empty() {
                Err("a failure without errors".into())
            } else {
                Ok(())
            };
        }
    };
    for d in decisions {
        if !d.allowed && d.reasons.is_empty() {
            return Err(format!("a denial without reasons: {}", show(d)));
        }
        if d.allowed != (d.outcome == Outcome::Permitted) {
            return Err(format!("allowed and outcome disagree: {}", show(d)));
        }
    }
    Ok(())
}

/// What came back, for people: a decision as `allowed`/`denied` with its
/// reasons, anything else as its JSON (the first 300 characters).
pub fn returned(answer: &Answer) -> String {
    match answer {
        Answer::Success {
            decision: Some(d), ..
        } => {
            let reasons: Vec<String> = d
                .reasons
                .iter()
                .map(|r| format!("[{}] {}", r.policy, r.message))
                .collect();
            format!(
                "{} {}",
                if d.allowed { "allowed" } else { "denied" },
                reasons.join("; ")
            )
        }
        other => show(other).chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{BatchDecision, Reason};

    fn permitted() -> Decision {
        Decision {
            allowed: true,
            outcome: Outcome::Permitted,
            reasons: vec![Reason {
                policy: "R1.view-and-switch".into(),
                message: "members may view".into(),
            }],
        }
    }

    fn batch(cells: Vec<Vec<Decision>>) -> Answer {
        Answer::Success {
            policy_hash: "h".into(),
            decision: None,
            batch: Some(BatchDecision { cells }),
            question: None,
            info: None,
            tables: None,
        }
    }

    fn expect(json: &str) -> Expect {
        serde_json::from_str(json).unwrap()
    }

    const CELL: &str = r#"{"allowed":true,"outcome":"permitted","reasons":["R1.view-and-switch"]}"#;

    #[test]
    fn a_row_with_too_few_or_too_many_cells_fails() {
        let answer = batch(vec![vec![permitted(), permitted()]]);
        let two = expect(&format!(r#"{{"cells":[[{CELL},{CELL}]]}}"#));
        assert_eq!(check(&two, &answer), Ok(()));
        let one = expect(&format!(r#"{{"cells":[[{CELL}]]}}"#));
        assert_eq!(
            check(&one, &answer),
            Err("row 0: expected 1 cells, got 2".into())
        );
        let three = expect(&format!(r#"{{"cells":[[{CELL},{CELL},{CELL}]]}}"#));
        assert_eq!(
            check(&three, &answer),
            Err("row 0: expected 3 cells, got 2".into())
        );
    }

    #[test]
    fn invariants_only_still_checks_the_invariants() {
        let silent = Decision {
            allowed: false,
            outcome: Outcome::NotPermitted,
            reasons: vec![],
        };
        let e = expect(r#"{"invariants":true}"#);
        assert_eq!(e, Expect::INVARIANTS);
        assert_eq!(check(&e, &batch(vec![vec![permitted()]])), Ok(()));
        let why = check(&e, &batch(vec![vec![silent]])).unwrap_err();
        assert!(why.starts_with("a denial without reasons"), "{why}");
        let mut disagree = permitted();
        disagree.outcome = Outcome::Forbidden;
        let why = check(&e, &batch(vec![vec![disagree]])).unwrap_err();
        assert!(why.starts_with("allowed and outcome disagree"), "{why}");
        let why = check(&e, &Answer::Failure { errors: vec![] }).unwrap_err();
        assert_eq!(why, "a failure without errors");
    }

    #[test]
    fn expectations_read_and_write_the_tables_shape() {
        for text in [
            r#"{"error":"bad_input"}"#,
            r#"{"invariants":true}"#,
            r#"{"allowed":false,"outcome":"forbidden","reasons":["R8.owner-target"]}"#,
            r#"{"allowed":true,"messages":["owns"]}"#,
        ] {
            assert_eq!(serde_json::to_string(&expect(text)).unwrap(), text);
        }
        for bad in [
            r#"{"invariants":false}"#,
            r#"{"error":"bad_input","allowed":true}"#,
            r#"{"allowed":true,"reason":["x"]}"#,
            r#"{"cells":[[{"allowed":true,"extra":1}]]}"#,
        ] {
            assert!(serde_json::from_str::<Expect>(bad).is_err(), "{bad}");
        }
    }
}
