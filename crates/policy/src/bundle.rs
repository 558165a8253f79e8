//! The policy bundle: the schema and the policy files of `policies/`, as the
//! module carries them in its `gatehouse.policies` custom section.
//!
//! Why a bundle of texts and not a compiled artefact: putting new policies into
//! the module must not need a Rust toolchain (a host's `policy publish`
//! appends a section in microseconds), and the texts are what authors review.
//! [`check`] is the strict gate a bundle passes before it is baked.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{Effect, PolicySet};
#[cfg(feature = "check")]
use cedar_policy::{Schema, ValidationMode, Validator};
use serde::{Deserialize, Serialize};

use crate::template::Template;

/// The custom section name that carries a bundle inside the module.
pub const SECTION_NAME: &str = "gatehouse.policies";

/// The bundle format this engine reads.
pub const BUNDLE_FORMAT: u32 = 1;

/// The deepest a policy or schema file may nest brackets (`(`, `[`, `{`,
/// and a schema's `<`). Ours nest 2 deep.
pub const MAX_NESTING: usize = 32;

/// The most tokens one policy may have (a word, a number or a string is
/// one, every other character one each). Ours have at most 85.
pub const MAX_STATEMENT_TOKENS: usize = 512;

/// Refuses a text that would exhaust the stack, before Cedar parses it: the
/// byte offset and the problem. Why: Cedar's parser, and everything that
/// walks a parsed policy (evaluation, its JSON form, dropping it), recurses
/// once per bracket and per chained operator (`1 + 1 + …`, `a && b && …`,
/// `if … else if …`), with no stack check in wasm (FINDINGS.md) and none
/// in the parser natively: 10,000 nested parentheses trapped the module and
/// aborted a native host. Nesting and statement length bound that depth.
/// `schema`: `<` opens a bracket (`Set<…>`) and a statement may be long
/// (a namespace is one); in policies `<` compares.
pub fn too_deep(text: &str, schema: bool) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    let (mut depth, mut tokens, mut i) = (0usize, 0usize, 0usize);
    let mut in_word = false;
    while let Some(&b) = bytes.get(i) {
        let word = b.is_ascii_alphanumeric() || b == b'_';
        if !word {
            in_word = false;
        }
        match b {
            b'"' => {
                // A string literal, escapes included: one token.
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        break;
                    }
                }
                tokens += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while bytes.get(i).is_some_and(|c| *c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b'<' if schema => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'>' if schema => depth = depth.saturating_sub(1),
            b';' if depth == 0 => tokens = 0,
            _ => {}
        }
        if depth > MAX_NESTING {
            return Some((
                i,
                format!("brackets nest deeper than {MAX_NESTING} levels here"),
            ));
        }
        if word && !in_word || !word && !b.is_ascii_whitespace() {
            tokens += 1;
        }
        in_word = word;
        if !schema && tokens > MAX_STATEMENT_TOKENS {
            return Some((
                i,
                format!(
                    "a policy longer than {MAX_STATEMENT_TOKENS} tokens reaches here: split it"
                ),
            ));
        }
        i += 1;
    }
    None
}

/// `file:line:col: problem` for what [`too_deep`] found.
fn too_deep_at(file: &str, text: &str, schema: bool) -> Result<(), String> {
    match too_deep(text, schema) {
        None => Ok(()),
        Some((offset, problem)) => {
            let before = text.get(..offset).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(format!("{file}:{line}:{col}: {problem}"))
        }
    }
}

/// One policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Its name under `policies/`, for error messages.
    pub file: String,
    /// Its Cedar text.
    pub text: String,
}

/// A schema and the policies written against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// The `.cedarschema` text.
    pub schema: String,
    /// The `.cedar` files, sorted by name.
    pub policies: Vec<PolicyFile>,
}

