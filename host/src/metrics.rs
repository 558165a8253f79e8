//! What a host counts, for `GET /metrics` in the Prometheus text format
//! (version 0.0.4, [`CONTENT_TYPE`]), one registry per [`Host`]
//! ([`Host::metrics`]):
//!
//! * `gatehouse_decisions_total{action,outcome,policy}`: every single
//!   decision of the module (each change attempt, each single question such
//!   as `view_jobs`; the cells of a batch that a page's table asks are not
//!   decisions of their own). `outcome` is `allow`, `deny` or `error` (the
//!   module could not be asked, or a policy failed to evaluate: denied, fail
//!   closed); a decision with several determining policies counts under
//!   each, an allow with none under `policy=""`.
//! * `gatehouse_change_seconds{action,outcome}`: the whole write path of a
//!   change ([`Host::perform`]: lock, facts, decision, apply, audit, commit,
//!   retries), by the action the change asked (`unresolved` when its ids
//!   named no rows) and how it ended (`allow`: applied, `deny`, `error`).
//! * `gatehouse_module_info{module_sha256,policy_sha256} 1`: the module the
//!   host decides with now (it follows hot swaps).
//! * `gatehouse_hot_swaps_total`: modules swapped in while serving.
//! * `gatehouse_rate_limited_total{route}`: requests a rate limit refused,
//!   counted by [`Metrics::rate_limited`].
//! * `gatehouse_http_requests_total{route,method,status}`: answered
//!   requests by route template (`/v1/accounts/{account}/members`, never a
//!   raw path: ids of other accounts do not belong in labels; `unmatched`
//!   for paths no route owns).
//!
//! **Who may read it.** The labels name actions, policy ids and hashes,
//! nothing of any tenant, but the counts are a fact about every tenant's
//! traffic: `/metrics` answers a peer on loopback with no proxy header
//! ([`crate::peer::is_local`]), or a request with `Authorization: Bearer
//! <token>` equal to `serve --metrics-token` (compared in constant time);
//! anyone else gets 403 `loopback_only` saying so ([`open`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_policy::{Decision, Outcome};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Host;
use crate::error::ApiError;
use crate::gate::Gate;

/// The `Content-Type` of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `gatehouse_decisions_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    action: String,
    outcome: &'static str,
    policy: String,
}

/// `gatehouse_change_seconds`' labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    action: &'static str,
    outcome: &'static str,
}

/// `gatehouse_rate_limited_total`'s label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// `gatehouse_http_requests_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A host's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    changes: Histograms<ChangeLabels>,
    rate_limited: Family<RouteLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
}

/// Buckets of `gatehouse_change_seconds`: 0.5 ms to about 8 s, doubling.
fn change_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The gate's state, read at each scrape: the live module's hashes (read
/// together) and how often it was swapped.
#[derive(Debug)]
struct GateCollector(Gate);

impl Collector for GateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (module, policy) = self.0.hashes();
        let info = Info::new(vec![
            ("module_sha256".to_owned(), module),
            ("policy_sha256".to_owned(), policy),
        ]);
        info.encode(encoder.encode_descriptor(
            "gatehouse_module",
            "The module this host decides with: its sha256 and its policy bundle's",
            None,
            info.metric_type(),
        )?)?;
        let swaps = ConstCounter::new(self.0.swaps());
        swaps.encode(encoder.encode_descriptor(
            "gatehouse_hot_swaps",
            "Modules swapped in while serving (published versions, editor approvals)",
            None,
            swaps.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Metrics {
    /// A registry for a host that decides with `gate`.
    pub fn new(gate: &Gate) -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "gatehouse_decisions",
            "Single decisions of the module by action, outcome (allow, deny, error) and determining policy",
            decisions.clone(),
        );
        let changes: Histograms<ChangeLabels> =
            Family::new_with_constructor(change_histogram as fn() -> Histogram);
        registry.register(
            "gatehouse_change_seconds",
            "The whole write path of a change (lock, facts, decision, apply, audit, commit) by action and outcome (allow: applied, deny, error)",
            changes.clone(),
        );
        registry.register_collector(Box::new(GateCollector(gate.clone())));
        let rate_limited = Family::<RouteLabels, Counter>::default();
        registry.register(
            "gatehouse_rate_limited",
            "Requests a rate limit refused, by route template",
            rate_limited.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "gatehouse_http_requests",
            "Answered requests by route template, method and status",
            requests.clone(),
        );
        Metrics {
            registry,
            decisions,
            changes,
            rate_limited,
            requests,
        }
    }

    /// Counts one decision of `action`: `None` when the module could not be
    /// asked or did not answer (counted as `error`).
    pub fn decided(&self, action: &str, decision: Option<&Decision>) {
        let outcome = decision.map_or("error", outcome);
        let mut policies = decision.map(policy_ids).unwrap_or_default();
        if policies.is_empty() {
            policies.push("");
        }
        for policy in policies {
            self.decisions
                .get_or_create(&DecisionLabels {
                    action: action.to_owned(),
                    outcome,
                    policy: policy.to_owned(),
                })
                .inc();
        }
    }

    /// Records one change's whole write path.
    pub fn changed(&self, action: &'static str, outcome: &'static str, took: Duration) {
        self.changes
            .get_or_create(&ChangeLabels { action, outcome })
            .observe(took.as_secs_f64());
    }

    /// Counts one request that a rate limit refused on `route`: the route
    /// template as axum matched it (`MatchedPath`, e.g.
    /// `/v1/auth/sign-in`), never a raw path with ids in it. For the rate
    /// limit layer ([`crate::limits::budget`]) calls it when it answers 429.
    pub fn rate_limited(&self, route: &str) {
        self.rate_limited
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Counts one answered request.
    fn answered(&self, route: &str, method: &axum::http::Method, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method_label(method),
                status,
            })
            .inc();
    }

    /// Everything, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, ApiError> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .map_err(ApiError::internal)?;
        Ok(out)
    }
}

