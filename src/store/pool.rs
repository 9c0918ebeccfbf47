//! The deadpool pool of diesel-async PostgreSQL connections, with timeouts so that a database
//! outage turns into quick errors instead of piled-up waiters.

use std::time::Duration;

use anyhow::Context;
use deadpool::Runtime;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use futures_util::FutureExt;

use crate::config::DatabaseConfig;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

/// How long a caller waits for a free connection, and for a new one to be made.
const WAIT_TIMEOUT: Duration = Duration::from_secs(2);
const CREATE_TIMEOUT: Duration = Duration::from_secs(2);
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds the pool. No connection is opened until one is needed, so a node starts (and answers
/// `/api`) even while the database is briefly unreachable.
pub fn build(config: &DatabaseConfig) -> anyhow::Result<DbPool> {
    let mut setup = ManagerConfig::default();
    let ca_file = config.ca_file.clone();
    setup.custom_setup = Box::new(move |url| {
        let (url, ca_file) = (url.to_owned(), ca_file.clone());
        async move { super::connect::establish_url(&url, ca_file.as_deref()).await }.boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.url.clone(),
        setup,
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CREATE_TIMEOUT))
        .recycle_timeout(Some(RECYCLE_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Checks out a connection and runs `SELECT 1`, within `timeout`.
pub async fn ping(pool: &DbPool, timeout: Duration) -> anyhow::Result<()> {
    let check = async {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .context("database query failed")?;
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, check)
        .await
        .context("database check timed out")?
}
