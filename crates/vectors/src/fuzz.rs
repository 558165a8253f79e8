//! What the fuzz targets (`fuzz/`, run by `cargo xtask fuzz`) and the
//! corpus replay (`crates/vectors/tests/fuzz_corpus.rs`, run by `cargo xtask
//! test`) share: how each target turns its input bytes into what the module
//! and the host receive, and what every answer must look like.
//!
//! The four targets ([`TARGETS`]):
//!
//! * `module_json` — the input is an envelope, handed to the module's JSON
//!   entry point exactly as `gatehouse_call` and `call` receive bytes;
//! * `facts_entities` — the input is a [`Facts`] document; every envelope
//!   [`Harness::facts_envelopes`] makes of it (a batch per target kind, a
//!   minimize, single checks by a user and by an identity provider) turns
//!   the facts into Cedar entities;
//! * `bundle` — the input is a policy bundle (a `gatehouse.policies`
//!   section), or policy text put into one with the real schema
//!   ([`Harness::bundles`]): loaded as `gatehouse_load` does, linted as
//!   `checkPolicies` does, checked strictly as `gatehouse policy publish`
//!   does; and the module section reader over the same bytes;
//! * `scim_filter` — the input is a SCIM filter for the host's parser
//!   ([`scim_filter`]).
//!
//! A check returns `Err` with what is wrong; the fuzz targets panic on it
//! (a crash for libFuzzer), the replay collects it.

use std::path::Path;

use gatehouse_policy::bundle::{BUNDLE_FORMAT, Bundle, Checked, PolicyFile};
use gatehouse_policy::engine::hex;
use gatehouse_policy::json::{self, Answer};
use gatehouse_policy::table::{self, Expect};
use gatehouse_policy::{Engine, Facts, module};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The fuzz targets, as `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*` name them.
pub const TARGETS: [&str; 4] = ["module_json", "facts_entities", "bundle", "scim_filter"];

/// How many rows of each kind [`Harness::facts_envelopes`] turns into
/// targets and actors: enough to reach every code path, few enough to keep
/// an execution in the milliseconds.
const ROWS: usize = 8;

/// An engine with the real policies, and the real schema (cut into its
/// statements) for bundles made of bare policy text.
#[derive(Debug)]
pub struct Harness {
    engine: Engine,
    /// The schema's statements but its actions.
    types: String,
    /// Each `action` statement with the names it declares.
    actions: Vec<(Vec<String>, String)>,
}

/// A schema's statements: split at each `;` outside braces, strings and
/// comments.
fn statements(schema: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut current, mut depth) = (String::new(), 0usize);
    let mut chars = schema.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            current.push('\n');
            continue;
        }
        current.push(c);
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    current.push(c);
                    if c == '\\' {
                        current.extend(chars.next());
                    } else if c == '"' {
                        break;
                    }
                }
            }
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    out
}

impl Harness {
    /// From the bytes of a `gatehouse.policies` section (the module's own,
    /// for the replay).
    pub fn new(bundle: &[u8]) -> Result<Harness, String> {
        let schema = Bundle::from_bytes(bundle)?.schema;
        let engine = Engine::from_bundle_bytes(bundle).map_err(|e| e.to_string())?;
        let (mut types, mut actions) = (String::new(), Vec::new());
        for statement in statements(&schema) {
            match statement.trim_start().strip_prefix("action ") {
                Some(rest) => {
                    let names = rest
                        .split("appliesTo")
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .map(|n| n.trim().trim_matches('"').to_owned())
                        .collect();
                    actions.push((names, statement));
                }
                None => types.push_str(&statement),
            }
        }
        Ok(Harness {
            engine,
            types,
            actions,
        })
    }

    /// A bundle of `text` as its one policy file, with the real schema cut
    /// down to its types and the actions the text names (`"name"`): parsing
    /// the whole schema three times (load, lint, strict check) was most of
    /// an execution.
    pub fn bundle_of(&self, text: &str) -> Bundle {
        let mut schema = self.types.clone();
        for (names, statement) in &self.actions {
            if names.iter().any(|n| text.contains(&format!("\"{n}\""))) {
                schema.push_str(statement);
            }
        }
        Bundle {
            format: BUNDLE_FORMAT,
            schema,
            policies: vec![PolicyFile {
                file: "fuzz.cedar".into(),
                text: text.to_owned(),
            }],
        }
    }

