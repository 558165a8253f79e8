//! Two real `gatehouse serve` processes on one store, and the HTTP client
//! the cross-host tests drive them with: one request at a time, or
//! "moments" of requests released at the same instant on both hosts.
//!
//! Why processes and sockets, not the in-process router: on PostgreSQL two
//! hosts share nothing but the database, so only the store's locks keep the
//! rules when both decide at once; on SQLite the two processes share the
//! file and its write lock. A race inside one process would test neither.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::Method;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use super::Server;

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Two `gatehouse serve` processes (`host1`, `host2`) on the store
/// `location` names; killed on drop.
pub struct Cluster {
    /// The processes (kept to be killed on drop).
    _servers: Vec<Server>,
    /// The client that reaches them.
    pub api: Api,
}

impl Cluster {
    /// Starts both hosts at once (each compiles the module first, seconds
    /// in a debug build) and waits until both listen.
    pub fn start(location: &str) -> Cluster {
        let started = std::time::Instant::now();
        let servers: Vec<Server> = std::thread::scope(|s| {
            let starting: Vec<_> = ["host1", "host2"]
                .into_iter()
                .map(|name| s.spawn(move || serve(location, name)))
                .collect();
            starting.into_iter().map(|h| h.join().unwrap()).collect()
        });
        println!("cluster: 2 hosts listening in {:.1?}", started.elapsed());
        let api = Api {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
            bases: Arc::new(servers.iter().map(|s| s.base.clone()).collect()),
        };
        Cluster {
            _servers: servers,
            api,
        }
    }
}

/// A host of the cluster: its tests race one address's requests, so the
/// per-address budgets are off (a load test, not abuse).
fn serve(location: &str, name: &'static str) -> Server {
    super::serve_api(name, location, &["--rate-limits", "off"])
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Not at all.
    None,
    /// `Authorization: Bearer …` (an API token or a SCIM token).
    Bearer(String),
    /// A browser session: its cookie, and its CSRF value in `X-CSRF-Token`.
    Cookie {
        /// The `gh_session` cookie's value.
        secret: String,
        /// The session's CSRF value.
        csrf: String,
    },
}

/// One request to one of the hosts.
#[derive(Debug, Clone)]
pub struct Req {
    /// 0 for host 1, 1 for host 2.
    pub host: usize,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Credential.
    pub auth: Auth,
    /// JSON body, with its content type.
    pub body: Option<(Value, &'static str)>,
    /// A `Cookie` header beside the credential's (`name=value`).
    pub cookie: Option<String>,
}

impl Req {
    /// `method path` on `host`, unauthenticated, without a body.
    pub fn new(host: usize, method: Method, path: impl Into<String>) -> Req {
        Req {
            host,
            method,
            path: path.into(),
            auth: Auth::None,
            body: None,
            cookie: None,
        }
    }

    /// With a cookie (`name=value`), such as a sign-in binding.
    pub fn cookie(mut self, cookie: &str) -> Req {
        self.cookie = Some(cookie.to_owned());
        self
    }

    /// With a bearer token.
    pub fn bearer(mut self, token: &str) -> Req {
        self.auth = Auth::Bearer(token.to_owned());
        self
    }

    /// With a credential.
    pub fn auth(mut self, auth: &Auth) -> Req {
        self.auth = auth.clone();
        self
    }

    /// With a JSON body (`application/json`).
    pub fn json(mut self, body: Value) -> Req {
        self.body = Some((body, "application/json"));
        self
    }

    /// With a SCIM body (`application/scim+json`).
    pub fn scim(mut self, body: Value) -> Req {
        self.body = Some((body, "application/scim+json"));
        self
    }
}

/// A host's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (Null when empty or not JSON).
    pub body: Value,
    /// The `gh_session` cookie the answer sets, if any.
    pub cookie: Option<String>,
    /// The sign-in binding the answer sets (`gh_sign_in=…`), if any.
    pub binding: Option<String>,
}

impl Answer {
    /// The audit record the answer names (an applied change or a denial).
    pub fn audit_id(&self) -> Option<i64> {
        self.body["audit_id"]
            .as_i64()
            .or_else(|| self.body["error"]["audit_id"].as_i64())
    }

    /// An error's message: the API's `error.message` or SCIM's `detail`.
    pub fn message(&self) -> &str {
        self.body["error"]["message"]
            .as_str()
            .or_else(|| self.body["detail"].as_str())
            .unwrap_or_default()
    }

