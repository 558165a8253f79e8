//! Abuse limits: what one peer may ask of this host, and for how long.
//!
//! Not "who may" rules (those are the module's): these bound the work a
//! caller can make the host do before it is known who they are.
//!
//! * **Per-peer budgets** on the doors that take secrets or send mail:
//!   asking for a sign-in link, redeeming or looking at one, minting an API
//!   token, and SCIM. Each peer address has a bucket per door (the GCRA of
//!   the `governor` crate); an empty bucket answers 429 with `Retry-After`
//!   and the error in the door's shape (SCIM's for SCIM).
//! * **One sign-in mail a minute per address** is kept in the store, so it
//!   holds across hosts ([`crate::auth`]).
//! * **A time limit** per request ([`Settings::request_timeout`]): a request
//!   still running is dropped, and with it any open transaction (rolled
//!   back), and the caller gets 503 `timeout`.
//! * **A concurrency limit** for the whole host: beyond it, requests wait
//!   for a slot (within their time limit).
//!
//! Buckets live in this process: with several hosts behind a balancer a
//! peer gets each host's budget. The peer is the TCP peer: behind a proxy
//! every caller shares the proxy's budget (no forwarded header is trusted).
//!
//! [`Settings::request_timeout`]: crate::Settings::request_timeout

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::Host;
use crate::error::ApiError;

/// One door's budget per peer: `burst` requests at once, then one every
/// `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests a quiet peer may make at once.
    pub burst: u32,
    /// How often one more request is allowed after that.
    pub every: Duration,
}

impl Budget {
    const fn new(burst: u32, every: Duration) -> Budget {
        Budget { burst, every }
    }

    fn quota(self) -> Option<Quota> {
        Some(Quota::with_period(self.every)?.allow_burst(NonZeroU32::new(self.burst)?))
    }
}

/// The doors with a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /v1/auth/sign-in`: sends mail.
    SignIn,
    /// `POST /v1/auth/redeem` and `POST /v1/auth/link`: guess a secret.
    Redeem,
    /// `POST /v1/tokens`: mints a credential.
    Token,
    /// `/scim/v2/…`: an identity provider's bearer token.
    Scim,
}

impl Door {
    /// The door a request knocks at, if it has a budget.
    pub fn of(method: &Method, path: &str) -> Option<Door> {
        if path.starts_with("/scim/v2/") || path == "/scim/v2" {
            return Some(Door::Scim);
        }
        if *method != Method::POST {
            return None;
        }
        match path {
            "/v1/auth/sign-in" => Some(Door::SignIn),
            "/v1/auth/redeem" | "/v1/auth/link" => Some(Door::Redeem),
            "/v1/tokens" => Some(Door::Token),
            _ => None,
        }
    }

    /// A short name (metrics, messages).
    pub fn name(self) -> &'static str {
        match self {
            Door::SignIn => "sign_in",
            Door::Redeem => "redeem",
            Door::Token => "token",
            Door::Scim => "scim",
        }
    }
}

/// Every door's budget per peer; `None` turns the per-peer budgets off
/// (`serve --rate-limits off`, for load tests behind one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Asking for sign-in links.
    pub sign_in: Budget,
    /// Redeeming or looking at sign-in links.
    pub redeem: Budget,
    /// Minting API tokens.
    pub token: Budget,
    /// SCIM requests.
    pub scim: Budget,
}

impl RateLimits {
    /// The defaults: 5 sign-in requests at once then one every 12 s (5 a
    /// minute); 10 redeems then one every 6 s; 10 tokens then one every 6
    /// s; 300 SCIM requests then 20 a second (an identity provider's full
    /// sync of a large account, IdPs' own default limits are of that size).
    pub const STANDARD: RateLimits = RateLimits {
        sign_in: Budget::new(5, Duration::from_secs(12)),
        redeem: Budget::new(10, Duration::from_secs(6)),
        token: Budget::new(10, Duration::from_secs(6)),
        scim: Budget::new(300, Duration::from_millis(50)),
    };

    fn budget(&self, door: Door) -> Budget {
        match door {
            Door::SignIn => self.sign_in,
            Door::Redeem => self.redeem,
            Door::Token => self.token,
            Door::Scim => self.scim,
        }
    }
}

