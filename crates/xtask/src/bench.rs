//! `cargo xtask bench`: ratios measured in one run on this machine. Times
//! are the best of several rounds, so a busy core skews them less; the
//! ratios are what the targets are about.

use std::time::Instant;

use gatehouse_policy::json;
use serde_json::{Value, json};

use crate::{Result, root, wasm};

/// One account with 50 members of every role and status, some owning
/// resources, some invitations: what a users page asks about. The 12
/// actions are the users page's member actions (`member_actions()` in
/// host/src/read.rs), in its order.
fn scenario() -> (Value, Vec<Value>, Vec<Value>) {
    let roles = ["owner", "admin", "standard", "basic"];
    let mut users = vec![];
    let mut memberships = vec![];
    let mut resources = vec![];
    for i in 0..50 {
        users.push(json!({"id": format!("u{i}"), "email": format!("u{i}@bench.test"), "name": format!("User {i}")}));
        let role = if i < 3 { "owner" } else { roles[1 + i % 3] };
        let status = if i % 9 == 8 { "suspended" } else { "active" };
        memberships.push(json!({"user": format!("u{i}"), "account": "acct", "role": role, "status": status, "managed_by_idp": i % 11 == 10}));
        if i % 7 == 6 {
            resources.push(json!({"id": format!("n{i}"), "kind": "number", "account": "acct", "owner": format!("u{i}")}));
        }
    }
    let facts = json!({
        "now": 1_767_225_600,
        "accounts": [{"id": "agency", "name": "Agency", "included_seats": 10}, {"id": "acct", "name": "Bench Account", "parent": "agency", "included_seats": 60, "extra_seats": 5}],
        "users": users, "memberships": memberships, "resources": resources,
    });
    let targets = (0..50)
        .map(|i| json!({"membership": {"account": "acct", "user": format!("u{i}")}}))
        .collect();
    let actions = vec![
        json!({"action": "edit_nickname"}),
        json!({"action": "change_role", "params": {"role": "owner"}}),
        json!({"action": "change_role", "params": {"role": "admin"}}),
        json!({"action": "change_role", "params": {"role": "standard"}}),
        json!({"action": "change_role", "params": {"role": "basic"}}),
        json!({"action": "suspend"}),
        json!({"action": "unsuspend"}),
        json!({"action": "remove_member"}),
        json!({"action": "request_owner_removal", "params": {"role": "admin"}}),
        json!({"action": "request_owner_removal", "params": {"role": "none"}}),
        json!({"action": "step_down", "params": {"role": "admin"}}),
        json!({"action": "leave"}),
    ];
    (facts, targets, actions)
}

