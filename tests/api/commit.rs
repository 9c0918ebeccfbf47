//! Group commit against the real database, below the actors: what two nodes' commit lanes do to
//! each other when they write into the same rooms at once.

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use bosar_chat::store::commit::{COMMIT_SQL, NewMessage, Outcome, commit_batch, prepare_session};

use crate::helpers::{TestDb, explain};

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
    prepare_session(&mut conn).await.unwrap();
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

/// Every node of an `EXPLAIN (FORMAT JSON)` plan, depth first.
fn plan_nodes<'a>(node: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    out.push(node);
    for child in node["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

/// The plan a commit lane runs is made once, from the statistics of that moment. On a new,
/// empty database it used to find `client_msg_id`s by hashing a scan of all of `messages`,
/// and kept doing so for every batch while the table grew. Whatever the statistics say, every
/// table the statement reads must be reached by key.
#[actix_web::test]
async fn the_commit_plan_reaches_every_table_by_key_even_on_a_new_database() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    let user = setup(&mut conn).await;
    prepare_session(&mut conn).await.unwrap();
    diesel::sql_query(format!(
        "PREPARE lane_commit (int[], uuid[], bigint[], uuid[], text[], text[], timestamptz[]) AS {COMMIT_SQL}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let plan = explain(
        &mut conn,
        &format!(
            "EXPLAIN (FORMAT JSON) EXECUTE lane_commit ('{{0,1}}', '{{{a},{b}}}', '{{1,2}}', \
             '{{{user},{user}}}', '{{x,y}}', '{{c1,c2}}', '{{\"2026-01-01 00:00:00+00\",\"2026-01-01 00:00:00+00\"}}')",
            a = Uuid::now_v7(),
            b = Uuid::now_v7(),
        ),
    )
    .await;
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let mut nodes = Vec::new();
    plan_nodes(&plan[0]["Plan"], &mut nodes);

    let tables = ["messages", "rooms", "users"];
    let mut reads = 0;
    for node in nodes {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        assert_ne!(
            kind, "Seq Scan",
            "a sequential scan in the commit plan: {node}"
        );
        let relation = node["Relation Name"].as_str().unwrap_or_default();
        if kind.contains("Index") {
            assert!(
                node.get("Index Cond").is_some(),
                "an index read without a key in the commit plan: {node}"
            );
        }
        if kind != "ModifyTable" && tables.contains(&relation) {
            reads += 1;
        }
    }
    // users, messages (the client_msg_id probe), rooms twice (lock, bump).
    assert!(reads >= 4, "expected reads of every table, got {reads}");
}
