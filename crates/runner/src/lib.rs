//! Runs the one Gatehouse module in wasmtime — the server's way of asking
//! the very bytes the browser runs.
//!
//! Why this shape (wasmtime's `fast_instantiation` example): the module is
//! compiled once, imports are linked once into an `InstancePre`, and a small
//! pool of instances keeps the parsed policies resident, because loading the
//! policy bundle costs milliseconds while a decision costs microseconds. Each
//! call is bounded by an epoch deadline (no hang) and a memory limit; an
//! instance that trapped is discarded, never reused.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gatehouse_policy::engine::hex;
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstancePre, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder,
    TypedFunc,
};

/// The raw ABI version this runner speaks.
pub const ABI_VERSION: u32 = 1;

/// Memory one instance may use.
pub const MEMORY_LIMIT: usize = 512 << 20;

/// An instance whose memory grew past this is dropped after its call
/// instead of going back to the pool.
const KEEP_MEMORY_BELOW: usize = 64 << 20;

/// Epoch ticks are 10 ms; a call may run for this many.
const DEADLINE_TICKS: u64 = 500;

/// Why the module could not be loaded or called.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The file could not be read.
    #[error("reading the module `{path}`: {source}")]
    Read {
        /// The module's path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not a Gatehouse module.
    #[error("not a Gatehouse module: {0}")]
    NotGatehouse(String),
    /// The module speaks another ABI version.
    #[error(
        "the module speaks ABI version {found}, this runner speaks {ABI_VERSION}: rebuild the module or update the host"
    )]
    AbiVersion {
        /// What the module exports.
        found: u32,
    },
    /// The module's policies did not load.
    #[error("the module's policies did not load: {0}")]
    Load(String),
    /// wasmtime refused or the call trapped (deadline, memory, bug).
    #[error("the module failed: {0}")]
    Wasm(String),
}

/// Where compiled modules are kept between runs: `$GATEHOUSE_COMPILE_CACHE`
/// (`off` for nowhere), else `$XDG_CACHE_HOME/gatehouse`, else
/// `$HOME/.cache/gatehouse`.
fn cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    match std::env::var_os("GATEHOUSE_COMPILE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("gatehouse")),
    }
}

/// The module compiled for `engine`, from the cache when this program
/// compiled these bytes before.
///
/// Why: compiling the 4.7 MB module is most of a host's start (seconds in
/// an optimised build, tens of seconds in a debug one), and every restart,
/// every `gatehouse jobs` and every host of a fleet compiled the same bytes
/// again. The cache file is named by the module's sha256 and wasmtime's
/// compatibility hash (its version and every compiler setting), so another
/// module, wasmtime or configuration never reads it; wasmtime checks that
/// again when it loads the file. A file that does not load is compiled again
/// and replaced; a cache that cannot be written is skipped. The decisions
/// come from the same module bytes either way.
fn compiled(engine: &Engine, bytes: &[u8], sha256: &str) -> Result<Module, RunnerError> {
    use std::hash::{Hash, Hasher};
    let Some(dir) = cache_dir() else {
        return Module::new(engine, bytes).map_err(wasm);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let path = dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()));
    if path.is_file() {
        // SAFETY: `deserialize_file` runs the file's machine code, so it
        // must be wasmtime's own output: it is, written below by
        // `Module::serialize` (atomically, by rename) into the running
        // user's cache directory, under a name only these module bytes and
        // this engine produce. Whoever can write that directory can already
        // replace this user's programs. `GATEHOUSE_COMPILE_CACHE=off`
        // turns it off.
        #[allow(unsafe_code)]
        let loaded = unsafe { Module::deserialize_file(engine, &path) };
        if let Ok(m) = loaded {
            return Ok(m);
        }
    }
    let module = Module::new(engine, bytes).map_err(wasm)?;
    if let Ok(serialized) = module.serialize() {
        let tmp = dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&tmp, &serialized))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(module)
}

/// wasmtime's error with its causes (`{:#}`): a trap's kind ("call stack
/// exhausted") is a cause of the "error while executing" at its backtrace.
fn wasm(e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Wasm(format!("{e:#}"))
}

struct State {
    limits: StoreLimits,
}

struct Instance {
    store: Store<State>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<(u32, u32), ()>,
    call: TypedFunc<(u32, u32), u64>,
    load: TypedFunc<(u32, u32), u64>,
}

impl Instance {
    /// Writes `input`, calls `f`, reads the answer, frees the input.
    fn invoke(
        &mut self,
        f: TypedFunc<(u32, u32), u64>,
        input: &[u8],
    ) -> Result<Vec<u8>, RunnerError> {
        self.store.set_epoch_deadline(DEADLINE_TICKS);
        let len = u32::try_from(input.len())
            .map_err(|_| RunnerError::Wasm("input larger than 4 GiB".into()))?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(wasm)?;
        if ptr == 0 && len > 0 {
            return Err(RunnerError::Wasm(format!(
                "the module could not allocate {len} bytes"
            )));
        }
        self.memory
            .write(&mut self.store, ptr as usize, input)
            .map_err(wasm)?;
        let packed = f.call(&mut self.store, (ptr, len)).map_err(wasm)?;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let mut out = vec![0u8; out_len];
        self.memory
            .read(&self.store, out_ptr, &mut out)
            .map_err(wasm)?;
        self.free.call(&mut self.store, (ptr, len)).map_err(wasm)?;
        Ok(out)
    }
}

