//! `cargo xtask vectors`: every shared vector through native, wasmtime, Node
//! and a Chromium page; expectations checked, answers compared byte for byte.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use gatehouse_policy::json;
use gatehouse_vectors::{
    Vector, as_tables, check, generate, hostile, load_hand, minimized, native_engine,
    table_failures,
};

use crate::{Result, root, wasm};

const MIN_PER_RULE: usize = 10;

fn flag(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a whole number")),
    }
}

/// Runs a replayer script under Node over `inputs`: `tests/node/replay.mjs`
/// (the module in Node) or `tests/browser/replay.mjs` (the module in a
/// Chromium page), which share one command line and one summary line.
/// Returns the answers and the summary.
pub(crate) fn replay_answers(
    runtime: &str,
    script: &str,
    module: &std::path::Path,
    inputs: &[&[u8]],
) -> Result<(Vec<Vec<u8>>, serde_json::Value)> {
    let dir = root().join("target/vectors");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (in_path, out_path) = (
        dir.join("in.jsonl"),
        dir.join(format!("{runtime}-out.jsonl")),
    );
    // Each input as a JSON string literal, one per line: inputs may hold newlines.
    let mut text = Vec::new();
    for input in inputs {
        let s = String::from_utf8_lossy(input);
        text.extend(serde_json::to_vec(&s).map_err(|e| e.to_string())?);
        text.push(b'\n');
    }
    std::fs::write(&in_path, text).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg(root().join(script))
        .arg(module)
        .arg(&in_path)
        .arg(&out_path)
        .output()
        .map_err(|e| format!("node: {e} (Node 20 must be installed)"))?;
    if !out.status.success() {
        return Err(format!(
            "{runtime} replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{runtime} replay printed {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let answers = std::fs::read(&out_path).map_err(|e| e.to_string())?;
    let answers: Vec<Vec<u8>> = answers
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok((answers, summary))
}

/// Replays everything; returns how many vectors agreed.
pub(crate) fn run(args: &[String]) -> Result<usize> {
    let seed = flag(args, "--seed", 1)?;
    let generated =
        usize::try_from(flag(args, "--generated", 5_000)?).map_err(|e| e.to_string())?;
    let module = wasm()?;
    let root = root();
    let (engine, _) = native_engine(&root.join("policies"))?;
    if engine.policy_hash() != module.policy_hash {
        return Err("the native bundle and the module's bundle differ: rebuild".into());
    }

    let hand = load_hand(&root.join("tests/vectors"))?;
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    for v in &hand {
        if let Some(rule) = &v.rule {
            *per_rule.entry(rule.clone()).or_default() += 1;
        }
    }
    let thin: Vec<String> = (1..=18)
        .map(|r| format!("R{r}"))
        .filter(|r| per_rule.get(r).copied().unwrap_or(0) < MIN_PER_RULE)
        .collect();
    let hand_count = hand.len();
    // Every hand table once more in one envelope of the module's `tables`
    // op, the policy editor's checker: answered alike by every runtime.
    let tables = as_tables("every hand table through the `tables` op", &hand);
    let tables_at = hand_count;
    let mut vectors: Vec<Vector> = hand.clone();
    vectors.push(tables);
    vectors.extend(hostile());
    let hostile_count = vectors.len() - hand_count - 1;
    vectors.extend(generate::generate(&engine, seed, generated));
    // Need to know: every vector that decides, as a batch, minimized; each
    // runtime must minimize alike and answer the minimized question exactly
    // as the full one. `twins` holds (full, minimized) vector indices.
    let original = vectors.len();
    let mut twins: Vec<(usize, usize)> = Vec::new();
    let (mut rows_before, mut rows_after) = (0, 0);
    for t in minimized(&engine, &vectors[..original]) {
        let full = if t.full.input == vectors[t.of].input {
            t.of
        } else {
            vectors.push(t.full);
            vectors.len() - 1
        };
        vectors.push(t.ask);
        vectors.push(t.question);
        twins.push((full, vectors.len() - 1));
        rows_before += t.rows.0;
        rows_after += t.rows.1;
    }
    let inputs: Vec<&[u8]> = vectors.iter().map(|v| v.input.as_slice()).collect();
    println!(
        "vectors: {hand_count} hand ({} rules, fewest per rule {}), all of them again as 1 `tables` envelope, {hostile_count} hostile, {generated} generated (seed {seed})",
        per_rule.len(),
        per_rule.values().min().copied().unwrap_or(0)
    );

    let started = Instant::now();
    let native: Vec<Vec<u8>> = inputs
        .iter()
        .map(|i| json::handle(Some(&engine), i))
        .collect();
    let native_time = started.elapsed();
    let failures: Vec<String> = vectors
        .iter()
        .zip(&native)
        .filter_map(|(v, out)| check(v, out).err().map(|e| format!("{}: {e}", v.name)))
        .chain(
            table_failures(&hand, &native[tables_at])
                .into_iter()
                .map(|e| format!("the `tables` op: {e}")),
        )
        .collect();

    let started = Instant::now();
    let runner = gatehouse_runner::Runner::from_file(&module.path).map_err(|e| e.to_string())?;
    let wasmtime: Vec<Vec<u8>> = inputs
        .iter()
        .map(|i| {
            runner
                .call(i)
                .unwrap_or_else(|e| format!("runner error: {e}").into_bytes())
        })
        .collect();
    let wasmtime_time = started.elapsed();

    let started = Instant::now();
    let (node, summary) = replay_answers("node", "tests/node/replay.mjs", &module.path, &inputs)?;
    let node_time = started.elapsed();

    crate::ensure_npm()?;
    crate::ensure_chromium()?;
    let started = Instant::now();
    let (chromium, chromium_summary) = replay_answers(
        "chromium",
        "tests/browser/replay.mjs",
        &module.path,
        &inputs,
    )?;
    let chromium_time = started.elapsed();

    let differ = |other: &[Vec<u8>]| -> Vec<String> {
        if other.len() != native.len() {
            return vec![format!(
                "{} answers for {} vectors",
                other.len(),
                native.len()
            )];
        }
        vectors
            .iter()
            .zip(native.iter().zip(other))
            .filter(|(_, (a, b))| a != b)
            .map(|(v, (a, b))| {
                format!(
                    "{}:\n    native: {}\n    other:  {}",
                    v.name,
                    String::from_utf8_lossy(&a[..a.len().min(300)]),
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )
            })
            .collect()
    };
    // In every runtime the minimized question answers like the full one.
    let mut twin_diff = Vec::new();
    for (runtime, answers) in [
        ("native", &native),
        ("wasmtime", &wasmtime),
        ("node", &node),
        ("chromium", &chromium),
    ] {
        for (full, small) in &twins {
            if answers.get(*full) != answers.get(*small) {
                twin_diff.push(format!("{runtime}: {}", vectors[*small].name));
            }
        }
    }
    println!(
        "minimized {} questions: fact rows {rows_before} -> {rows_after}; {} answer unlike the full facts in native, wasmtime, node or chromium",
        twins.len(),
        twin_diff.len()
    );
    let wasmtime_diff = differ(&wasmtime);
    let node_diff = differ(&node);
    let chromium_diff = differ(&chromium);
    let node_sha = summary["module_sha256"].as_str().unwrap_or("?").to_owned();
    let object_mismatches = summary["object_mismatches"].as_u64().unwrap_or(u64::MAX);
    let chromium_sha = chromium_summary["module_sha256"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let chromium_object_mismatches = chromium_summary["object_mismatches"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let chromium_version = chromium_summary["chromium"].as_str().unwrap_or("?");

    let n = vectors.len();
    println!(
        "native    {n} vectors  {} expectation failures  policy hash {}  ({:.2} s)",
        failures.len(),
        engine.policy_hash(),
        native_time.as_secs_f64()
    );
    println!(
        "wasmtime  {n} vectors  {} differ from native  module sha256 {}  ({:.2} s)",
        wasmtime_diff.len(),
        runner.module_sha256(),
        wasmtime_time.as_secs_f64()
    );
    println!(
        "node      {n} vectors  {} differ from native  module sha256 {node_sha}  object API mismatches {object_mismatches}  ({:.2} s)",
        node_diff.len(),
        node_time.as_secs_f64()
    );
    println!(
        "chromium  {n} vectors  {} differ from native  module sha256 {chromium_sha}  object API mismatches {chromium_object_mismatches}  ({:.2} s)  Chromium {chromium_version}",
        chromium_diff.len(),
        chromium_time.as_secs_f64()
    );

    let mut problems = Vec::new();
    for (what, list) in [
        ("expectation", &failures),
        ("minimized", &twin_diff),
        ("wasmtime", &wasmtime_diff),
        ("node", &node_diff),
        ("chromium", &chromium_diff),
    ] {
        for item in list.iter().take(20) {
            problems.push(format!("{what}: {item}"));
        }
        if list.len() > 20 {
            problems.push(format!("{what}: … and {} more", list.len() - 20));
        }
    }
    if runner.module_sha256() != module.sha256
        || node_sha != module.sha256
        || chromium_sha != module.sha256
    {
        problems.push(format!(
            "module hashes differ: baked {}, wasmtime {}, node {node_sha}, chromium {chromium_sha}",
            module.sha256,
            runner.module_sha256()
        ));
    }
    for (what, mismatches) in [
        ("node", object_mismatches),
        ("chromium", chromium_object_mismatches),
    ] {
        if mismatches != 0 {
            problems.push(format!(
                "{what}: {mismatches} answers of the object API differ from the JSON API"
            ));
        }
    }
    if !thin.is_empty() {
        problems.push(format!(
            "rules with fewer than {MIN_PER_RULE} hand vectors: {}",
            thin.join(", ")
        ));
    }
    if generated < 5_000 && args.is_empty() {
        problems.push("fewer than 5,000 generated vectors".into());
    }
    if problems.is_empty() {
        println!("all {n} vectors agree across native, wasmtime, node and chromium");
        Ok(n)
    } else {
        Err(format!(
            "{} problems:\n{}",
            problems.len(),
            problems.join("\n")
        ))
    }
}