    /// A refusal's reasons: the API's `error.reasons` or those of SCIM's
    /// Denial extension (empty when there are none).
    pub fn reasons(&self) -> Vec<Value> {
        self.body["error"]["reasons"]
            .as_array()
            .or_else(|| {
                self.body["urn:gatehouse:params:scim:api:messages:1.0:Denial"]["reasons"].as_array()
            })
            .cloned()
            .unwrap_or_default()
    }

    /// The ids of the policies in [`Answer::reasons`].
    pub fn policies(&self) -> Vec<String> {
        self.reasons()
            .iter()
            .filter_map(|r| r["policy"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The client of both hosts; cheap to clone.
#[derive(Clone)]
pub struct Api {
    client: Client,
    bases: Arc<Vec<String>>,
}

impl Api {
    /// Sends one request and reads the whole answer.
    pub async fn send(&self, req: &Req) -> Answer {
        let mut b = hyper::Request::builder()
            .method(req.method.clone())
            .uri(format!("{}{}", self.bases[req.host], req.path));
        if let Some(c) = &req.cookie {
            b = b.header("cookie", c);
        }
        match &req.auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header("authorization", format!("Bearer {t}")),
            Auth::Cookie { secret, csrf } => {
                b = b
                    .header(
                        "cookie",
                        format!("{}={secret}", gatehouse_host::auth::COOKIE),
                    )
                    .header("x-csrf-token", csrf);
            }
        }
        let body = match &req.body {
            Some((v, content_type)) => {
                b = b.header("content-type", *content_type);
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let res = self.client.request(b.body(Full::new(body)).unwrap()).await;
        let res = res.unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path));
        let status = res.status().as_u16();
        let prefix = format!("{}=", gatehouse_host::auth::COOKIE);
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next()?.strip_prefix(prefix.as_str()))
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let binding = super::binding_cookie(res.headers());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            cookie,
            binding,
        }
    }

    /// Fires every moment's requests at the same instant (a barrier
    /// releases them together), `at_once` moments in flight at a time;
    /// returns each moment's answers in the order given.
    pub async fn race(&self, moments: Vec<Vec<Req>>, at_once: usize) -> Vec<Vec<Answer>> {
        let count = moments.len();
        let queue = Arc::new(Mutex::new(
            moments.into_iter().enumerate().collect::<VecDeque<_>>(),
        ));
        let mut workers = Vec::new();
        for _ in 0..at_once {
            let (queue, api) = (queue.clone(), self.clone());
            workers.push(tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let Some((n, moment)) = queue.lock().unwrap().pop_front() else {
                        break done;
                    };
                    let barrier = Arc::new(tokio::sync::Barrier::new(moment.len()));
                    let fired: Vec<_> = moment
                        .into_iter()
                        .map(|req| {
                            let (barrier, api) = (barrier.clone(), api.clone());
                            tokio::spawn(async move {
                                barrier.wait().await;
                                api.send(&req).await
                            })
                        })
                        .collect();
                    let mut answers = Vec::new();
                    for f in fired {
                        answers.push(f.await.unwrap());
                    }
                    done.push((n, answers));
                }
            }));
        }
        let mut all: Vec<Option<Vec<Answer>>> = vec![None; count];
        for w in workers {
            for (n, answers) in w.await.unwrap() {
                all[n] = Some(answers);
            }
        }
        all.into_iter().map(|a| a.unwrap()).collect()
    }
}

/// A count from the environment variable `name`, or `default`.
pub fn count_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}=`{v}`: give a whole number")),
        Err(_) => default,
    }
}

/// API tokens the servers accept, one per user: made on the system clock,
/// as the servers' own.
pub async fn api_tokens(
    t: &super::T,
    users: &[String],
) -> std::collections::BTreeMap<String, String> {
    let minting = system_host(t);
    let mut tokens = std::collections::BTreeMap::new();
    for user in users {
        let s = gatehouse_host::auth::create_session(&minting, user, "api", "hosts")
            .await
            .unwrap();
        tokens.insert(user.clone(), s.token);
    }
    tokens
}

/// The test's store with the system clock, as the servers have.
pub fn system_host(t: &super::T) -> gatehouse_host::Host {
    gatehouse_host::Host::new(
        t.host.store.clone(),
        super::gate(),
        gatehouse_host::Clock::system(),
    )
}

/// Runs SQL statements in one transaction (test setup).
pub async fn seed(t: &super::T, stmts: &[String]) {
    let mut tx = t.host.store.pool().begin().await.unwrap();
    for s in stmts {
        sqlx::query(s).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// The statements that make user `id` (`id@hosts.test`).
pub fn user_row(id: &str) -> String {
    format!(
        "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ('{id}', '{id}@hosts.test', '{id}@hosts.test', 'User {id}', 0)"
    )
}
