//! Embeds a policy module in the `gatehouse` binary when
//! `GATEHOUSE_EMBED_MODULE` names one at build time (`cargo xtask dist`,
//! `cargo xtask run` and `cargo xtask test` do), with the `.br`/`.gz` copies
//! `cargo xtask wasm` writes beside it. Why: a released binary must serve
//! from any directory with the module it was built and tested with; without
//! the variable the files are empty and the binary asks for `--module`.

// A build script fails by panicking: cargo prints the message.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-env-changed=GATEHOUSE_EMBED_MODULE");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let module = std::env::var_os("GATEHOUSE_EMBED_MODULE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    for ext in ["", ".br", ".gz"] {
        let bytes = match &module {
            Some(path) => {
                let file = with_ext(path, ext);
                println!("cargo::rerun-if-changed={}", file.display());
                match std::fs::read(&file) {
                    Ok(bytes) => bytes,
                    // The module itself must be there; its copies may not be
                    // (the host compresses at start then).
                    Err(_) if !ext.is_empty() => Vec::new(),
                    Err(e) => panic!(
                        "GATEHOUSE_EMBED_MODULE names `{}`, which cannot be read ({e}): build it with `cargo xtask wasm` or unset the variable",
                        file.display()
                    ),
                }
            }
            None => Vec::new(),
        };
        std::fs::write(out.join(format!("module.wasm{ext}")), bytes).expect("OUT_DIR is writable");
    }
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}
