//! Facts to Cedar entities: the input is a facts document; every envelope
//! the harness makes of it (batches per target kind, a minimize, single
//! checks) is answered, and each answer checked.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = common::harness();
    for envelope in harness.facts_envelopes(data) {
        common::ok(harness.module_json(&envelope));
    }
});
