//! A commit lane: one database connection that stores the batches of its rooms one at a time,
//! in the order their messages arrived, and hands each batch on before it takes the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use diesel_async::AsyncPgConnection;
use tokio::sync::mpsc;

use super::Pending;
use super::batch::Batch;
use crate::bus::actor::Bus;
use crate::config::DatabaseConfig;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::commit::{NewMessage, Outcome, commit_batch, prepare_session};

/// Most messages one statement stores.
const MAX_BATCH: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Lane {
    pub(super) database: DatabaseConfig,
    pub(super) conn: Option<AsyncPgConnection>,
    pub(super) metrics: Metrics,
    pub(super) node: String,
    pub(super) bus: Option<Addr<Bus>>,
    pub(super) in_flight: Arc<AtomicUsize>,
}

impl Lane {
    /// Stores whatever has queued up, one batch at a time, until the queue closes.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut senders = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut senders, MAX_BATCH).await > 0 {
            let batch = Batch::new(std::mem::take(&mut senders));
            let count = batch.len();
            match self.store(&batch.unique).await {
                Ok(outcomes) => {
                    let stored = batch.finish(&outcomes, &self.node, self.bus.as_ref());
                    self.metrics.messages_in.inc_by(stored);
                }
                Err(e) => {
                    tracing::warn!(error = %e, messages = count, "commit failed; senders told unavailable");
                    batch.refuse();
                }
            }
            self.in_flight.fetch_sub(count, Ordering::AcqRel);
            senders.reserve(MAX_BATCH);
        }
    }

    /// Stores the batch, reconnecting when needed, and sends it again (twice at most) when another
    /// node stored one of its `client_msg_id`s at the same moment.
    async fn store(&mut self, batch: &[NewMessage]) -> Result<Vec<Outcome>, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timer = self.metrics.commit_seconds.start_timer();
            let conn = self.connection().await?;
            let result = tokio::time::timeout(COMMIT_TIMEOUT, commit_batch(conn, batch))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("commit timed out".into())));
            timer.observe_duration();
            self.metrics
                .commit_batch_messages
                .observe(batch.len() as f64);
            match result {
                Ok(outcomes) => return Ok(outcomes),
                Err(StoreError::Conflict) if attempts < 3 => continue,
                Err(e) => {
                    // Whatever broke, start the next batch on a fresh connection.
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut AsyncPgConnection, StoreError> {
        if self.conn.is_none() {
            let mut conn = tokio::time::timeout(
                CONNECT_TIMEOUT,
                crate::store::connect::establish(&self.database),
            )
            .await
            .map_err(|_| StoreError::Unavailable("connect timed out".into()))?
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            prepare_session(&mut conn).await?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))
    }
}
