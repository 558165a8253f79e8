//! Policy authoring from the command line: `gatehouse policy validate`,
//! `fmt`, `test` and `publish` (impact and the store of versions are in
//! [`crate::impact`] and [`crate::versions`]).
//!
//! Why in the host binary: authors run the same checks the bake and CI run,
//! on a directory of their own, without a Rust toolchain. Validation is the
//! bake's strict check; problems are pointed at a file, line and column with
//! the source line and a caret. The decision tables are the spine's hand
//! vectors, answered by the engine built from the directory's policies.

use std::fmt::Write as _;
use std::path::Path;

use gatehouse_policy::bundle::{Bundle, check};
use gatehouse_policy::table;
use miette::Diagnostic;

/// What a command found; `Err` text is printed as is.
pub type Outcome = Result<String, String>;

/// A place in a policy file, 1-based.
struct Place<'a> {
    file: &'a str,
    text: &'a str,
    offset: usize,
}

impl Place<'_> {
    /// `file:line:col`, the line and a caret under the column.
    fn show(&self) -> String {
        let before = &self.text[..self.offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[start..].chars().count() + 1;
        let source = self.text[start..].lines().next().unwrap_or("");
        format!(
            "{}:{line}:{col}\n  {line:>4} | {source}\n       | {}^",
            self.file,
            " ".repeat(col - 1)
        )
    }
}

/// Where the problem is: at `offset` in the file that holds policy `id`
/// (where `@id("id")` is written), or at that `@id` when Cedar gave no span.
fn place_of_id<'a>(bundle: &'a Bundle, id: &str, offset: Option<usize>) -> Option<Place<'a>> {
    let needle = format!("@id(\"{id}\")");
    bundle.policies.iter().find_map(|f| {
        f.text.find(&needle).map(|at| Place {
            file: &f.file,
            text: &f.text,
            offset: offset.filter(|o| *o < f.text.len()).unwrap_or(at),
        })
    })
}

/// Parse errors of one file, each with its place and Cedar's help.
fn parse_problems(file: &str, text: &str, out: &mut Vec<String>) {
    let Err(errors) = text.parse::<cedar_policy::PolicySet>() else {
        return;
    };
    for e in errors.iter() {
        let offset = e
            .labels()
            .and_then(|mut l| l.next())
            .map_or(0, |l| l.offset());
        let mut msg = format!("error: {e}\n  --> {}", Place { file, text, offset }.show());
        if let Some(help) = e.help() {
            let _ = write!(msg, "\n  hint: {help}");
        }
        out.push(msg);
    }
}

/// `gatehouse policy validate DIR`: schema, parse and strict validation, the
/// annotations every policy needs, and that every action can be permitted.
pub fn validate(dir: &Path) -> Outcome {
    let bundle = gatehouse_bake::read_policies(dir).map_err(|e| {
        format!(
            "error: {e}\n  hint: point at the directory holding gatehouse.cedarschema and the .cedar files"
        )
    })?;
    let mut problems = Vec::new();
    for f in &bundle.policies {
        parse_problems(&f.file, &f.text, &mut problems);
    }
    if problems.is_empty() {
        match check(&bundle) {
            Ok(report) => {
                return Ok(format!(
                    "{}: {} policies in {} files, {} actions, {} rules: valid",
                    dir.display(),
                    report.policies,
                    bundle.policies.len(),
                    report.actions,
                    report.rules.len()
                ));
            }
            Err(found) => {
                for p in found {
                    let mut msg = format!("error: {}", p.message);
                    match place_of_id(&bundle, &p.location, p.offset) {
                        Some(place) => {
                            let _ = write!(msg, "\n  --> {} (policy {})", place.show(), p.location);
                        }
                        None => {
                            let _ = write!(msg, "\n  --> {}", p.location);
                        }
                    }
                    problems.push(msg);
                }
            }
        }
    }
    Err(format!(
        "{}\n\n{}: {} problem{}",
        problems.join("\n\n"),
        dir.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ))
}

