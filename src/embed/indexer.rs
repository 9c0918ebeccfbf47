//! The indexer: a background task per node that gives committed messages their embedding, off
//! the send path.
//!
//! Each step is one transaction on the indexer's own connection: claim the oldest messages whose
//! `embedding` is NULL with `FOR UPDATE SKIP LOCKED`, embed their bodies in one call, write every
//! vector with one `UPDATE … FROM unnest(…)`, commit. Rows locked by another node's indexer are
//! skipped, so nodes share the backlog without doing a row twice; a crash or restart rolls the
//! step back and the rows are simply claimed again later. While steps come back full the indexer
//! goes straight on; otherwise it polls every [`IndexerOptions::idle_poll`]. The backlog (rows
//! still NULL) is counted every [`IndexerOptions::backlog_every`] for `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::watch;

use super::Embedder;
use super::recluster::{self, ReclusterMetrics, ReclusterOptions};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::embeddings;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause after repeated failures (database or provider down).
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(30);

/// How an indexer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct IndexerOptions {
    /// Messages per step; `None` takes the embedder's own batch size.
    pub batch_size: Option<usize>,
    /// Pause when a step found less than a full batch.
    pub idle_poll: Duration,
    /// How often the backlog gauge is refreshed.
    pub backlog_every: Duration,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        Self {
            batch_size: None,
            idle_poll: Duration::from_millis(200),
            backlog_every: Duration::from_secs(2),
        }
    }
}

/// The indexer's numbers in `/metrics`.
#[derive(Clone)]
pub struct IndexerMetrics {
    /// `bosar_indexer_backlog`: messages without an embedding, as last counted.
    pub backlog: IntGauge,
    /// `bosar_indexer_embedded_total`: messages this node embedded.
    pub embedded: IntCounter,
    /// `bosar_indexer_failures_total`: steps that failed (database or provider errors).
    pub failures: IntCounter,
}

impl IndexerMetrics {
    pub fn register(metrics: &Metrics) -> prometheus::Result<Self> {
        let this = Self {
            backlog: IntGauge::new("indexer_backlog", "Messages still without an embedding")?,
            embedded: IntCounter::new(
                "indexer_embedded_total",
                "Messages this node's indexer embedded",
            )?,
            failures: IntCounter::new(
                "indexer_failures_total",
                "Indexer steps that failed (database or embeddings provider)",
            )?,
        };
        metrics.register(Box::new(this.backlog.clone()))?;
        metrics.register(Box::new(this.embedded.clone()))?;
        metrics.register(Box::new(this.failures.clone()))?;
        Ok(this)
    }
}

/// A running indexer (and what was started with it); dropping the handle stops it after its
/// current step.
pub struct IndexerHandle {
    stop: watch::Sender<()>,
}

/// Starts the node's indexer, and beside it the upkeep of the search index's clusters, when an
/// embedder is configured (`None` for `off`).
pub fn start(state: &AppState) -> anyhow::Result<Option<IndexerHandle>> {
    let Some(embedder) = state.embedder.clone() else {
        return Ok(None);
    };
    let metrics = IndexerMetrics::register(&state.metrics).context("registering metrics")?;
    let recluster_metrics =
        ReclusterMetrics::register(&state.metrics).context("registering metrics")?;
    let url = &state.config.database.url;
    let handle = spawn(url, embedder, metrics, IndexerOptions::default());
    recluster::spawn(
        url,
        recluster_metrics,
        ReclusterOptions::default(),
        handle.stop.subscribe(),
    );
    Ok(Some(handle))
}

/// Starts an indexer on the current actix (or tokio local) runtime.
pub fn spawn(
    database_url: &str,
    embedder: Arc<dyn Embedder>,
    metrics: IndexerMetrics,
    options: IndexerOptions,
) -> IndexerHandle {
    let (stop, stopped) = watch::channel(());
    let indexer = Indexer {
        database_url: database_url.to_owned(),
        batch_size: options.batch_size.unwrap_or_else(|| embedder.batch_size()),
        embedder,
        metrics,
        options,
        conn: None,
    };
    tracing::info!(
        provider = indexer.embedder.name(),
        batch = indexer.batch_size,
        "indexer started"
    );
    actix_rt::spawn(indexer.run(stopped));
    IndexerHandle { stop }
}

