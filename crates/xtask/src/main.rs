//! Project automation, `cargo xtask <command>`:
//!
//! * `wasm` — builds the engine for wasm32, runs wasm-bindgen, bakes
//!   `policies/` into it: `dist/gatehouse.wasm` and its sha256;
//! * `vectors` — replays every shared vector through native, wasmtime,
//!   Node and Chromium and compares the answers byte for byte;
//! * `bench` — the ratio table (wasmtime/native, batch/single, Node/native,
//!   the in-page Chromium batch, module size);
//! * `www` — builds the pages (`www/dist`, Vite + TypeScript);
//! * `e2e` — the browser tests: the pages against a real host in Chromium;
//! * `types` — `www/src/gen/module.ts`, the TypeScript types of the
//!   module's envelopes and answers, from the Rust types;
//! * `test` — every check CI runs (`.ci/run` calls it);
//! * `run` — the main job;
//! * `dist` — the release binary, carrying the module it was built with;
//! * `bench-host` — real hosts over SQLite and PostgreSQL: changes/s,
//!   latency and lock hold time per change;
//! * `scaling` — the write path simulated at loads this machine cannot make;
//! * `fuzz` — the fuzz targets of `fuzz/` (cargo-fuzz on nightly), 10
//!   minutes each; `test` replays their committed corpus.
//!
//! Every install step (the wasm32 target, wasm-bindgen-cli at the crate's
//! exact version, `npm ci` in `www/`, Debian's `chromium`) is done here,
//! idempotently, so a fresh machine needs nothing by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod api_fuzz;
mod bench;
mod fuzz;
mod scaling;
mod types;
mod vectors;

type Result<T = ()> = std::result::Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("wasm") => wasm().map(|_| ()),
        Some("vectors") => vectors::run(&args[1..]).map(|_| ()),
        // Measured in an optimised build: a debug build would flatter wasm.
        Some("bench") if cfg!(debug_assertions) => sh(cargo().args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "xtask",
            "--",
            "bench",
        ])),
        Some("bench") => bench::run(),
        Some("types") if args.get(1).map(String::as_str) == Some("--check") => types::check(),
        Some("types") => types::write(),
        Some("test") => test(),
        Some("www") => www().map(|_| ()),
        Some("e2e") => e2e(),
        Some("run") => run(&args[1..]),
        Some("dist") => dist(),
        Some("scaling") => scaling::run(&args[1..]),
        Some("bench-host") => bench_host(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("api-fuzz") => api_fuzz::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 wasm      build dist/gatehouse.wasm (engine + policies/) and its sha256\n  \
                 vectors   replay tests/vectors through native, wasmtime, Node and Chromium [--seed N] [--generated N]\n  \
                 bench     print the ratio table (wasmtime/native, batch/single, Node/native, Chromium, size)\n  \
                 www       build the pages (www/dist)\n  \
                 e2e       run the browser tests (pages + real host in Chromium)\n  \
                 types     write www/src/gen/module.ts and api.ts (TypeScript types of the module's and the HTTP API's JSON) [--check]\n  \
                 test      run every check CI runs\n  \
                 run       build the module, pages and host, then `gatehouse serve --demo` [--listen ADDR]\n  \
                 dist      build target/release/gatehouse carrying the module (serves from any directory)\n  \
                 bench-host  real hosts on SQLite and PostgreSQL: changes/s, p50/p99, lock hold [--changes N --clients C --pg URL --only sqlite|postgres]\n  \
                 scaling   simulate the write path at 1x, 10x and 100x load (docs/scaling.md) [--decide-us N ...]\n  \
                 api-fuzz  schemathesis against a live demo host: server errors, statuses, content types, schemas [--examples N] [--seed S] [--module FILE]\n  \
                 fuzz      run the fuzz targets (cargo-fuzz, nightly), 10 minutes each [--target T]... [--minutes M] [--cmin]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs a command in the repository root, echoing it; fails on non-zero exit.
pub(crate) fn sh(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("$ {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.current_dir(root()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The wasm build's flags: `.cargo/config.toml`'s stack size, and the
/// checkout's and cargo's own paths remapped, so the module's bytes (panic
/// locations name source files) and its sha256 are the same from any clone.
fn wasm_rustflags(root: &Path) -> String {
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    format!(
        "-C link-arg=-zstack-size=8388608 --remap-path-prefix={}=/gatehouse --remap-path-prefix={}=/cargo",
        root.display(),
        cargo_home.display()
    )
}

fn ensure_wasm_target() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        sh(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// The `wasm-bindgen` crate version in Cargo.lock: the CLI must match it.
fn bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_owned());
        }
    }
    Err("Cargo.lock names no wasm-bindgen crate".into())
}

