//! Finds the room actor for a name on this node, starting it on first join. Rooms remove
//! themselves when they stop. A plain locked map, not an actor: it is only on the join path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use actix_web::web;

use super::room::Room;
use crate::state::AppState;
use crate::store::rooms::RoomAccess;

/// A room actor and what the database said of its room when it started.
type Entry = (RoomAccess, Addr<Room>);

#[derive(Default)]
pub struct RoomRegistry {
    rooms: Mutex<HashMap<Arc<str>, Entry>>,
}

impl RoomRegistry {
    /// The live room actor for `name`, started (on the caller's arbiter) when there is none.
    pub fn get_or_start(
        self: &Arc<Self>,
        name: &Arc<str>,
        access: &RoomAccess,
        state: &web::Data<AppState>,
    ) -> Addr<Room> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, addr)) = rooms.get(name)
            && addr.connected()
        {
            return addr.clone();
        }
        let mut access = *access;
        access.allowed = !access.private; // per-user; only public rooms may be answered from here
        let addr = Room::new(
            name.clone(),
            access.room_id,
            access.last_seq,
            state.clone(),
            Arc::clone(self),
        )
        .start();
        rooms.insert(name.clone(), (access, addr.clone()));
        addr
    }

    /// The access record of a live *public* room: every user may join it, so a join needs no
    /// database round trip. Private rooms are checked against their members every time.
    pub fn public_access(&self, name: &str) -> Option<RoomAccess> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms
            .get(name)
            .filter(|(access, addr)| !access.private && addr.connected())
            .map(|(access, _)| *access)
    }

    /// The live room actor for `name`, if this node has one.
    pub fn get(&self, name: &str) -> Option<Addr<Room>> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.get(name).map(|(_, addr)| addr.clone())
    }

    /// Forgets `name` if it still maps to `addr` (a newer room may have replaced it).
    pub fn remove(&self, name: &str, addr: &Addr<Room>) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.get(name).is_some_and(|(_, a)| a == addr) {
            rooms.remove(name);
        }
    }

    /// Every room actor alive on this node, with its room id.
    pub fn all(&self) -> Vec<(i64, Addr<Room>)> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms
            .values()
            .map(|(access, addr)| (access.room_id, addr.clone()))
            .collect()
    }
}
