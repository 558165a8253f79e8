//! Gatehouse's server host.
//!
//! The host is thin on purpose: it authenticates callers, gathers facts from
//! the store, asks the one WebAssembly module (the same bytes the browser
//! loads) through wasmtime, and only when the module allows applies the
//! change with its audit record in one transaction. No "who may" rule lives
//! here; rows existing, links being unused and tokens being valid do.
//!
//! Code map: [`change`] is the one write path, [`facts`] gathers facts,
//! [`gate`] asks the module, [`audit`] and [`outbox`] record, [`auth`] signs
//! in, [`jobs`] runs bulk removals, [`api`] and [`scim`] are the HTTP faces,
//! [`metrics`] counts decisions, changes and swaps for `GET /metrics` and
//! [`logging`] sets up `serve`'s log (text or JSON).

pub mod api;
pub mod audit;
pub mod auth;
pub mod authoring;
pub mod change;
pub mod clock;
pub mod demo;
pub mod domains;
pub mod editor;
pub mod error;
pub mod facts;
pub mod faults;
pub mod gate;
pub mod headers;
pub mod impact;
pub mod jobs;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod peer;
pub mod read;
pub mod scim;
pub mod shapes;
pub mod store;
pub mod timing;
pub mod token;
pub mod versions;
pub mod wire;

use std::sync::Arc;

pub use change::{Applied, Attempt, Change};
pub use clock::Clock;
pub use error::ApiError;
pub use gate::Gate;
pub use store::Store;

/// [`Settings::request_timeout`] unless told otherwise: a policy impact
/// replay of a large audit log takes seconds, nothing should take more.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// [`Settings::max_concurrent`] unless told otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 512;

/// Settings that do not change while serving.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cookies for a host reached over https: `Secure`, and named with the
    /// `__Host-` prefix ([`auth::cookie_name`]). `serve` sets it when
    /// `--public-url` is https, or with `--secure-cookies` (an https proxy
    /// in front of an http public URL).
    pub secure_cookies: bool,
    /// Demo mode: the outbox is readable at `/v1/demo/mailbox`, so a
    /// newcomer can sign in without a mail server. Never in production.
    pub demo: bool,
    /// The address browsers reach this host at (links in mails), without a
    /// trailing slash; empty means relative links.
    pub public_url: String,
    /// The built pages (`www/dist`) to serve at `/`, if any.
    pub www: Option<std::path::PathBuf>,
    /// Policy authoring in the browser, if this host offers it.
    pub authoring: Option<editor::Authoring>,
    /// How long this host's claim on a bulk job lasts without renewal: a
    /// host that dies holds its jobs this long, at most, before another
    /// host takes them over ([`jobs`]).
    pub job_lease: std::time::Duration,
    /// Send each request's write-path phases (lock wait and hold, decide,
    /// commit) in a `Server-Timing` header ([`timing`]). Off by default: lock
    /// contention is a fact about other tenants' traffic.
    pub server_timing: bool,
    /// Decide each change on a read snapshot before taking the write lock,
    /// and under the lock only compare the facts read again ([`change`]).
    /// Off by default: on this project's 2-core bench machine the second
    /// read costs more than the shorter hold saves (`cargo xtask
    /// bench-host`); it pays where a hot tree's lock, not the CPU, is the
    /// limit and its facts rarely move between the two reads.
    pub decide_early: bool,
    /// Per-peer budgets at the doors that take secrets or send mail
    /// ([`limits`]), and one sign-in mail a minute per address; `None`
    /// turns both off (`serve --rate-limits off`, for load and browser
    /// tests from one address).
    pub rate_limits: Option<limits::RateLimits>,
    /// How long a request may run before it is stopped and answered 503
    /// ([`limits::deadline`]).
    pub request_timeout: std::time::Duration,
    /// Requests served at once; more wait for a slot.
    pub max_concurrent: usize,
    /// The bearer token that opens `GET /metrics` to peers that are not on
    /// loopback (`serve --metrics-token`); without it only loopback peers
    /// with no proxy header may read it ([`metrics::open`]).
    pub metrics_token: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            secure_cookies: false,
            demo: false,
            public_url: String::new(),
            www: None,
            authoring: None,
            job_lease: jobs::DEFAULT_LEASE,
            server_timing: false,
            decide_early: false,
            rate_limits: Some(limits::RateLimits::STANDARD),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            metrics_token: None,
        }
    }
}

/// The host: store, module, clock. Cheap to clone (handles inside).
#[derive(Debug, Clone)]
pub struct Host {
    /// The store.
    pub store: Store,
    /// The module.
    pub gate: Gate,
    /// The one clock.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    jobs_wake: Arc<tokio::sync::Notify>,
    instance: Arc<str>,
    limiter: Arc<limits::Limiter>,
    links: Arc<auth::LinkQueue>,
    metrics: Arc<metrics::Metrics>,
}

impl Host {
    /// A host over a store and a module, with a clock.
    pub fn new(store: Store, gate: Gate, clock: Clock) -> Host {
        Host {
            store,
            clock,
            settings: Arc::new(Settings::default()),
            jobs_wake: Arc::new(tokio::sync::Notify::new()),
            instance: instance_id().into(),
            limiter: Arc::new(limits::Limiter::new(Settings::default().rate_limits)),
            links: Arc::new(auth::LinkQueue::default()),
            metrics: Arc::new(metrics::Metrics::new(&gate)),
            gate,
        }
    }

    /// With settings.
    pub fn with_settings(mut self, settings: Settings) -> Host {
        self.limiter = Arc::new(limits::Limiter::new(settings.rate_limits));
        self.settings = Arc::new(settings);
        self
    }

    /// The per-peer budgets ([`limits`]).
    pub fn limiter(&self) -> &limits::Limiter {
        &self.limiter
    }

    /// This host's instance id, `hostname:pid:random`: what its job leases
    /// name (unique per process, readable in the store by an operator).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This host's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Asks the module one question and counts the decision
    /// (`gatehouse_decisions_total`).
    pub fn authorize(
        &self,
        check: &gatehouse_policy::Check,
    ) -> Result<gate::Decided<gatehouse_policy::Decision>, ApiError> {
        let decided = self.gate.authorize(check);
        self.metrics
            .decided(&check.action, decided.as_ref().ok().map(|d| &d.answer));
        decided
    }

    /// Tells the job worker there is work.
    pub fn wake_jobs(&self) {
        self.jobs_wake.notify_one();
    }

    /// The HTTP application (API, SCIM, module download, OpenAPI).
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}

/// `hostname:pid:random` for [`Host::instance`].
fn instance_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{name}:{}:{}", std::process::id(), token::random_hex(3))
}
