//! A TCP proxy between a node and one of its services. `cut` drops every open connection and
//! refuses new ones (the service looks unreachable); `stall` keeps every connection open but
//! passes nothing, and accepts new ones that pass nothing either (the service's host stopped
//! answering, as in a failover or a network partition); `restore` lets traffic through again,
//! on new connections (the stalled ones are closed then, as a partition's usually are).

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Open,
    Cut,
    Stalled,
}

pub struct ChaosProxy {
    pub address: SocketAddr,
    gate: watch::Sender<Gate>,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (gate, _) = watch::channel(Gate::Open);
        let watcher = gate.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let gate = watcher.subscribe();
                match *gate.borrow() {
                    Gate::Cut => continue,
                    Gate::Stalled => {
                        tokio::spawn(hold_until_open(gate.clone(), vec![client]));
                    }
                    Gate::Open => {
                        tokio::spawn(forward(client, upstream.clone(), gate.clone()));
                    }
                }
            }
        });
        Self { address, gate }
    }

    pub fn cut(&self) {
        self.gate.send_replace(Gate::Cut);
    }

    pub fn stall(&self) {
        self.gate.send_replace(Gate::Stalled);
    }

    pub fn restore(&self) {
        self.gate.send_replace(Gate::Open);
    }
}

async fn forward(mut client: TcpStream, upstream: String, mut gate: watch::Receiver<Gate>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let closed = tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => return,
        state = gate.wait_for(|g| *g != Gate::Open) => state.map(|g| *g).ok(),
    };
    if closed == Some(Gate::Stalled) {
        hold_until_open(gate, vec![client, server]).await;
    }
}

/// Keeps `sockets` open, passing nothing, until the gate opens again; then closes them.
async fn hold_until_open(mut gate: watch::Receiver<Gate>, sockets: Vec<TcpStream>) {
    let _ = gate.wait_for(|g| *g == Gate::Open).await;
    drop(sockets);
}
