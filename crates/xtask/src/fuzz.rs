//! `cargo xtask fuzz [--target T]... [--minutes M] [--cmin]`: the fuzz
//! targets of `fuzz/` (cargo-fuzz, libFuzzer, AddressSanitizer) on the
//! nightly toolchain, each for M minutes (default 10), one after the other.
//!
//! Each run reads three corpus directories: its working corpus
//! (`fuzz/target/corpus/T`, where new inputs land), the committed corpus
//! (`fuzz/corpus/T`, read only) and seeds written afresh from the
//! repository's real inputs (`fuzz/target/seeds/T`: the hand vectors, their
//! facts, generated scenarios, the policies, SCIM filters identity
//! providers send). `--cmin` then minimizes the committed corpus, the
//! seeds and the working corpus into `fuzz/corpus/T` ([`minimize`]: at
//! most 300 files and 1 MB, the most coverage first), the corpus `cargo
//! xtask test` replays natively and in wasmtime; files named `regress-*`
//! (inputs that once failed) and `edge-*` (limits) are kept whatever the
//! coverage says. `--minutes 0 --cmin` minimizes without fuzzing.
//!
//! Prints, per target, executions, executions per second, minutes, new
//! inputs and crashes; fails on a crash, naming the input libFuzzer saved
//! under `fuzz/artifacts/T/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use gatehouse_policy::engine::hex;
use gatehouse_vectors::fuzz::{Harness, TARGETS};
use gatehouse_vectors::{generate, load_hand, native_engine};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Result, cargo, root, sh};

/// A committed corpus stays this small: the replay in `cargo xtask test`
/// runs every file natively and in wasmtime.
const MAX_FILES: usize = 300;
const MAX_BYTES: u64 = 1 << 20;

/// Filters identity providers send (Okta, Entra ID, OneLogin, JumpCloud)
/// and the examples of RFC 7644 §3.4.2.2, with broken ones beside them.
const SCIM_FILTERS: &[&str] = &[
    r#"userName eq "bjensen@example.com""#,
    r#"userName eq "Zoe.Zed@acme.test""#,
    r#"userName Eq "john\u002edoe@example.com""#,
    r#"externalId eq "00u1abcd2EFGH3ijk4l5""#,
    r#"emails[type eq "work"]"#,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    r#"name.familyName co "O'Malley""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
    "title pr",
    r#"title pr and userType eq "Employee""#,
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    r#"active eq true and displayName sw "A""#,
    r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
    r#"members[$ref eq "https://example.com/v2/Users/2819c223"]"#,
    "x eq -1.5e+3",
    "x eq null",
    r#"x eq "\ud83d\ude00 \"quoted\" \\ \/""#,
    "userName eq x",
    r#"userName eq "unterminated"#,
    r#"(userName eq "a" or (userName eq "b")"#,
    r#"emails[type eq "work"].value eq "a@b.c""#,
    r#"not userName eq "a""#,
    r#"userName eq "a" and"#,
];

/// What one target's run did.
struct Ran {
    target: String,
    executions: u64,
    per_second: u64,
    seconds: f64,
    new_units: u64,
    crashes: usize,
    corpus: usize,
}

fn flag_values<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

