//! The IVFFlat index behind semantic search, and its re-clustering as the table grows.
//!
//! The index covers each message's search key ([`search_key!`]), which keeps rooms in lists of
//! their own, for the messages that have an embedding ([`PREDICATE`]): new messages are stored
//! without one, and an insert skips a partial index before computing its key.
//!
//! IVFFlat splits the vectors into `lists` clusters around centroids computed when the index is
//! built; a search scans the lists nearest to the query. Rows added later join the list of their
//! nearest centroid but never move the centroids, so an index built on a small table (the
//! migration's starts with one list) must be rebuilt with more lists as the table grows. A rebuild
//! creates the new index beside the old one with `CREATE INDEX CONCURRENTLY` (writes go on), drops
//! the old one concurrently and gives the new one the old name. Each of those steps leaves a state
//! that [`settle`] finishes, so a rebuild interrupted at any point completes on the next run.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::error::{StoreError, StoreResult};

/// The index searches use.
pub const INDEX: &str = "messages_embedding_ivfflat_idx";

/// A message's search key as SQL, from SQL expressions of its room id and embedding: the room
/// id's low 16 bits as ±1.5, then the unit-length embedding (the function of migration 7). Two
/// rooms' keys are further apart than any two embeddings, so the index's k-means gives rooms lists
/// of their own, and within a room the Euclidean order of the keys is the cosine order.
macro_rules! search_key {
    ($room_id:literal, $embedding:literal) => {
        concat!(
            "message_search_key(",
            $room_id,
            ", ",
            $embedding,
            ")::halfvec(400)"
        )
    };
}
pub(crate) use search_key;

/// The indexed expression.
pub const INDEXED: &str = search_key!("room_id", "embedding");
/// The rows indexed (migration 8). Searches ask for them, so the planner may use the index.
pub const PREDICATE: &str = "embedding IS NOT NULL";
/// A rebuilt index until it replaces [`INDEX`].
const NEXT: &str = "messages_embedding_ivfflat_next";

/// Memory for the k-means of a build: pgvector refuses to build when its samples (50 per list)
/// and centroids do not fit. 1,000 lists of 400 half-precision dimensions need about 40 MB.
const BUILD_MEMORY: &str = "512MB";

/// How many lists a table of `rows` embedded messages should have, following pgvector's advice:
/// one per `rows_per_list` (1,000 by default) up to a million rows, growing with √rows beyond
/// (√rows itself at the default). One list (an exhaustive scan) while the table is below
/// `min_rows`: clusters drawn from a handful of rows would only cost recall.
pub fn lists_for(rows: i64, min_rows: i64, rows_per_list: i64) -> i64 {
    const MILLION: i64 = 1_000_000;
    let per_list = rows_per_list.max(1);
    if rows < min_rows {
        1
    } else if rows <= MILLION {
        (rows / per_list).max(1)
    } else {
        ((MILLION / per_list) as f64 * (rows as f64 / MILLION as f64).sqrt()) as i64
    }
}

/// Whether an index of `current` lists should be rebuilt with `target`: only when the table has
/// grown enough to double them, so rebuilds cost a constant factor of the inserts.
pub fn worth_rebuilding(current: i64, target: i64) -> bool {
    target >= current.saturating_mul(2)
}

#[derive(diesel::QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    valid: bool,
    #[diesel(sql_type = BigInt)]
    lists: i64,
    #[diesel(sql_type = Bool)]
    keyed: bool,
    #[diesel(sql_type = Bool)]
    partial: bool,
}

/// The search index as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub lists: i64,
    /// Whether it covers [`INDEXED`]. An index over the bare embedding (built before migration 7,
    /// or by a node of an older version during a rolling deploy) serves no search of this version
    /// and must be rebuilt.
    pub keyed: bool,
    /// Whether it holds only the rows of [`PREDICATE`]. An index over every row (built before
    /// migration 8 on a table too large for the migration to rebuild, or by an older node) serves
    /// searches but costs every insert; it is rebuilt too.
    pub partial: bool,
}

impl Current {
    /// Whether it is the index this version builds.
    pub fn is_current_shape(&self) -> bool {
        self.keyed && self.partial
    }
}

/// The search index, `None` when it does not exist.
pub async fn current(conn: &mut AsyncPgConnection) -> StoreResult<Option<Current>> {
    Ok(indexes(conn)
        .await?
        .into_iter()
        .find(|i| i.name == INDEX)
        .map(|i| Current {
            lists: i.lists,
            keyed: i.keyed,
            partial: i.partial,
        }))
}

