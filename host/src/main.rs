//! `gatehouse`: the server host and its admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_host::{Clock, Gate, Host, Settings, Store, logging, outbox};

/// Gatehouse decides who may do what to whom, with Cedar policies compiled
/// into one WebAssembly module, and applies allowed changes atomically.
#[derive(Parser)]
#[command(name = "gatehouse", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Abuse limits (`gatehouse_host::limits`).
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Per-address budgets on sign-in, redeem, token minting and SCIM
    /// (429 with Retry-After when spent): `on`, or `off` for a load test
    /// from one address.
    #[arg(long, default_value = "on", env = "GATEHOUSE_RATE_LIMITS", value_parser = on_off, action = clap::ArgAction::Set)]
    rate_limits: bool,
    /// Stop a request that runs longer than this (seconds) and answer 503.
    #[arg(long, default_value_t = gatehouse_host::DEFAULT_REQUEST_TIMEOUT.as_secs(), env = "GATEHOUSE_REQUEST_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: u64,
    /// Serve at most this many requests at once; more wait for a slot.
    #[arg(long, default_value_t = gatehouse_host::DEFAULT_MAX_CONCURRENT as u64, env = "GATEHOUSE_MAX_CONCURRENT", value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent: u64,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: say on or off")),
    }
}

#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// The store: a SQLite database file (created with its tables when
    /// missing; `sqlite://FILE` says the same) or a PostgreSQL database
    /// `postgres://USER@HOST:PORT/DB` (which must exist; its tables are made
    /// on first use). Several hosts may share one PostgreSQL database.
    #[arg(
        long,
        alias = "store",
        default_value = "gatehouse.db",
        env = "GATEHOUSE_DB"
    )]
    db: String,
}

impl StoreArgs {
    /// The store as shown to a person: a URL's password left out.
    fn shown(&self) -> String {
        match (self.db.find("://"), self.db.rfind('@')) {
            (Some(s), Some(at)) if gatehouse_host::store::is_postgres(&self.db) => {
                let creds = &self.db[s + 3..at];
                match creds.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &self.db[..s + 3], &self.db[at..]),
                    None => self.db.clone(),
                }
            }
            _ => self.db.clone(),
        }
    }
}

#[derive(clap::Args, Clone)]
struct ModuleArgs {
    /// The policy module, built by `cargo xtask wasm` [default: the module
    /// this binary carries, else `dist/gatehouse.wasm`].
    #[arg(long, env = "GATEHOUSE_MODULE")]
    module: Option<PathBuf>,
}

/// The module `GATEHOUSE_EMBED_MODULE` named when this binary was built
/// (empty when none), and its brotli and gzip copies (see `build.rs`).
static EMBEDDED: [&[u8]; 3] = [
    include_bytes!(concat!(env!("OUT_DIR"), "/module.wasm")),
    include_bytes!(concat!(env!("OUT_DIR"), "/module.wasm.br")),
    include_bytes!(concat!(env!("OUT_DIR"), "/module.wasm.gz")),
];

/// Module bytes and where they came from (for messages).
struct ModuleBytes {
    bytes: Vec<u8>,
    precompressed: Option<gatehouse_bake::Precompressed>,
    from: String,
}

impl ModuleArgs {
    /// `--module` when given; else the module this binary carries; else
    /// `dist/gatehouse.wasm` (a development build in the checkout).
    fn load(&self) -> Result<ModuleBytes, String> {
        let [wasm, br, gz] = EMBEDDED;
        let path = match &self.module {
            Some(path) => path.clone(),
            None if !wasm.is_empty() => {
                use gatehouse_bake::Encoding;
                let fits = |e, bytes: &[u8]| gatehouse_bake::wire::decodes_to(e, bytes, wasm);
                return Ok(ModuleBytes {
                    bytes: wasm.to_vec(),
                    precompressed: (fits(Encoding::Brotli, br) && fits(Encoding::Gzip, gz)).then(
                        || gatehouse_bake::Precompressed {
                            br: br.to_vec(),
                            gz: gz.to_vec(),
                        },
                    ),
                    from: "the module built into this binary".into(),
                });
            }
            None => PathBuf::from("dist/gatehouse.wasm"),
        };
        let bytes = std::fs::read(&path).map_err(|e| {
            let hint = if self.module.is_some() {
                "build it with `cargo xtask wasm`"
            } else {
                "this binary carries no module: name one with --module FILE (or GATEHOUSE_MODULE), or build a binary that carries one with `cargo xtask dist`"
            };
            format!("cannot read the module `{}`: {e}; {hint}", path.display())
        })?;
        Ok(ModuleBytes {
            precompressed: gatehouse_bake::wire::read_siblings(&path, &bytes),
            bytes,
            from: format!("`{}`", path.display()),
        })
    }
}

