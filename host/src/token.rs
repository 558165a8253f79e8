//! Secrets: random tokens, and the hashes that are all the store keeps.

use sha2::{Digest, Sha256};

/// `bytes` random bytes from the OS, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // Without the OS generator no secret can be made safely; there is no
    // fallback worth having (Linux's getrandom does not fail after boot).
    if getrandom::fill(&mut buf).is_err() {
        std::process::abort();
    }
    gatehouse_policy::engine::hex(&buf)
}

/// A new secret token with a readable prefix, e.g. `ghs_…`.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(24))
}

/// A new opaque id, e.g. `inv_…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(8))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    gatehouse_policy::engine::hex(&Sha256::digest(secret.as_bytes()))
}
