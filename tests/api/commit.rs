//! Group commit against the real database, below the actors: what two nodes' commit lanes do to
//! each other when they write into the same rooms at once.

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use bosar_chat::store::commit::{NewMessage, Outcome, commit_batch};

use crate::helpers::TestDb;

const ROOMS: i64 = 300;

async fn setup(conn: &mut AsyncPgConnection) -> Uuid {
    let user = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO users (id, username) VALUES ('{user}', 'writer')"
    ))
    .execute(conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO rooms (name, owner_id) SELECT 'room-' || g, '{user}' FROM generate_series(1, {ROOMS}) g"
    ))
    .execute(conn)
    .await
    .unwrap();
    user
}

/// One lane's batches: each into a different random subset of the rooms (so that the
/// database meets them in a different order each time), one message per room.
async fn lane(mut conn: AsyncPgConnection, user: Uuid, lane: u64, batches: u64) -> u64 {
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ (lane + 1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut stored = 0;
    for b in 0..batches {
        let size = 1 + next() % u64::try_from(ROOMS).unwrap();
        let mut rooms: Vec<i64> = (1..=ROOMS).collect();
        for i in (1..rooms.len()).rev() {
            let j = usize::try_from(next() % (i as u64 + 1)).unwrap();
            rooms.swap(i, j);
        }
        rooms.truncate(usize::try_from(size).unwrap());
        let batch: Vec<NewMessage> = rooms
            .into_iter()
            .map(|room_id| NewMessage {
                id: Uuid::now_v7(),
                room_id,
                user_id: user,
                body: format!("lane {lane} batch {b}"),
                client_msg_id: None,
                ts: Utc::now(),
            })
            .collect();
        let outcomes = commit_batch(&mut conn, &batch)
            .await
            .unwrap_or_else(|e| panic!("lane {lane}, batch {b}: {e}"));
        stored += outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Stored { .. }))
            .count() as u64;
    }
    stored
}

/// Four lanes (two nodes' worth) committing into overlapping sets of rooms at the same time:
/// they must queue on the rooms' rows, never deadlock, and every room's seqs must come out
/// gapless.
#[actix_web::test]
async fn concurrent_batches_over_the_same_rooms_never_deadlock() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    let user = setup(&mut conn).await;
    let batches = 100;
    let db = &db;
    let lanes = (0..4).map(|i| async move { lane(db.connect().await, user, i, batches).await });
    let stored = futures_util::future::join_all(lanes).await;
    assert!(stored.iter().all(|&n| n > 0));

    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        gaps: i64,
    }
    let check: Check = diesel::sql_query(
        "SELECT count(*) AS gaps FROM (
             SELECT r.id FROM rooms r LEFT JOIN messages m ON m.room_id = r.id
             GROUP BY r.id, r.last_seq
             HAVING count(m.*) <> r.last_seq OR max(m.seq) <> r.last_seq
         ) bad",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(check.gaps, 0);
}
