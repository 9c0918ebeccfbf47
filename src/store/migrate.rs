//! The schema migrations, embedded in the binary at build time and applied through diesel's
//! migration harness over diesel-async's `AsyncConnectionWrapper`.

use anyhow::Context;
use diesel::RunQueryDsl as _;
use diesel_async::AsyncPgConnection;

use crate::config::DatabaseConfig;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies every pending migration and returns the versions applied, oldest first. Safe to run
/// concurrently from several nodes: a session advisory lock serialises them.
pub async fn run_pending(database: &DatabaseConfig) -> anyhow::Result<Vec<String>> {
    let conn = super::connect::establish(database)
        .await
        .context("connecting to the database to migrate")?;
    // The harness is synchronous; it blocks on its own calls, so it runs off the async threads.
    tokio::task::spawn_blocking(move || apply(conn))
        .await
        .context("migration task panicked")?
}

/// An arbitrary, fixed key for `pg_advisory_lock` shared by every node of the service.
const MIGRATION_LOCK_KEY: i64 = 0x626f_7361_725f_6d69;

fn apply(conn: AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .context("taking the migration lock")?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"));
    // The lock goes with the session too; releasing it early just lets a waiting node go on.
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn);
    result
}
