//! The command line: `serve` (the default), `migrate`, `healthcheck` and `token`. Each subcommand reads
//! only the configuration it needs, and every failure is one line on stderr and a non-zero exit.

mod healthcheck;

use clap::{Parser, Subcommand};

use crate::auth::JwtKeys;
use crate::config::{self, AuthConfig, Config, ProcessEnv};
use crate::protocol::validate::is_valid_username;
use crate::startup::{self, Application};
use crate::store::{migrate, pool, users};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "bosar-chat",
    version,
    about = "BoSar Chat: a real-time WebSocket chat engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations, print what was applied, and exit.
    Migrate,
    /// Exit 0 iff `GET /api` answers 200 (for container health checks).
    Healthcheck {
        /// The URL to check; defaults to http://127.0.0.1:$PORT/api.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print a signed token for a user, creating the user (without a password) if missing.
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime in seconds; defaults to JWT_TTL_SECS.
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// Runs the chosen subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => run_migrations().await,
        Command::Healthcheck { url } => healthcheck::run(url).await,
        Command::Token { user, ttl } => token(&user, ttl).await,
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log);
    match crate::open_files::raise_to_hard_limit() {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let app = Application::build(config).await?;
    startup::serve_until_signalled(app).await
}

#[allow(clippy::print_stdout)]
async fn run_migrations() -> anyhow::Result<()> {
    let database = config::DatabaseConfig::from_source(&ProcessEnv)?;
    telemetry::init(&config::LogConfig::from_source(&ProcessEnv)?);
    let applied = migrate::run_pending(&database).await?;
    if applied.is_empty() {
        println!("no pending migrations");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn token(username: &str, ttl: Option<u64>) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_valid_username(username),
        "--user must be 3 to 32 letters, digits, '_', '.' or '-'"
    );
    let database = config::DatabaseConfig::from_source(&ProcessEnv)?;
    let auth = AuthConfig::from_source(&ProcessEnv)?;
    let pool = pool::build(&database)?;
    let user = users::find_or_create(&pool, username).await?;
    let keys = JwtKeys::new(auth.jwt_secret.expose().as_bytes(), auth.jwt_ttl);
    let token = keys.issue(
        user.id,
        &user.username,
        ttl.map(std::time::Duration::from_secs),
    )?;
    println!("{token}");
    Ok(())
}