/// `gatehouse policy test DIR --tables TABLES`: every decision table of
/// TABLES answered under DIR's policies; a table of the failures with the
/// reasons that were returned.
pub fn test(dir: &Path, tables: &Path) -> Outcome {
    validate(dir)?;
    run_tables(dir, tables)
}

/// [`test`] on a directory that was validated.
fn run_tables(dir: &Path, tables: &Path) -> Outcome {
    let (engine, _) = gatehouse_vectors::native_engine(dir)?;
    let vectors = gatehouse_vectors::load_hand(tables)?;
    let mut failures = Vec::new();
    for v in &vectors {
        // The module's own table runner and checker (`gatehouse_policy::
        // table`): what the policy editor's page asks its copy of the
        // module to do (`{"op":"tables",…}`), on the same input text.
        let result = table::run(
            &engine,
            &table::Table {
                input: String::from_utf8_lossy(&v.input).into_owned(),
                expect: v.expect.clone(),
            },
        );
        if !result.passed {
            failures.push(format!(
                "FAIL {}  ({})\n     mismatch: {}\n     returned: {}",
                v.name,
                v.rule.as_deref().unwrap_or("-"),
                result.mismatch.unwrap_or_default(),
                result.returned.unwrap_or_default()
            ));
        }
    }
    let summary = format!(
        "{} decision tables: {} passed, {} failed (policies {}, hash {})",
        vectors.len(),
        vectors.len() - failures.len(),
        failures.len(),
        dir.display(),
        engine.policy_hash()
    );
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{}\n\n{summary}", failures.join("\n")))
    }
}

/// `gatehouse policy fmt DIR [--check]`: Cedar's own formatter over every
/// `.cedar` file (80 columns, 2 spaces; comments kept). With `check`,
/// nothing is written and any file that would change is an error.
pub fn fmt(dir: &Path, check: bool) -> Outcome {
    let bundle = gatehouse_bake::read_policies(dir).map_err(|e| e.to_string())?;
    let config = cedar_policy_formatter::Config {
        line_width: 80,
        indent_width: 2,
    };
    let mut changed = Vec::new();
    for f in &bundle.policies {
        let pretty = cedar_policy_formatter::policies_str_to_pretty(&f.text, &config)
            .map_err(|e| {
                format!(
                    "error: {}: cannot format: {e}\n  hint: `gatehouse policy validate {}` shows where",
                    f.file,
                    dir.display()
                )
            })?;
        if pretty == f.text {
            continue;
        }
        if !check {
            // Write beside and rename: an interrupted run leaves each file
            // whole, old or new.
            let path = dir.join(&f.file);
            let tmp = dir.join(format!(".{}.fmt-tmp", f.file));
            std::fs::write(&tmp, &pretty)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("error: {}: {e}", path.display()))?;
        }
        changed.push(f.file.clone());
    }
    match (check, changed.is_empty()) {
        (_, true) => Ok(format!(
            "{}: {} files formatted",
            dir.display(),
            bundle.policies.len()
        )),
        (true, false) => Err(format!(
            "{} not formatted: {}\n  hint: run `gatehouse policy fmt {}`",
            if changed.len() == 1 {
                "a file is"
            } else {
                "files are"
            },
            changed.join(", "),
            dir.display()
        )),
        (false, false) => Ok(format!(
            "{}: reformatted {}",
            dir.display(),
            changed.join(", ")
        )),
    }
}

/// What `gatehouse policy publish` needs.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    /// The policy directory.
    pub dir: &'a Path,
    /// The decision tables.
    pub tables: &'a Path,
    /// A built module's bytes, whose engine the policies are baked into.
    pub engine: &'a [u8],
    /// Who publishes.
    pub author: &'a str,
    /// Why.
    pub message: &'a str,
    /// When (unix seconds).
    pub now: i64,
}

/// A policy directory that passed every check, baked into a module.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The module: the engine's bytes with the new policy section.
    pub module: Vec<u8>,
    /// Its sha256.
    pub module_sha256: String,
    /// The policy bundle's sha256 (what decisions will carry).
    pub policy_hash: String,
    /// The module's brotli and gzip copies, for the wire.
    pub precompressed: gatehouse_bake::Precompressed,
    /// What each check said, in order.
    pub log: Vec<String>,
}

