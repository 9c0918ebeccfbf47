//! What a client sees of a room's presence, followed frame by frame.

use std::collections::BTreeSet;

use super::WsClient;

/// Who a client sees in a room: its `joined` list, then every `presence` frame applied.
pub struct PresenceView(pub BTreeSet<String>);

impl PresenceView {
    pub fn of(joined: &serde_json::Value) -> Self {
        Self(names(&joined["presence"]))
    }

    /// Applies presence frames until the view is `expected` (or the client's wait runs out).
    pub async fn becomes(&mut self, ws: &mut WsClient, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|u| (*u).to_owned()).collect();
        while self.0 != expected {
            let frame = ws.recv_type("presence").await;
            self.0.extend(names(&frame["joined"]));
            for user in names(&frame["left"]) {
                self.0.remove(&user);
            }
        }
    }
}

pub fn names(list: &serde_json::Value) -> BTreeSet<String> {
    let list = list.as_array().expect("a list of users");
    list.iter()
        .map(|u| u.as_str().expect("a user name").to_owned())
        .collect()
}

/// Connects `user` on `node`, joins `room`, and returns the client with what it sees.
pub async fn join_viewing(
    node: &super::TestNode,
    user: &str,
    room: &str,
) -> (WsClient, PresenceView) {
    let mut ws = WsClient::connect(node, user).await;
    let joined = ws.join(room, None).await;
    (ws, PresenceView::of(&joined))
}
