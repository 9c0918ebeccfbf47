//! Group commit: a batch of pending messages from any number of rooms is stored in one statement
//! (one transaction, one round trip). Seqs are handed out by bumping each room's `last_seq` in
//! that same statement, so they are gapless and unique across nodes. A message whose
//! `(room, user, client_msg_id)` is already stored is not stored again; its original row is
//! returned instead. This statement is the only writer of `messages`: it stores a row only when
//! its room and its user exist, which is why the table needs no foreign keys (see migration 5).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{
    Array, BigInt, Integer, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use super::error::{StoreError, StoreResult};
use super::prepared::walk_sql;

/// A message waiting for its seq.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub room_id: i64,
    pub user_id: Uuid,
    pub body: String,
    pub client_msg_id: Option<String>,
    pub ts: DateTime<Utc>,
}

/// What the database made of the message at the same index of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now with this seq.
    Stored { seq: i64 },
    /// Stored earlier under the same `client_msg_id`: the original row.
    Duplicate {
        id: Uuid,
        seq: i64,
        ts: DateTime<Utc>,
    },
    /// The room no longer exists.
    NoRoom,
    /// The sender's user does not exist (a validly signed token for a user this database does
    /// not know). Refused alone, without failing the rest of the batch.
    NoUser,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    ord: i32,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    /// `stored`, `duplicate` or `no_user`.
    #[diesel(sql_type = Text)]
    kind: String,
}

/// The statement itself (public so that its plan can be checked).
pub const COMMIT_SQL: &str = r"
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                         $7::timestamptz[])
        AS t(ord, id, room_id, user_id, body, client_msg_id, created_at)
),
-- Every table is read by key (`= ANY (ARRAY(…))` on primary keys, an index probe per message),
-- so that the plan cannot depend on the statistics it was made with: see `prepare_session`.
known AS (
    SELECT i.* FROM input i
    WHERE i.user_id IN (SELECT u.id FROM users u WHERE u.id = ANY (ARRAY(SELECT user_id FROM input)))
),
-- One index probe per message (LIMIT 1 keeps the lookup per row: never a join over the table).
existing AS (
    SELECT i.ord, m.id, m.seq, m.created_at
    FROM known i
    CROSS JOIN LATERAL (
        SELECT m.id, m.seq, m.created_at FROM messages m
        WHERE m.room_id = i.room_id
          AND m.user_id = i.user_id
          AND m.client_msg_id = i.client_msg_id
        LIMIT 1
    ) m
    WHERE i.client_msg_id IS NOT NULL
),
fresh AS (
    SELECT i.* FROM known i WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = i.ord)
),
counts AS (
    SELECT room_id, count(*) AS n FROM fresh GROUP BY room_id
),
-- Rooms are locked in id order, so that two nodes committing into overlapping sets of rooms
-- wait for each other instead of deadlocking.
locked AS MATERIALIZED (
    SELECT r.id FROM rooms r
    WHERE r.id = ANY (ARRAY(SELECT room_id FROM counts))
    ORDER BY r.id
    FOR NO KEY UPDATE
),
bumped AS (
    UPDATE rooms r SET last_seq = r.last_seq + c.n
    FROM counts c
    WHERE r.id = c.room_id AND r.id = ANY (ARRAY(SELECT id FROM locked))
    RETURNING r.id, r.last_seq - c.n AS base
),
numbered AS (
    SELECT f.*, b.base + row_number() OVER (PARTITION BY f.room_id ORDER BY f.ord) AS seq
    FROM fresh f JOIN bumped b ON b.id = f.room_id
),
inserted AS (
    INSERT INTO messages (id, room_id, seq, user_id, body, client_msg_id, created_at)
    SELECT id, room_id, seq, user_id, body, client_msg_id, created_at FROM numbered
    RETURNING 1
)
SELECT ord, id, seq, created_at, 'stored' AS kind FROM numbered
UNION ALL
SELECT ord, id, seq, created_at, 'duplicate' FROM existing
UNION ALL
SELECT ord, id, 0, created_at, 'no_user' FROM input i
WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.ord = i.ord)
";

