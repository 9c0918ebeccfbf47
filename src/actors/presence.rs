//! Who is in a room, on this node and on the others, and when that changes for the cluster as a
//! whole: a user is present while any of their connections anywhere has joined the room.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Presence {
    /// Connections per user on this node.
    local: HashMap<Arc<str>, usize>,
    /// Users present on each other node.
    remote: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

/// What a local join or leave means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The user's first connection on this node joined (or its last one left).
    pub node_changed: bool,
    /// The user became present (or absent) in the whole cluster.
    pub cluster_changed: bool,
}

/// Users who became present, or absent, in the cluster, sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub appeared: Vec<Arc<str>>,
    pub vanished: Vec<Arc<str>>,
}

impl Presence {
    fn on_other_nodes(&self, user: &str) -> bool {
        self.remote.values().any(|users| users.contains(user))
    }

    fn present(&self, user: &str) -> bool {
        self.local.contains_key(user) || self.on_other_nodes(user)
    }

    pub fn local_join(&mut self, user: &Arc<str>) -> Transition {
        let was = self.present(user);
        let count = self.local.entry(user.clone()).or_insert(0);
        *count += 1;
        Transition {
            node_changed: *count == 1,
            cluster_changed: !was,
        }
    }

    pub fn local_leave(&mut self, user: &str) -> Transition {
        let Some(count) = self.local.get_mut(user) else {
            return Transition {
                node_changed: false,
                cluster_changed: false,
            };
        };
        *count -= 1;
        if *count > 0 {
            return Transition {
                node_changed: false,
                cluster_changed: false,
            };
        }
        self.local.remove(user);
        Transition {
            node_changed: true,
            cluster_changed: !self.on_other_nodes(user),
        }
    }

    /// `user` is present on `node`; true when that makes them present in the cluster.
    pub fn remote_joined(&mut self, node: &str, user: &str) -> bool {
        let was = self.present(user);
        self.remote
            .entry(Arc::from(node))
            .or_default()
            .insert(Arc::from(user));
        !was
    }

    /// `user` left `node`; true when that makes them absent from the cluster.
    pub fn remote_left(&mut self, node: &str, user: &str) -> bool {
        let Some(users) = self.remote.get_mut(node) else {
            return false;
        };
        if !users.remove(user) {
            return false;
        }
        if users.is_empty() {
            self.remote.remove(node);
        }
        !self.present(user)
    }

    /// Takes `users` as everyone present on `node`.
    pub fn replace_node(&mut self, node: &str, users: &[String]) -> Changes {
        self.changes_by(|p| p.set_node(node, users))
    }

    /// Takes `by_node` as everyone present on the other nodes.
    pub fn replace_remote(&mut self, by_node: &HashMap<String, Vec<String>>) -> Changes {
        self.changes_by(|p| {
            p.remote.clear();
            for (node, users) in by_node {
                p.set_node(node, users);
            }
        })
    }

    fn set_node(&mut self, node: &str, users: &[String]) {
        self.remote.remove(node);
        if !users.is_empty() {
            let users = users.iter().map(|u| Arc::from(u.as_str())).collect();
            self.remote.insert(Arc::from(node), users);
        }
    }

    /// Who became present or absent in the cluster through `change`.
    fn changes_by(&mut self, change: impl FnOnce(&mut Self)) -> Changes {
        let before: HashSet<Arc<str>> = self.users().into_iter().collect();
        change(self);
        let after: HashSet<Arc<str>> = self.users().into_iter().collect();
        let sorted = |users: std::collections::hash_set::Difference<'_, Arc<str>, _>| {
            let mut users: Vec<Arc<str>> = users.cloned().collect();
            users.sort();
            users
        };
        Changes {
            appeared: sorted(after.difference(&before)),
            vanished: sorted(before.difference(&after)),
        }
    }

    /// Forgets a dead node; returns the users that leaves absent from the cluster.
    pub fn node_gone(&mut self, node: &str) -> Vec<Arc<str>> {
        let Some(users) = self.remote.remove(node) else {
            return Vec::new();
        };
        let mut gone: Vec<Arc<str>> = users.into_iter().filter(|u| !self.present(u)).collect();
        gone.sort();
        gone
    }

    /// Everyone present, sorted.
    pub fn users(&self) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = self.local.keys().cloned().collect();
        for remote in self.remote.values() {
            users.extend(remote.iter().cloned());
        }
        users.sort();
        users.dedup();
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_connections_count_once_per_user() {
        let mut p = Presence::default();
        let alice: Arc<str> = Arc::from("alice");
        assert_eq!(
            p.local_join(&alice),
            Transition {
                node_changed: true,
                cluster_changed: true
            }
        );
        assert_eq!(
            p.local_join(&alice),
            Transition {
                node_changed: false,
                cluster_changed: false
            }
        );
        assert_eq!(
            p.local_leave("alice"),
            Transition {
                node_changed: false,
                cluster_changed: false
            }
        );
        assert_eq!(
            p.local_leave("alice"),
            Transition {
                node_changed: true,
                cluster_changed: true
            }
        );
        assert!(p.users().is_empty());
    }

    #[test]
    fn a_user_on_another_node_stays_present() {
        let mut p = Presence::default();
        let bob: Arc<str> = Arc::from("bob");
        assert!(p.remote_joined("n2", "bob"));
        assert_eq!(
            p.local_join(&bob),
            Transition {
                node_changed: true,
                cluster_changed: false
            }
        );
        assert_eq!(
            p.local_leave("bob"),
            Transition {
                node_changed: true,
                cluster_changed: false
            }
        );
        assert!(p.remote_left("n2", "bob"));
        assert!(!p.remote_left("n2", "bob"));
    }

    #[test]
    fn a_node_s_whole_presence_replaces_what_was_known_of_it() {
        let mut p = Presence::default();
        let names =
            |users: &[&str]| -> Vec<Arc<str>> { users.iter().map(|u| Arc::from(*u)).collect() };
        p.local_join(&Arc::from("alice"));
        p.remote_joined("n2", "bob");
        p.remote_joined("n2", "alice");
        p.remote_joined("n3", "carol");
        let change = p.replace_node("n2", &["dave".into()]);
        assert_eq!(
            change,
            Changes {
                appeared: names(&["dave"]),
                vanished: names(&["bob"])
            }
        );
        let change = p.replace_remote(&HashMap::from([("n4".into(), vec!["erin".into()])]));
        assert_eq!(
            change,
            Changes {
                appeared: names(&["erin"]),
                vanished: names(&["carol", "dave"])
            }
        );
        assert_eq!(p.users(), names(&["alice", "erin"]));
        assert_eq!(
            p.replace_node("n4", &[]),
            Changes {
                appeared: vec![],
                vanished: names(&["erin"])
            }
        );
        assert!(p.remote.is_empty());
    }

    #[test]
    fn a_dead_node_takes_only_its_own_users_away() {
        let mut p = Presence::default();
        p.remote_joined("n2", "carol");
        p.remote_joined("n2", "dave");
        p.remote_joined("n3", "dave");
        assert_eq!(p.node_gone("n2"), vec![Arc::<str>::from("carol")]);
        assert_eq!(p.users(), vec![Arc::<str>::from("dave")]);
    }
}
