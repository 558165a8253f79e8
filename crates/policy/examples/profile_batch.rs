//! Runs the bench batch (`target/bench/batch.json`, written by `cargo xtask
//! bench`) natively in a loop, for a profiler:
//! `cargo run --release -p gatehouse-policy --example profile_batch`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut bundle = gatehouse_policy::Bundle {
        format: gatehouse_policy::bundle::BUNDLE_FORMAT,
        schema: std::fs::read_to_string(root.join("policies/gatehouse.cedarschema"))?,
        policies: Vec::new(),
    };
    let mut files: Vec<_> = std::fs::read_dir(root.join("policies"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    for path in files {
        bundle.policies.push(gatehouse_policy::PolicyFile {
            file: path.display().to_string(),
            text: std::fs::read_to_string(&path)?,
        });
    }
    let engine = gatehouse_policy::Engine::from_bundle_bytes(&bundle.to_bytes())?;
    let batch = std::fs::read(root.join("target/bench/batch.json"))?;
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += gatehouse_policy::json::handle(Some(&engine), &batch).len();
    }
    println!(
        "{:.2} ms per batch ({bytes} bytes out)",
        start.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _ = gatehouse_policy::json::parse_envelope(&batch)?;
    }
    println!(
        "parse {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let env = gatehouse_policy::json::parse_envelope(&batch)?;
    let t = std::time::Instant::now();
    let mut ans = None;
    for _ in 0..n {
        ans = Some(gatehouse_policy::json::answer(Some(&engine), &env));
    }
    println!(
        "answer {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _ = serde_json::to_vec(&ans);
    }
    println!(
        "serialize {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    if let gatehouse_policy::json::Envelope::Batch(b) = &env {
        let mut one = b.clone();
        one.targets.truncate(1);
        one.actions.truncate(1);
        let t = std::time::Instant::now();
        for _ in 0..n {
            let _ = engine.allowed_actions(&one);
        }
        println!(
            "world build + 1 cell {:.3} ms",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
    Ok(())
}
