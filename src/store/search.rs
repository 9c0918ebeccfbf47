//! Nearest messages of one room to a query vector, by cosine distance over the HNSW index.
//!
//! A room is a filter on a table-wide index: an ordinary HNSW scan finds `ef_search` neighbours
//! in the whole table and the filter may leave fewer than `limit` of them. pgvector 0.8's
//! iterative scan (`hnsw.iterative_scan = relaxed_order`) keeps scanning until `limit` rows pass
//! the filter (or `hnsw.max_scan_tuples` is reached). "Relaxed" means the index may hand rows back
//! slightly out of order, so the outer query sorts the few hits again by their exact distance.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use pgvector::Vector;
use uuid::Uuid;

use super::DbPool;
use super::error::{StoreError, StoreResult};
use crate::protocol::Message;
use crate::protocol::server::SearchHit;

/// Candidates the HNSW scan keeps per step: at least pgvector's default, and twice the limit.
fn ef_search(limit: i64) -> i64 {
    (limit * 2).max(40)
}

/// Index tuples an iterative scan may visit before it gives up (pgvector's default is 20,000);
/// higher keeps small rooms in a big table answered in full.
const MAX_SCAN_TUPLES: i64 = 100_000;

const NEAREST_SQL: &str = "
WITH nearest AS MATERIALIZED (
    SELECT id, seq, user_id, body, client_msg_id, created_at, embedding <=> $2 AS distance
    FROM messages
    WHERE room_id = $1 AND embedding IS NOT NULL
    ORDER BY embedding <=> $2
    LIMIT $3
)
SELECT n.id, n.seq, u.username, n.body, n.client_msg_id, n.created_at, n.distance
FROM nearest n JOIN users u ON u.id = n.user_id
ORDER BY n.distance, n.seq DESC";

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
    let mut conn = pool.get().await?;
    let query = Vector::from(query);
    let rows: Vec<Row> = conn
        .transaction(async |conn| {
            // `true`: like SET LOCAL, the settings end with this transaction. JIT compilation
            // would cost more than the whole query.
            diesel::sql_query(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
                        set_config('hnsw.ef_search', $1, true),
                        set_config('hnsw.max_scan_tuples', $2, true),
                        set_config('jit', 'off', true)",
            )
            .bind::<Text, _>(ef_search(limit).to_string())
            .bind::<Text, _>(MAX_SCAN_TUPLES.to_string())
            .execute(conn)
            .await?;
            diesel::sql_query(NEAREST_SQL)
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
