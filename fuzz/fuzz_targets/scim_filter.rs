//! The SCIM filter parser (`crates/scim-filter`, what the host's
//! `/scim/v2/Users?filter=` uses): a filter or an error with its position,
//! and a filter written back parses to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = gatehouse_vectors::fuzz::scim_filter(data) {
        panic!("{e}");
    }
});
