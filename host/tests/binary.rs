//! The `gatehouse` binary on its own, run from a directory that holds
//! nothing of the checkout: built with `GATEHOUSE_EMBED_MODULE` (as `cargo
//! xtask test`, `run` and `dist` build it) it serves the module it carries;
//! built without, it refuses to start and says how to name a module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::TempDir;
use sha2::{Digest, Sha256};

/// `gatehouse serve` in an empty directory, no `--module`, no
/// `GATEHOUSE_MODULE`: until it says it listens or exits, (lines, exited).
fn serve_elsewhere(dir: &TempDir) -> (Vec<String>, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--db", "g.db", "--listen", "127.0.0.1:0"])
        .current_dir(&dir.0)
        .env_remove("GATEHOUSE_MODULE")
        .env_remove("GATEHOUSE_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut listening = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        listening = line.starts_with("gatehouse listening on");
        lines.push(line);
        if listening {
            break;
        }
    }
    if listening {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    lines.extend(err.lines().map(str::to_owned));
    (lines, !listening && status.code().is_some())
}

#[test]
fn the_binary_serves_the_module_it_carries_from_any_directory() {
    let dir = TempDir::new();
    let (lines, exited) = serve_elsewhere(&dir);
    let text = lines.join("\n");
    match option_env!("GATEHOUSE_EMBED_MODULE").filter(|p| !p.is_empty()) {
        Some(module) => {
            let sha = hex(&Sha256::digest(std::fs::read(module).unwrap()));
            assert!(!exited, "it should serve:\n{text}");
            assert!(
                text.contains(&format!("(module sha256 {sha},")),
                "it should serve the module it was built with ({sha}):\n{text}"
            );
        }
        None => {
            assert!(exited, "without a module it must not serve:\n{text}");
            assert!(
                text.contains("this binary carries no module") && text.contains("--module"),
                "the refusal should say how to name a module:\n{text}"
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
