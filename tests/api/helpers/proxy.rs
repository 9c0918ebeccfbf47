//! A TCP proxy between a node and one of its services. `cut` drops every open connection and
//! refuses new ones (the service looks unreachable); `restore` lets traffic through again.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ChaosProxy {
    pub address: SocketAddr,
    open: watch::Sender<bool>,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (open, _) = watch::channel(true);
        let gate = open.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*gate.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream.clone(), gate.subscribe()));
            }
        });
        Self { address, open }
    }

    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

async fn forward(mut client: TcpStream, upstream: String, mut gate: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = gate.wait_for(|open| !*open) => {}
    }
}