/// The per-peer buckets of one host.
pub struct Limiter {
    doors: Vec<(Door, DefaultKeyedRateLimiter<IpAddr>)>,
    checks: AtomicU64,
    limited: AtomicU64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field(
                "doors",
                &self.doors.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Limiter {
    /// Buckets for `limits` (`None`: no per-peer budgets).
    pub fn new(limits: Option<RateLimits>) -> Limiter {
        let doors = limits
            .map(|l| {
                [Door::SignIn, Door::Redeem, Door::Token, Door::Scim]
                    .into_iter()
                    .filter_map(|d| Some((d, governor::RateLimiter::keyed(l.budget(d).quota()?))))
                    .collect()
            })
            .unwrap_or_default();
        Limiter {
            doors,
            checks: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    /// Takes one request from `peer`'s budget at `door`: `Err(wait)` when
    /// it is empty, with how long until it holds one again.
    pub fn check(&self, door: Door, peer: IpAddr) -> Result<(), Duration> {
        let Some((_, limiter)) = self.doors.iter().find(|(d, _)| *d == door) else {
            return Ok(());
        };
        // Forget quiet peers now and then, so a scan of many addresses
        // does not grow the buckets without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter.check_key(&peer).map_err(|not_until| {
            self.limited.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// Requests answered 429 since the host started.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }
}

/// The peer's address; a request that came without one (the router called
/// in-process, as tests do) shares one bucket, `::`.
fn peer(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

/// The per-peer budgets (a router layer).
pub async fn budget(State(host): State<Host>, request: Request, next: Next) -> Response {
    let Some(door) = Door::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match host.limiter.check(door, peer(&request)) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let route = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or(door.name(), |m| m.as_str());
            host.metrics().rate_limited(route);
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let error = ApiError::RateLimited {
                retry_after: seconds.max(1),
            };
            let mut response = if door == Door::Scim {
                crate::scim::ScimError::from(error).into_response()
            } else {
                error.into_response()
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            response
        }
    }
}

/// The time limit (a router layer): a request still running after
/// [`crate::Settings::request_timeout`] is dropped (its open transaction,
/// if any, rolls back) and answered 503 `timeout`.
pub async fn deadline(State(host): State<Host>, request: Request, next: Next) -> Response {
    let limit = host.settings.request_timeout;
    let scim = request.uri().path().starts_with("/scim/v2");
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let error = ApiError::Timeout(limit);
            if scim {
                crate::scim::ScimError::from(error).into_response()
            } else {
                error.into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_refused_with_the_wait_and_other_peers_are_not() {
        let limits = RateLimits {
            sign_in: Budget::new(2, Duration::from_secs(60)),
            ..RateLimits::STANDARD
        };
        let limiter = Limiter::new(Some(limits));
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        assert_eq!(limiter.check(Door::SignIn, a), Ok(()));
        assert_eq!(limiter.check(Door::SignIn, a), Ok(()));
        let wait = limiter.check(Door::SignIn, a).err();
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(50) && w <= Duration::from_secs(60)),
            "{wait:?}"
        );
        assert_eq!(limiter.check(Door::SignIn, b), Ok(()), "another peer");
        assert_eq!(limiter.check(Door::Redeem, a), Ok(()), "another door");
        assert_eq!(limiter.limited(), 1);
    }

    #[test]
    fn off_means_no_budget() {
        let limiter = Limiter::new(None);
        let a = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..100 {
            assert_eq!(limiter.check(Door::SignIn, a), Ok(()));
        }
    }

    #[test]
    fn doors() {
        assert_eq!(
            Door::of(&Method::POST, "/v1/auth/sign-in"),
            Some(Door::SignIn)
        );
        assert_eq!(Door::of(&Method::GET, "/v1/auth/sign-in"), None);
        assert_eq!(Door::of(&Method::POST, "/v1/auth/link"), Some(Door::Redeem));
        assert_eq!(Door::of(&Method::GET, "/scim/v2/Users"), Some(Door::Scim));
        assert_eq!(Door::of(&Method::POST, "/v1/invitations"), None);
    }
}
