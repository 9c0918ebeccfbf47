//! One WebSocket connection, opened the way the contract describes: TCP from the client's own
//! source address, the upgrade with `Authorization: Bearer`, then the `welcome` frame. Also the
//! small helpers every scenario uses to send frames and wait for a reply.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::frames::{ClientFrame, ServerFrame};
use crate::net::{Node, source_address};

pub type Ws = WebSocketStream<TcpStream>;

/// How long the upgrade and `welcome` may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be opened, as a short code for the error table.
#[derive(Debug)]
pub struct ConnectError {
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

fn connect_error(code: &str, detail: impl std::fmt::Display) -> ConnectError {
    ConnectError {
        code: code.to_owned(),
        detail: detail.to_string(),
    }
}

/// Small buffers: a run may hold tens of thousands of these.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn tcp(addr: SocketAddr, client: usize, source_addrs: u8) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source_address(&addr, client, source_addrs) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects client `client` to `node` with `token` and waits for `welcome`. Returns the socket
/// and the time it took.
pub async fn connect(
    node: &Node,
    token: &str,
    client: usize,
    source_addrs: u8,
) -> Result<(Ws, Duration), ConnectError> {
    let started = Instant::now();
    let setup = async {
        let stream = tcp(node.addr, client, source_addrs)
            .await
            .map_err(|e| connect_error(&format!("connect: {:?}", e.kind()), e))?;
        let mut request = node
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| connect_error("connect: request", e))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| connect_error("connect: token", e))?;
        request.headers_mut().insert("authorization", bearer);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| match e {
                    WsError::Http(response) => connect_error(
                        &format!("upgrade: http {}", response.status().as_u16()),
                        "the server refused the upgrade",
                    ),
                    other => connect_error("upgrade: failed", other),
                })?;
        match next_frame(&mut ws).await {
            Ok(text) if ServerFrame::parse(&text).is_some_and(|f| f.kind == "welcome") => Ok(ws),
            Ok(text) => Err(connect_error("welcome: unexpected", text)),
            Err(e) => Err(connect_error("welcome: none", e)),
        }
    };
    match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(ws)) => Ok((ws, started.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(connect_error("connect: timeout", "no welcome within 30 s")),
    }
}

/// The next text frame; pings are answered by tungstenite itself. A close is an error that
/// names its code.
pub async fn next_frame(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            None => bail!("connection closed"),
            Some(Err(e)) => return Err(anyhow!(e)),
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                bail!("close {code}")
            }
            Some(Ok(_)) => {}
        }
    }
}

pub async fn send(ws: &mut Ws, frame: &ClientFrame<'_>) -> anyhow::Result<()> {
    ws.send(Message::text(frame.to_text()))
        .await
        .context("sending a frame")
}

/// Joins `room` and returns `joined.last_seq`. Frames that arrive before `joined` (replayed or
/// live messages cannot, by the contract; presence can) are handed to `other`.
pub async fn join(
    ws: &mut Ws,
    room: &str,
    since: Option<i64>,
    mut other: impl FnMut(&ServerFrame<'_>),
) -> anyhow::Result<i64> {
    send(ws, &ClientFrame::Join { room, since }).await?;
    loop {
        let text = next_frame(ws).await?;
        let Some(frame) = ServerFrame::parse(&text) else {
            bail!("a frame that is not JSON: {text}");
        };
        match frame.kind.as_ref() {
            "joined" if frame.room.as_deref() == Some(room) => {
                return frame
                    .last_seq
                    .with_context(|| format!("joined without last_seq: {text}"));
            }
            "error" => bail!("join {room}: {}", frame.code.as_deref().unwrap_or("error")),
            _ => other(&frame),
        }
    }
}