/// Best per-iteration time in microseconds over `rounds` rounds of `iters`.
fn time(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters.min(20) {
        f();
    }
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

pub(crate) fn run() -> Result {
    let module = wasm()?;
    let (engine, _) = gatehouse_vectors::native_engine(&root().join("policies"))?;
    let runner = gatehouse_runner::Runner::from_file(&module.path).map_err(|e| e.to_string())?;
    let (facts, targets, actions) = scenario();
    let single = serde_json::to_vec(&json!({
        "op": "authorize", "facts": facts, "actor": {"user": "u0"}, "action": "remove_member",
        "target": {"membership": {"account": "acct", "user": "u5"}}, "source": "ui"}))
    .map_err(|e| e.to_string())?;
    let batch = serde_json::to_vec(&json!({
        "op": "batch", "facts": facts, "actor": {"user": "u0"}, "targets": targets, "actions": actions, "source": "ui"}))
    .map_err(|e| e.to_string())?;
    // The batch's questions one by one, target-major (the order of its cells).
    let mut singles = Vec::new();
    for target in &targets {
        for action in &actions {
            let mut check = json!({
                "op": "authorize", "facts": facts, "actor": {"user": "u0"},
                "action": action["action"], "target": target, "source": "ui"});
            if let Some(params) = action.get("params") {
                check["params"] = params.clone();
            }
            singles.extend(serde_json::to_vec(&check).map_err(|e| e.to_string())?);
            singles.push(b'\n');
        }
    }
    let cells = 50.0 * 12.0;
    if targets.len() * actions.len() != 600 {
        return Err(format!(
            "the bench batch is {} x {}, not 50 x 12",
            targets.len(),
            actions.len()
        ));
    }
    let wasm_ok = |out: &[u8]| out.starts_with(br#"{"type":"success""#);
    if !wasm_ok(&json::handle(Some(&engine), &batch))
        || !runner.call(&batch).is_ok_and(|o| wasm_ok(&o))
    {
        return Err("the bench batch does not succeed".into());
    }

    let native_single = time(5, 300, || drop(json::handle(Some(&engine), &single)));
    let wasmtime_single = time(5, 300, || drop(runner.call(&single)));
    let native_batch = time(5, 10, || drop(json::handle(Some(&engine), &batch)));
    let wasmtime_batch = time(5, 10, || drop(runner.call(&batch)));

    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("single.json"), &single).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("batch.json"), &batch).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("node")
        .arg(root().join("tests/node/bench.mjs"))
        .arg(&module.path)
        .arg(dir.join("single.json"))
        .arg(dir.join("batch.json"))
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let node: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let node_single = node["single_us"].as_f64().unwrap_or(f64::NAN);
    let node_batch = node["batch_us"].as_f64().unwrap_or(f64::NAN);
    let node_first = node["first_call_ms"].as_f64().unwrap_or(f64::NAN);

    crate::ensure_npm()?;
    crate::ensure_chromium()?;
    std::fs::write(dir.join("singles.jsonl"), &singles).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("node")
        .arg(root().join("tests/browser/bench.mjs"))
        .arg(&module.path)
        .arg(dir.join("singles.jsonl"))
        .arg(dir.join("batch.json"))
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "chromium bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let page: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    if page["cells"].as_f64() != Some(cells) || page["batch_disagrees_with_singles"] != 0 {
        return Err(format!(
            "in the page, the batch and the single calls disagree: {page}"
        ));
    }
    let page_batch = page["batch_ms"].as_f64().unwrap_or(f64::NAN);
    let page_singles = page["singles_ms"].as_f64().unwrap_or(f64::NAN);
    let page_single = page["single_us"].as_f64().unwrap_or(f64::NAN);
    let page_ratio = page["ratio"].as_f64().unwrap_or(f64::NAN);
    let page_first = page["first_call_ms"].as_f64().unwrap_or(f64::NAN);
    let mark = |ok: bool| if ok { "✓" } else { "✗" };

    let sizes = module.sizes;
    let row = |what: &str, value: String, target: &str| {
        println!("| {what:<52} | {value:>22} | {target:<14} |")
    };
    println!(
        "\nOne account, 50 members x 12 actions; single = one remove_member check with the same facts;\n\
         chromium = in a page ({}), 600 single calls = the batch's questions one by one.\n",
        page["chromium"].as_str().unwrap_or("?")
    );
    println!("| {:<52} | {:>22} | {:<14} |", "measure", "value", "target");
    println!("|{}|{}|{}|", "-".repeat(54), "-".repeat(24), "-".repeat(16));
    row(
        "native single decision (JSON in -> JSON out)",
        format!("{native_single:.1} us"),
        "",
    );
    row(
        "wasmtime single decision",
        format!("{wasmtime_single:.1} us"),
        "",
    );
    row(
        "wasmtime / native, single decision",
        format!("{:.2}x", wasmtime_single / native_single),
        "<= 1.3x",
    );
    row(
        "native 50x12 batch",
        format!("{:.2} ms", native_batch / 1000.0),
        "",
    );
    row(
        "wasmtime 50x12 batch",
        format!("{:.2} ms", wasmtime_batch / 1000.0),
        "",
    );
    row(
        "wasmtime / native, 50x12 batch",
        format!("{:.2}x", wasmtime_batch / native_batch),
        "<= 1.3x",
    );
    row(
        "batch per-decision / single call (wasmtime)",
        format!("{:.3}", wasmtime_batch / cells / wasmtime_single),
        "<= 0.5",
    );
    row(
        "batch per-decision / single call (native)",
        format!("{:.3}", native_batch / cells / native_single),
        "<= 0.5",
    );
    row(
        "node single decision (warm)",
        format!("{node_single:.1} us"),
        "",
    );
    row(
        "node 50x12 batch (warm)",
        format!("{:.2} ms", node_batch / 1000.0),
        "<= 2 ms",
    );
    row(
        "node / native, single decision",
        format!("{:.2}x", node_single / native_single),
        "",
    );
    row(
        "node / native, 50x12 batch",
        format!("{:.2}x", node_batch / native_batch),
        "",
    );
    row(
        "node first decision after load (cold)",
        format!("{node_first:.1} ms"),
        "",
    );
    row(
        "chromium batch 50×12 (in page)",
        format!("{page_batch:.2} ms"),
        &format!("<= 2 ms {}", mark(page_batch <= 2.0)),
    );
    row(
        "chromium 600 single calls",
        format!("{page_singles:.1} ms, {page_single:.0} us each"),
        "",
    );
    row(
        "chromium batch/single ratio",
        format!("{page_ratio:.3}"),
        &format!("<= 0.5 {}", mark(page_ratio <= 0.5)),
    );
    row(
        "chromium first decision after load (cold)",
        format!("{page_first:.1} ms"),
        "",
    );
    row("module size raw", format!("{} bytes", sizes.raw), "");
    row("module size gzip -9", format!("{} bytes", sizes.gz), "");
    row(
        "module size brotli (on the wire)",
        format!("{} bytes", sizes.br),
        &format!("<= 1,000,000 {}", mark(sizes.br <= 1_000_000)),
    );
    Ok(())
}