/// The commit statement's parameters: one array per column.
struct CommitStatement<'a> {
    ords: Vec<i32>,
    ids: Vec<Uuid>,
    room_ids: Vec<i64>,
    user_ids: Vec<Uuid>,
    bodies: Vec<&'a str>,
    client_msg_ids: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
}

impl QueryId for CommitStatement<'_> {
    type QueryId = CommitStatement<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for CommitStatement<'_> {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for CommitStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk_sql(&mut out, COMMIT_SQL, |n, out| match n {
            1 => out.push_bind_param::<Array<Integer>, _>(&self.ords),
            2 => out.push_bind_param::<Array<SqlUuid>, _>(&self.ids),
            3 => out.push_bind_param::<Array<BigInt>, _>(&self.room_ids),
            4 => out.push_bind_param::<Array<SqlUuid>, _>(&self.user_ids),
            5 => out.push_bind_param::<Array<Text>, _>(&self.bodies),
            6 => out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_msg_ids),
            _ => out.push_bind_param::<Array<Timestamptz>, _>(&self.created_at),
        })
    }
}

/// Readies a connection that will run [`commit_batch`] and nothing else.
///
/// The statement is prepared once per connection (see `store::prepared`) and runs on
/// PostgreSQL's generic plan: planning it takes about 2.5 ms, and under the default
/// `plan_cache_mode` PostgreSQL keeps re-planning it whenever the custom plans of earlier
/// (small) batches looked cheaper. A generic plan is made once, from the statistics of that
/// moment, and kept until they change: made on a new, empty database it used to look up
/// `client_msg_id`s by scanning all of `messages` into a hash table, and kept doing so for
/// every batch as the table grew, until autovacuum's next ANALYZE. So the plan must not depend on
/// the statistics: the statement reaches every table by key, and the session turns off
/// sequential scans and nested loops, which leaves exactly one plan shape — an index probe per
/// message where the statement asks for one (the `LATERAL … LIMIT 1`), hash and merge joins
/// between the batch's own rows, whatever the tables' sizes or statistics.
pub async fn prepare_session(conn: &mut AsyncPgConnection) -> StoreResult<()> {
    conn.batch_execute(
        "SET plan_cache_mode = force_generic_plan; \
         SET enable_seqscan = off; \
         SET enable_nestloop = off",
    )
    .await
    .map_err(StoreError::from)
}

/// Stores `batch` in one statement and returns each message's outcome, in batch order. The
/// caller must not put the same `(room, user, client_msg_id)` twice in one batch.
///
/// Within a room, seqs follow batch order. A concurrent insert of the same `client_msg_id` by
/// another node makes the statement fail with `Conflict`; retrying the batch then finds it.
pub async fn commit_batch(
    conn: &mut AsyncPgConnection,
    batch: &[NewMessage],
) -> StoreResult<Vec<Outcome>> {
    let n = batch.len();
    let statement = CommitStatement {
        ords: (0..n)
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect(),
        ids: batch.iter().map(|m| m.id).collect(),
        room_ids: batch.iter().map(|m| m.room_id).collect(),
        user_ids: batch.iter().map(|m| m.user_id).collect(),
        bodies: batch.iter().map(|m| m.body.as_str()).collect(),
        client_msg_ids: batch.iter().map(|m| m.client_msg_id.as_deref()).collect(),
        created_at: batch.iter().map(|m| m.ts).collect(),
    };
    let rows: Vec<Row> = statement.load(conn).await.map_err(StoreError::from)?;

    let mut outcomes = vec![Outcome::NoRoom; n];
    for row in rows {
        let Some(slot) = usize::try_from(row.ord)
            .ok()
            .and_then(|i| outcomes.get_mut(i))
        else {
            continue;
        };
        *slot = match row.kind.as_str() {
            "stored" => Outcome::Stored { seq: row.seq },
            "duplicate" => Outcome::Duplicate {
                id: row.id,
                seq: row.seq,
                ts: row.created_at,
            },
            _ => Outcome::NoUser,
        };
    }
    Ok(outcomes)
}
