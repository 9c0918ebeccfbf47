//! Names of every Redis key and channel the service uses, all under `REDIS_KEY_PREFIX`. Each is a
//! single key, so every command works unchanged on a Redis Cluster.

/// The names for one deployment's prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The pub/sub channel of a room.
    pub fn room_channel(&self, room: &str) -> String {
        format!("{}:room:{room}", self.prefix)
    }

    /// The room named by a channel of ours, if it is one.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(":room:"))
    }

    /// Hash of a room's presence: field `node|user`, value 1.
    pub fn presence(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.prefix)
    }

    /// Set of the rooms in which a node has recorded presence (for cleaning up after it).
    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}:node-rooms:{node}", self.prefix)
    }

    /// A node's heartbeat: present while the node lives.
    pub fn node_alive(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Set of every node id that has announced itself.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
}

/// The `node|user` field of a presence hash.
pub fn presence_field(node: &str, user: &str) -> String {
    format!("{node}|{user}")
}

/// Splits a `node|user` field.
pub fn split_presence_field(field: &str) -> Option<(&str, &str)> {
    field.split_once('|')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_to_room_names() {
        let keys = Keys::new("bosar");
        let channel = keys.room_channel("general:news");
        assert_eq!(channel, "bosar:room:general:news");
        assert_eq!(keys.room_of_channel(&channel), Some("general:news"));
        assert_eq!(keys.room_of_channel("other:room:x"), None);
        assert_eq!(
            split_presence_field(&presence_field("n-1", "alice")),
            Some(("n-1", "alice"))
        );
    }
}
