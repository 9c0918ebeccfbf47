//! Persistence in PostgreSQL through diesel-async and a deadpool pool: the pool, the embedded
//! migrations, and the schema.

pub mod migrate;
pub mod pool;
pub mod schema;

pub use pool::{DbConn, DbPool};