impl Bundle {
    /// The bundle as the bytes of the custom section (canonical JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a bundle from the bytes of the custom section.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, String> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| format!("not a policy bundle: {e}"))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(format!(
                "bundle format {} is not the format {BUNDLE_FORMAT} this engine reads: rebuild the module",
                bundle.format
            ));
        }
        Ok(bundle)
    }

    /// Parses the schema.
    #[cfg(feature = "check")]
    pub(crate) fn parse_schema(&self) -> Result<Schema, String> {
        too_deep_at("schema", &self.schema, true)?;
        Schema::from_cedarschema_str(&self.schema)
            .map(|(schema, _warnings)| schema)
            .map_err(|e| format!("schema: {e}"))
    }

    /// Parses every file and gives each policy its `@id` as its Cedar id.
    pub(crate) fn parse_policies(&self) -> Result<PolicySet, String> {
        let mut set = PolicySet::new();
        for file in &self.policies {
            too_deep_at(&file.file, &file.text, false)?;
            let parsed: PolicySet = file
                .text
                .parse()
                .map_err(|e| format!("{}: {e}", file.file))?;
            for policy in parsed.policies() {
                let Some(id) = policy.annotation("id") else {
                    return Err(format!(
                        "{}: a policy has no @id annotation: {}",
                        file.file,
                        first_line(&policy.to_string())
                    ));
                };
                let renamed = policy.new_id(cedar_policy::PolicyId::new(id));
                set.add(renamed)
                    .map_err(|_| format!("{}: @id(\"{id}\") is used twice", file.file))?;
            }
        }
        Ok(set)
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('@'))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Problem {
    /// The policy id, the file (parse errors) or `schema` it concerns.
    pub location: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Where in its policy's file, as a byte offset, when Cedar says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub offset: Option<usize>,
}

/// What [`check`] says of a bundle, as the module's `checkPolicies` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Checked {
    /// The bundle passes the strict check.
    Valid {
        /// What it holds.
        report: CheckReport,
    },
    /// It does not; nothing built from it would load.
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl Checked {
    /// What [`lint`] says of `bundle`.
    pub fn lint(bundle: &Bundle) -> Checked {
        Checked::from(lint(bundle))
    }

    /// What [`check`] says of `bundle`.
    #[cfg(feature = "check")]
    pub fn strict(bundle: &Bundle) -> Checked {
        Checked::from(check(bundle))
    }
}

impl From<Result<CheckReport, Vec<Problem>>> for Checked {
    fn from(result: Result<CheckReport, Vec<Problem>>) -> Checked {
        match result {
            Ok(report) => Checked::Valid { report },
            Err(problems) => Checked::Invalid { problems },
        }
    }
}

/// What [`check`] found in a good bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CheckReport {
    /// Number of policies.
    pub policies: usize,
    /// Number of actions.
    pub actions: usize,
    /// Policy ids per rule prefix (`R8` → ids).
    pub rules: BTreeMap<String, Vec<String>>,
}

#[cfg(feature = "check")]
/// Validates a bundle strictly: schema and policies parse, strict validation
/// has zero errors and zero warnings, every policy has `@id` and `@reason`,
/// every permit has `@unmet` (what a default deny says), every action is
/// permitted by some policy, and every placeholder and context attribute is
/// one the engine can fill.
pub fn check(bundle: &Bundle) -> Result<CheckReport, Vec<Problem>> {
    checked(bundle, true)
}

/// Everything [`check`] does but Cedar's strict type validation, which
/// would add about 280 KB (gzipped) to the module: parse errors with their
/// places, the annotations, the placeholders and that every action can be
/// permitted. The module's `checkPolicies` answers this as an editor types;
/// an unknown attribute or a type error is only found by [`check`].
pub fn lint(bundle: &Bundle) -> Result<CheckReport, Vec<Problem>> {
    checked(bundle, false)
}