/// Everything publish does before it records: validate, run the decision
/// tables, prove the properties, bake into `engine` (the bytes of a built
/// module), load the baked policies as every host will, and compress the
/// module for the wire (brotli's best quality: the slowest step, seconds).
pub async fn prepare(dir: &Path, tables: &Path, engine: &[u8]) -> Result<Prepared, String> {
    // Validated once; the tables and the proofs then run on that.
    let mut log = vec![
        validate(dir)?,
        run_tables(dir, tables)?,
        run_proofs(dir).await?,
    ];
    let bundle = gatehouse_bake::read_policies(dir).map_err(|e| e.to_string())?;
    let gatehouse_bake::BakedBytes {
        module,
        module_sha256,
        policy_hash,
        ..
    } = gatehouse_bake::bake_bytes(engine, &bundle).map_err(|e| e.to_string())?;
    // The engine code is the module's, byte for byte (a host already runs
    // it); what changed is the policy section. Read it back from the baked
    // bytes and load it as every host will. Compiling the whole module
    // again here would take seconds; a host that cannot load a version
    // keeps serving the one it has and says why (`versions::watch`).
    let section = gatehouse_policy::module::policy_section(&module)
        .map_err(|e| format!("error: the baked module: {e}"))?;
    let loaded = gatehouse_policy::engine::Engine::from_bundle_bytes(section)
        .map_err(|e| format!("error: the baked policies do not load: {e}"))?;
    if loaded.policy_hash() != policy_hash {
        return Err(format!(
            "error: the baked module answers with policy hash {}, not {policy_hash}",
            loaded.policy_hash()
        ));
    }
    log.push(format!(
        "baked: module sha256 {module_sha256}, policy hash {policy_hash}, {} bytes",
        module.len()
    ));
    let started = std::time::Instant::now();
    let (module, precompressed) = tokio::task::spawn_blocking(move || {
        gatehouse_bake::precompress(&module).map(|p| (module, p))
    })
    .await
    .map_err(|e| format!("error: compressing the module: {e}"))?
    .map_err(|e| format!("error: compressing the module: {e}"))?;
    log.push(format!(
        "compressed for the wire: {} bytes brotli, {} gzip ({:.1} s)",
        precompressed.br.len(),
        precompressed.gz.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Prepared {
        module,
        module_sha256,
        policy_hash,
        precompressed,
        log,
    })
}

/// `gatehouse policy publish`: [`prepare`], then record the module in the
/// store as the newest version. Nothing is recorded when any step fails.
pub async fn publish(store: &crate::Store, p: &Publish<'_>) -> Outcome {
    let start = std::time::Instant::now();
    // What is live before the minutes of preparing: a publish that lands
    // meanwhile is not silently replaced.
    let seen = crate::versions::newest(store)
        .await
        .map_err(|e| e.to_string())?
        .map(|v| v.version);
    let Prepared {
        module,
        module_sha256,
        policy_hash,
        precompressed,
        mut log,
    } = prepare(p.dir, p.tables, p.engine).await?;
    if let Some(newest) = crate::versions::newest(store)
        .await
        .map_err(|e| e.to_string())?
        && newest.module_sha256 == module_sha256
    {
        log.push(format!(
            "nothing to publish: version {} already has these policies (module sha256 {module_sha256})",
            newest.version
        ));
        return Ok(log.join("\n"));
    }
    let v = crate::versions::record(
        store,
        &crate::versions::NewVersion {
            module: &module,
            module_sha256: &module_sha256,
            policy_hash: &policy_hash,
            author: p.author,
            message: p.message,
            at: p.now,
            rollback_of: None,
            precompressed: Some(&precompressed),
            seen: crate::versions::Seen::Version(seen),
        },
    )
    .await
    .map_err(|e| format!("error: cannot record the version: {e}"))?;
    log.push(format!(
        "published version {} in {} ms: module sha256 {}, policy hash {}, {} bytes\nrunning hosts switch to it at once on PostgreSQL (NOTIFY), else within their poll interval (`gatehouse serve --policy-poll-ms`)",
        v.version,
        start.elapsed().as_millis(),
        v.module_sha256,
        v.policy_hash,
        v.size
    ));
    Ok(log.join("\n"))
}

/// Writes `bundle` as a policy directory at `out` (schema and `.cedar`
/// files), with the `properties/` of `properties_from` when it has them:
/// what [`prepare`] and [`prove`] read.
pub fn write_dir(
    bundle: &Bundle,
    properties_from: Option<&Path>,
    out: &Path,
) -> Result<(), String> {
    let write = |path: std::path::PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    write(out.join("gatehouse.cedarschema"), &bundle.schema)?;
    for f in &bundle.policies {
        let name = Path::new(&f.file);
        if name.components().count() != 1
            || name.extension().and_then(|e| e.to_str()) != Some("cedar")
        {
            return Err(format!(
                "`{}` is not a policy file name: use a plain name ending in .cedar",
                f.file
            ));
        }
        write(out.join(name), &f.text)?;
    }
    if let Some(from) = properties_from
        && let Ok(entries) = std::fs::read_dir(from.join("properties"))
    {
        std::fs::create_dir_all(out.join("properties")).map_err(|e| e.to_string())?;
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path())
                .map_err(|err| format!("{}: {err}", e.path().display()))?;
            write(out.join("properties").join(e.file_name()), &text)?;
        }
    }
    Ok(())
}

