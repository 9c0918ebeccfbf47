//! Building and running one node: migrations, pool, Redis link, metrics, the embeddings indexer,
//! and the HTTP server on a bound listener (port 0 in tests, so several nodes can run in one
//! process).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::bus::RedisLink;
use crate::config::Config;
use crate::embed::indexer::IndexerHandle;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{migrate, pool};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// The embeddings indexer; stops when the server has stopped and this is dropped.
    indexer: Option<IndexerHandle>,
}

impl Application {
    /// Applies migrations (when `RUN_MIGRATIONS`), prepares the shared state and binds the
    /// listener. The server runs once [`Application::run_until_stopped`] is awaited (or
    /// spawned); only then do the commit lanes and the bus run, on its first worker.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let started = Instant::now();
        crate::store::connect::install_crypto_provider();
        if config.run_migrations {
            let applied = migrate::run_pending(&config.database).await?;
            for version in &applied {
                tracing::info!(version, "migration applied");
            }
        }
        let pool = pool::build(&config.database)?;
        let redis = RedisLink::new(&config.redis)?.map(Arc::new);
        let metrics = Metrics::new(&config.node_id).context("registering metrics")?;

        let address = (config.http.host, config.http.port);
        let listener = TcpListener::bind(address)
            .with_context(|| format!("binding {}:{}", address.0, address.1))?;
        let port = listener.local_addr()?.port();
        let workers = config.http.workers;
        let grace = config.shutdown_grace;
        let node = config.node_id.clone();

        let (state, services) = AppState::new(config, pool, redis, metrics);
        let state = web::Data::new(state);
        let indexer = crate::embed::indexer::start(&state).context("starting the indexer")?;
        let app_state = state.clone();
        // The first worker to start runs the bus and the commit lanes beside its connections.
        let services = Arc::new(Mutex::new(Some(services)));
        let server = HttpServer::new(move || {
            if let Some(services) = services.lock().ok().and_then(|mut s| s.take()) {
                services.start();
            }
            App::new()
                .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                .app_data(app_state.clone())
                .configure(crate::http::routes)
        })
        .workers(workers)
        // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds
        // a frame back while an earlier one is unacknowledged, and the peer's delayed ACK turns
        // that into 40 ms stalls.
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(grace.as_secs())
        .listen(listener)?
        .run();

        tracing::info!(
            node,
            port,
            startup_ms = started.elapsed().as_millis() as u64,
            "listening"
        );
        Ok(Self {
            port,
            server,
            state,
            indexer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's shared state. Sends submitted to its committer are answered once the server
    /// runs (see [`Application::build`]).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server from elsewhere (signals, tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        drop(self.indexer);
        result
    }
}

/// Runs the node until SIGTERM or SIGINT, then drains (see [`crate::drain`]) and stops.
pub async fn serve_until_signalled(app: Application) -> anyhow::Result<()> {
    let handle = app.handle();
    let state = app.state();
    actix_rt::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(signal, "shutdown requested");
        crate::drain::drain(&state).await;
        handle.stop(true).await;
    });
    app.run_until_stopped().await.context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM (container stop) or SIGINT (Ctrl-C) and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for shutdown signals");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