/// `rustup run nightly cargo …`, without the pinned toolchain's cargo
/// environment: cargo-fuzz needs nightly (`-Zsanitizer`).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS");
    cmd
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The nightly toolchain and cargo-fuzz, installed when missing.
fn ensure_cargo_fuzz() -> Result {
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !succeeds(nightly_cargo().args(["fuzz", "--version"])) {
        eprintln!("installing cargo-fuzz (once)");
        sh(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

pub(crate) fn run(args: &[String]) -> Result {
    let mut targets: Vec<&str> = flag_values(args, "--target");
    for t in &targets {
        if !TARGETS.contains(t) {
            return Err(format!("unknown target `{t}`: {}", TARGETS.join(", ")));
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let minutes: f64 = match flag_values(args, "--minutes").last() {
        None => 10.0,
        Some(m) => m
            .parse()
            .ok()
            .filter(|m: &f64| *m >= 0.0)
            .ok_or("--minutes needs a number (0: no fuzzing, only --cmin)")?,
    };
    let cmin = args.iter().any(|a| a == "--cmin");
    ensure_cargo_fuzz()?;
    let root = root();
    let fuzz = root.join("fuzz");
    write_seeds(&fuzz.join("target/seeds"))?;
    // Built once, with every target, before the clock starts.
    sh(nightly_cargo().args(["fuzz", "build"]))?;
    let mut ran = Vec::new();
    for target in targets.iter().filter(|_| minutes > 0.0) {
        let result = run_target(&fuzz, target, minutes)?;
        let crashed = result.crashes > 0;
        ran.push(result);
        if crashed {
            print_table(&ran);
            return Err(format!(
                "`{target}` crashed: the input is under fuzz/artifacts/{target}/ (`cargo +nightly fuzz run {target} <file>` replays it); fix the cause and add the input to fuzz/corpus/{target}/"
            ));
        }
    }
    print_table(&ran);
    if cmin {
        for target in &targets {
            minimize(&fuzz, target)?;
        }
    }
    let (files, bytes) = targets
        .iter()
        .map(|t| dir_size(&fuzz.join("corpus").join(t)))
        .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2));
    println!(
        "committed corpus: {files} files, {bytes} bytes over {} targets (replayed by `cargo xtask test`)",
        targets.len()
    );
    Ok(())
}

fn print_table(ran: &[Ran]) {
    println!(
        "{:<16} {:>12} {:>8} {:>8} {:>6} {:>8} {:>8}",
        "target", "executions", "exec/s", "minutes", "new", "corpus", "crashes"
    );
    for r in ran {
        println!(
            "{:<16} {:>12} {:>8} {:>8.1} {:>6} {:>8} {:>8}",
            r.target,
            r.executions,
            r.per_second,
            r.seconds / 60.0,
            r.new_units,
            r.corpus,
            r.crashes
        );
    }
}

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn dir_size(dir: &Path) -> (usize, u64) {
    let files = files_in(dir);
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    (files.len(), bytes)
}

/// The largest input libFuzzer makes (longer corpus files are cut for
/// mutation; the replay runs them whole): about the largest real input of
/// each kind (a hand vector, its facts, a policy file as a bundle).
fn max_len(target: &str) -> usize {
    match target {
        "scim_filter" => 1024,
        "bundle" => 16 * 1024,
        _ => 8 * 1024,
    }
}

/// One target for `minutes`; the log goes to `fuzz/target/logs/T.log`.
fn run_target(fuzz: &Path, target: &str, minutes: f64) -> Result<Ran> {
    let work = fuzz.join("target/corpus").join(target);
    let committed = fuzz.join("corpus").join(target);
    let seeds = fuzz.join("target/seeds").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    let logs = fuzz.join("target/logs");
    for dir in [&work, &committed, &artifacts, &logs] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let before = files_in(&artifacts);
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let seconds = (minutes * 60.0).round().max(1.0) as u64;
    eprintln!(
        "fuzzing {target} for {minutes} min (log: {})",
        log_path.display()
    );
    let started = Instant::now();
    let status = nightly_cargo()
        .args(["fuzz", "run", target])
        .arg(&work)
        .arg(&committed)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={}", max_len(target)))
        // An input that takes longer than this is a hang: a crash.
        .arg("-timeout=60")
        .arg("-print_final_stats=1")
        .current_dir(crate::root())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let took = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stat = |name: &str| -> u64 {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let new: Vec<PathBuf> = files_in(&artifacts).difference(&before).cloned().collect();
    let crashes = if status.success() {
        new.len()
    } else {
        new.len().max(1)
    };
    if crashes > 0 {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!(
            "{}\n{target}: {status}; new artifacts: {new:?}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(Ran {
        target: target.to_owned(),
        executions: stat("number_of_executed_units"),
        per_second: stat("average_exec_per_sec"),
        seconds: took,
        new_units: stat("new_units_added"),
        crashes,
        corpus: files_in(&work).len(),
    })
}

/// A corpus file written by hand: `regress-*` (an input that once failed)
/// or `edge-*` (a limit worth keeping in the replay).
fn hand_made(name: &str) -> bool {
    name.starts_with("regress-") || name.starts_with("edge-")
}

/// Minimizes the committed corpus, the seeds and the working corpus into
/// `fuzz/corpus/T`: libFuzzer's merge (`-merge=1`, edges only) says which
/// features each file covers, and files are taken greedily, the one that
/// adds the most features not yet covered first, until none adds any or
/// the budget ([`MAX_FILES`], [`MAX_BYTES`]) is spent. (`cargo fuzz cmin`
/// keeps every file that adds a feature: 790 files for `module_json` after
/// 10 minutes.) Prints how much of the pool's coverage the corpus keeps.
fn minimize(fuzz: &Path, target: &str) -> Result {
    let committed = fuzz.join("corpus").join(target);
    let work = fuzz.join("target/cmin").join(target);
    let pool = work.join("pool");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&pool).map_err(|e| e.to_string())?;
    for dir in [
        committed.clone(),
        fuzz.join("target/seeds").join(target),
        fuzz.join("target/corpus").join(target),
    ] {
        for file in files_in(&dir) {
            // Hand-made files are added back after.
            if let Some(name) = file
                .file_name()
                .filter(|n| !hand_made(&n.to_string_lossy()))
            {
                std::fs::copy(&file, pool.join(name)).map_err(|e| e.to_string())?;
            }
        }
    }
    let merged = work.join("merged");
    let control = work.join("control.txt");
    std::fs::create_dir_all(&merged).map_err(|e| e.to_string())?;
    sh(nightly_cargo()
        .args(["fuzz", "run", target])
        .arg(&merged)
        .arg(&pool)
        .arg("--")
        .args(["-merge=1", "-use_counters=0"])
        .arg(format!("-merge_control_file={}", control.display())))?;
    let text = std::fs::read_to_string(&control).map_err(|e| e.to_string())?;
    let (paths, features) = parse_control(&text)?;
    let mut covered: BTreeSet<u64> = BTreeSet::new();
    let all: BTreeSet<u64> = features.iter().flatten().copied().collect();
    let sizes: Vec<u64> = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(u64::MAX, |m| m.len()))
        .collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut bytes = 0u64;
    // Hand-made inputs stay, whatever coverage says.
    let mut keep: Vec<(std::ffi::OsString, Vec<u8>)> = Vec::new();
    for file in files_in(&committed) {
        if let Some(name) = file.file_name().filter(|n| hand_made(&n.to_string_lossy())) {
            keep.push((
                name.to_owned(),
                std::fs::read(&file).map_err(|e| e.to_string())?,
            ));
        }
    }
    let kept_bytes: u64 = keep.iter().map(|(_, b)| b.len() as u64).sum();
    // Lazy greedy: a file's gain only shrinks as others are taken, so the
    // heap holds upper bounds, refreshed when one comes to the top.
    let mut heap: std::collections::BinaryHeap<(usize, std::cmp::Reverse<u64>, usize)> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.len(), std::cmp::Reverse(sizes[i]), i))
        .collect();
    while chosen.len() + keep.len() < MAX_FILES {
        let Some((bound, size, i)) = heap.pop() else {
            break;
        };
        if bound == 0 {
            break;
        }
        if bytes + kept_bytes + size.0 > MAX_BYTES {
            continue;
        }
        let gain = features[i].difference(&covered).count();
        if heap.peek().is_some_and(|(next, _, _)| gain < *next) {
            heap.push((gain, size, i));
            continue;
        }
        if gain == 0 {
            break;
        }
        covered.extend(features[i].iter().copied());
        bytes += size.0;
        chosen.push(i);
    }
    let _ = std::fs::remove_dir_all(&committed);
    std::fs::create_dir_all(&committed).map_err(|e| e.to_string())?;
    for i in &chosen {
        let path = &paths[*i];
        let name = path.file_name().ok_or("a path without a name")?;
        std::fs::copy(path, committed.join(name)).map_err(|e| e.to_string())?;
    }
    for (name, bytes) in &keep {
        std::fs::write(committed.join(name), bytes).map_err(|e| e.to_string())?;
    }
    println!(
        "{target}: corpus minimized to {} files, {} bytes in fuzz/corpus/{target}: {} of the pool's {} features ({:.1} %) from {} files",
        chosen.len() + keep.len(),
        bytes + kept_bytes,
        covered.len(),
        all.len(),
        100.0 * covered.len() as f64 / all.len().max(1) as f64,
        paths.len()
    );
    Ok(())
}

