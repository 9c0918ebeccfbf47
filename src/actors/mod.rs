//! The actors: one [`connection::Connection`] per socket, one [`room::Room`] per room with local
//! members, and the [`registry::RoomRegistry`] that starts and finds rooms. Messages between
//! them live in [`messages`].

pub mod connection;
pub mod messages;
pub mod presence;
pub mod registry;
pub mod room;
