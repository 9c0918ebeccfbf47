//! Nearest messages of one room to a query vector, by cosine distance, through the IVFFlat index
//! (see [`super::vector_index`]).
//!
//! The index holds each message's search key: its room spelled out in 16 dimensions, then its
//! unit-length embedding. Rooms' keys lie far apart, so the index's lists are each one room's (or,
//! beyond 65,536 rooms, a few rooms'), and the lists nearest to a query's key are those of its
//! room. A search scans them (`ivfflat.probes`, a fraction of the index's lists) and the room is a
//! filter on what they hold; pgvector 0.8's iterative scan (`ivfflat.iterative_scan =
//! relaxed_order`) probes further lists until `limit` rows pass it. Within a room the Euclidean
//! order of the keys is the cosine order of the embeddings, in half precision; the few hits are
//! then sorted again by their exact cosine distance, which is also their score. A room of at most
//! [`Tuning::exact_up_to`] messages is searched exactly instead: all its messages are compared.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use pgvector::Vector;
use uuid::Uuid;

use super::DbPool;
use super::error::{StoreError, StoreResult};
use super::vector_index::search_key;
use crate::protocol::Message;
use crate::protocol::server::SearchHit;

/// When a search is exact, and how much of the index an approximate one scans.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Rooms with at most this many messages are searched exactly: every message of the room
    /// is compared with the query (about 2 µs each), never through the index.
    pub exact_up_to: i64,
    /// Lists probed, as a fraction of the index's lists (at least one list).
    pub probe_fraction: f64,
}

impl Default for Tuning {
    /// Exact up to 5,000 messages (about 11 ms); then 0.75 % of the lists, 8 of the 1,034 of a
    /// million-message table (see docs/benchmarks.md for other fractions). The same defaults as
    /// `SEARCH_EXACT_UP_TO` and `SEARCH_PROBE_PERCENT`.
    fn default() -> Self {
        Self {
            exact_up_to: 5000,
            probe_fraction: 0.0075,
        }
    }
}

/// Reads the room's size and sets, for the current transaction only, the probes for the index's
/// current lists (the rebuilt index while it is being put in place), the iterative scan, and no
/// JIT: compiling would cost more than the whole query.
const SETTINGS_SQL: &str = "
SELECT (SELECT last_seq FROM rooms WHERE id = $2) AS messages,
       set_config('ivfflat.iterative_scan', 'relaxed_order', true),
       set_config('ivfflat.probes', greatest(1, ceil(coalesce((
           SELECT max(split_part(o, '=', 2)::int) FROM pg_class c, unnest(c.reloptions) o
           WHERE c.relname IN ('messages_embedding_ivfflat_idx', 'messages_embedding_ivfflat_next')
             AND o LIKE 'lists=%'), 1) * $1))::int::text, true),
       set_config('jit', 'off', true)";

#[derive(diesel::QueryableByName)]
struct RoomSize {
    #[diesel(sql_type = Nullable<BigInt>)]
    messages: Option<i64>,
}

/// The room's `$3` messages nearest to `$2`, in the order given, then sorted by exact distance.
macro_rules! nearest_sql {
    ($($order:tt)+) => {
        concat!(
            "WITH nearest AS MATERIALIZED (
                SELECT id, seq, user_id, body, client_msg_id, created_at,
                       embedding <=> $2 AS distance
                FROM messages
                WHERE room_id = $1 AND embedding IS NOT NULL
                ORDER BY ",
            $($order)+,
            "
                LIMIT $3
            )
            SELECT n.id, n.seq, u.username, n.body, n.client_msg_id, n.created_at, n.distance
            FROM nearest n JOIN users u ON u.id = n.user_id
            ORDER BY n.distance, n.seq DESC"
        )
    };
}

/// Through the index: ordered by the distance between the indexed search keys.
const NEAREST_SQL: &str = nearest_sql!(concat!(
    search_key!("room_id", "embedding"),
    " <-> ",
    search_key!("$1", "$2")
));

/// Exact: the full-precision order matches no index, so every message of the room is compared.
const EXACT_SQL: &str = nearest_sql!("distance");

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Nullable<Text>)]
    client_msg_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    distance: f64,
}

/// The `limit` messages of the room closest to `query`, best first, scored by cosine similarity
/// (1 − cosine distance). Messages not embedded yet are not found.
pub async fn nearest(
    pool: &DbPool,
    room: &Arc<str>,
    room_id: i64,
    query: Vec<f32>,
    limit: i64,
) -> StoreResult<Vec<SearchHit>> {
    nearest_tuned(pool, room, room_id, query, limit, Tuning::default()).await
}

/// [`nearest`] with a chosen [`Tuning`].
pub async fn nearest_tuned(
    pool: &DbPool,
    room: &Arc<str>,
    room_id: i64,
    query: Vec<f32>,
    limit: i64,
    tuning: Tuning,
) -> StoreResult<Vec<SearchHit>> {
    let mut conn = pool.get().await?;
    let query = Vector::from(query);
    let rows: Vec<Row> = conn
        .transaction(async |conn| {
            let size: RoomSize = diesel::sql_query(SETTINGS_SQL)
                .bind::<Double, _>(tuning.probe_fraction)
                .bind::<BigInt, _>(room_id)
                .get_result(conn)
                .await?;
            let exact = size.messages.unwrap_or(0) <= tuning.exact_up_to;
            diesel::sql_query(if exact { EXACT_SQL } else { NEAREST_SQL })
                .bind::<BigInt, _>(room_id)
                .bind::<pgvector::sql_types::Vector, _>(&query)
                .bind::<BigInt, _>(limit)
                .load(conn)
                .await
        })
        .await
        .map_err(StoreError::from)?;
    Ok(rows
        .into_iter()
        .map(|row| SearchHit {
            score: 1.0 - row.distance,
            message: Message {
                id: row.id,
                room: room.clone(),
                seq: row.seq,
                user: Arc::from(row.username),
                body: row.body,
                ts: row.created_at,
                client_msg_id: row.client_msg_id,
            },
        })
        .collect())
}
