//! `gatehouse policy prove`: checks properties of the policies with Cedar's
//! symbolic compiler (`cedar-policy-symcc`) and the cvc5 SMT solver.
//!
//! A policy directory holds `*.cedarschema`, the policies `*.cedar`, and
//! `properties/*.cedar`: every property is one or more Cedar `permit`s that
//! share a `@property("name")` annotation. Their scope and conditions
//! describe a set of requests ("the pattern"); `@holds` says what must be true
//! of the requests the policies permit:
//!
//! | `@holds`   | proved                                                      | solver query            |
//! |------------|-------------------------------------------------------------|-------------------------|
//! | `"never"`  | no request matching the pattern is permitted                | `check_disjoint`        |
//! | `"only"`   | every permitted request (of the pattern's envs) matches it  | `check_implies(P, pat)` |
//! | `"always"` | every request matching the pattern is permitted             | `check_implies(pat, P)` |
//!
//! `@says("…")` is the sentence shown with the result. A property is checked
//! for every request environment (principal type, action, resource type) that
//! its permits' scopes can match; it holds when it holds in all of them.
//!
//! cvc5 is found as `$CVC5` or `cvc5` on `PATH`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{
    Authorizer, Decision, Entities, Policy, PolicyId, PolicySet, Request, RequestEnv, Schema,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicySet};

/// What a property claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No permitted request matches the pattern.
    Never,
    /// Every permitted request matches the pattern.
    Only,
    /// Every request matching the pattern is permitted.
    Always,
    /// Two policy sets decide every request alike (from [`compare`]).
    Equivalent,
}

/// The outcome of one property.
#[derive(Debug, Clone)]
pub struct PropertyResult {
    /// `@property` name (or `equivalent <action>` for [`compare`])
    pub name: String,
    /// `@says` sentence
    pub says: String,
    /// what was checked
    pub kind: Kind,
    /// request environments checked
    pub envs: usize,
    /// the property holds in every environment
    pub held: bool,
    /// when it does not hold: a request, its entities, and what the policies decide
    pub counterexample: Option<String>,
    /// compile + solve time, all environments
    pub duration: Duration,
}

/// Loaded policy directory.
pub struct Bundle {
    /// the schema
    pub schema: Schema,
    /// all `*.cedar` of the directory, concatenated
    pub policies: PolicySet,
}

/// Reads `dir/*.cedarschema` and `dir/*.cedar` (sorted by name) into one bundle.
pub fn load(dir: &Path) -> Result<Bundle, String> {
    let mut schema_src = String::new();
    let mut policy_src = String::new();
    for path in sorted_files(dir)? {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => schema_src.push_str(&text),
            Some("cedar") => {
                policy_src.push_str(&text);
                policy_src.push('\n');
            }
            _ => {}
        }
    }
    let (schema, _warnings) =
        Schema::from_cedarschema_str(&schema_src).map_err(|e| format!("schema: {e:?}"))?;
    let policies = PolicySet::from_str(&policy_src).map_err(|e| format!("policies: {e:?}"))?;
    Ok(Bundle { schema, policies })
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

struct Property {
    name: String,
    says: String,
    kind: Kind,
    pattern: PolicySet,
}

