//! A WebSocket client for tests (awc), speaking JSON text frames, plus REST shortcuts for users
//! and rooms.

use std::time::Duration;

use actix_codec::Framed;
use awc::BoxedSocket;
use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::TestNode;

const RECV_TIMEOUT: Duration = Duration::from_secs(10);

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
}

/// What the server sent next.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Close(Option<u16>),
    Binary,
}

impl WsClient {
    /// Connects with `?token=` and reads the welcome frame.
    pub async fn connect(node: &TestNode, token: &str) -> Self {
        let mut client = Self::connect_url(&node.ws_url(&format!("/ws?token={token}")))
            .await
            .expect("upgrade");
        let welcome = client.recv_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client
    }

    /// Connects and joins `room` (live messages only).
    pub async fn joined(node: &TestNode, token: &str, room: &str) -> Self {
        let mut client = Self::connect(node, token).await;
        client.join(room, None).await;
        client
    }

    /// Upgrades without reading anything; the HTTP status on refusal.
    pub async fn connect_url(url: &str) -> Result<Self, u16> {
        Self::connect_with(awc::Client::new().ws(url)).await
    }

    pub async fn connect_with(request: awc::ws::WebsocketsRequest) -> Result<Self, u16> {
        let request = request.max_frame_size(1 << 22);
        match request.connect().await {
            Ok((_, framed)) => Ok(Self { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.framed
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send");
    }

    /// The next text frame or close, answering pings on the way.
    pub async fn recv(&mut self) -> Event {
        loop {
            let frame = tokio::time::timeout(RECV_TIMEOUT, self.framed.next())
                .await
                .expect("timed out waiting for a frame");
            match frame {
                None => return Event::Close(None),
                Some(Err(e)) => panic!("WebSocket error: {e}"),
                Some(Ok(Frame::Text(bytes))) => {
                    return Event::Json(serde_json::from_slice(&bytes).expect("JSON frame"));
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Event::Close(reason.map(|r| u16::from(r.code)));
                }
                Some(Ok(Frame::Binary(_))) => return Event::Binary,
                Some(Ok(Frame::Ping(payload))) => {
                    let _ = self.framed.send(Message::Pong(payload)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Event::Json(value) => value,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame of `kind`, skipping presence and typing events.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let value = self.recv_json().await;
            if value["type"] == kind {
                return value;
            }
            let skippable = kind != "presence" && value["type"] == "presence"
                || kind != "typing" && value["type"] == "typing";
            assert!(skippable, "expected {kind}, got {value}");
        }
    }

    /// The next frame whose type is one of `kinds`, skipping message, presence and typing events.
    pub async fn recv_type_any(&mut self, kinds: &[&str]) -> Value {
        loop {
            let value = self.recv_json().await;
            if kinds.iter().any(|k| value["type"] == *k) {
                return value;
            }
            let kind = value["type"].as_str().unwrap_or_default();
            assert!(
                matches!(kind, "message" | "presence" | "typing"),
                "expected {kinds:?}, got {value}"
            );
        }
    }

    /// The seqs of the next `count` acks, in the order they arrive, skipping the room's traffic
    /// (also how a sender keeps up with what it is sent, however load delays the frames).
    pub async fn ack_seqs(&mut self, count: usize) -> Vec<i64> {
        let mut seqs = Vec::with_capacity(count);
        for _ in 0..count {
            let ack = self.recv_type_any(&["ack"]).await;
            seqs.push(ack["seq"].as_i64().expect("an ack's seq"));
        }
        seqs
    }

    /// The close code the server ends with, skipping any frames before it.
    pub async fn recv_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Close(code) = self.recv().await {
                return code;
            }
        }
    }

    /// Joins `room` (with `since` when given) and returns the `joined` frame.
    pub async fn join(&mut self, room: &str, since: Option<i64>) -> Value {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(since) = since {
            frame["since"] = json!(since);
        }
        self.send(frame).await;
        self.recv_type("joined").await
    }

    /// Sends `body` and returns the `ack`, skipping the message frames that arrive meanwhile.
    pub async fn send_message(
        &mut self,
        room: &str,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> Value {
        let mut frame = json!({"type": "send", "room": room, "body": body, "ref": "s"});
        if let Some(id) = client_msg_id {
            frame["client_msg_id"] = json!(id);
        }
        self.send(frame).await;
        loop {
            let value = self.recv_json().await;
            match value["type"].as_str() {
                Some("ack") => return value,
                Some("message" | "presence" | "typing") => {}
                _ => panic!("expected ack, got {value}"),
            }
        }
    }

    /// Reads message frames of `room` until one with `seq` arrives; returns their seqs in order.
    pub async fn messages_until(&mut self, room: &str, seq: i64) -> Vec<i64> {
        let mut seqs = Vec::new();
        loop {
            let value = self.recv_json().await;
            assert_ne!(
                value["type"], "error",
                "while waiting for seq {seq}: {value}"
            );
            if value["type"] == "message" && value["room"] == room {
                let s = value["seq"].as_i64().expect("seq");
                seqs.push(s);
                if s >= seq {
                    return seqs;
                }
            }
        }
    }
}

impl TestNode {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send_json(&body).await.expect("POST");
        let status = response.status().as_u16();
        let bytes = response.body().limit(1 << 20).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> (u16, Value) {
        let mut response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        let bytes = response.body().limit(1 << 22).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers `name` (password `password123`) and returns its token.
    pub async fn register(&self, name: &str) -> String {
        let (status, body) = self
            .post_json(
                "/api/auth/register",
                None,
                json!({"username": name, "password": "password123"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Adds `username` to `room` as the holder of `token`; the HTTP status.
    pub async fn add_member(&self, token: &str, room: &str, username: &str) -> u16 {
        let path = format!("/api/rooms/{room}/members");
        self.post_json(&path, Some(token), json!({ "username": username }))
            .await
            .0
    }

    /// Creates a room as the owner of `token`.
    pub async fn create_room(&self, token: &str, name: &str, private: bool) {
        let (status, body) = self
            .post_json(
                "/api/rooms",
                Some(token),
                json!({"name": name, "private": private}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}
