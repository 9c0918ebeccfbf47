//! Persistence in PostgreSQL through diesel-async and a deadpool pool: users, rooms, members,
//! message history (with group commit), embeddings and semantic search, migrations and the
//! schema.

pub mod commit;
pub mod connect;
pub mod embeddings;
pub mod error;
pub mod history;
pub mod migrate;
pub mod pool;
pub mod prepared;
pub mod rooms;
pub mod schema;
pub mod search;
pub mod users;
pub mod vector_index;

pub use error::{StoreError, StoreResult};
pub use pool::{DbConn, DbPool};
