//! The policy-bundle loader: the input as a bundle, or as policy text in a
//! bundle with the real schema; loaded (`gatehouse_load`), linted
//! (`checkPolicies`), checked strictly (publish), and the module section
//! reader over the same bytes.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = common::harness();
    for bundle in harness.bundles(data) {
        common::ok(harness.bundle_native(&bundle));
    }
});