fn ensure_wasm_bindgen() -> Result<String> {
    let want = bindgen_version()?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(want.as_str()) {
        eprintln!(
            "installing wasm-bindgen-cli {want} (the wasm-bindgen crate's version; takes a few minutes once)"
        );
        // Not --locked: the CLI's own lock pins a crate that fails to build (FINDINGS.md).
        sh(cargo().args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={want}"),
        ]))?;
    }
    Ok(want)
}

/// `npm ci` in `www/` when `node_modules` is missing or older than the
/// lockfile: the pages, the browser tests and the Chromium replay use it.
pub(crate) fn ensure_npm() -> Result {
    let www = root().join("www");
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(www.join("package-lock.json"));
    let installed = modified(www.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < lock {
        sh(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&www))?;
    }
    Ok(())
}

/// Where the browser tests find Chromium: Debian's package (a test tool's
/// own browser download fails on this network).
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs Debian's `chromium` when it is missing (needs root or sudo).
pub(crate) fn ensure_chromium() -> Result {
    ensure_debian("chromium", CHROMIUM, "the browser tests")
}

/// Debian's cvc5, the SMT solver `gatehouse policy prove` (and publish) runs.
pub(crate) fn ensure_cvc5() -> Result {
    ensure_debian("cvc5", "/usr/bin/cvc5", "the policy proofs")
}

/// Installs Debian's `package` (as root, or with sudo) unless `path` exists.
fn ensure_debian(package: &str, path: &str, why: &str) -> Result {
    if Path::new(path).exists() {
        return Ok(());
    }
    eprintln!("installing Debian's {package} for {why} (once)");
    let root_user = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    let install = ["install", "-y", "--no-install-recommends", package];
    if sh(&mut apt(&install)).is_err() {
        sh(&mut apt(&["update"]))?;
        sh(&mut apt(&install))?;
    }
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!(
            "{path} is still missing after `apt-get install {package}`: install Debian's {package} package"
        ))
    }
}

/// What `wasm` produced.
pub(crate) struct Module {
    pub path: PathBuf,
    pub sha256: String,
    pub policy_hash: String,
    /// Sizes in bytes: raw, gzip -9 and brotli (`.gz`, `.br` beside it).
    pub sizes: Sizes,
}

impl Module {
    /// A module built elsewhere, at `path` (its `.gz`/`.br` beside it, if
    /// any): hashed here; its policy hash is the host's to read.
    pub(crate) fn at(path: &Path) -> Result<Module> {
        use sha2::Digest;
        // The host's build script reads it from another directory.
        let path = &std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size =
            |ext: &str| std::fs::metadata(path.with_extension(ext)).map_or(0, |m| m.len() as usize);
        let sha256 = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Module {
            path: path.to_path_buf(),
            sha256,
            policy_hash: String::new(),
            sizes: Sizes {
                raw: bytes.len(),
                gz: size("wasm.gz"),
                br: size("wasm.br"),
            },
        })
    }
}

/// A module's size raw and as each encoding puts it on the wire.
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    pub raw: usize,
    pub gz: usize,
    pub br: usize,
}

