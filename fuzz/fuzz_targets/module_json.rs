//! The module's JSON boundary: the input is handed to `json::handle` exactly
//! as `gatehouse_call` and wasm-bindgen's `call` receive bytes; the answer
//! must be an error value or a decision of the right shape.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::ok(common::harness().module_json(data));
});
