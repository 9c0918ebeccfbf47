//! Work done one job at a time, in the order it was queued: this node's presence writes to
//! Redis, so that a user's fact and a later rewrite of the node's whole presence never land in
//! the wrong order.

use std::future::Future;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

#[derive(Default)]
pub struct InOrder {
    queue: Option<mpsc::UnboundedSender<BoxFuture<'static, ()>>>,
}

impl InOrder {
    /// Queues `job`, which starts once every job queued before it has finished. The answer is
    /// its output (`None` only if the worker is gone). The first job starts the worker on the
    /// caller's arbiter; it ends when `self` is dropped.
    pub fn run<T, F>(&mut self, job: F) -> impl Future<Output = Option<T>> + use<T, F>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let queue = self.queue.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
            actix::spawn(async move {
                while let Some(job) = rx.recv().await {
                    job.await;
                }
            });
            tx
        });
        let (done, answer) = oneshot::channel();
        let _ = queue.send(Box::pin(async move {
            let _ = done.send(job.await);
        }));
        async move { answer.await.ok() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[actix_rt::test]
    async fn jobs_run_one_at_a_time_in_queue_order() {
        let mut lane = InOrder::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let job = |name: &'static str, wait_ms: u64| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("{name} starts"));
                actix_rt::time::sleep(Duration::from_millis(wait_ms)).await;
                log.lock().unwrap().push(format!("{name} ends"));
                name
            }
        };
        let slow = lane.run(job("slow", 30));
        let quick = lane.run(job("quick", 0));
        assert_eq!(quick.await, Some("quick"));
        assert_eq!(slow.await, Some("slow"));
        assert_eq!(
            *log.lock().unwrap(),
            ["slow starts", "slow ends", "quick starts", "quick ends"]
        );
    }
}