    /// From a policies directory (`policies/`, for the fuzz targets).
    pub fn from_policies(dir: &Path) -> Result<Harness, String> {
        let (_, bytes) = crate::native_engine(dir)?;
        Harness::new(&bytes)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `module_json`: the module's answer to `input`, natively, checked.
    pub fn module_json(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let answer = json::handle(Some(&self.engine), input);
        self.check_answer(&answer)?;
        Ok(answer)
    }

    /// Checks an answer of `gatehouse_call`: an [`Answer`] (nothing else,
    /// no unknown field), a failure with at least one error, each with a
    /// code and a message, or a success under this engine's policy hash
    /// with exactly one payload whose decisions keep the invariants (a
    /// denial has reasons; `allowed` exactly when `permitted`).
    pub fn check_answer(&self, answer: &[u8]) -> Result<(), String> {
        let shown = || String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
        table::check_bytes(&Expect::INVARIANTS, answer).map_err(|e| format!("{e}: {}", shown()))?;
        let parsed: Answer = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
        match parsed {
            Answer::Success {
                policy_hash,
                decision,
                batch,
                question,
                info,
                tables,
            } => {
                if policy_hash != self.engine.policy_hash() {
                    return Err(format!("an answer under another policy hash: {}", shown()));
                }
                let payloads = usize::from(decision.is_some())
                    + usize::from(batch.is_some())
                    + usize::from(question.is_some())
                    + usize::from(info.is_some())
                    + usize::from(tables.is_some());
                if payloads != 1 {
                    return Err(format!("a success with {payloads} payloads: {}", shown()));
                }
                Ok(())
            }
            Answer::Failure { errors } => {
                if errors
                    .iter()
                    .any(|e| e.code.is_empty() || e.message.is_empty())
                {
                    return Err(format!("an error without code or message: {}", shown()));
                }
                Ok(())
            }
        }
    }

    /// `facts_entities`: the envelopes asked about the facts in `input`
    /// (none when it is not a [`Facts`] document: `module_json` covers
    /// malformed input). Per target kind that has rows, a batch of every
    /// user action on that kind over its first rows, by the first user;
    /// the first batch minimized; one single check per kind; and, when the
    /// facts have an account, one check by its identity provider. The
    /// facts are sent as parsed, so the module gets well-formed rows
    /// whatever they say.
    pub fn facts_envelopes(&self, input: &[u8]) -> Vec<Vec<u8>> {
        let Ok(facts) = serde_json::from_slice::<Facts>(input) else {
            return Vec::new();
        };
        let first = |ids: Vec<String>| ids.into_iter().take(ROWS).collect::<Vec<_>>();
        let users = first(facts.users.iter().map(|u| u.id.to_string()).collect());
        let accounts = first(facts.accounts.iter().map(|a| a.id.to_string()).collect());
        let user = users.first().cloned().unwrap_or_else(|| "nobody".into());
        let other = users.get(1).cloned().unwrap_or_else(|| user.clone());
        let email = facts
            .invitations
            .first()
            .map(|i| i.email.clone())
            .or_else(|| facts.users.first().map(|u| u.email.clone()))
            .unwrap_or_else(|| "someone@example.com".into());
        let targets = |kind: &str| -> Vec<Value> {
            let ids: Vec<Value> = match kind {
                "account" => accounts.iter().map(|a| json!({"account": a})).collect(),
                "user" => users.iter().map(|u| json!({"user": u})).collect(),
                "membership" => facts
                    .memberships
                    .iter()
                    .map(|m| json!({"membership": {"account": m.account, "user": m.user}}))
                    .collect(),
                "invitation" => facts
                    .invitations
                    .iter()
                    .map(|i| json!({"invitation": i.id}))
                    .collect(),
                "owner_removal_request" => facts
                    .owner_removal_requests
                    .iter()
                    .map(|r| json!({"owner_removal_request": r.id}))
                    .collect(),
                _ => facts
                    .devices
                    .iter()
                    .map(|d| json!({"device": d.id}))
                    .collect(),
            };
            ids.into_iter().take(ROWS).collect()
        };
        let roles = ["owner", "admin", "standard", "basic", "none"];
        let params = |names: &[&str], n: usize| -> Value {
            let mut out = serde_json::Map::new();
            for name in names {
                let value = match *name {
                    "role" => json!(roles[n % roles.len()]),
                    "quantity" => json!(1),
                    "email" => json!(email),
                    "user" => json!(user),
                    "to" => json!(other),
                    "credential" => json!({"kind": "session", "signed_in_at": facts.now}),
                    "lifetime_days" => json!(30),
                    "publish" => json!({
                        "author": other,
                        "status": "pending",
                        "expires_at": facts.now.saturating_add(3600),
                    }),
                    _ => continue,
                };
                out.insert((*name).to_owned(), value);
            }
            Value::Object(out)
        };
        let mut out = Vec::new();
        let mut minimized = false;
        for kind in [
            "account",
            "user",
            "membership",
            "invitation",
            "owner_removal_request",
            "device",
        ] {
            let targets = targets(kind);
            let Some(target) = targets.first().cloned() else {
                continue;
            };
            let actions: Vec<(&str, Value)> = self
                .engine
                .actions()
                .iter()
                .filter_map(|a| {
                    let shape = self.engine.action_shape(a)?;
                    (shape.target == kind && shape.by_user).then_some(a.as_str())
                })
                .enumerate()
                .filter_map(|(n, a)| Some((a, params(&self.engine.action_shape(a)?.params, n))))
                .collect();
            let Some((action, action_params)) = actions.first().cloned() else {
                continue;
            };
            let columns: Vec<Value> = actions
                .iter()
                .map(|(a, p)| json!({"action": a, "params": p}))
                .collect();
            let batch = json!({"facts": facts, "actor": {"user": user}, "targets": targets,
                               "actions": columns, "source": "ui"});
            let mut envelope = |op: &str, mut body: Value| {
                body["op"] = json!(op);
                out.push(serde_json::to_vec(&body).unwrap_or_default());
            };
            envelope("batch", batch.clone());
            if !minimized {
                minimized = true;
                envelope("minimize", batch);
            }
            envelope(
                "authorize",
                json!({"facts": facts, "actor": {"user": user}, "action": action,
                       "target": target, "params": action_params, "source": "api"}),
            );
        }
        let by_idp = self.engine.actions().iter().find_map(|a| {
            let shape = self.engine.action_shape(a)?;
            shape.by_identity_provider.then_some((a, shape))
        });
        if let (Some(account), Some((action, shape))) = (accounts.first(), by_idp) {
            let target = match shape.target {
                "membership" => facts
                    .memberships
                    .first()
                    .map(|m| json!({"membership": {"account": m.account, "user": m.user}})),
                kind => targets(kind).first().cloned(),
            };
            if let Some(target) = target {
                let body = json!({"op": "authorize", "facts": facts,
                                  "actor": {"identity_provider": account}, "action": action,
                                  "target": target, "params": params(&shape.params, 0),
                                  "source": "scim"});
                out.push(serde_json::to_vec(&body).unwrap_or_default());
            }
        }
        out
    }

    /// `bundle`: the bundles an input stands for: the input itself, and,
    /// when it is text that is not a bundle, [`Harness::bundle_of`] the text
    /// (so the fuzzer mutates Cedar, not the JSON around it).
    pub fn bundles(&self, input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![input.to_vec()];
        if Bundle::from_bytes(input).is_err()
            && let Ok(text) = std::str::from_utf8(input)
        {
            out.push(self.bundle_of(text).to_bytes());
        }
        out
    }

    /// One bundle natively: the module section reader over its bytes, the
    /// lint (`checkPolicies`) and the strict check (`gatehouse policy
    /// publish`); returns the load answer (`gatehouse_load`), checked. What
    /// the strict check accepts, the lint accepts and the engine loads.
    pub fn bundle_native(&self, bundle: &[u8]) -> Result<Vec<u8>, String> {
        if module::policy_section(bundle).is_ok() {
            let replaced = module::with_policy_section(bundle, b"{}")?;
            if module::policy_section(&replaced)? != b"{}" {
                return Err("a replaced policy section does not read back".into());
            }
        }
        let (engine, answer) = json::load(bundle);
        check_load_answer(bundle, &answer)?;
        if let Ok(parsed) = Bundle::from_bytes(bundle) {
            let lint = Checked::lint(&parsed);
            let strict = Checked::strict(&parsed);
            for checked in [&lint, &strict] {
                serde_json::to_vec(checked).map_err(|e| e.to_string())?;
            }
            if let Checked::Valid { .. } = strict {
                if let Checked::Invalid { problems } = lint {
                    return Err(format!(
                        "the strict check passes, the lint finds {problems:?}"
                    ));
                }
                if engine.is_none() {
                    return Err(format!(
                        "the strict check passes, the engine does not load: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                }
            }
        }
        Ok(answer)
    }
}

/// Checks the answer of `gatehouse_load` to `bundle`: an [`Answer`], either
/// `info` under the sha256 of exactly these bytes or a failure with errors.
pub fn check_load_answer(bundle: &[u8], answer: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
    let parsed: Answer = serde_json::from_slice(answer)
        .map_err(|e| format!("the load answer is not an Answer ({e}): {}", shown()))?;
    match parsed {
        Answer::Success {
            policy_hash,
            info: Some(info),
            decision: None,
            batch: None,
            question: None,
            tables: None,
        } => {
            let hash = hex(&Sha256::digest(bundle));
            if policy_hash != hash || info.policy_hash != hash {
                return Err(format!(
                    "loaded under another hash than {hash}: {}",
                    shown()
                ));
            }
            Ok(())
        }
        Answer::Failure { errors } if !errors.is_empty() => Ok(()),
        _ => Err(format!("not a load answer: {}", shown())),
    }
}

/// `scim_filter`: the parser gives a filter or an error, never panics;
/// a filter written back parses to itself; an error's position is the
/// character at its byte offset, within the input.
pub fn scim_filter(input: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(());
    };
    match gatehouse_scim_filter::parse(text) {
        Ok(filter) => {
            let written = filter.to_string();
            match gatehouse_scim_filter::parse(&written) {
                Ok(again) if again == filter => Ok(()),
                Ok(again) => Err(format!(
                    "{text:?} parses to {filter:?}, written back as {written:?}, which parses to {again:?}"
                )),
                Err(e) => Err(format!(
                    "{text:?} parses, written back as {written:?} it does not: {e}"
                )),
            }
        }
        Err(e) => {
            let before = text.get(..e.offset).ok_or_else(|| {
                format!(
                    "{text:?}: error offset {} is not a character boundary",
                    e.offset
                )
            })?;
            if e.position != before.chars().count() + 1 || e.message.is_empty() {
                return Err(format!(
                    "{text:?}: error position {} at offset {}",
                    e.position, e.offset
                ));
            }
            Ok(())
        }
    }
}
