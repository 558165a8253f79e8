//! `gatehouse`: the server host and its admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_host::{Clock, Gate, Host, Settings, Store, outbox};

/// Gatehouse decides who may do what to whom, with Cedar policies compiled
/// into one WebAssembly module, and applies allowed changes atomically.
#[derive(Parser)]
#[command(name = "gatehouse", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// The SQLite database file (created with its tables when missing).
    #[arg(long, default_value = "gatehouse.db", env = "GATEHOUSE_DB")]
    db: PathBuf,
}

#[derive(clap::Args, Clone)]
struct ModuleArgs {
    /// The policy module, built by `cargo xtask wasm`.
    #[arg(long, default_value = "dist/gatehouse.wasm", env = "GATEHOUSE_MODULE")]
    module: PathBuf,
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
        /// Deliver the outbox over SMTP, e.g. smtps://user:pass@smtp.example.com
        #[arg(long, env = "GATEHOUSE_SMTP_URL", requires = "mail_from")]
        smtp_url: Option<String>,
        /// The From address of delivered mail.
        #[arg(long, env = "GATEHOUSE_MAIL_FROM")]
        mail_from: Option<String>,
        /// Mark session cookies Secure (when served behind HTTPS).
        #[arg(long)]
        secure_cookies: bool,
    },
    /// Show the newest mails of the outbox (sign-in links, invitations, notices).
    Outbox {
        #[command(flatten)]
        store: StoreArgs,
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Run unfinished bulk jobs to completion, then exit.
    Jobs {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        module: ModuleArgs,
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
    /// Create a SCIM bearer token for an account's identity provider (shown once).
    ScimToken {
        #[command(flatten)]
        store: StoreArgs,
        /// The account.
        #[arg(long)]
        account: String,
    },
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

async fn open(store: &StoreArgs) -> Result<Store, String> {
    Store::open(&store.db)
        .await
        .map_err(|e| format!("cannot open the store `{}`: {e}", store.db.display()))
}

/// A host without a module, for commands that decide nothing.
fn gate_for(module: &ModuleArgs) -> Result<Gate, String> {
    Gate::from_file(&module.module)
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            store,
            module,
            listen,
            demo,
            smtp_url,
            mail_from,
            secure_cookies,
        } => {
            let gate = gate_for(&module)?;
            let host = Host::new(open(&store).await?, gate, Clock::system())
                .with_settings(Settings { secure_cookies });
            if demo {
                let facts = gatehouse_host::demo::acme().map_err(|e| e.to_string())?;
                if gatehouse_host::demo::seed(&host, &facts)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    println!(
                        "seeded demo data: the Acme agency (sign in as olivia@acme.test, the owner)"
                    );
                } else {
                    println!("the store already has data: demo data not seeded again");
                }
            }
            tokio::spawn(host.clone().job_worker());
            if let (Some(url), Some(from)) = (smtp_url, mail_from) {
                let h = host.clone();
                let smtp = outbox::Smtp { url, from };
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = outbox::deliver(&h.store, &smtp, h.clock.now()).await {
                            eprintln!("gatehouse: mail delivery: {e}");
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                });
            } else {
                println!(
                    "no SMTP configured: mails stay in the outbox (`gatehouse outbox --db {}`)",
                    store.db.display()
                );
            }
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                format!("cannot listen on {listen}: {e}; choose another with --listen")
            })?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!(
                "gatehouse listening on http://{addr}  (module sha256 {}, store {})",
                host.gate.module_sha256(),
                store.db.display()
            );
            axum::serve(listener, host.router())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| e.to_string())
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
        Command::Jobs { store, module } => {
            let host = Host::new(open(&store).await?, gate_for(&module)?, Clock::system());
            let ran = host.run_jobs().await.map_err(|e| e.to_string())?;
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
                sqlx::query_scalar("SELECT id FROM users WHERE email_lower = ?")
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
    }
}
