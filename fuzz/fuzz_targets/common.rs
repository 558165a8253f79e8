//! What every target shares: the real policies, loaded once.

use std::sync::OnceLock;

use gatehouse_vectors::fuzz::Harness;

/// The engine with `policies/` and its schema.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        match Harness::from_policies(&dir) {
            Ok(h) => h,
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    })
}

/// Fails the run (a crash for libFuzzer) with what went wrong.
pub fn ok<T>(result: Result<T, String>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