/// Builds the engine module and bakes `policies/` into it.
pub(crate) fn wasm() -> Result<Module> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    let root = root();
    sh(cargo()
        .args([
            "build",
            "--quiet",
            "--package",
            "gatehouse-wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
        ])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            wasm_rustflags(&root),
        ))?;
    let bindgen = root.join("target/bindgen");
    sh(Command::new("wasm-bindgen")
        .args([
            "--target",
            "web",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-name",
            "gatehouse",
            "--out-dir",
        ])
        .arg(&bindgen)
        .arg(root.join("target/wasm32-unknown-unknown/wasm/gatehouse_wasm.wasm")))?;
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    for (from, to) in [
        (bindgen.join("gatehouse.js"), dist.join("gatehouse.js")),
        (bindgen.join("gatehouse.d.ts"), dist.join("gatehouse.d.ts")),
        (
            root.join("crates/wasm/js/loader.mjs"),
            dist.join("loader.mjs"),
        ),
        (
            root.join("crates/wasm/js/loader.d.mts"),
            dist.join("loader.d.mts"),
        ),
    ] {
        std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let started = Instant::now();
    let baked = gatehouse_bake::bake(
        &root.join("policies"),
        &bindgen.join("gatehouse_bg.wasm"),
        &dist.join("gatehouse.wasm"),
    )
    .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let sizes = Sizes {
        raw: baked.size,
        gz: baked.precompressed.gz.len(),
        br: baked.precompressed.br.len(),
    };
    println!(
        "dist/gatehouse.wasm  {} bytes raw, {} gzip -9, {} brotli (.gz and .br beside it)  {} policies, {} actions  baked and compressed in {:.1} s",
        sizes.raw,
        sizes.gz,
        sizes.br,
        baked.report.policies,
        baked.report.actions,
        took.as_secs_f64()
    );
    println!("module sha256  {}", baked.module_sha256);
    println!("policy hash    {}", baked.policy_hash);
    Ok(Module {
        path: baked.path,
        sha256: baked.module_sha256,
        policy_hash: baked.policy_hash,
        sizes,
    })
}

/// The module's brotli size CI refuses to exceed: what a browser downloads
/// (every browser sends `Accept-Encoding: br`; the host serves the `.br`
/// that `wasm` wrote). 847,555 bytes when it was set: about 6 % headroom, a
/// regression guard. The product goal is <= 1,000,000 on the wire, 800,000
/// the stretch (README).
const SIZE_BUDGET_BR: usize = 900_000;