/// Reads `dir/properties/*.cedar`: the properties, and the `@assume` forbids.
fn load_properties(dir: &Path) -> Result<(Vec<Property>, PolicySet), String> {
    let pdir = dir.join("properties");
    let mut assumptions = PolicySet::new();
    if !pdir.is_dir() {
        return Ok((Vec::new(), assumptions));
    }
    let mut by_name: BTreeMap<String, Property> = BTreeMap::new();
    for path in sorted_files(&pdir)? {
        if path.extension().and_then(|e| e.to_str()) != Some("cedar") {
            continue;
        }
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let set = PolicySet::from_str(&text).map_err(|e| format!("{file}: {e:?}"))?;
        for (i, p) in set.policies().enumerate() {
            if let Some(name) = p.annotation("assume") {
                if p.effect() != cedar_policy::Effect::Forbid {
                    return Err(format!(
                        "{file}: assumption {name}: write it as `forbid (…) unless {{ invariant }}`"
                    ));
                }
                let id = PolicyId::new(format!("assume:{name}#{}", assumptions.policies().count()));
                assumptions
                    .add(p.new_id(id))
                    .map_err(|e| format!("{file}: {e}"))?;
                continue;
            }
            let name = p
                .annotation("property")
                .ok_or_else(|| format!("{file}: policy {i} has no @property"))?
                .to_string();
            if p.effect() != cedar_policy::Effect::Permit {
                return Err(format!(
                    "{file}: property {name}: write the pattern as a permit"
                ));
            }
            let kind = match p.annotation("holds") {
                Some("never") => Kind::Never,
                Some("only") => Kind::Only,
                Some("always") => Kind::Always,
                other => {
                    return Err(format!(
                        "{file}: property {name}: @holds must be \"never\", \"only\" or \"always\", not {other:?}"
                    ));
                }
            };
            let says = p.annotation("says").unwrap_or("").to_string();
            let entry = by_name.entry(name.clone()).or_insert_with(|| Property {
                name: name.clone(),
                says: says.clone(),
                kind,
                pattern: PolicySet::new(),
            });
            if entry.kind != kind {
                return Err(format!(
                    "{file}: property {name}: all its permits need the same @holds"
                ));
            }
            if entry.says.is_empty() {
                entry.says = says;
            }
            let id = PolicyId::new(format!("{name}#{}", entry.pattern.policies().count()));
            entry
                .pattern
                .add(p.new_id(id))
                .map_err(|e| format!("{file}: {e}"))?;
        }
    }
    Ok((by_name.into_values().collect(), assumptions))
}

/// `a` and `b` in one set (their policy ids must differ).
fn union(a: &PolicySet, b: &PolicySet) -> Result<PolicySet, String> {
    let mut out = a.clone();
    for p in b.policies() {
        out.add(p.clone()).map_err(|e| format!("{e}"))?;
    }
    Ok(out)
}

fn envs_of(pattern: &PolicySet, schema: &Schema) -> Vec<RequestEnv> {
    let mut envs: Vec<RequestEnv> = pattern
        .policies()
        .flat_map(|p: &Policy| p.get_valid_request_envs(schema).collect::<Vec<_>>())
        .collect();
    envs.sort();
    envs.dedup();
    envs
}

fn env_name(env: &RequestEnv) -> String {
    format!(
        "{} / {} / {}",
        env.principal(),
        env.action(),
        env.resource()
    )
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))
}

fn solver() -> Result<CedarSymCompiler<LocalSolver>, String> {
    let cvc5 =
        LocalSolver::cvc5().map_err(|e| format!("cannot start cvc5 ($CVC5 or PATH): {e}"))?;
    CedarSymCompiler::new(cvc5).map_err(|e| format!("symcc: {e}"))
}

/// Proves every property of `dir/properties/` against the policies of `dir`.
///
/// Starts its own single-threaded tokio runtime: call it from synchronous
/// code only (from async code, e.g. under `#[tokio::main]`, use
/// [`prove_async`]).
pub fn prove(dir: &Path) -> Result<Vec<PropertyResult>, String> {
    runtime()?.block_on(prove_async(dir))
}

