//! Shared test vectors: the hand-written decision tables of
//! `tests/vectors/hand/`, seeded random scenarios, and the checks every
//! runtime's answers must pass.
//!
//! Why envelopes: every runtime is handed the very same input bytes
//! ([`Vector::input`]) and must give back the very same answer bytes. The
//! expectations are checked once, on any runtime's answer, because the
//! answers are compared byte for byte anyway. The format is documented in
//! `tests/vectors/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use gatehouse_policy::json::{Answer, Envelope};
pub use gatehouse_policy::table::{CellExpect, Expect};
use gatehouse_policy::table::{Table, Tables};
use gatehouse_policy::{Engine, Facts};
use serde::Deserialize;
use serde_json::{Map, Value};

pub mod fuzz;
pub mod generate;

/// One vector: a name, the input bytes, the expectation.
#[derive(Debug, Clone)]
pub struct Vector {
    /// `file: name` for hand vectors, `generated #n (seed s)` otherwise.
    pub name: String,
    /// The rule it covers (`R8`), for hand vectors.
    pub rule: Option<String>,
    /// The envelope every runtime receives.
    pub input: Vec<u8>,
    /// What the answer must be.
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    rule: String,
    #[serde(default)]
    description: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    fixture: Option<String>,
    #[serde(default)]
    facts: Option<Value>,
    #[serde(default)]
    add: Option<Map<String, Value>>,
    #[serde(default)]
    now: Option<i64>,
    #[serde(default)]
    actor: Option<Value>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    target: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    batch: Option<BatchCase>,
    #[serde(default)]
    raw: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchCase {
    targets: Vec<Value>,
    actions: Vec<Value>,
}

/// Loads `dir/fixtures/*.json` and every `dir/hand/*.json`.
pub fn load_hand(dir: &Path) -> Result<Vec<Vector>, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut fixtures: BTreeMap<String, Value> = BTreeMap::new();
    for path in sorted_json(&dir.join("fixtures"))? {
        let value: Value =
            serde_json::from_str(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        // Fixtures must be valid facts on their own.
        serde_json::from_value::<Facts>(value.clone())
            .map_err(|e| format!("{}: not valid facts: {e}", path.display()))?;
        let name = stem(&path);
        fixtures.insert(name, value);
    }
    let mut out = Vec::new();
    for path in sorted_json(&dir.join("hand"))? {
        let file: File =
            serde_json::from_str(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = &file.description;
        let fname = stem(&path);
        for case in file.cases {
            let name = format!("{fname}: {}", case.name);
            let rule = Some(case.rule.clone().unwrap_or_else(|| file.rule.clone()));
            let vector = build_case(case, &fixtures).map_err(|e| format!("{name}: {e}"))?;
            out.push(Vector {
                name,
                rule,
                input: vector.0,
                expect: vector.1,
            });
        }
    }
    Ok(out)
}

fn sorted_json(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn build_case(case: Case, fixtures: &BTreeMap<String, Value>) -> Result<(Vec<u8>, Expect), String> {
    let expect = case.expect;
    if let Some(raw) = case.raw {
        return Ok((raw.into_bytes(), expect));
    }
    let mut facts = match (case.fixture, case.facts) {
        (Some(name), None) => fixtures
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("no fixture `{name}`"))?,
        (None, Some(facts)) => facts,
        _ => return Err("give exactly one of `fixture` and `facts`".into()),
    };
    if let Some(add) = case.add {
        let obj = facts.as_object_mut().ok_or("facts must be an object")?;
        for (key, rows) in add {
            let rows = rows
                .as_array()
                .ok_or_else(|| format!("add.{key} must be an array"))?;
            match obj
                .entry(key.clone())
                .or_insert_with(|| Value::Array(vec![]))
            {
                Value::Array(existing) => existing.extend(rows.iter().cloned()),
                _ => return Err(format!("facts.{key} is not an array")),
            }
        }
    }
    if let (Some(now), Some(obj)) = (case.now, facts.as_object_mut()) {
        obj.insert("now".into(), now.into());
    }
    let mut env = Map::new();
    let actor = case.actor.ok_or("missing `actor`")?;
    match case.batch {
        Some(batch) => {
            env.insert("op".into(), "batch".into());
            env.insert("facts".into(), facts);
            env.insert("actor".into(), actor);
            env.insert("targets".into(), Value::Array(batch.targets));
            env.insert("actions".into(), Value::Array(batch.actions));
        }
        None => {
            env.insert("op".into(), "authorize".into());
            env.insert("facts".into(), facts);
            env.insert("actor".into(), actor);
            env.insert(
                "action".into(),
                case.action.ok_or("missing `action`")?.into(),
            );
            env.insert("target".into(), case.target.ok_or("missing `target`")?);
            if let Some(params) = case.params {
                env.insert("params".into(), params);
            }
        }
    }
    if let Some(source) = case.source {
        env.insert("source".into(), source.into());
    }
    let input = serde_json::to_vec(&Value::Object(env)).map_err(|e| e.to_string())?;
    Ok((input, expect))
}

/// The oversize and deeply nested inputs: made here, not stored.
pub fn hostile() -> Vec<Vector> {
    let mut big = br#"{"op":"info","pad":""#.to_vec();
    big.resize(50 * 1024 * 1024, b'x');
    big.extend_from_slice(br#""}"#);
    let depth = 100_000;
    let mut nested = br#"{"op":"authorize","facts":"#.to_vec();
    nested.extend(std::iter::repeat_n(b'[', depth));
    nested.extend(std::iter::repeat_n(b']', depth));
    nested.push(b'}');
    vec![
        Vector {
            name: "hostile: a 50 MB payload".into(),
            rule: None,
            input: big,
            expect: Expect::Error {
                error: "too_large".into(),
            },
        },
        Vector {
            name: "hostile: JSON nested 100,000 deep".into(),
            rule: None,
            input: nested,
            expect: Expect::Error {
                error: "bad_input".into(),
            },
        },
    ]
}

/// Checks one answer against the vector's expectation and the invariants:
/// [`gatehouse_policy::table::check`], the module's own checker.
pub fn check(vector: &Vector, output: &[u8]) -> Result<(), String> {
    gatehouse_policy::table::check_bytes(&vector.expect, output)
}

/// Every vector as one envelope of the module's `tables` op (what the
/// policy editor's page sends): every runtime must answer it byte for byte
/// alike, and [`table_failures`] reads its results.
pub fn as_tables(name: &str, vectors: &[Vector]) -> Vector {
    let tables = Tables {
        tables: vectors
            .iter()
            .map(|v| Table {
                input: String::from_utf8_lossy(&v.input).into_owned(),
                expect: v.expect.clone(),
            })
            .collect(),
    };
    Vector {
        name: name.into(),
        rule: None,
        input: serde_json::to_vec(&Envelope::Tables(tables)).unwrap_or_default(),
        expect: Expect::INVARIANTS,
    }
}

/// The tables of an [`as_tables`] answer that did not pass, as `name:
/// mismatch` (or why the answer has no results).
pub fn table_failures(vectors: &[Vector], output: &[u8]) -> Vec<String> {
    let results = match serde_json::from_slice::<Answer>(output) {
        Ok(Answer::Success {
            tables: Some(results),
            ..
        }) => results,
        Ok(other) => return vec![format!("no table results: {other:?}")],
        Err(e) => return vec![format!("answer is not an Answer: {e}")],
    };
    if results.len() != vectors.len() {
        return vec![format!(
            "{} table results for {} tables",
            results.len(),
            vectors.len()
        )];
    }
    vectors
        .iter()
        .zip(results)
        .filter(|(_, r)| !r.passed)
        .map(|(v, r)| format!("{}: {}", v.name, r.mismatch.unwrap_or_default()))
        .collect()
}

/// The engine for `policies/`, loaded natively from the same bundle bytes a
/// baked module carries.
pub fn native_engine(policies: &Path) -> Result<(Engine, Vec<u8>), String> {
    let bundle = gatehouse_bake::read_policies(policies).map_err(|e| e.to_string())?;
    let bytes = bundle.to_bytes();
    let engine = Engine::from_bundle_bytes(&bytes).map_err(|e| e.to_string())?;
    Ok((engine, bytes))
}

/// A vector's need-to-know twin: the vector as a batch (a single check
/// becomes a one-cell batch), the module asked to minimize it, and the
/// minimized question, whose answer must equal the batch's byte for byte in
/// every runtime.
#[derive(Debug, Clone)]
pub struct Minimized {
    /// Index of the original vector.
    pub of: usize,
    /// The original vector as a batch: the vector itself when it is one.
    pub full: Vector,
    /// `{"op":"minimize",…}` of that batch (answers compared across
    /// runtimes like any vector).
    pub ask: Vector,
    /// The minimized question as a batch envelope, with the batch's
    /// expectation.
    pub question: Vector,
    /// Fact rows (users, accounts, memberships, …) before and after.
    pub rows: (usize, usize),
}

/// A single check widened into a batch: its action over every target of its
/// target's kind in its facts (so cells can share a memo entry, and a page's
/// question can be compared with single answers).
pub fn widened(check: gatehouse_policy::Check) -> gatehouse_policy::Batch {
    use gatehouse_policy::Target;
    let f = &check.facts;
    let targets: Vec<Target> = match &check.target {
        Target::Account(_) => f
            .accounts
            .iter()
            .map(|a| Target::Account(a.id.clone()))
            .collect(),
        Target::User(_) => f.users.iter().map(|u| Target::User(u.id.clone())).collect(),
        Target::Membership { .. } => f
            .memberships
            .iter()
            .map(|m| Target::Membership {
                account: m.account.clone(),
                user: m.user.clone(),
            })
            .collect(),
        Target::Invitation(_) => f
            .invitations
            .iter()
            .map(|i| Target::Invitation(i.id.clone()))
            .collect(),
        Target::OwnerRemovalRequest(_) => f
            .owner_removal_requests
            .iter()
            .map(|r| Target::OwnerRemovalRequest(r.id.clone()))
            .collect(),
        Target::Device(_) => f
            .devices
            .iter()
            .map(|d| Target::Device(d.id.clone()))
            .collect(),
    };
    gatehouse_policy::Batch {
        facts: check.facts,
        actor: check.actor,
        targets,
        actions: vec![gatehouse_policy::ActionCall {
            action: check.action,
            params: check.params,
        }],
        source: check.source,
    }
}

/// Rows of every kind in facts.
pub fn fact_rows(facts: &Facts) -> usize {
    facts.users.len()
        + facts.accounts.len()
        + facts.memberships.len()
        + facts.invitations.len()
        + facts.resources.len()
        + facts.owner_removal_requests.len()
        + facts.devices.len()
}

/// The need-to-know twins of every vector that is a batch or a single
/// check the engine can answer, minimized by the native engine through the
/// JSON boundary.
pub fn minimized(engine: &Engine, vectors: &[Vector]) -> Vec<Minimized> {
    use gatehouse_policy::json::{self, Envelope};
    use gatehouse_policy::{ActionCall, Batch};
    let mut out = Vec::new();
    for (of, v) in vectors.iter().enumerate() {
        let (batch, full) = match json::parse_envelope(&v.input) {
            Ok(Envelope::Batch(batch)) => (batch, v.clone()),
            Ok(Envelope::Authorize(check)) => {
                let batch = Batch {
                    facts: check.facts,
                    actor: check.actor,
                    targets: vec![check.target],
                    actions: vec![ActionCall {
                        action: check.action,
                        params: check.params,
                    }],
                    source: check.source,
                };
                let Ok(input) = serde_json::to_vec(&Envelope::Batch(batch.clone())) else {
                    continue;
                };
                let full = Vector {
                    name: format!("{} [as a batch]", v.name),
                    rule: v.rule.clone(),
                    input,
                    expect: Expect::INVARIANTS,
                };
                (batch, full)
            }
            _ => continue,
        };
        if !json::handle(Some(engine), &full.input).starts_with(br#"{"type":"success""#) {
            continue;
        }
        let Ok(Value::Object(mut envelope)) = serde_json::from_slice::<Value>(&full.input) else {
            continue;
        };
        envelope.insert("op".into(), Value::from("minimize"));
        let ask_input = serde_json::to_vec(&envelope).unwrap_or_default();
        let answer = json::handle(Some(engine), &ask_input);
        let ask = Vector {
            name: format!("{} [minimize]", v.name),
            rule: None,
            input: ask_input,
            expect: Expect::INVARIANTS,
        };
        let question = match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Success {
                question: Some(q), ..
            }) => *q,
            // Kept so the failure shows in the comparison.
            _ => Batch {
                facts: Facts::default(),
                ..batch.clone()
            },
        };
        let Ok(input) = serde_json::to_vec(&Envelope::Batch(question.clone())) else {
            continue;
        };
        out.push(Minimized {
            of,
            question: Vector {
                name: format!("{} [minimized]", v.name),
                rule: full.rule.clone(),
                input,
                expect: full.expect.clone(),
            },
            rows: (fact_rows(&batch.facts), fact_rows(&question.facts)),
            full,
            ask,
        });
    }
    out
}
