//! Prints every answer the native engine gives to the hand vectors, the
//! generated vectors (`seed`, `count`: arguments, default 7 and 3000),
//! their minimize questions and answers, and those vectors widened into
//! batches over every target of their kind: one line per answer, to diff
//! the engine's answers before and after a change.

use std::io::Write;
use std::path::Path;

use gatehouse_policy::json::{self, Envelope};

fn main() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let (engine, _) = gatehouse_vectors::native_engine(&root.join("policies"))?;
    let mut vectors = gatehouse_vectors::load_hand(&root.join("tests/vectors"))?;
    vectors.extend(gatehouse_vectors::generate::generate(&engine, seed, count));
    let mut inputs: Vec<Vec<u8>> = vectors.iter().map(|v| v.input.clone()).collect();
    for twin in gatehouse_vectors::minimized(&engine, &vectors) {
        inputs.push(twin.ask.input);
        inputs.push(twin.question.input);
    }
    for v in &vectors {
        if let Ok(Envelope::Authorize(check)) = json::parse_envelope(&v.input) {
            let batch = gatehouse_vectors::widened(check);
            inputs.push(serde_json::to_vec(&Envelope::Batch(batch)).map_err(|e| e.to_string())?);
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for input in &inputs {
        out.write_all(&json::handle(Some(&engine), input))
            .map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    eprintln!("{} answers", inputs.len());
    Ok(())
}