async fn indexes(conn: &mut AsyncPgConnection) -> StoreResult<Vec<IndexRow>> {
    diesel::sql_query(
        "SELECT c.relname::text AS name, i.indisvalid AS valid,
                coalesce((SELECT split_part(o, '=', 2)::bigint FROM unnest(c.reloptions) o
                          WHERE o LIKE 'lists=%'), 100) AS lists,
                pg_get_indexdef(i.indexrelid) LIKE '%message_search_key(room_id, embedding)%'
                    AS keyed,
                coalesce(pg_get_expr(i.indpred, i.indrelid), '') = $3 AS partial
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'messages'::regclass AND c.relname IN ($1, $2)",
    )
    .bind::<Text, _>(INDEX)
    .bind::<Text, _>(NEXT)
    .bind::<Text, _>(format!("({PREDICATE})"))
    .load(conn)
    .await
    .map_err(StoreError::from)
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Embedded messages, from the planner's statistics when the table has been analysed (reading
/// them is free), counted otherwise.
pub async fn embedded_rows(conn: &mut AsyncPgConnection) -> StoreResult<i64> {
    let estimate: Count = diesel::sql_query(
        "SELECT (CASE WHEN c.reltuples < 0 THEN -1
                      ELSE c.reltuples * (1 - coalesce(s.null_frac, 0)) END)::bigint AS n
         FROM pg_class c
         LEFT JOIN pg_stats s ON s.schemaname = 'public' AND s.tablename = 'messages'
                              AND s.attname = 'embedding'
         WHERE c.oid = 'messages'::regclass",
    )
    .get_result(conn)
    .await?;
    if estimate.n >= 0 {
        return Ok(estimate.n);
    }
    let counted: Count =
        diesel::sql_query("SELECT count(*) AS n FROM messages WHERE embedding IS NOT NULL")
            .get_result(conn)
            .await?;
    Ok(counted.n)
}

/// Finishes whatever an interrupted rebuild left: drops a half-built index, or puts a finished
/// one in place of the old. Must run outside a transaction (concurrent DDL).
pub async fn settle(conn: &mut AsyncPgConnection) -> StoreResult<()> {
    let found = indexes(conn).await?;
    let Some(next) = found.iter().find(|i| i.name == NEXT) else {
        return Ok(());
    };
    if !next.valid {
        tracing::info!("dropping a half-built search index left by an interrupted rebuild");
        return execute(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {NEXT}")).await;
    }
    if found.iter().any(|i| i.name == INDEX) {
        execute(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")).await?;
    }
    execute(conn, &format!("ALTER INDEX {NEXT} RENAME TO {INDEX}")).await
}

/// Rebuilds the search index with `lists` lists while messages keep being written and searched.
/// Must run outside a transaction, by one session at a time (the caller holds a lock).
pub async fn rebuild(conn: &mut AsyncPgConnection, lists: i64) -> StoreResult<()> {
    settle(conn).await?;
    execute(
        conn,
        &format!("SET maintenance_work_mem = '{BUILD_MEMORY}'"),
    )
    .await?;
    execute(
        conn,
        &format!(
            "CREATE INDEX CONCURRENTLY {NEXT} ON messages
             USING ivfflat (({INDEXED}) halfvec_l2_ops) WITH (lists = {lists})
             WHERE {PREDICATE}"
        ),
    )
    .await?;
    execute(conn, "RESET maintenance_work_mem").await?;
    settle(conn).await
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> StoreResult<()> {
    diesel::sql_query(sql).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_until_the_table_is_big_enough() {
        assert_eq!(lists_for(0, 10_000, 1000), 1);
        assert_eq!(lists_for(9_999, 10_000, 1000), 1);
        assert_eq!(lists_for(10_000, 10_000, 1000), 10);
        assert_eq!(lists_for(1_000_000, 10_000, 1000), 1000);
        assert_eq!(lists_for(4_000_000, 10_000, 1000), 2000);
        assert_eq!(lists_for(1_000_000, 10_000, 250), 4000);
        assert_eq!(lists_for(4_000_000, 10_000, 250), 8000);
    }

    #[test]
    fn rebuilds_only_when_the_lists_double() {
        assert!(worth_rebuilding(1, 10));
        assert!(!worth_rebuilding(10, 19));
        assert!(worth_rebuilding(10, 20));
    }
}
