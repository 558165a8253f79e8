//! Prints every answer the native engine gives to the hand vectors, the
//! generated vectors (`seed`, `count`: arguments, default 7 and 3000),
//! their minimize questions and answers, and those vectors widened into
//! batches over every target of their kind: one line per answer, to diff
//! the engine's answers before and after a change.

use std::io::Write;
use std::path::Path;

use gatehouse_policy::json::{self, Envelope};
use gatehouse_policy::{ActionCall, Batch, Target};

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
            let f = &check.facts;
            let targets: Vec<Target> = match &check.target {
                Target::Account(_) => f
                    .accounts
                    .iter()
                    .map(|a| Target::Account(a.id.clone()))
                    .collect(),
                Target::User(_) => f.users.iter().map(|u| Target::User(u.id.clone())).collect(),
                Target::Membership { .. } => f
                    .memberships
                    .iter()
                    .map(|m| Target::Membership {
                        account: m.account.clone(),
                        user: m.user.clone(),
                    })
                    .collect(),
                Target::Invitation(_) => f
                    .invitations
                    .iter()
                    .map(|i| Target::Invitation(i.id.clone()))
                    .collect(),
                Target::OwnerRemovalRequest(_) => f
                    .owner_removal_requests
                    .iter()
                    .map(|r| Target::OwnerRemovalRequest(r.id.clone()))
                    .collect(),
                Target::Device(_) => f
                    .devices
                    .iter()
                    .map(|d| Target::Device(d.id.clone()))
                    .collect(),
            };
            let batch = Batch {
                facts: check.facts.clone(),
                actor: check.actor.clone(),
                targets,
                actions: vec![ActionCall {
                    action: check.action.clone(),
                    params: check.params.clone(),
                }],
                source: check.source,
            };
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
