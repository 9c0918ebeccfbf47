//! A small, dedicated pool for password hashing. Argon2 takes ~19 MiB and tens of milliseconds
//! per hash; on the general blocking pool (hundreds of threads, each keeping its own allocator
//! arena) a burst of sign-ins would leave the process holding gigabytes. Here at most one hash
//! per core runs at a time, and a backlog beyond `MAX_QUEUED` is refused rather than queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Sign-ins waiting or running before new ones are told to retry later.
const MAX_QUEUED: usize = 256;

pub struct Hasher {
    jobs: Mutex<Sender<Job>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

/// The pool is saturated; the caller should answer `rate_limited`.
#[derive(Debug, thiserror::Error)]
#[error("too many sign-ins at once; try again shortly")]
pub struct Busy;

impl Hasher {
    /// A pool of `threads` that refuses work past [`MAX_QUEUED`] waiting or running jobs.
    pub fn new(threads: usize) -> Self {
        Self::with_limit(threads, MAX_QUEUED)
    }

    pub fn with_limit(threads: usize, max_queued: usize) -> Self {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Self {
            jobs: Mutex::new(tx),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued,
        }
    }

    /// Runs `f` on the pool and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let (tx, rx) = oneshot::channel();
        let queued = self.queued.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
            queued.fetch_sub(1, Ordering::AcqRel);
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job);
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        rx.await.map_err(|_| Busy)
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return, // the pool was dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn runs_jobs_and_returns_their_results() {
        let hasher = Hasher::new(2);
        let results =
            futures_util::future::join_all((0..10).map(|i| hasher.run(move || i * 2))).await;
        let results: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[actix_rt::test]
    async fn a_saturated_pool_refuses_instead_of_queueing() {
        let hasher = Hasher::with_limit(1, 2);
        let slow = || std::thread::sleep(std::time::Duration::from_millis(200));
        let (a, b, c) = futures_util::join!(hasher.run(slow), hasher.run(slow), async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            hasher.run(|| ()).await
        });
        assert!(a.is_ok() && b.is_ok());
        assert!(c.is_err(), "the third job found the pool full");
        assert!(
            hasher.run(|| ()).await.is_ok(),
            "and it takes work again once drained"
        );
    }
}
