//! The indexer's side of `messages.embedding`: claiming rows that still lack one (skipping rows
//! another indexer holds), writing a batch of vectors in one statement, and counting the backlog.

use diesel::prelude::*;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pgvector::Vector;
use uuid::Uuid;

use super::error::{StoreError, StoreResult};
use super::schema::messages;

/// Up to `limit` of the oldest messages without an embedding, locked until the surrounding
/// transaction ends. Rows locked by another indexer are skipped, so two indexers never get the
/// same row; a row embedded meanwhile is re-checked under the lock and left out.
pub async fn claim(conn: &mut AsyncPgConnection, limit: i64) -> StoreResult<Vec<(Uuid, String)>> {
    messages::table
        .filter(messages::embedding.is_null())
        .order(messages::created_at.asc())
        .limit(limit)
        .select((messages::id, messages::body))
        .for_update()
        .skip_locked()
        .load(conn)
        .await
        .map_err(StoreError::from)
}

const STORE_SQL: &str = "
UPDATE messages m SET embedding = u.embedding
FROM unnest($1::uuid[], $2::vector[]) AS u(id, embedding)
WHERE m.id = u.id AND m.embedding IS NULL";

/// Writes `vectors[i]` into the message `ids[i]` (one statement for the batch); returns the rows
/// written.
pub async fn store(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    vectors: Vec<Vector>,
) -> StoreResult<usize> {
    diesel::sql_query(STORE_SQL)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<pgvector::sql_types::Vector>, _>(vectors)
        .execute(conn)
        .await
        .map_err(StoreError::from)
}

/// Messages still waiting for an embedding; counted over the small partial index
/// `messages_unembedded_idx`, so it stays cheap while the indexer keeps up.
pub async fn backlog(conn: &mut AsyncPgConnection) -> StoreResult<i64> {
    messages::table
        .filter(messages::embedding.is_null())
        .count()
        .get_result(conn)
        .await
        .map_err(StoreError::from)
}
