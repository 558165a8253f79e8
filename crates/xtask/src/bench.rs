//! `cargo xtask bench`: ratios measured in one run on this machine. Times
//! are the best of several rounds, so a busy core skews them less; the
//! ratios are what the targets are about.

use std::time::Instant;

use gatehouse_policy::json;
use serde_json::{Value, json};

use crate::{Result, root, wasm};

/// One account with `members` members of every role and status, some
/// owning resources: what a users page asks about. The 12 actions are the
/// users page's member actions (`member_actions()` in host/src/read.rs), in
/// its order.
fn scenario(members: usize) -> (Value, Vec<Value>, Vec<Value>) {
    let roles = ["owner", "admin", "standard", "basic"];
    let mut users = vec![];
    let mut memberships = vec![];
    let mut resources = vec![];
    for i in 0..members {
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
        "accounts": [{"id": "agency", "name": "Agency", "included_seats": 10}, {"id": "acct", "name": "Bench Account", "parent": "agency", "included_seats": members + 10, "extra_seats": 5}],
        "users": users, "memberships": memberships, "resources": resources,
    });
    let targets = (0..members.min(50))
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

/// One row of the table: a figure, its goal (same unit) and the ratio.
struct Rows(Vec<[String; 4]>);

impl Rows {
    /// A figure in `unit`, with its goal when it has one.
    fn add(&mut self, what: &str, value: f64, unit: &str, goal: Option<f64>) {
        let show = |v: f64| match unit {
            "x" => format!("{v:.2}x"),
            "B" => format!("{v:.0} B"),
            _ if v >= 100.0 => format!("{v:.0} {unit}"),
            _ => format!("{v:.2} {unit}"),
        };
        let (goal, ratio) = match goal {
            Some(g) => (
                format!("<= {}", show(g)),
                format!(
                    "{:.2} {}",
                    value / g,
                    if value <= g { "met" } else { "NOT met" }
                ),
            ),
            None => (String::new(), String::new()),
        };
        self.0.push([what.to_owned(), show(value), goal, ratio]);
    }

    fn print(&self) {
        let width = |i: usize| {
            self.0
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let w = [
            width(0).max(7),
            width(1).max(5),
            width(2).max(4),
            width(3).max(13),
        ];
        let line = |r: [&str; 4]| {
            println!(
                "| {:<a$} | {:>b$} | {:<c$} | {:<d$} |",
                r[0],
                r[1],
                r[2],
                r[3],
                a = w[0],
                b = w[1],
                c = w[2],
                d = w[3]
            )
        };
        line(["measure", "value", "goal", "value / goal"]);
        println!(
            "|{}|{}|{}|{}|",
            "-".repeat(w[0] + 2),
            "-".repeat(w[1] + 2),
            "-".repeat(w[2] + 2),
            "-".repeat(w[3] + 2)
        );
        for r in &self.0 {
            line([&r[0], &r[1], &r[2], &r[3]]);
        }
    }
}

/// A single `remove_member` check on an account of `members` members.
fn single_check(members: usize) -> Result<Vec<u8>> {
    let (facts, _, _) = scenario(members);
    serde_json::to_vec(&json!({
        "op": "authorize", "facts": facts, "actor": {"user": "u0"}, "action": "remove_member",
        "target": {"membership": {"account": "acct", "user": "u5"}}, "source": "ui"}))
    .map_err(|e| e.to_string())
}

/// Issue 14's large account: the Users page of a 1,000-member account
/// asked in one batch, every member × 13 actions (the 12 of [`scenario`]
/// and `reassign_resources` to the actor, a member-targeted action the
/// page could offer). Built, checked alike natively and in wasmtime, timed
/// there, and written to `dir/large.json` for Node and the Chromium page.
struct Large {
    native_ms: f64,
    wasmtime_ms: f64,
    /// The native answer's cells, allowed cells and bytes (what the page's
    /// answer must match).
    cells: usize,
    allowed: usize,
    bytes: usize,
}

impl Large {
    const MEMBERS: usize = 1_000;
    const ACTIONS: usize = 13;

