//! The one Gatehouse WebAssembly module: a thin shim over `gatehouse-policy`.
//!
//! Two doors to the same function ([`gatehouse_policy::json::handle`]):
//!
//! * a **raw ABI** for wasmtime (and any host without JS glue), versioned
//!   like OPA's `opa_wasm_abi_version`: `gatehouse_abi_version`,
//!   `gatehouse_alloc`/`gatehouse_free`, `gatehouse_load` and `gatehouse_call`
//!   take a pointer and length of JSON and return `(ptr << 32) | len` of the
//!   JSON answer, valid until the next call;
//! * a **wasm-bindgen** API for Node and browsers: `loadPolicies(bytes)`,
//!   `call(json)` (the same bytes as the raw ABI), `evaluate(object)` (JS
//!   objects through serde-wasm-bindgen) and `checkPolicies(bytes)` (a
//!   bundle's lint, for the policy editor).
//!
//! The module has no clock, no randomness and no import that carries logic:
//! `now` and every fact are inputs. The policies travel in the module's own
//! `gatehouse.policies` custom section; a host reads that section and hands
//! it to `gatehouse_load`/`loadPolicies` once per instance, and the engine
//! stays resident until the next load replaces it whole.

use std::cell::RefCell;

use gatehouse_policy::Engine;
use gatehouse_policy::json::{self, Answer, Envelope};
use wasm_bindgen::prelude::*;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Loads a policy bundle, replacing the resident engine only on success.
/// Answers with `info` (the new policy hash) or a failure.
fn load(bundle: &[u8]) -> Vec<u8> {
    let (engine, answer) = json::load(bundle);
    if let Some(engine) = engine {
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
    }
    answer
}

fn call_bytes(input: &[u8]) -> Vec<u8> {
    ENGINE.with(|e| json::handle(e.borrow().as_ref(), input))
}

// ------------------------------------------------------------------ raw ABI

/// The raw ABI: every `unsafe` of the module lives here.
#[expect(
    unsafe_code,
    reason = "exporting a C ABI needs no_mangle and raw pointers"
)]
mod abi {
    use super::{OUTPUT, call_bytes, load};

    fn stash(answer: Vec<u8>) -> u64 {
        OUTPUT.with(|o| {
            let mut out = o.borrow_mut();
            *out = answer;
            // wasm32 pointers and lengths fit in 32 bits.
            ((out.as_ptr() as u64) << 32) | (out.len() as u64)
        })
    }

    /// # Safety
    /// `ptr..ptr+len` must be memory the host wrote after `gatehouse_alloc`.
    unsafe fn input<'a>(ptr: u32, len: u32) -> &'a [u8] {
        if len == 0 {
            return &[];
        }
        // SAFETY: the host passes a region it obtained from gatehouse_alloc.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
    }

    /// The interface version; hosts refuse a module whose version they do not know.
    #[unsafe(no_mangle)]
    pub extern "C" fn gatehouse_abi_version() -> u32 {
        gatehouse_policy::json::ABI_VERSION
    }

    /// Allocates `len` bytes for the host to write input into; 0 on failure.
    #[unsafe(no_mangle)]
    pub extern "C" fn gatehouse_alloc(len: u32) -> u32 {
        let mut buf: Vec<u8> = Vec::new();
        if buf.try_reserve_exact(len as usize).is_err() {
            return 0;
        }
        buf.resize(len as usize, 0);
        let ptr = buf.as_mut_ptr() as usize as u32;
        std::mem::forget(buf);
        ptr
    }

    /// Frees what `gatehouse_alloc` returned.
    ///
    /// # Safety
    /// `ptr` and `len` must come from one `gatehouse_alloc` call.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn gatehouse_free(ptr: u32, len: u32) {
        if ptr != 0 {
            // SAFETY: rebuilds the Vec gatehouse_alloc forgot, same capacity.
            drop(unsafe {
                Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize)
            });
        }
    }

    /// Loads the policy bundle at `ptr..ptr+len`; answers like `gatehouse_call`.
    ///
    /// # Safety
    /// See [`input`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn gatehouse_load(ptr: u32, len: u32) -> u64 {
        // SAFETY: forwarded contract.
        stash(load(unsafe { input(ptr, len) }))
    }

    /// Answers the JSON envelope at `ptr..ptr+len`.
    ///
    /// # Safety
    /// See [`input`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn gatehouse_call(ptr: u32, len: u32) -> u64 {
        // SAFETY: forwarded contract.
        stash(call_bytes(unsafe { input(ptr, len) }))
    }
}

// ------------------------------------------------------------- wasm-bindgen

/// Loads the bytes of the module's `gatehouse.policies` section; returns the
/// JSON answer (`info` with the policy hash, or a failure).
#[wasm_bindgen(js_name = loadPolicies)]
pub fn load_policies(bundle: &[u8]) -> String {
    String::from_utf8_lossy(&load(bundle)).into_owned()
}

/// Lints a policy bundle without loading it: the JSON of
/// [`gatehouse_policy::bundle::Checked`] (the report, or every problem with
/// its place) for [`gatehouse_policy::bundle::lint`]: everything of the
/// strict check but Cedar's type validation, which stays out of the module
/// for its size. The policy editor's live check; the resident engine is not
/// touched.
#[wasm_bindgen(js_name = checkPolicies)]
pub fn check_policies(bundle: &[u8]) -> String {
    use gatehouse_policy::bundle::{Bundle, Checked, Problem};
    let checked = match Bundle::from_bytes(bundle) {
        Ok(bundle) => Checked::lint(&bundle),
        Err(message) => Checked::Invalid {
            problems: vec![Problem {
                location: "bundle".into(),
                message,
                offset: None,
            }],
        },
    };
    serde_json::to_string(&checked).unwrap_or_default()
}

/// JSON envelope in, JSON answer out: the same bytes as the raw ABI.
#[wasm_bindgen]
pub fn call(input: &str) -> String {
    String::from_utf8_lossy(&call_bytes(input.as_bytes())).into_owned()
}

/// The same as [`call`] with JS objects instead of JSON text.
#[wasm_bindgen]
pub fn evaluate(envelope: JsValue) -> JsValue {
    let answer = match serde_wasm_bindgen::from_value::<Envelope>(envelope) {
        Ok(envelope) => ENGINE.with(|e| json::answer(e.borrow().as_ref(), &envelope)),
        Err(err) => Answer::Failure {
            errors: vec![gatehouse_policy::EngineError::BadInput(err.to_string()).to_wire()],
        },
    };
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    serde::Serialize::serialize(&answer, &serializer).unwrap_or(JsValue::NULL)
}
