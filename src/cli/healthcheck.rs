//! `bosar-chat healthcheck`: asks a node's `GET /api` and succeeds only on 200, for container
//! health checks that have no curl.

use std::time::Duration;

use anyhow::Context;

use crate::config::{HttpConfig, ProcessEnv};

const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(url: Option<String>) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => url,
        None => {
            let http = HttpConfig::from_source(&ProcessEnv)?;
            format!("http://127.0.0.1:{}/api", http.port)
        }
    };
    let client = awc::Client::builder().timeout(TIMEOUT).finish();
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))
        .context("healthcheck failed")?;
    let status = response.status();
    anyhow::ensure!(
        status.as_u16() == 200,
        "healthcheck failed: {url} answered {status}"
    );
    Ok(())
}