    fn measure(
        engine: &gatehouse_policy::Engine,
        runner: &gatehouse_runner::Runner,
        dir: &std::path::Path,
    ) -> Result<Large> {
        let (facts, _, mut actions) = scenario(Self::MEMBERS);
        actions.push(json!({"action": "reassign_resources", "params": {"to": "u0"}}));
        let targets: Vec<Value> = (0..Self::MEMBERS)
            .map(|i| json!({"membership": {"account": "acct", "user": format!("u{i}")}}))
            .collect();
        let batch = serde_json::to_vec(&json!({
            "op": "batch", "facts": facts, "actor": {"user": "u0"}, "targets": targets,
            "actions": actions, "source": "ui"}))
        .map_err(|e| e.to_string())?;
        let native = json::handle(Some(engine), &batch);
        if runner.call(&batch).ok().as_ref() != Some(&native) {
            return Err("the 1,000 x 13 batch answers unlike natively in wasmtime".into());
        }
        let answer: Value = serde_json::from_slice(&native).map_err(|e| e.to_string())?;
        let cells: Vec<&Value> = answer["batch"]["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .collect();
        if answer["type"] != "success" || cells.len() != Self::MEMBERS * Self::ACTIONS {
            return Err(format!(
                "the 1,000 x 13 batch: {} cells, {}",
                cells.len(),
                answer["type"]
            ));
        }
        std::fs::write(dir.join("large.json"), &batch).map_err(|e| e.to_string())?;
        Ok(Large {
            native_ms: time(3, 3, || drop(json::handle(Some(engine), &batch))) / 1e3,
            wasmtime_ms: time(3, 3, || drop(runner.call(&batch))) / 1e3,
            cells: cells.len(),
            allowed: cells.iter().filter(|c| c["allowed"] == true).count(),
            bytes: native.len(),
        })
    }

    /// Its rows, with Node's and the page's figures (checked against the
    /// native answer).
    fn rows(&self, node: &Value, page: &Value, rows: &mut Rows) -> Result {
        let figure = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        if figure(&page["large_cells"]) != self.cells as f64
            || figure(&page["large_allowed"]) != self.allowed as f64
            || figure(&page["large_bytes"]) != self.bytes as f64
        {
            return Err(format!(
                "in the page, the 1,000 x 13 batch answers unlike natively ({} cells, {} allowed, {} bytes): {page}",
                self.cells, self.allowed, self.bytes
            ));
        }
        rows.add(
            "1,000x13 batch, chromium page (warm)",
            figure(&page["large_batch_ms"]),
            "ms",
            Some(40.0),
        );
        rows.add(
            "1,000x13 batch, chromium page, evaluate (JS objects, as the pages ask)",
            figure(&page["large_evaluate_ms"]),
            "ms",
            None,
        );
        rows.add("1,000x13 batch, native (warm)", self.native_ms, "ms", None);
        rows.add(
            "1,000x13 batch, wasmtime (warm)",
            self.wasmtime_ms,
            "ms",
            None,
        );
        rows.add(
            "1,000x13 batch, node (warm)",
            figure(&node["large_batch_us"]) / 1e3,
            "ms",
            None,
        );
        Ok(())
    }
}

pub(crate) fn run() -> Result {
    let module = wasm()?;
    let bundle_bytes = gatehouse_vectors::native_engine(&root().join("policies"))?.1;
    let cold_native = Instant::now();
    let engine =
        gatehouse_policy::Engine::from_bundle_bytes(&bundle_bytes).map_err(|e| e.to_string())?;
    let single = single_check(50)?;
    drop(json::handle(Some(&engine), &single));
    let native_cold = cold_native.elapsed().as_secs_f64() * 1e3;
    let module_bytes = std::fs::read(&module.path).map_err(|e| e.to_string())?;
    let cold_wasmtime = Instant::now();
    let runner = gatehouse_runner::Runner::new(&module_bytes).map_err(|e| e.to_string())?;
    drop(runner.call(&single));
    let wasmtime_cold = cold_wasmtime.elapsed().as_secs_f64() * 1e3;
    let (facts, targets, actions) = scenario(50);
    let single_1000 = single_check(1_000)?;
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
    for input in [&single, &single_1000, &batch] {
        let native = json::handle(Some(&engine), input);
        if !wasm_ok(&native) || runner.call(input).ok() != Some(native) {
            return Err("a bench question does not succeed alike natively and in wasmtime".into());
        }
    }

    let native_single = time(5, 300, || drop(json::handle(Some(&engine), &single)));
    let wasmtime_single = time(5, 300, || drop(runner.call(&single)));
    let native_single_1000 = time(5, 100, || drop(json::handle(Some(&engine), &single_1000)));
    let wasmtime_single_1000 = time(5, 100, || drop(runner.call(&single_1000)));
    // The engine alone, on facts already parsed: what the lazy world costs.
    let parsed = json::parse_envelope(&single).map_err(|e| e.to_string())?;
    let parsed_1000 = json::parse_envelope(&single_1000).map_err(|e| e.to_string())?;
    let engine_single = time(5, 300, || drop(json::answer(Some(&engine), &parsed)));
    let engine_single_1000 = time(5, 100, || drop(json::answer(Some(&engine), &parsed_1000)));
    let parse_1000 = time(5, 100, || drop(json::parse_envelope(&single_1000)));
    let native_batch = time(5, 10, || drop(json::handle(Some(&engine), &batch)));
    let wasmtime_batch = time(5, 10, || drop(runner.call(&batch)));
    let mut unmemoized =
        gatehouse_policy::Engine::from_bundle_bytes(&bundle_bytes).map_err(|e| e.to_string())?;
    unmemoized.set_memo(gatehouse_policy::Memo::Off);
    let native_batch_no_memo = time(5, 10, || drop(json::handle(Some(&unmemoized), &batch)));

    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("single.json"), &single).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("batch.json"), &batch).map_err(|e| e.to_string())?;
    let large = Large::measure(&engine, &runner, &dir)?;
    let out = std::process::Command::new("node")
        .arg(root().join("tests/node/bench.mjs"))
        .arg(&module.path)
        .arg(dir.join("single.json"))
        .arg(dir.join("batch.json"))
        .arg(dir.join("large.json"))
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
        .arg(dir.join("large.json"))
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
    let page_single = page["single_us"].as_f64().unwrap_or(f64::NAN);
    let page_ratio = page["ratio"].as_f64().unwrap_or(f64::NAN);
    let page_first = page["first_call_ms"].as_f64().unwrap_or(f64::NAN);