fn test() -> Result {
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    sh(cargo().args(["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]))?;
    ensure_wasm_target()?;
    sh(cargo().args([
        "clippy",
        "--quiet",
        "--package",
        "gatehouse-wasm",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]))?;
    types::check()?;
    // The host's tests ask the built module, so it is built first.
    let module = wasm()?;
    // `gatehouse policy prove` and publish ask cvc5.
    ensure_cvc5()?;
    sh(embedding(cargo().args(["test", "--quiet"]), &module)
        .env("GATEHOUSE_MODULE", &module.path)
        .env_remove("GATEHOUSE_TEST_PG"))?;
    // The host suite again, on PostgreSQL: the same test binaries (no
    // rebuild: the same embedding), each test on a database of its own.
    let pg = postgres_for_tests()?;
    sh(embedding(
        cargo().args(["test", "--quiet", "--package", "gatehouse-host"]),
        &module,
    )
    .env("GATEHOUSE_MODULE", &module.path)
    .env("GATEHOUSE_TEST_PG", &pg))?;
    println!("host suite passed on SQLite and on PostgreSQL ({pg})");
    let Sizes { raw, gz, br } = module.sizes;
    if br > SIZE_BUDGET_BR {
        return Err(format!(
            "the module is {br} bytes under brotli (what browsers download; gzip -9 {gz}, raw {raw}), over the {SIZE_BUDGET_BR} budget"
        ));
    }
    println!(
        "size budget: {br} <= {SIZE_BUDGET_BR} bytes brotli, on the wire (gzip -9 {gz}, raw {raw}; goal <= 1,000,000, stretch <= 800,000)"
    );
    e2e()?;
    // The HTTP API against its generated document, a bounded run.
    api_fuzz::fuzz(&module, api_fuzz::TEST_EXAMPLES, 1)?;
    let count = vectors::run(&[])?;
    println!("vectors: {count} passed, 0 failed");
    Ok(())
}

/// The PostgreSQL server the host suite runs on the second time:
/// `$GATEHOUSE_TEST_PG`, by default the local one. An error, never a skip,
/// when nothing answers there.
fn postgres_for_tests() -> Result<String> {
    let url = std::env::var("GATEHOUSE_TEST_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    // host:port between `@` (or `://`) and the next `/`.
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let addr = rest.split(['/', '?']).next().unwrap_or_default();
    let addr = if addr.contains(':') {
        addr.to_owned()
    } else {
        format!("{addr}:5432")
    };
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok()
        });
    if !reachable {
        return Err(format!(
            "PostgreSQL does not answer at `{addr}` (GATEHOUSE_TEST_PG=`{url}`): the host suite must also pass on PostgreSQL. \
             Start it (`pg_ctlcluster 15 main start`, or `service postgresql start`) with a user that may CREATE DATABASE, \
             or point GATEHOUSE_TEST_PG at one"
        ));
    }
    Ok(url)
}

/// Builds the pages (`www/dist`): type-checks them and bundles them with
/// Vite. Needs `dist/` (the page imports the module's loader).
fn www() -> Result<PathBuf> {
    ensure_npm()?;
    sh(Command::new("npm").args(["run", "--silent", "--prefix", "www", "build"]))?;
    Ok(root().join("www/dist"))
}

/// The end-to-end tests: the pages against a real host on loopback, in
/// Debian's Chromium (screenshots land in `target/screenshots`).
fn e2e() -> Result {
    let module = wasm()?;
    let pages = www()?;
    ensure_chromium()?;
    // The policy editor's test publishes: the host proves with cvc5.
    ensure_cvc5()?;
    build_gatehouse(&module, "--quiet")?;
    let shots = root().join("target/screenshots");
    sh(Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .arg(root().join("www/tests"))
        .env("GATEHOUSE_BIN", root().join("target/debug/gatehouse"))
        .env("GATEHOUSE_MODULE", &module.path)
        .env("GATEHOUSE_WWW", &pages)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", &shots))?;
    println!("browser tests passed; screenshots in {}", shots.display());
    Ok(())
}

/// Makes the `gatehouse` binary that `cmd` builds carry `module` (see
/// `host/build.rs`). Every build of the host here names the same module, so
/// switching between `test`, `e2e` and `run` rebuilds nothing.
fn embedding<'a>(cmd: &'a mut Command, module: &Module) -> &'a mut Command {
    cmd.env("GATEHOUSE_EMBED_MODULE", &module.path)
}

/// Builds the `gatehouse` binary carrying `module`, with one more cargo
/// flag (`--quiet`, `--release`).
pub(crate) fn build_gatehouse(module: &Module, flag: &str) -> Result {
    sh(embedding(
        cargo().args([
            "build",
            flag,
            "--package",
            "gatehouse-host",
            "--bin",
            "gatehouse",
        ]),
        module,
    ))
}

/// The release binary, carrying the module it was built with: it serves
/// from any directory without `--module`.
fn dist() -> Result {
    let module = wasm()?;
    build_gatehouse(&module, "--release")?;
    println!(
        "built {} carrying module sha256 {}: `gatehouse serve --db FILE` serves it from any directory",
        root().join("target/release/gatehouse").display(),
        module.sha256
    );
    Ok(())
}

/// The host bench (`host/examples/bench.rs`): the release binary, then
/// the example in release, which starts that binary as its hosts.
fn bench_host(extra: &[String]) -> Result {
    dist()?;
    sh(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "gatehouse-host",
            "--example",
            "bench",
            "--",
            "--bin",
        ])
        .arg(root().join("target/release/gatehouse"))
        .args(extra))
}

/// The main job: build the module and the host, then serve the demo on an
/// embedded SQLite store (`gatehouse-demo.db` at the repository root).
fn run(extra: &[String]) -> Result {
    // `cargo xtask run -- --listen …` and `cargo xtask run --listen …` both work.
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
    let module = wasm()?;
    let pages = www()?;
    // The policy editor's publish proves with cvc5; the demo runs without it.
    if let Err(e) = ensure_cvc5() {
        eprintln!(
            "warning: {e}: publishing from the policy editor will fail until cvc5 is installed"
        );
    }
    let root = root();
    let db = root.join("gatehouse-demo.db");
    let mut cmd = cargo();
    embedding(&mut cmd, &module);
    cmd.args([
        "run",
        "--package",
        "gatehouse-host",
        "--bin",
        "gatehouse",
        "--",
        "serve",
        "--demo",
    ])
    .arg("--module")
    .arg(&module.path)
    .arg("--db")
    .arg(&db)
    .arg("--www")
    .arg(&pages)
    .arg("--policies")
    .arg(root.join("policies"))
    .arg("--tables")
    .arg(root.join("tests/vectors"))
    .args(extra);
    sh(&mut cmd)
}
