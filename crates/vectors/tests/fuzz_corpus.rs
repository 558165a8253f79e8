//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, kept small with `cargo
//! fuzz cmin`) natively and through the built module in wasmtime: no panic,
//! no trap, every answer an error value or a decision of the right shape,
//! and wasmtime's answer byte for byte the native one. The SCIM filter
//! parser lives in the host, not the module: its corpus replays natively.
//!
//! Needs the module: `cargo xtask wasm` (`cargo xtask test` builds it and
//! names it in `$GATEHOUSE_MODULE`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use gatehouse_policy::module::policy_section;
use gatehouse_runner::Runner;
use gatehouse_vectors::fuzz::{self, Harness, TARGETS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn module_path() -> PathBuf {
    std::env::var_os("GATEHOUSE_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist/gatehouse.wasm"))
}

/// The corpus files of `target`, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs `f`, turning a panic into an error naming it.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("panicked: {message}"))
    })
}

/// One input natively and in wasmtime: both answers checked, then compared.
fn both(
    native: impl FnOnce() -> Result<Vec<u8>, String>,
    wasm: impl FnOnce() -> Result<Vec<u8>, String>,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let native = guarded(native).map_err(|e| format!("native: {e}"))?;
    let wasm = wasm().map_err(|e| format!("wasmtime: {e}"))?;
    check(&wasm).map_err(|e| format!("wasmtime: {e}"))?;
    if native != wasm {
        return Err(format!(
            "native and wasmtime differ:\n    native:   {}\n    wasmtime: {}",
            String::from_utf8_lossy(&native[..native.len().min(300)]),
            String::from_utf8_lossy(&wasm[..wasm.len().min(300)])
        ));
    }
    Ok(())
}

#[test]
fn the_fuzz_corpus_replays_natively_and_in_wasmtime() {
    let path = module_path();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the module with `cargo xtask wasm`",
            path.display()
        )
    });
    let runner = Runner::new(&bytes).unwrap();
    let harness = Harness::new(policy_section(&bytes).unwrap()).unwrap();
    assert_eq!(harness.engine().policy_hash(), runner.policy_hash());

    let mut failures: Vec<String> = Vec::new();
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for target in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        let mut inputs = 0;
        for (name, data) in &files {
            let result = match target {
                "module_json" => {
                    inputs += 1;
                    both(
                        || harness.module_json(data),
                        || runner.call(data).map_err(|e| e.to_string()),
                        |a| harness.check_answer(a),
                    )
                }
                "facts_entities" => {
                    guarded(|| Ok(harness.facts_envelopes(data))).and_then(|envelopes| {
                        inputs += envelopes.len();
                        envelopes.iter().try_for_each(|envelope| {
                            both(
                                || harness.module_json(envelope),
                                || runner.call(envelope).map_err(|e| e.to_string()),
                                |a| harness.check_answer(a),
                            )
                        })
                    })
                }
                "bundle" => {
                    let bundles = harness.bundles(data);
                    inputs += bundles.len();
                    bundles.iter().try_for_each(|bundle| {
                        both(
                            || harness.bundle_native(bundle),
                            || runner.load(bundle).map_err(|e| e.to_string()),
                            |a| fuzz::check_load_answer(bundle, a),
                        )
                    })
                }
                _ => {
                    inputs += 1;
                    guarded(|| fuzz::scim_filter(data))
                }
            };
            if let Err(e) = result {
                // A trap's backtrace: its first line and its last (the kind).
                let lines: Vec<&str> = e.lines().collect();
                let e = match lines.as_slice() {
                    [first, .., last] => format!("{first} … {}", last.trim()),
                    _ => e,
                };
                failures.push(format!("{target}/{name}: {e}"));
            }
        }
        counts.insert(target, (files.len(), inputs));
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(target, (files, inputs))| format!("{target} {files} files ({inputs} inputs)"))
        .collect();
    println!(
        "fuzz corpus: {}; native and wasmtime (scim_filter native only): {} failures",
        summary.join(", "),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} corpus files fail (no trap, no panic, an error value or a decision of the right shape, wasmtime = native):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