/// How this process holds bulk jobs.
#[derive(clap::Args)]
struct JobArgs {
    /// How long this host's claim on a bulk job lasts without renewal
    /// (ms): if it dies mid-job, another host takes the job over after at
    /// most this long. Renewed every third of it.
    #[arg(long, default_value_t = 10_000, env = "GATEHOUSE_JOB_LEASE_MS")]
    job_lease_ms: u64,
}

impl JobArgs {
    fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.job_lease_ms.max(30))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the SCIM endpoint and the module download.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        module: ModuleArgs,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
        /// Seed demo data into an empty store (the Acme agency).
        #[arg(long)]
        demo: bool,
        /// With --demo: also a sub-account of the agency, `large`, with
        /// this many generated members (a Users page that pages).
        #[arg(long, requires = "demo")]
        demo_members: Option<usize>,
        /// Deliver the outbox over SMTP, e.g. smtps://user:pass@smtp.example.com
        #[arg(long, env = "GATEHOUSE_SMTP_URL", requires = "mail_from")]
        smtp_url: Option<String>,
        /// The From address of delivered mail.
        #[arg(long, env = "GATEHOUSE_MAIL_FROM")]
        mail_from: Option<String>,
        /// Mark session cookies `Secure` and name them `__Host-gh_session`
        /// even when --public-url is not https (an https proxy in front);
        /// an https --public-url does so by itself.
        #[arg(long)]
        secure_cookies: bool,
        /// The built pages to serve at `/` (`cargo xtask www` builds them).
        #[arg(long, default_value = "www/dist", env = "GATEHOUSE_WWW")]
        www: PathBuf,
        /// The address browsers reach this host at, for links in mails
        /// (default: http://<listen>).
        #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
        public_url: Option<String>,
        /// How often to look for a newly published policy version (ms).
        #[arg(long, default_value_t = 1000, env = "GATEHOUSE_POLICY_POLL_MS")]
        policy_poll_ms: u64,
        /// Open the policy editor (`/#/policies`) to the owners of this
        /// account (the policies decide: `author_policies`). With --demo it
        /// defaults to the demo agency.
        #[arg(long, env = "GATEHOUSE_POLICY_ACCOUNT")]
        policy_account: Option<String>,
        /// The policy directory whose `properties/` an editor publish proves.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The decision tables an editor publish runs.
        #[arg(long, default_value = "tests/vectors")]
        tables: PathBuf,
        #[command(flatten)]
        jobs: JobArgs,
        /// Send each change's lock wait and hold, decide and commit times
        /// in a `Server-Timing` response header (what the host bench reads).
        #[arg(long, env = "GATEHOUSE_SERVER_TIMING")]
        server_timing: bool,
        /// Decide each change on a read snapshot before taking the write
        /// lock; under the lock the facts are read again and the answer
        /// kept only when they are equal. Shortens the lock's hold, costs a
        /// second read: off by default (see `cargo xtask bench-host`).
        #[arg(long, env = "GATEHOUSE_DECIDE_EARLY")]
        decide_early: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// How log lines (standard error) are written: `text`, or `json`
        /// (one object per line). `RUST_LOG` filters them (default `info`).
        #[arg(long, value_enum, default_value = "text", env = "GATEHOUSE_LOG_FORMAT")]
        log_format: logging::LogFormat,
        /// Open `GET /metrics` to requests from anywhere that carry
        /// `Authorization: Bearer TOKEN` (without it, only loopback peers
        /// with no proxy header may read it).
        #[arg(long, env = "GATEHOUSE_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
    },
    /// Show the newest mails of the outbox (sign-in links, invitations, notices).
    Outbox {
        #[command(flatten)]
        store: StoreArgs,
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Run unfinished bulk jobs to completion, then exit (waiting for jobs
    /// another host holds, or taking them over when its lease runs out).
    Jobs {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        jobs: JobArgs,
    },
    /// Create an API token for a user (shown once).
    Token {
        #[command(flatten)]
        store: StoreArgs,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Policy authoring: validate, format, test, see the impact, publish.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Create a SCIM bearer token for an account's identity provider (shown once).
    ScimToken {
        #[command(flatten)]
        store: StoreArgs,
        /// The account.
        #[arg(long)]
        account: String,
    },
    /// Verify an email domain for an account, on the operator's word: its
    /// identity provider may then provision people with addresses there,
    /// also people who already use Gatehouse (R17). Without DOMAIN, lists
    /// the account's verified domains.
    Domain {
        #[command(flatten)]
        store: StoreArgs,
        /// The account.
        #[arg(long)]
        account: String,
        /// The domain to verify, e.g. example.com.
        domain: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Schema, parse and strict validation, with file:line:col for every
    /// problem; exit 1 when anything is wrong.
    Validate {
        /// The policy directory (gatehouse.cedarschema and *.cedar).
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Answer every decision table under the directory's policies; print
    /// each failure with the reasons returned; exit 1 on any failure.
    Test {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// The decision tables (the spine's vector format).
        #[arg(long, default_value = "tests/vectors")]
        tables: PathBuf,
    },
    /// Format the .cedar files with Cedar's formatter; with --check, change
    /// nothing and exit 1 if a file would change.
    Fmt {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Only check.
        #[arg(long)]
        check: bool,
    },
    /// Replay the recorded decisions of the audit log under the directory's
    /// policies and list every decision that would change.
    Impact {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Only decisions since: a date (2026-11-01), a duration back (24h,
        /// 7d) or unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// The whole report as JSON on standard output.
        #[arg(long)]
        json: bool,
        /// Instead of replaying: per action, prove whether DIR decides every
        /// possible request like the policies in effect (cvc5), with a
        /// counterexample where not.
        #[arg(long)]
        symbolic: bool,
        /// With --symbolic: the policies to compare with (default: the
        /// newest published version in the store).
        #[arg(long, requires = "symbolic")]
        against: Option<PathBuf>,
    },
    /// Prove the properties in DIR/properties/ for every possible request
    /// (Cedar's symbolic compiler and cvc5); each failure with a
    /// counterexample; exit 1 when one fails.
    Prove {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Validate, test and bake the directory's policies and record the module
    /// as the newest version; running hosts switch to it.
    Publish {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// A built module whose engine the policies are baked into.
        #[command(flatten)]
        module: ModuleArgs,
        /// The decision tables that must pass.
        #[arg(long, default_value = "tests/vectors")]
        tables: PathBuf,
        /// Why (kept in the history).
        #[arg(long, short)]
        message: String,
        /// Who (default: $GATEHOUSE_AUTHOR, then `git config user.email`, then $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// The published versions, newest (the one served) first.
    History {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish an earlier version's module again as the newest version.
    Rollback {
        /// The version to go back to.
        version: i64,
        #[command(flatten)]
        store: StoreArgs,
        /// Why (default: "rollback to version N").
        #[arg(long, short)]
        message: Option<String>,
        /// Who (default: $GATEHOUSE_AUTHOR, then `git config user.email`, then $USER).
        #[arg(long)]
        author: Option<String>,
    },
}

fn author(given: Option<String>) -> String {
    let git_email = || {
        std::process::Command::new("git")
            .args(["config", "user.email"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    given
        .or_else(|| std::env::var("GATEHOUSE_AUTHOR").ok())
        .or_else(git_email)
        .filter(|a| !a.trim().is_empty())
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn store_path(store: &StoreArgs) -> PathBuf {
    PathBuf::from(store.db.strip_prefix("sqlite://").unwrap_or(&store.db))
}

/// Opens a store that must already exist: reading a new, empty one would
/// only hide a mistyped path.
async fn open_existing(store: &StoreArgs) -> Result<Store, String> {
    let path = store_path(store);
    if !gatehouse_host::store::is_postgres(&store.db) && !path.is_file() {
        return Err(format!(
            "no store at `{}`: point --store (or $GATEHOUSE_DB) at the server's database file",
            path.display()
        ));
    }
    open(store).await
}

async fn open(store: &StoreArgs) -> Result<Store, String> {
    Store::connect(&store.db)
        .await
        .map_err(|e| format!("cannot open the store `{}`: {e}", store.shown()))
}

/// A host without a module, for commands that decide nothing.
fn gate_for(module: &ModuleArgs) -> Result<Gate, String> {
    let m = module.load()?;
    Gate::from_parts(m.bytes, m.precompressed)
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            store,
            module,
            listen,
            demo,
            demo_members,
            smtp_url,
            mail_from,
            secure_cookies,
            www,
            public_url,
            policy_poll_ms,
            policy_account,
            policies,
            tables,
            jobs,
            server_timing,
            decide_early,
            limits,
            log_format,
            metrics_token,
        } => {
            logging::init(log_format)?;
            let gate = gate_for(&module)?;
            let store_handle = open(&store).await?;
            // A published version wins over the module file.
            match gatehouse_host::versions::refresh(&gate, &store_handle, None).await {
                Ok(Some(v)) => println!(
                    "serving published policy version {} (published by {} at {}): {}",
                    v.version,
                    v.author,
                    gatehouse_host::impact::utc(v.published_at),
                    v.message
                ),
                Ok(None) => {}
                Err(e) => logging::error(&e.to_string()),
            }
            // The module goes out compressed: `cargo xtask wasm` writes
            // its copies beside it; a module file without them is
            // compressed here once (brotli's best: seconds).
            if gate
                .live()
                .is_some_and(|(w, _)| w.br.is_none() || w.gz.is_none())
            {
                logging::warn(&format!(
                    "no .br/.gz copies of {} that decode to it (`cargo xtask wasm` writes them): compressing it now",
                    module.load()?.from
                ));
                let g = gate.clone();
                tokio::task::spawn_blocking(move || g.precompress())
                    .await
                    .map_err(|e| e.to_string())??;
            }
            let www = if www.join("index.html").is_file() {
                Some(www)
            } else {
                logging::warn(&format!(
                    "no pages at `{}` (build them with `cargo xtask www`): serving the API only",
                    www.display()
                ));
                None
            };
            // Bound first, so a port chosen by the system (`--listen 127.0.0.1:0`)
            // is the one links in mails name.
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                format!("cannot listen on {listen}: {e}; choose another with --listen")
            })?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let public_url = public_url
                .unwrap_or_else(|| format!("http://{addr}"))
                .trim_end_matches('/')
                .to_owned();
            let pages = www.is_some();
            // Browsers reach the host over https: its cookies must never
            // travel in the clear.
            let secure_cookies = secure_cookies
                || public_url
                    .get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
            let host = Host::new(store_handle, gate, Clock::system()).with_settings(Settings {
                secure_cookies,
                demo,
                public_url,
                www,
                authoring: policy_account
                    .or_else(|| demo.then(|| "agency".to_owned()))
                    .map(|account| gatehouse_host::editor::Authoring {
                        account,
                        policies,
                        tables,
                    }),
                job_lease: jobs.lease(),
                server_timing,
                decide_early,
                rate_limits: limits
                    .rate_limits
                    .then_some(gatehouse_host::limits::RateLimits::STANDARD),
                request_timeout: std::time::Duration::from_secs(limits.request_timeout),
                max_concurrent: usize::try_from(limits.max_concurrent).unwrap_or(usize::MAX),
                metrics_token: metrics_token.filter(|t| !t.trim().is_empty()),
            });
            if demo {
                use gatehouse_host::demo::{Prepared, prepare};
                let mut facts = gatehouse_host::demo::acme().map_err(|e| e.to_string())?;
                if let Some(n) = demo_members {
                    facts = gatehouse_host::demo::with_large_account(facts, n);
                }
                match prepare(&host, &facts).await.map_err(|e| e.to_string())? {
                    Prepared::Seeded => println!(
                        "seeded demo data: the Acme agency (sign in as olivia@acme.test, the owner)"
                    ),
                    Prepared::Reused => {
                        println!("serving the demo store --demo made earlier: not seeded again")
                    }
                }
            }
            tokio::spawn(host.clone().job_worker());
            tokio::spawn(gatehouse_host::versions::watch(
                host.gate.clone(),
                host.store.clone(),
                std::time::Duration::from_millis(policy_poll_ms.max(50)),
            ));
            if let (Some(url), Some(from)) = (smtp_url, mail_from) {
                let h = host.clone();
                let smtp = outbox::Smtp { url, from };
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = outbox::deliver(&h.store, &smtp, h.clock.now()).await {
                            logging::warn(&format!("mail delivery: {e}"));
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                });
            } else {
                println!(
                    "no SMTP configured: mails stay in the outbox (`gatehouse outbox --db {}`)",
                    store.shown()
                );
            }
            println!(
                "gatehouse listening on http://{addr}  (module sha256 {}, store {}, host {})",
                host.gate.module_sha256(),
                store.shown(),
                host.instance()
            );
            if let Some(a) = &host.settings.authoring {
                println!(
                    "policy editor: open to the owners of `{}` at http://{addr}/#/policies (publishes prove {} and run the tables of {})",
                    a.account,
                    a.policies.join("properties").display(),
                    a.tables.display()
                );
                for (dir, flag) in [(&a.tables, "--tables"), (&a.policies, "--policies")] {
                    if !dir.is_dir() {
                        logging::warn(&format!(
                            "`{}` is not a directory: the policy editor cannot publish until {flag} names one",
                            dir.display()
                        ));
                    }
                }
            }
            if pages {
                println!(
                    "open http://{addr}/ in a browser{}",
                    if demo {
                        "; demo mode: sign-in links show at /#/mailbox"
                    } else {
                        ""
                    }
                );
            }
            // The peer's address reaches handlers: the demo mailbox answers
            // loopback peers only.
            axum::serve(
                listener,
                host.router()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
        }
        Command::Policy { command } => {
            let outcome = policy(command).await?;
            outcome
                .map(|ok| println!("{ok}"))
                .map_err(|e| format!("\n{e}"))
        }
        Command::Outbox { store, limit } => {
            let store = open(&store).await?;
            let mails = outbox::list(&store, limit)
                .await
                .map_err(|e| e.to_string())?;
            if mails.is_empty() {
                println!("the outbox is empty");
            }
            for m in mails.iter().rev() {
                println!(
                    "#{} to {} — {}{}\n{}\n",
                    m["id"],
                    m["to"].as_str().unwrap_or_default(),
                    m["subject"].as_str().unwrap_or_default(),
                    if m["sent_at"].is_null() {
                        " (not sent)"
                    } else {
                        " (sent)"
                    },
                    m["body"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Jobs {
            store,
            module,
            jobs,
        } => {
            let host = Host::new(open(&store).await?, gate_for(&module)?, Clock::system())
                .with_settings(Settings {
                    job_lease: jobs.lease(),
                    ..Settings::default()
                });
            let ran = host
                .run_jobs_to_completion()
                .await
                .map_err(|e| e.to_string())?;
            println!("ran {ran} job items");
            Ok(())
        }
        Command::Token {
            store,
            email,
            label,
        } => {
            let store = open(&store).await?;
            let user: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE email_lower = $1")
                    .bind(email.to_lowercase())
                    .fetch_optional(store.pool())
                    .await
                    .map_err(|e| e.to_string())?;
            let user = user.ok_or_else(|| format!("no user with the address {email}"))?;
            let host = Host::new(store, Gate::none(), Clock::system());
            let s = gatehouse_host::auth::create_session(&host, &user, "api", &label)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", s.token);
            Ok(())
        }
        Command::ScimToken { store, account } => {
            let host = Host::new(open(&store).await?, Gate::none(), Clock::system());
            let t = gatehouse_host::scim::create_token(&host, &account)
                .await
                .map_err(|e| e.to_string())?;
            println!("{t}");
            Ok(())
        }
        Command::Domain {
            store,
            account,
            domain,
        } => {
            let host = Host::new(open(&store).await?, Gate::none(), Clock::system());
            if let Some(domain) = domain {
                let d = gatehouse_host::domains::verify_by_operator(&host, &account, &domain)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "verified {d} for {account}: its identity provider may provision addresses at {d}"
                );
            }
            let all = gatehouse_host::domains::of(&host, &account)
                .await
                .map_err(|e| e.to_string())?;
            if all.is_empty() {
                println!("{account} has no verified domains");
            } else {
                println!("{account}'s verified domains: {}", all.join(", "));
            }
            Ok(())
        }
    }
}

/// The `gatehouse policy …` commands.
async fn policy(command: PolicyCommand) -> Result<gatehouse_host::authoring::Outcome, String> {
    use gatehouse_host::{authoring, impact, versions};
    let now = Clock::system().now();
    Ok(match command {
        PolicyCommand::Validate { dir } => authoring::validate(&dir),
        PolicyCommand::Test { dir, tables } => authoring::test(&dir, &tables),
        PolicyCommand::Fmt { dir, check } => authoring::fmt(&dir, check),
        PolicyCommand::Prove { dir } => authoring::prove(&dir).await,
        PolicyCommand::Impact {
            dir,
            store,
            symbolic: true,
            against,
            ..
        } => {
            let old = match against {
                Some(old) => old,
                None => published_policies(&open_existing(&store).await?, &dir).await?,
            };
            authoring::compare(&old, &dir).await
        }
        PolicyCommand::Impact {
            dir,
            store,
            since,
            json,
            ..
        } => {
            let since = since.map(|s| impact::parse_since(&s, now)).transpose()?;
            authoring::validate(&dir)?;
            let (engine, _) = gatehouse_vectors::native_engine(&dir)?;
            let report = impact::replay(&open_existing(&store).await?, &engine, since).await?;
            Ok(if json {
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            } else {
                impact::render(&report, &dir.display().to_string())
            })
        }
        PolicyCommand::Publish {
            dir,
            store,
            module,
            tables,
            message,
            author: who,
        } => {
            let store = open(&store).await?;
            authoring::publish(
                &store,
                &authoring::Publish {
                    dir: &dir,
                    tables: &tables,
                    engine: &module.load()?.bytes,
                    author: &author(who),
                    message: &message,
                    now,
                },
            )
            .await
        }
        PolicyCommand::History { store } => {
            let list = versions::history(&open_existing(&store).await?)
                .await
                .map_err(|e| e.to_string())?;
            if list.is_empty() {
                Ok("nothing published yet: hosts serve their --module file (`gatehouse policy publish` records a version)".into())
            } else {
                Ok(list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        format!(
                            "{} v{:<3} {}  {:<12} module {}…  policy {}…  {}{}",
                            if i == 0 { "*" } else { " " },
                            v.version,
                            impact::utc(v.published_at),
                            v.author,
                            &v.module_sha256[..12.min(v.module_sha256.len())],
                            &v.policy_hash[..12.min(v.policy_hash.len())],
                            v.message,
                            v.rollback_of
                                .map(|r| format!(" (rollback to v{r})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n* = served")
            }
        }
        PolicyCommand::Rollback {
            version,
            store,
            message,
            author: who,
        } => {
            let store = open_existing(&store).await?;
            let message = message.unwrap_or_else(|| format!("rollback to version {version}"));
            let v = versions::rollback(&store, version, &author(who), &message, now).await?;
            Ok(format!(
                "published version {} with the module of version {version} (sha256 {}); running hosts switch to it at once on PostgreSQL (NOTIFY), else within their poll interval",
                v.version, v.module_sha256
            ))
        }
    })
}

/// The newest published version's policies, written to a temporary
/// directory (with DIR's `properties/`, whose assumptions both sides share).
async fn published_policies(store: &Store, dir: &std::path::Path) -> Result<PathBuf, String> {
    use gatehouse_host::versions;
    let newest = versions::newest(store)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(
            "nothing is published in this store: name the policies to compare with, --against DIR",
        )?;
    let bytes = versions::module(store, newest.version)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let section = gatehouse_policy::module::policy_section(&bytes)?;
    let bundle = gatehouse_policy::bundle::Bundle::from_bytes(section)?;
    let out = std::env::temp_dir().join(format!(
        "gatehouse-published-v{}-{}",
        newest.version,
        std::process::id()
    ));
    gatehouse_host::authoring::write_dir(&bundle, Some(dir), &out)?;
    eprintln!(
        "comparing with published version {} (policy hash {})",
        newest.version, newest.policy_hash
    );
    Ok(out)
}