struct Indexer {
    database_url: String,
    embedder: Arc<dyn Embedder>,
    metrics: IndexerMetrics,
    options: IndexerOptions,
    batch_size: usize,
    conn: Option<AsyncPgConnection>,
}

impl Indexer {
    async fn run(mut self, mut stop: watch::Receiver<()>) {
        let mut failures = 0u32;
        let mut counted: Option<Instant> = None;
        while stop.has_changed().is_ok() {
            if counted.is_none_or(|at| at.elapsed() >= self.options.backlog_every) {
                counted = Some(Instant::now());
                self.count_backlog().await;
            }
            let pause = match self.step().await {
                Ok(done) => {
                    failures = 0;
                    self.metrics.embedded.inc_by(done as u64);
                    if done >= self.batch_size {
                        continue;
                    }
                    self.options.idle_poll
                }
                Err(e) => {
                    // Start the next try on a fresh connection, whatever broke.
                    self.conn = None;
                    failures += 1;
                    self.metrics.failures.inc();
                    let pause = Duration::from_millis(500)
                        .saturating_mul(1 << failures.min(8))
                        .min(MAX_FAILURE_PAUSE);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        failures,
                        pause_ms = pause.as_millis() as u64,
                        "indexer step failed"
                    );
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("indexer stopped");
    }

    /// One transaction: claim, embed, store, commit. Returns the messages embedded.
    async fn step(&mut self) -> anyhow::Result<usize> {
        let (embedder, batch_size) = (self.embedder.clone(), self.batch_size);
        let conn = self.connection().await?;
        diesel::sql_query("BEGIN").execute(conn).await?;
        let result = embed_claimed(conn, &*embedder, batch_size).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = diesel::sql_query(end).execute(conn).await;
        if let Err(e) = ended {
            // The connection's state is unknown: start over with a new one.
            self.conn = None;
            return Err(anyhow::Error::from(e).context(end));
        }
        result
    }

    async fn count_backlog(&mut self) {
        let Ok(conn) = self.connection().await else {
            return;
        };
        match embeddings::backlog(conn).await {
            Ok(n) => self.metrics.backlog.set(n),
            Err(e) => {
                tracing::warn!(error = %e, "counting the indexer backlog failed");
                self.conn = None;
            }
        }
    }

    async fn connection(&mut self) -> anyhow::Result<&mut AsyncPgConnection> {
        if self.conn.is_none() {
            let connect = AsyncPgConnection::establish(&self.database_url);
            let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .context("connecting to the database timed out")?
                .context("connecting to the database")?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().context("no connection")
    }
}

/// Inside an open transaction: claims up to `limit` messages, embeds and stores them.
pub async fn embed_claimed(
    conn: &mut AsyncPgConnection,
    embedder: &dyn Embedder,
    limit: usize,
) -> anyhow::Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let claimed = embeddings::claim(conn, limit).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let texts: Vec<&str> = claimed.iter().map(|(_, body)| body.as_str()).collect();
    let vectors = embedder.embed(&texts).await.with_context(|| {
        format!(
            "embedding {} messages with {}",
            texts.len(),
            embedder.name()
        )
    })?;
    anyhow::ensure!(
        vectors.len() == claimed.len(),
        "{} vectors for {} messages",
        vectors.len(),
        claimed.len()
    );
    let ids: Vec<uuid::Uuid> = claimed.iter().map(|(id, _)| *id).collect();
    let vectors = vectors.into_iter().map(pgvector::Vector::from).collect();
    Ok(embeddings::store(conn, &ids, vectors).await?)
}