/// Proof results for people: a line per property, counterexamples indented.
fn render_proofs(results: &[gatehouse_prove::PropertyResult]) -> (bool, String) {
    let mut out = String::new();
    let mut all = true;
    for r in results {
        all &= r.held;
        let _ = writeln!(
            out,
            "{} {}  ({} request environment{}, {:.2} s): {}",
            if r.held { "HOLDS" } else { "FAILS" },
            r.name,
            r.envs,
            if r.envs == 1 { "" } else { "s" },
            r.duration.as_secs_f64(),
            r.says
        );
        if let Some(c) = &r.counterexample {
            let _ = writeln!(out, "  counterexample:");
            for line in c.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    (all, out)
}

/// `gatehouse policy prove DIR`: every property in `DIR/properties/`
/// proven for all inputs (cedar-policy-symcc and cvc5), or refuted with a
/// counterexample request.
pub async fn prove(dir: &Path) -> Outcome {
    validate(dir)?;
    run_proofs(dir).await
}

/// [`prove`] on a directory that was validated.
async fn run_proofs(dir: &Path) -> Outcome {
    if !dir.join("properties").is_dir() {
        return Ok(format!(
            "{}: no properties/ directory: nothing to prove",
            dir.display()
        ));
    }
    let start = std::time::Instant::now();
    let results = gatehouse_prove::prove_async(dir).await.map_err(|e| {
        format!(
            "error: {e}\n  hint: the solver is Debian's cvc5 (`apt-get install cvc5`, or set $CVC5)"
        )
    })?;
    let (all, text) = render_proofs(&results);
    let failed = results.iter().filter(|r| !r.held).count();
    let summary = format!(
        "{} properties: {} hold, {failed} fail ({:.2} s)",
        results.len(),
        results.len() - failed,
        start.elapsed().as_secs_f64()
    );
    if all {
        Ok(format!("{text}{summary}"))
    } else {
        Err(format!("{text}\n{summary}"))
    }
}

/// `gatehouse policy impact --symbolic`: per action, whether `old` and
/// `new` decide every possible request alike, with a counterexample where
/// they do not.
pub async fn compare(old: &Path, new: &Path) -> Outcome {
    validate(new)?;
    let results = gatehouse_prove::compare_async(old, new, None)
        .await
        .map_err(|e| format!("error: {e}"))?;
    let (_, text) = render_proofs(&results);
    let differ: Vec<&str> = results
        .iter()
        .filter(|r| !r.held)
        .map(|r| r.name.trim_start_matches("equivalent "))
        .collect();
    Ok(format!(
        "{text}{} of {} actions decided differently for some request{}",
        differ.len(),
        results.len(),
        if differ.is_empty() {
            String::new()
        } else {
            format!(": {}", differ.join(", "))
        }
    ))
}
