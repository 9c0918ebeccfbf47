//! Where clients connect from and to: node addresses resolved once, each client socket bound to
//! its own loopback source address (127.0.0.2, 127.0.0.3, …) so that a run is not limited to one
//! address's ephemeral ports, and the open-files limit raised to what the run needs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use reqwest::Url;

/// One node: its REST base, WebSocket URL and resolved socket address.
#[derive(Debug, Clone)]
pub struct Node {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    /// `ws://host:port/ws`.
    pub ws_url: String,
    pub addr: SocketAddr,
}

impl Node {
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        let ws_scheme = match parsed.scheme() {
            "http" | "ws" => "ws",
            other => bail!(
                "--url {url:?}: scheme {other} is not supported (the harness speaks plain http/ws)"
            ),
        };
        let host = parsed
            .host_str()
            .with_context(|| format!("--url {url:?} has no host"))?
            .to_owned();
        let port = parsed.port().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        let host_port = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            base: format!("http://{host_port}"),
            ws_url: format!("{ws_scheme}://{host_port}/ws"),
            addr,
        })
    }
}

/// The source address of client `client`: one of `count` loopback addresses from 127.0.0.2 on,
/// when the target is on IPv4 loopback; `None` lets the kernel choose.
pub fn source_address(target: &SocketAddr, client: usize, count: u8) -> Option<IpAddr> {
    let is_loopback_v4 = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
    if count == 0 || !is_loopback_v4 {
        return None;
    }
    let offset = u8::try_from(client % usize::from(count)).unwrap_or(0);
    Some(IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2u8.saturating_add(offset),
    )))
}

/// Raises the soft RLIMIT_NOFILE so that `connections` sockets fit, and fails with a clear
/// message when the hard limit is too low.
pub fn ensure_open_files(connections: usize) -> anyhow::Result<()> {
    // Sockets, plus the runtime, HTTP client, output files and some slack.
    let needed = connections as u64 + 256;
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .context("reading RLIMIT_NOFILE")?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        bail!(
            "this run needs about {needed} open files but RLIMIT_NOFILE's hard limit is {hard}: \
             raise it (as root: `ulimit -Hn {needed}`, or LimitNOFILE= for a service), or split \
             the connections over several harness processes"
        );
    }
    rlimit::Resource::NOFILE
        .set(needed, hard)
        .context("raising RLIMIT_NOFILE")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_get_spread_source_addresses() {
        let target: SocketAddr = "127.0.0.1:3001".parse().unwrap();
        assert_eq!(
            source_address(&target, 0, 4),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            source_address(&target, 5, 4),
            Some("127.0.0.3".parse().unwrap())
        );
        assert_eq!(source_address(&target, 5, 0), None);
        let remote: SocketAddr = "[::1]:3001".parse().unwrap();
        assert_eq!(source_address(&remote, 5, 4), None);
    }
}
