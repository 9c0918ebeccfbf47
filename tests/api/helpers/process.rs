//! A node as its own process (the real binary), for what only a process can show: SIGTERM
//! draining and exit codes, and SIGKILL.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::node::JWT_SECRET;

pub struct NodeProcess {
    pub port: u16,
    pub child: Child,
}

impl NodeProcess {
    /// Starts `bosar-chat serve` and waits until `/api` answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_bosar-chat"))
            .arg("serve")
            .env_clear()
            .envs([
                ("HOST", "127.0.0.1"),
                ("PORT", port.to_string().as_str()),
                ("HTTP_WORKERS", "1"),
                ("JWT_SECRET", JWT_SECRET),
                ("RUN_MIGRATIONS", "false"),
                ("LOG_FORMAT", "pretty"),
                ("RUST_LOG", "warn"),
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start bosar-chat");
        let node = Self { port, child };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if node.api_status().await == Some(200) {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the node did not come up");
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// The status of `GET /api`, or `None` when nothing answers.
    pub async fn api_status(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/api", self.port);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(2))
            .finish();
        client
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}