#[cfg_attr(not(feature = "check"), allow(unused_variables))]
fn checked(bundle: &Bundle, strict: bool) -> Result<CheckReport, Vec<Problem>> {
    let problem = |location: &str, message: String| Problem {
        location: location.to_owned(),
        message,
        offset: None,
    };
    // Validation errors carry a span in the file their policy came from.
    let at = |d: &dyn miette::Diagnostic| d.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    // The full schema (Cedar's validator schema) only for the strict check:
    // the lint reads the schema as the engine does (`Catalogue`, below).
    #[cfg(feature = "check")]
    let schema = if strict {
        Some(
            bundle
                .parse_schema()
                .map_err(|m| vec![problem("schema", m)])?,
        )
    } else {
        None
    };
    // Parse errors first, per file and with their place, so an editor can
    // point at them; nothing else can be checked until every file parses.
    let mut problems = Vec::new();
    for file in &bundle.policies {
        if let Some((offset, message)) = too_deep(&file.text, false) {
            problems.push(Problem {
                offset: Some(offset),
                ..problem(&file.file, message)
            });
            continue;
        }
        if let Err(errors) = file.text.parse::<PolicySet>() {
            for e in errors.iter() {
                let mut message = e.to_string();
                if let Some(help) = miette::Diagnostic::help(e) {
                    message = format!("{message} (hint: {help})");
                }
                problems.push(Problem {
                    offset: at(e),
                    ..problem(&file.file, message)
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let policies = bundle
        .parse_policies()
        .map_err(|m| vec![problem("policies", m)])?;

    #[cfg(feature = "check")]
    if let Some(schema) = schema {
        let result = Validator::new(schema).validate(&policies, ValidationMode::Strict);
        for e in result.validation_errors() {
            problems.push(Problem {
                offset: at(e),
                ..problem(e.policy_id().as_ref(), e.to_string())
            });
        }
        for w in result.validation_warnings() {
            problems.push(Problem {
                offset: at(w),
                ..problem(w.policy_id().as_ref(), format!("warning: {w}"))
            });
        }
    }

    let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for policy in policies.policies() {
        let id = policy.id().to_string();
        match policy.annotation("reason") {
            None => problems.push(problem(&id, "has no @reason annotation".into())),
            Some(text) => {
                if let Err(e) = Template::parse(text) {
                    problems.push(problem(&id, format!("@reason: {e}")));
                }
            }
        }
        if policy.effect() == Effect::Permit && policy.annotation("gate").is_some() {
            problems.push(problem(&id, "@gate belongs on forbid policies only".into()));
        }
        if let Some(outcome) = policy.annotation("outcome") {
            if policy.annotation("gate").is_none() {
                problems.push(problem(
                    &id,
                    "@outcome belongs on @gate forbid policies only".into(),
                ));
            }
            if crate::engine::GateKind::from_annotation(Some(outcome)).is_none() {
                problems.push(problem(
                    &id,
                    format!("@outcome(\"{outcome}\"): must be \"hidden\" or \"inapplicable\""),
                ));
            }
        }
        match (policy.effect(), policy.annotation("unmet")) {
            (Effect::Permit, None) => problems.push(problem(
                &id,
                "a permit needs an @unmet annotation: what a denial says when no rule permits"
                    .into(),
            )),
            (Effect::Permit, Some(text)) => {
                if let Err(e) = Template::parse(text) {
                    problems.push(problem(&id, format!("@unmet: {e}")));
                }
            }
            (Effect::Forbid, Some(_)) => {
                problems.push(problem(
                    &id,
                    "@unmet belongs on permit policies only".into(),
                ));
            }
            (Effect::Forbid, None) => {}
        }
        let rule = id.split('.').next().unwrap_or("").to_owned();
        rules.entry(rule).or_default().push(id);
    }

    let catalogue = match crate::engine::Catalogue::from_schema_text(&bundle.schema) {
        Ok(c) => c,
        Err(m) => {
            problems.push(problem("schema", m));
            return Err(problems);
        }
    };
    let permitted: BTreeSet<String> = policies
        .policies()
        .filter(|p| p.effect() == Effect::Permit)
        .flat_map(|p| crate::engine::actions_of(p, &catalogue))
        .collect();
    for action in catalogue.names() {
        if !permitted.contains(action) {
            problems.push(problem(
                action,
                "no permit policy names this action, so it could never be allowed".into(),
            ));
        }
    }

    if problems.is_empty() {
        Ok(CheckReport {
            policies: policies.policies().count(),
            actions: catalogue.names().count(),
            rules,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    const SCHEMA: &str = "entity User; entity Account; action view appliesTo { principal: User, resource: Account };";

    fn policy(condition: &str) -> String {
        format!(
            "@id(\"p\") @reason(\"no\") @unmet(\"no\")\npermit (principal, action == Action::\"view\", resource)\nwhen {{ {condition} }};\n"
        )
    }

    fn bundle(schema: &str, text: &str) -> Bundle {
        Bundle {
            format: BUNDLE_FORMAT,
            schema: schema.into(),
            policies: vec![PolicyFile {
                file: "p.cedar".into(),
                text: text.into(),
            }],
        }
    }

    /// Loads, lints and checks strictly; returns what loading said.
    fn refused(b: &Bundle, says: &str) -> String {
        let loaded = Engine::from_bundle_bytes(&b.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(loaded.contains(says), "{loaded}");
        for result in [lint(b), check(b)] {
            let problems = result.unwrap_err();
            assert!(
                problems.iter().any(|p| p.message.contains(says)),
                "{problems:?}"
            );
        }
        loaded
    }

    #[test]
    fn deep_nesting_is_refused_before_cedar_parses_it() {
        // 10,000 parentheses overflowed the stack: a trap in the module, an
        // abort natively (the fuzz corpus's bundle/regress-deep-parentheses).
        let n = 10_000;
        let text = policy(&format!("{}true{}", "(".repeat(n), ")".repeat(n)));
        let loaded = refused(&bundle(SCHEMA, &text), "nest deeper than 32");
        assert!(loaded.contains("p.cedar:3:"), "{loaded}");
        let problems = lint(&bundle(SCHEMA, &text)).unwrap_err();
        assert_eq!(problems[0].location, "p.cedar");
        assert!(problems[0].offset.is_some(), "{problems:?}");
        // `if … else if …` nests without a bracket.
        let chain = policy(&format!("{}true", "if true then true else ".repeat(5_000)));
        refused(&bundle(SCHEMA, &chain), "longer than 512 tokens");
        let sum = policy(&format!("{} > 0", vec!["1"; 20_000].join(" + ")));
        refused(&bundle(SCHEMA, &sum), "longer than 512 tokens");
        let schema = format!(
            "entity User; entity Account = {{ a: {}Long{} }}; action view appliesTo {{ principal: User, resource: Account }};",
            "Set<".repeat(100),
            ">".repeat(100)
        );
        refused(&bundle(&schema, &policy("true")), "nest deeper than 32");
    }

    #[test]
    fn what_real_policies_write_passes() {
        // Near the limits: 31 levels (the braces of `when` are one), about
        // 500 tokens (each character of `&&` counts).
        let deep = policy(&format!("{}true{}", "(".repeat(30), ")".repeat(30)));
        assert_eq!(too_deep(&deep, false), None);
        Engine::from_bundle_bytes(&bundle(SCHEMA, &deep).to_bytes()).unwrap();
        let long = policy(&vec!["true"; 160].join(" && "));
        assert_eq!(too_deep(&long, false), None);
        Engine::from_bundle_bytes(&bundle(SCHEMA, &long).to_bytes()).unwrap();
        // Brackets in strings and comments, and many short policies, count
        // for nothing.
        let quiet = format!(
            "// (((((((((((((((((((((((((((((((((((((((((\n{}{}",
            policy(&format!("context has \"{}\"", "(".repeat(100)))
                .replace("@reason(\"no\")", "@reason(\"a \\\" ((((\")"),
            policy("true").repeat(100)
        );
        assert_eq!(too_deep(&quiet, false), None);
    }
}