/// A compiled Gatehouse module with a pool of loaded instances.
pub struct Runner {
    engine: Arc<Engine>,
    pre: InstancePre<State>,
    bundle: Vec<u8>,
    module_sha256: String,
    policy_hash: String,
    pool: Mutex<Vec<Instance>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("module_sha256", &self.module_sha256)
            .field("policy_hash", &self.policy_hash)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Reads and compiles the module at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Runner, RunnerError> {
        let bytes = std::fs::read(path).map_err(|source| RunnerError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Runner::new(&bytes)
    }

    /// Compiles `bytes`, checks the ABI version and loads one instance.
    pub fn new(bytes: &[u8]) -> Result<Runner, RunnerError> {
        let bundle = gatehouse_policy::module::policy_section(bytes)
            .map_err(RunnerError::NotGatehouse)?
            .to_vec();
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Arc::new(Engine::new(&config).map_err(wasm)?);
        let module_sha256 = hex(&Sha256::digest(bytes));
        let module = compiled(&engine, bytes, &module_sha256)?;
        let mut linker: Linker<State> = Linker::new(&engine);
        // The wasm-bindgen glue's one import (`__wbindgen_init_externref_table`)
        // is only called by `__wbindgen_start`, which the raw ABI never calls.
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(wasm)?;
        let pre = linker.instantiate_pre(&module).map_err(wasm)?;
        spawn_ticker(Arc::downgrade(&engine));
        let mut runner = Runner {
            engine,
            pre,
            module_sha256,
            policy_hash: hex(&Sha256::digest(&bundle)),
            bundle,
            pool: Mutex::new(Vec::new()),
        };
        let first = runner.instantiate()?;
        runner.pool = Mutex::new(vec![first]);
        Ok(runner)
    }

    /// A new instance with the module's own policies loaded.
    fn instantiate(&self) -> Result<Instance, RunnerError> {
        let mut loaded = self.fresh()?;
        let answer = loaded.invoke(loaded.load.clone(), &self.bundle)?;
        if !answer.starts_with(br#"{"type":"success""#) {
            return Err(RunnerError::Load(
                String::from_utf8_lossy(&answer).into_owned(),
            ));
        }
        Ok(loaded)
    }

    /// A new instance with no policies loaded.
    fn fresh(&self) -> Result<Instance, RunnerError> {
        let mut store = Store::new(
            &self.engine,
            State {
                limits: StoreLimitsBuilder::new()
                    .memory_size(MEMORY_LIMIT)
                    .instances(1)
                    .build(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(DEADLINE_TICKS);
        let instance = self.pre.instantiate(&mut store).map_err(wasm)?;
        let version: TypedFunc<(), u32> = instance
            .get_typed_func(&mut store, "gatehouse_abi_version")
            .map_err(|e| RunnerError::NotGatehouse(e.to_string()))?;
        let found = version.call(&mut store, ()).map_err(wasm)?;
        if found != ABI_VERSION {
            return Err(RunnerError::AbiVersion { found });
        }
        let func = |store: &mut Store<State>, name: &str| {
            instance
                .get_typed_func::<(u32, u32), u64>(&mut *store, name)
                .map_err(|e| RunnerError::NotGatehouse(format!("{name}: {e}")))
        };
        let call = func(&mut store, "gatehouse_call")?;
        let load = func(&mut store, "gatehouse_load")?;
        Ok(Instance {
            memory: instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| RunnerError::NotGatehouse("no exported memory".into()))?,
            alloc: instance
                .get_typed_func(&mut store, "gatehouse_alloc")
                .map_err(|e| RunnerError::NotGatehouse(e.to_string()))?,
            free: instance
                .get_typed_func(&mut store, "gatehouse_free")
                .map_err(|e| RunnerError::NotGatehouse(e.to_string()))?,
            call,
            load,
            store,
        })
    }

    /// sha256 of the whole module, as every runtime prints it.
    pub fn module_sha256(&self) -> &str {
        &self.module_sha256
    }

    /// sha256 of the module's policy bundle, as every decision carries it.
    pub fn policy_hash(&self) -> &str {
        &self.policy_hash
    }

    /// Sends a JSON envelope to the module and returns its JSON answer.
    pub fn call(&self, input: &[u8]) -> Result<Vec<u8>, RunnerError> {
        let pooled = self.pool.lock().map_err(wasm)?.pop();
        let mut instance = match pooled {
            Some(i) => i,
            None => self.instantiate()?,
        };
        let call = instance.call.clone();
        // On error (trap, deadline, memory) the instance is dropped here.
        let out = instance.invoke(call, input)?;
        if instance.memory.data_size(&instance.store) < KEEP_MEMORY_BELOW {
            self.pool.lock().map_err(wasm)?.push(instance);
        }
        Ok(out)
    }

    /// Hands `bundle` to `gatehouse_load` in a new instance of the module
    /// and returns its answer (`info` with the policy hash, or a failure);
    /// the instance is dropped after, so the runner's own policies are
    /// untouched. What a host would see loading those bytes: the fuzz
    /// corpus replay asks this with every bundle it holds.
    pub fn load(&self, bundle: &[u8]) -> Result<Vec<u8>, RunnerError> {
        let mut instance = self.fresh()?;
        let load = instance.load.clone();
        instance.invoke(load, bundle)
    }
}

/// Advances the engine's epoch every 10 ms while the engine lives.
fn spawn_ticker(engine: Weak<Engine>) {
    std::thread::spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}