/// [`prove`] for callers that already run inside a tokio runtime.
pub async fn prove_async(dir: &Path) -> Result<Vec<PropertyResult>, String> {
    let bundle = load(dir)?;
    let (properties, assumptions) = load_properties(dir)?;
    // Assumptions (invariants of the facts the engine builds) are added to both
    // sides of every query: a request that breaks one is denied by both, so it
    // can never be a counterexample.
    let policies = union(&bundle.policies, &assumptions)?;
    let mut symcc = solver()?;
    // one compilation of the policies per request environment
    let mut compiled: BTreeMap<RequestEnv, CompiledPolicySet> = BTreeMap::new();
    let mut results = Vec::new();
    for prop in &properties {
        let start = Instant::now();
        let envs = envs_of(&prop.pattern, &bundle.schema);
        let pattern = union(&prop.pattern, &assumptions)?;
        let mut failures: Vec<String> = Vec::new();
        for env in &envs {
            let pols = match compiled.entry(env.clone()) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(
                    CompiledPolicySet::compile(&policies, env, &bundle.schema)
                        .map_err(|e| format!("compile policies for {}: {e:?}", env_name(env)))?,
                ),
            };
            let pat = CompiledPolicySet::compile(&pattern, env, &bundle.schema)
                .map_err(|e| format!("{}: compile for {}: {e:?}", prop.name, env_name(env)))?;
            let cex = match prop.kind {
                Kind::Never => {
                    symcc
                        .check_disjoint_with_counterexample_opt(pols, &pat)
                        .await
                }
                Kind::Only => {
                    symcc
                        .check_implies_with_counterexample_opt(pols, &pat)
                        .await
                }
                Kind::Always | Kind::Equivalent => {
                    symcc
                        .check_implies_with_counterexample_opt(&pat, pols)
                        .await
                }
            }
            .map_err(|e| format!("{}: solver for {}: {e:?}", prop.name, env_name(env)))?;
            if let Some(cex) = cex {
                // one counterexample per failing environment
                failures.push(render(
                    &env_name(env),
                    &cex.request,
                    &cex.entities,
                    &[("policies", &bundle.policies), ("pattern", &prop.pattern)],
                ));
            }
        }
        let counterexample = (!failures.is_empty()).then(|| failures.join("\n"));
        results.push(PropertyResult {
            name: prop.name.clone(),
            says: prop.says.clone(),
            kind: prop.kind,
            envs: envs.len(),
            held: counterexample.is_none(),
            counterexample,
            duration: start.elapsed(),
        });
    }
    Ok(results)
}

/// Checks that the policies of `a` and `b` (same schema: `a`'s) decide every
/// request alike, one result per action (or only `actions`, when given).
/// `a/properties/`'s assumptions hold on both sides. Synchronous, like [`prove`].
pub fn compare(
    a: &Path,
    b: &Path,
    actions: Option<&[&str]>,
) -> Result<Vec<PropertyResult>, String> {
    runtime()?.block_on(compare_async(a, b, actions))
}

/// [`compare`] for callers that already run inside a tokio runtime.
pub async fn compare_async(
    a: &Path,
    b: &Path,
    actions: Option<&[&str]>,
) -> Result<Vec<PropertyResult>, String> {
    let left = load(a)?;
    let right = load(b)?;
    let (_, assumptions) = load_properties(a)?;
    let left_all = union(&left.policies, &assumptions)?;
    let right_all = union(&right.policies, &assumptions)?;
    let mut symcc = solver()?;
    let mut by_action: BTreeMap<String, Vec<RequestEnv>> = BTreeMap::new();
    for env in left.schema.request_envs() {
        let action = env.action().id().unescaped().to_string();
        if actions.is_none_or(|list| list.contains(&action.as_str())) {
            by_action.entry(action).or_default().push(env);
        }
    }
    let mut results = Vec::new();
    for (action, envs) in by_action {
        let start = Instant::now();
        let mut failures: Vec<String> = Vec::new();
        for env in &envs {
            let l = CompiledPolicySet::compile(&left_all, env, &left.schema)
                .map_err(|e| format!("compile {}: {e:?}", a.display()))?;
            let r = CompiledPolicySet::compile(&right_all, env, &left.schema)
                .map_err(|e| format!("compile {}: {e:?}", b.display()))?;
            if let Some(cex) = symcc
                .check_equivalent_with_counterexample_opt(&l, &r)
                .await
                .map_err(|e| format!("solver for {}: {e:?}", env_name(env)))?
            {
                failures.push(render(
                    &env_name(env),
                    &cex.request,
                    &cex.entities,
                    &[
                        (&a.display().to_string(), &left.policies),
                        (&b.display().to_string(), &right.policies),
                    ],
                ));
            }
        }
        let counterexample = (!failures.is_empty()).then(|| failures.join("\n"));
        results.push(PropertyResult {
            name: format!("equivalent {action}"),
            says: format!("{} and {} decide {action} alike", a.display(), b.display()),
            kind: Kind::Equivalent,
            envs: envs.len(),
            held: counterexample.is_none(),
            counterexample,
            duration: start.elapsed(),
        });
    }
    Ok(results)
}

