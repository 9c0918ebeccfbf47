//! Fixtures for the embeddings tests: waiting for the indexer, bulk rows straight into the
//! database, and the cosine similarity the service should report.

use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::TestDb;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT … AS n` that counts something.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    let mut conn = db.connect().await;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

pub async fn execute(db: &TestDb, sql: &str) {
    let mut conn = db.connect().await;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Messages still without an embedding.
pub async fn unembedded(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT count(*) AS n FROM messages WHERE embedding IS NULL",
    )
    .await
}

/// Waits until every message has its embedding; panics after `timeout`.
pub async fn wait_embedded(db: &TestDb, timeout: Duration) {
    let started = Instant::now();
    loop {
        let left = unembedded(db).await;
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{left} messages still without an embedding after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts `n` messages into `room` (by name) from its owner, bodies `prefix-1` … `prefix-n`
/// followed by a few words picked by the row number, all without an embedding. Returns nothing;
/// the room's `last_seq` is advanced so the engine's seqs stay gapless.
pub async fn insert_messages(db: &TestDb, room: &str, n: i64, prefix: &str) {
    let mut conn = db.connect().await;
    diesel::sql_query(
        "WITH r AS (
             UPDATE rooms SET last_seq = last_seq + $2 WHERE name = $1
             RETURNING id, owner_id, last_seq - $2 AS base
         )
         INSERT INTO messages (id, room_id, seq, user_id, body, created_at)
         SELECT gen_random_uuid(), r.id, r.base + g, r.owner_id,
                $3 || '-' || g || ' ' ||
                (ARRAY['apple','river','engine','violet','marble','copper','lantern','meadow',
                       'harbor','falcon','quartz','thunder'])[1 + g % 12] || ' ' ||
                (ARRAY['sings','breaks','glows','drifts','waits','burns','folds'])[1 + g % 7],
                now() - interval '1 hour' + g::float8 * interval '1 millisecond'
         FROM r, generate_series(1, $2) AS g",
    )
    .bind::<Text, _>(room)
    .bind::<BigInt, _>(n)
    .bind::<Text, _>(prefix)
    .execute(&mut conn)
    .await
    .expect("insert messages");
}

/// The cosine similarity of two texts under the `hash` embedder.
pub fn hash_similarity(a: &str, b: &str) -> f64 {
    let a = bosar_chat::embed::hash::embed_one(a);
    let b = bosar_chat::embed::hash::embed_one(b);
    a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum()
}