/// A decision's outcome as the metrics and the decision log name it:
/// `allow`, `deny`, or `error` (a policy failed to evaluate: denied).
pub fn outcome(decision: &Decision) -> &'static str {
    if decision.allowed {
        "allow"
    } else if decision.outcome == Outcome::Error {
        "error"
    } else {
        "deny"
    }
}

/// How the module says the decision came about (`permitted`, `forbidden`,
/// `not_permitted`, `error`, `hidden`, `inapplicable`).
pub fn module_outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Permitted => "permitted",
        Outcome::Forbidden => "forbidden",
        Outcome::NotPermitted => "not_permitted",
        Outcome::Error => "error",
        Outcome::Hidden => "hidden",
        Outcome::Inapplicable => "inapplicable",
    }
}

/// The determining policies' ids, each once, in the order the module gave.
pub fn policy_ids(decision: &Decision) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for r in &decision.reasons {
        if !ids.contains(&r.policy.as_str()) {
            ids.push(&r.policy);
        }
    }
    ids
}

/// A method as a label: the standard ones, else `other` (the label's
/// values stay few whatever a client sends).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts every answered request by route template and status (a layer of
/// the router, inside it, where axum has put the [`MatchedPath`]).
pub async fn track(State(host): State<Host>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    host.metrics()
        .answered(&route, &method, response.status().as_u16());
    response
}

/// Whether `/metrics` may answer this request: a local peer
/// ([`crate::peer::is_local`]), or the bearer token `serve --metrics-token`
/// set. 403 `loopback_only` otherwise, saying how to get in.
pub fn open(host: &Host, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), ApiError> {
    if crate::peer::is_local(peer, headers) {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(want), Some(got)) = (host.settings.metrics_token.as_deref(), presented)
        && token_matches(want, got)
    {
        return Ok(());
    }
    Err(ApiError::LoopbackOnly(
        "/metrics answers only a peer on loopback with no proxy in between, or a request with \
         `Authorization: Bearer <token>` where the token is the one the host was started with \
         (`gatehouse serve --metrics-token TOKEN`, or GATEHOUSE_METRICS_TOKEN)"
            .into(),
    ))
}

/// `got == want` in constant time, lengths included (both are hashed
/// first); an empty token never matches.
fn token_matches(want: &str, got: &str) -> bool {
    if want.is_empty() {
        return false;
    }
    let want = Sha256::digest(want.as_bytes());
    let got = Sha256::digest(got.as_bytes());
    bool::from(want.ct_eq(&got))
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn tokens_match_only_themselves() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "s3cret "));
        assert!(!token_matches("", ""));
    }
}