/// A counterexample as text: the request and entities symcc synthesized, and
/// the concrete decision of each policy set on it (by `@id`).
fn render(env: &str, req: &Request, entities: &Entities, sets: &[(&str, &PolicySet)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "  environment: {env}");
    let _ = writeln!(
        s,
        "  request: principal = {}, action = {}, resource = {}",
        opt(req.principal()),
        opt(req.action()),
        opt(req.resource())
    );
    if let Some(ctx) = req.context() {
        let _ = writeln!(s, "  context: {}", ctx_json(ctx));
    }
    let _ = writeln!(s, "  entities:");
    let mut ents: Vec<String> = entities
        .iter()
        .filter(|e| e.uid().type_name().to_string() != "Action")
        .map(|e| format!("    {}", entity_line(e)))
        .collect();
    ents.sort();
    for e in ents {
        let _ = writeln!(s, "{e}");
    }
    for (label, set) in sets {
        let resp = Authorizer::new().is_authorized(req, set, entities);
        let ids: Vec<String> = resp
            .diagnostics()
            .reason()
            .map(|pid| {
                set.policy(pid)
                    .and_then(|p| p.annotation("id"))
                    .unwrap_or(pid.as_ref())
                    .to_string()
            })
            .collect();
        let errs: Vec<String> = resp.diagnostics().errors().map(|e| e.to_string()).collect();
        let _ = writeln!(
            s,
            "  {label}: {} by [{}]{}",
            match resp.decision() {
                Decision::Allow => "ALLOW",
                Decision::Deny => "DENY",
            },
            ids.join(", "),
            if errs.is_empty() {
                String::new()
            } else {
                format!(" errors: {}", errs.join("; "))
            }
        );
    }
    s
}

fn opt<T: std::fmt::Display>(v: Option<&T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

fn ctx_json(ctx: &cedar_policy::Context) -> String {
    ctx.to_json_value()
        .map(|v| value(&v))
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// `User::"A" { name: "", ... } in [Role::"C"]`
fn entity_line(e: &cedar_policy::Entity) -> String {
    let Ok(json) = e.to_json_value() else {
        return e.uid().to_string();
    };
    let mut line = e.uid().to_string();
    if let Some(attrs) = json.get("attrs")
        && attrs.as_object().is_some_and(|o| !o.is_empty())
    {
        line.push(' ');
        line.push_str(&value(attrs));
    }
    if let Some(parents) = json.get("parents").and_then(|p| p.as_array())
        && !parents.is_empty()
    {
        let ps: Vec<String> = parents.iter().map(uid).collect();
        line.push_str(&format!(" in [{}]", ps.join(", ")));
    }
    line
}

fn uid(v: &serde_json::Value) -> String {
    format!(
        "{}::{}",
        v.get("type").and_then(|t| t.as_str()).unwrap_or("?"),
        v.get("id").map(|i| i.to_string()).unwrap_or_default()
    )
}

/// Cedar-like text of an entity-JSON value.
fn value(v: &serde_json::Value) -> String {
    use serde_json::Value as V;
    match v {
        V::Object(o) if o.len() == 1 && o.contains_key("__entity") => uid(&o["__entity"]),
        V::Object(o) => {
            let kv: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{k}: {}", value(v)))
                .collect();
            format!("{{ {} }}", kv.join(", "))
        }
        V::Array(a) => format!("[{}]", a.iter().map(value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}
