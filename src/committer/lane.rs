//! A commit lane: one database connection that stores the batches of its rooms in order, with up
//! to `depth` statements sent ahead of their answers (pipelined on the one connection), so that
//! the database starts on the next batch the moment it has committed one, instead of waiting for
//! this node to read the answer and send the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use diesel_async::AsyncPgConnection;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;

use super::Pending;
use super::batch::{Authors, Batch, HandOff};
use crate::bus::actor::Bus;
use crate::config::DatabaseConfig;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::commit::{Outcome, commit_batch, prepare_session};

/// Most messages one statement stores.
pub(super) const MAX_BATCH: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Times a batch is sent when another node stores the same `client_msg_id` at the same moment.
const ATTEMPTS: u32 = 3;

pub(super) struct Lane {
    pub(super) database: DatabaseConfig,
    pub(super) metrics: Metrics,
    pub(super) node: String,
    pub(super) bus: Option<Addr<Bus>>,
    pub(super) in_flight: Arc<AtomicUsize>,
}

/// A statement on its way, and the batch it stores.
type Running<'c> = BoxFuture<'c, (Batch, Result<Vec<Outcome>, StoreError>)>;

/// Why [`Lane::pipeline`] returned.
enum Ended {
    /// The connection failed: the next batch starts on a new one.
    Broken,
    /// The queue closed (the node is gone): the lane ends.
    Closed,
}

impl Lane {
    /// Takes batches from `rx` until it closes. Connects when there is something to store, and
    /// again after a failure; while it cannot, each batch is refused as `unavailable`.
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        let mut first = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut first, MAX_BATCH).await > 0 {
            let batch = Batch::new(std::mem::take(&mut first));
            match self.connect().await {
                Ok(conn) => {
                    if let Ended::Closed = self.pipeline(&conn, &mut rx, batch).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, messages = batch.len(), "no database connection; senders told unavailable");
                    self.refuse(batch);
                }
            }
        }
    }

    async fn connect(&self) -> Result<AsyncPgConnection, StoreError> {
        let mut conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            crate::store::connect::establish(&self.database),
        )
        .await
        .map_err(|_| StoreError::Unavailable("connect timed out".into()))?
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        prepare_session(&mut conn).await?;
        Ok(conn)
    }

    /// Stores `first` and every batch after it on `conn`, at most `depth` statements at once,
    /// answering them in the order they were sent, until the connection fails or `rx` closes.
    async fn pipeline(
        &self,
        conn: &AsyncPgConnection,
        rx: &mut mpsc::Receiver<Pending>,
        first: Batch,
    ) -> Ended {
        let mut running = FuturesOrdered::new();
        let mut authors = Authors::default();
        // A batch waiting for the answer to an earlier one of the same author.
        let mut held = Some(first);
        let (mut broken, mut closed) = (false, false);
        let mut next = Vec::with_capacity(MAX_BATCH);
        loop {
            if let Some(batch) = held.take_if(|b| broken || !authors.share(b.authors())) {
                if broken {
                    self.refuse(batch);
                } else {
                    authors.add(batch.authors());
                    running.push_back(self.send(conn, batch));
                }
            }
            if running.is_empty() && held.is_none() && (broken || closed) {
                return if closed { Ended::Closed } else { Ended::Broken };
            }
            tokio::select! {
                biased;
                Some((batch, result)) = running.next(), if !running.is_empty() => {
                    authors.remove(batch.authors());
                    match result {
                        Ok(outcomes) => self.finish(batch, &outcomes),
                        // Another node stored one of these `client_msg_id`s at the same moment:
                        // sent again, the statement finds it. (No batch sent after it shares an
                        // author with it, so every author's messages keep their order.)
                        Err(StoreError::Conflict) if batch.attempts < ATTEMPTS => {
                            authors.add(batch.authors());
                            running.push_back(self.send(conn, batch));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, messages = batch.len(), "commit failed; senders told unavailable");
                            self.refuse(batch);
                            // Whatever broke, the batches after this one start on a new
                            // connection.
                            broken = true;
                        }
                    }
                }
                n = rx.recv_many(&mut next, MAX_BATCH),
                    if !(broken || closed) && held.is_none() && running.len() < self.database.commit_depth =>
                {
                    if n == 0 {
                        closed = true;
                    } else {
                        held = Some(Batch::new(std::mem::take(&mut next)));
                    }
                }
            }
        }
    }

    /// The statement that stores `batch`; it is sent when first polled.
    fn send<'c>(&'c self, conn: &'c AsyncPgConnection, mut batch: Batch) -> Running<'c> {
        batch.attempts += 1;
        let metrics = &self.metrics;
        Box::pin(async move {
            let timer = metrics.commit_seconds.start_timer();
            let result = tokio::time::timeout(COMMIT_TIMEOUT, commit_batch(conn, &batch.unique))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("commit timed out".into())));
            timer.observe_duration();
            metrics
                .commit_batch_messages
                .observe(batch.unique.len() as f64);
            (batch, result)
        })
    }

    fn finish(&self, batch: Batch, outcomes: &[Outcome]) {
        let count = batch.len();
        let to = HandOff {
            node: &self.node,
            bus: self.bus.as_ref(),
        };
        let stored = batch.finish(outcomes, &to);
        self.metrics.messages_in.inc_by(stored);
        self.in_flight.fetch_sub(count, Ordering::AcqRel);
    }

    fn refuse(&self, batch: Batch) {
        let count = batch.len();
        batch.refuse();
        self.in_flight.fetch_sub(count, Ordering::AcqRel);
    }
}