    let sizes = module.sizes;
    println!(
        "\nOne account, 50 members x 12 actions (the users page); single = one remove_member check\n\
         with the same facts (JSON in -> JSON out) or on a 1,000-member account; warm = best of 5\n\
         rounds after warm-up, cold = from the module's (policies') bytes to the first answer;\n\
         chromium = in a page ({}); 1,000x13 = every member of a 1,000-member account x those 12\n\
         and reassign_resources (a large account's Users page asked at once).\n",
        page["chromium"].as_str().unwrap_or("?")
    );
    let mut rows = Rows(Vec::new());
    rows.add(
        "50x12 batch, native (warm)",
        native_batch / 1e3,
        "ms",
        Some(2.0),
    );
    rows.add(
        "50x12 batch, wasmtime (warm)",
        wasmtime_batch / 1e3,
        "ms",
        Some(2.0),
    );
    rows.add(
        "50x12 batch, node (warm)",
        node_batch / 1e3,
        "ms",
        Some(2.0),
    );
    rows.add(
        "50x12 batch, chromium page (warm)",
        page_batch,
        "ms",
        Some(2.0),
    );
    large.rows(&node, &page, &mut rows)?;
    rows.add(
        "50x12 batch, native, memo off (warm)",
        native_batch_no_memo / 1e3,
        "ms",
        None,
    );
    rows.add(
        "single, 50 members, native (warm)",
        native_single,
        "us",
        Some(50.0),
    );
    rows.add(
        "single, 1,000 members, native (warm)",
        native_single_1000,
        "us",
        Some(100.0),
    );
    rows.add(
        "single, 50 members, native engine on parsed facts",
        engine_single,
        "us",
        Some(50.0),
    );
    rows.add(
        "single, 1,000 members, native engine on parsed facts",
        engine_single_1000,
        "us",
        Some(100.0),
    );
    rows.add(
        "parsing the 1,000-member question's JSON, native",
        parse_1000,
        "us",
        None,
    );
    rows.add(
        "single, 50 members, wasmtime (warm)",
        wasmtime_single,
        "us",
        None,
    );
    rows.add(
        "single, 1,000 members, wasmtime (warm)",
        wasmtime_single_1000,
        "us",
        None,
    );
    rows.add("single, 50 members, node (warm)", node_single, "us", None);
    rows.add(
        "single, 50 members, chromium page (warm)",
        page_single,
        "us",
        None,
    );
    rows.add(
        "wasmtime / native, single (warm)",
        wasmtime_single / native_single,
        "x",
        Some(1.3),
    );
    rows.add(
        "wasmtime / native, single 1,000 (warm)",
        wasmtime_single_1000 / native_single_1000,
        "x",
        Some(1.3),
    );
    rows.add(
        "wasmtime / native, 50x12 batch (warm)",
        wasmtime_batch / native_batch,
        "x",
        Some(1.3),
    );
    rows.add(
        "node / native, single (warm)",
        node_single / native_single,
        "x",
        None,
    );
    rows.add(
        "node / native, 50x12 batch (warm)",
        node_batch / native_batch,
        "x",
        None,
    );
    rows.add(
        "batch per cell / single, native",
        native_batch / cells / native_single,
        "x",
        Some(0.5),
    );
    rows.add(
        "batch per cell / single, wasmtime",
        wasmtime_batch / cells / wasmtime_single,
        "x",
        Some(0.5),
    );
    rows.add(
        "chromium batch / 600 single calls",
        page_ratio,
        "x",
        Some(0.5),
    );
    rows.add(
        "native, load + first single (cold)",
        native_cold,
        "ms",
        None,
    );
    rows.add(
        "wasmtime, compile + load + first single (cold)",
        wasmtime_cold,
        "ms",
        None,
    );
    rows.add(
        "node, load + first single (cold)",
        node_first,
        "ms",
        Some(50.0),
    );
    rows.add(
        "chromium, load + first single (cold)",
        page_first,
        "ms",
        Some(50.0),
    );
    rows.add(
        "wasmtime / native, first single (cold)",
        wasmtime_cold / native_cold,
        "x",
        None,
    );
    rows.add(
        "node / native, first single (cold)",
        node_first / native_cold,
        "x",
        None,
    );
    rows.add("module size raw", sizes.raw as f64, "B", None);
    rows.add("module size gzip -9", sizes.gz as f64, "B", None);
    rows.add(
        "module size brotli (on the wire)",
        sizes.br as f64,
        "B",
        Some(1_000_000.0),
    );
    rows.print();
    Ok(())
}
