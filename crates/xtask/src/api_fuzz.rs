//! `cargo xtask api-fuzz [--examples N] [--seed S] [--module FILE]`:
//! schemathesis against a live demo host (`api-fuzz/run.py`), with the
//! checks for server errors, status codes, content types and response
//! schemas. Schemathesis comes from PyPI at a pinned version, installed once
//! into a virtual environment under `target/api-fuzz/venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Module, Result, build_gatehouse, output, root, sh};

/// The schemathesis release the run is pinned to.
const SCHEMATHESIS: &str = "4.32.5";

/// Test cases per operation in `cargo xtask test` (a bounded run: a few
/// minutes on two cores).
pub(crate) const TEST_EXAMPLES: u32 = 10;

/// The virtual environment with schemathesis, made or updated when it is
/// missing or holds another version.
fn venv() -> Result<PathBuf> {
    let dir = root().join("target/api-fuzz/venv");
    let st = dir.join("bin/st");
    let have = output(Command::new(&st).arg("--version")).unwrap_or_default();
    if !have.trim().ends_with(SCHEMATHESIS) {
        if !dir.join("bin/python").exists() {
            sh(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
        }
        sh(Command::new(dir.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS}"),
        ]))?;
    }
    Ok(dir)
}

/// `cargo xtask api-fuzz`.
pub(crate) fn run(args: &[String]) -> Result {
    let mut examples = 100u32;
    let mut seed = 1u64;
    let mut module: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().ok_or_else(|| format!("{a} takes a value"))?;
        match a.as_str() {
            "--examples" => {
                examples = value
                    .parse()
                    .map_err(|_| format!("--examples {value}: a number"))?;
            }
            "--seed" => {
                seed = value
                    .parse()
                    .map_err(|_| format!("--seed {value}: a number"))?
            }
            // A module built elsewhere (the same bytes `wasm` writes).
            "--module" => module = Some(PathBuf::from(value)),
            other => return Err(format!("api-fuzz: unknown flag {other}")),
        }
    }
    let module = match module {
        Some(path) => Module::at(&path)?,
        None => crate::wasm()?,
    };
    fuzz(&module, examples, seed)
}

/// Builds the host carrying `module` and fuzzes it: `examples` cases per
/// operation and phase.
pub(crate) fn fuzz(module: &Module, examples: u32, seed: u64) -> Result {
    let venv = venv()?;
    build_gatehouse(module, "--quiet")?;
    let root = root();
    let script = root.join("crates/xtask/api-fuzz/run.py");
    let work = root.join("target/api-fuzz/run");
    sh(Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(root.join("target/debug/gatehouse"))
        .arg(&module.path)
        .arg(&root)
        .arg(&work)
        .arg(examples.to_string())
        .arg(seed.to_string()))?;
    println!(
        "api-fuzz: schemathesis {SCHEMATHESIS}, {examples} examples per operation, seed {seed}: no failures (host log {})",
        Path::new(&work).join("host.log").display()
    );
    Ok(())
}