/// A libFuzzer merge control file: each file's path and features.
fn parse_control(text: &str) -> Result<(Vec<PathBuf>, Vec<BTreeSet<u64>>)> {
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("merge control file: no file count")?;
    lines.next();
    let paths: Vec<PathBuf> = lines.by_ref().take(count).map(PathBuf::from).collect();
    let mut features = vec![BTreeSet::new(); count];
    for line in lines {
        let mut words = line.split_whitespace();
        if words.next() != Some("FT") {
            continue;
        }
        let Some(i) = words.next().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        if let Some(set) = features.get_mut(i) {
            set.extend(words.filter_map(|w| w.parse::<u64>().ok()));
        }
    }
    Ok((paths, features))
}

/// Writes the seeds of every target from the repository's real inputs.
fn write_seeds(dir: &Path) -> Result {
    let root = root();
    let (engine, bundle) = native_engine(&root.join("policies"))?;
    let hand = load_hand(&root.join("tests/vectors"))?;
    let generated = generate::generate(&engine, 7, 40);
    let mut module_json: Vec<Vec<u8>> = hand
        .iter()
        .chain(&generated)
        .map(|v| v.input.clone())
        .collect();
    // Hostile shapes, small enough to mutate: deep nesting, bad UTF-8.
    let mut nested = br#"{"op":"authorize","facts":"#.to_vec();
    nested.extend(std::iter::repeat_n(b'[', 300));
    nested.extend(std::iter::repeat_n(b']', 300));
    nested.push(b'}');
    module_json.extend([
        nested,
        br#"{"op":"info"}"#.to_vec(),
        b"{\"op\":\"info\xff\"}".to_vec(),
    ]);
    let mut facts: Vec<Vec<u8>> = hand
        .iter()
        .chain(&generated)
        .filter_map(|v| {
            let envelope: Value = serde_json::from_slice(&v.input).ok()?;
            serde_json::to_vec(envelope.get("facts")?).ok()
        })
        .collect();
    facts.extend((0..20).filter_map(|s| serde_json::to_vec(&generate::scenario_facts(s)).ok()));
    // Each policy file bare (policy text) and as a bundle of its own with
    // the schema's types and the actions it names: small enough to mutate.
    let harness = Harness::new(&bundle)?;
    let mut bundles = Vec::new();
    for sub in ["policies", "policies/properties"] {
        for file in files_in(&root.join(sub)) {
            if file.extension().is_some_and(|e| e == "cedar") {
                let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
                bundles.push(harness.bundle_of(&text).to_bytes());
                bundles.push(text.into_bytes());
            }
        }
    }
    let scim: Vec<Vec<u8>> = SCIM_FILTERS.iter().map(|f| f.as_bytes().to_vec()).collect();
    for (target, inputs) in [
        ("module_json", module_json),
        ("facts_entities", facts),
        ("bundle", bundles),
        ("scim_filter", scim),
    ] {
        let out = dir.join(target);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        for input in inputs {
            let name = hex(&Sha256::digest(&input));
            std::fs::write(out.join(format!("seed-{}", &name[..16])), &input)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
