//! Keeps the search index's clusters matched to the table: a background task per node that, every
//! [`ReclusterOptions::every`], rebuilds the IVFFlat index with more lists once the table has grown
//! enough to double them (see [`crate::store::vector_index`]).
//!
//! One node at a time does it: the task takes a session-level advisory lock and skips the round
//! when another node holds it. The lock goes with the session, so a node that dies mid-rebuild
//! frees it, and the next round finishes or discards what the dead node left.

use std::time::Duration;

use anyhow::Context;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::vector_index;

/// The advisory lock key of the rebuild ("bosar-ivf" in ASCII).
const LOCK_KEY: i64 = 0x626f_7361_722d_6976;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// When the index is rebuilt.
#[derive(Debug, Clone, Copy)]
pub struct ReclusterOptions {
    /// Time between two looks at the table.
    pub every: Duration,
    /// Below this many embedded messages the index keeps one list.
    pub min_rows: i64,
    /// Embedded messages per list, up to 1,000 lists (√rows beyond).
    pub rows_per_list: i64,
}

impl Default for ReclusterOptions {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            min_rows: 10_000,
            rows_per_list: 1000,
        }
    }
}

/// The task's numbers in `/metrics`.
#[derive(Clone)]
pub struct ReclusterMetrics {
    /// `bosar_search_index_lists`: the lists of the search index, as last seen.
    pub lists: IntGauge,
    /// `bosar_search_index_rebuilds_total`: rebuilds this node completed.
    pub rebuilds: IntCounter,
}

impl ReclusterMetrics {
    pub fn register(metrics: &Metrics) -> prometheus::Result<Self> {
        let this = Self {
            lists: IntGauge::new("search_index_lists", "Lists of the IVFFlat search index")?,
            rebuilds: IntCounter::new(
                "search_index_rebuilds_total",
                "Search index rebuilds this node completed",
            )?,
        };
        metrics.register(Box::new(this.lists.clone()))?;
        metrics.register(Box::new(this.rebuilds.clone()))?;
        Ok(this)
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another node holds the lock.
    Busy,
    /// The index has the lists the table calls for.
    Fine { lists: i64 },
    /// The index was rebuilt.
    Rebuilt { from: i64, to: i64 },
}

/// Starts the task on the current actix runtime; it ends when `stop`'s sender is dropped.
pub fn spawn(
    database_url: &str,
    metrics: ReclusterMetrics,
    options: ReclusterOptions,
    stop: watch::Receiver<()>,
) {
    actix_rt::spawn(run(database_url.to_owned(), metrics, options, stop));
}

async fn run(
    url: String,
    metrics: ReclusterMetrics,
    options: ReclusterOptions,
    mut stop: watch::Receiver<()>,
) {
    while stop.has_changed().is_ok() {
        tokio::select! {
            round = run_once(&url, options) => match round {
                Ok(Round::Fine { lists }) => metrics.lists.set(lists),
                Ok(Round::Rebuilt { from, to }) => {
                    metrics.lists.set(to);
                    metrics.rebuilds.inc();
                    tracing::info!(from, to, "search index rebuilt");
                }
                Ok(Round::Busy) => {}
                Err(e) => tracing::warn!(error = format!("{e:#}"), "search index upkeep failed"),
            },
            // Dropping the round closes its connection, which aborts a build in progress.
            _ = stop.changed() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(options.every) => {}
            _ = stop.changed() => break,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// One round on a connection of its own: finish an interrupted rebuild, then rebuild when the
/// table has outgrown the index, or when the index is not the one this version builds (over the
/// search key, of embedded messages only).
pub async fn run_once(url: &str, options: ReclusterOptions) -> anyhow::Result<Round> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(url))
        .await
        .context("connecting to the database timed out")?
        .context("connecting to the database")?;
    let lock: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(&mut conn)
        .await?;
    if !lock.locked {
        return Ok(Round::Busy);
    }
    // The lock is released with the session when `conn` is dropped.
    vector_index::settle(&mut conn).await?;
    let index = vector_index::current(&mut conn)
        .await?
        .context("the search index is missing")?;
    let current = index.lists;
    let rows = vector_index::embedded_rows(&mut conn).await?;
    let target = vector_index::lists_for(rows, options.min_rows, options.rows_per_list);
    if index.is_current_shape() && !vector_index::worth_rebuilding(current, target) {
        return Ok(Round::Fine { lists: current });
    }
    tracing::info!(
        rows,
        from = current,
        to = target,
        keyed = index.keyed,
        partial = index.partial,
        "rebuilding the search index"
    );
    vector_index::rebuild(&mut conn, target).await?;
    Ok(Round::Rebuilt {
        from: current,
        to: target,
    })
}
