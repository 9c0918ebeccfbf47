//! The search index's upkeep: one list while the table is small, a rebuild with more lists once
//! it has grown, one node at a time, and interrupted rebuilds finished by the next round.

use bosar_chat::embed::recluster::{ReclusterOptions, Round, run_once};
use bosar_chat::store::vector_index::{INDEXED, PREDICATE};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::RunQueryDsl;

use crate::helpers::TestDb;
use crate::helpers::vectors::{count, execute};

/// Small thresholds: one list below 100 embedded messages, then one list per 50.
const OPTIONS: ReclusterOptions = ReclusterOptions {
    every: std::time::Duration::from_secs(60),
    min_rows: 100,
    rows_per_list: 50,
};

/// A room of `n` embedded messages (vectors drawn at random, seeded so runs agree).
async fn room_with_embedded_messages(db: &TestDb, n: i64) {
    execute(db, "INSERT INTO users (username) VALUES ('owner')").await;
    execute(
        db,
        "INSERT INTO rooms (name, owner_id) SELECT 'big', id FROM users WHERE username = 'owner'",
    )
    .await;
    execute(db, "SELECT setseed(0.42)").await;
    execute(
        db,
        &format!(
            "INSERT INTO messages (id, room_id, seq, user_id, body, created_at, embedding)
             SELECT gen_random_uuid(), r.id, g, r.owner_id, 'm' || g, now(),
                    (SELECT array_agg(random() - 0.5) FROM generate_series(1, 384) d
                     WHERE d > 0 * g)::vector(384)
             FROM rooms r, generate_series(1, {n}) g"
        ),
    )
    .await;
    execute(db, "ANALYZE messages").await;
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct SearchIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    valid: bool,
    #[diesel(sql_type = Text)]
    options: String,
    /// Whether it holds only the embedded messages.
    #[diesel(sql_type = Bool)]
    partial: bool,
}

/// Every IVFFlat index on `messages`.
async fn search_indexes(db: &TestDb) -> Vec<SearchIndex> {
    let mut conn = db.connect().await;
    diesel::sql_query(
        "SELECT c.relname::text AS name, i.indisvalid AS valid,
                coalesce(array_to_string(c.reloptions, ','), '') AS options,
                coalesce(pg_get_expr(i.indpred, i.indrelid), '') = '(embedding IS NOT NULL)'
                    AS partial
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_am a ON a.oid = c.relam
         WHERE i.indrelid = 'messages'::regclass AND a.amname = 'ivfflat'
         ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .expect("indexes")
}

fn index(name: &str, lists: i64) -> SearchIndex {
    SearchIndex {
        name: name.to_owned(),
        valid: true,
        options: format!("lists={lists}"),
        partial: true,
    }
}

#[actix_web::test]
async fn the_index_gets_more_lists_once_the_table_has_grown() {
    let db = TestDb::create().await;
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Fine { lists: 1 }
    );

    room_with_embedded_messages(&db, 1000).await;
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Rebuilt { from: 1, to: 20 }
    );
    assert_eq!(
        search_indexes(&db).await,
        [index("messages_embedding_ivfflat_idx", 20)]
    );
    // Grown by less than twice: nothing to do.
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Fine { lists: 20 }
    );
}

#[actix_web::test]
async fn one_node_at_a_time_rebuilds() {
    let db = TestDb::create().await;
    room_with_embedded_messages(&db, 1000).await;
    let mut holder = db.connect().await;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(0x626f_7361_722d_6976_i64)
        .execute(&mut holder)
        .await
        .expect("lock");
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Busy
    );
    drop(holder);
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Rebuilt { from: 1, to: 20 }
    );
}

#[actix_web::test]
async fn a_rebuild_cut_off_before_the_swap_is_finished() {
    let db = TestDb::create().await;
    room_with_embedded_messages(&db, 300).await;
    // The new index was built, the old one dropped, and the rename never happened.
    execute(
        &db,
        &format!(
            "CREATE INDEX messages_embedding_ivfflat_next ON messages
             USING ivfflat (({INDEXED}) halfvec_l2_ops) WITH (lists = 4) WHERE {PREDICATE}"
        ),
    )
    .await;
    execute(&db, "DROP INDEX messages_embedding_ivfflat_idx").await;

    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Fine { lists: 4 }
    );
    assert_eq!(
        search_indexes(&db).await,
        [index("messages_embedding_ivfflat_idx", 4)]
    );
}

#[actix_web::test]
async fn a_half_built_index_is_dropped_and_the_rebuild_done_again() {
    let db = TestDb::create().await;
    room_with_embedded_messages(&db, 1000).await;
    // A concurrent build that failed half-way leaves an invalid index behind.
    let mut conn = db.connect().await;
    let failed = diesel::sql_query(format!(
        "CREATE INDEX CONCURRENTLY messages_embedding_ivfflat_next ON messages
         USING ivfflat (({INDEXED}) halfvec_l2_ops) WITH (lists = 8)
         WHERE 1 / (seq - seq) = 0"
    ))
    .execute(&mut conn)
    .await;
    assert!(failed.is_err());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = 'messages_embedding_ivfflat_next' AND NOT i.indisvalid"
        )
        .await,
        1
    );

    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Rebuilt { from: 1, to: 20 }
    );
    assert_eq!(
        search_indexes(&db).await,
        [index("messages_embedding_ivfflat_idx", 20)]
    );
}

/// Puts `definition` in place of the search index.
async fn replace_search_index(db: &TestDb, definition: &str) {
    execute(db, "DROP INDEX messages_embedding_ivfflat_idx").await;
    execute(db, definition).await;
}

/// The next round rebuilds an out-of-date index of the right lists (6, for 300 messages) as this
/// version builds it, and the round after that leaves it alone.
async fn rebuilt_once_in_the_current_shape(db: &TestDb) {
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Rebuilt { from: 6, to: 6 }
    );
    assert_eq!(
        search_indexes(db).await,
        [index("messages_embedding_ivfflat_idx", 6)]
    );
    assert_eq!(
        run_once(&db.url, OPTIONS).await.expect("round"),
        Round::Fine { lists: 6 }
    );
}

/// An index over the bare embedding (what a node of the previous version builds during a rolling
/// deploy) serves none of this version's searches: the next round rebuilds it over the search
/// key, even though its lists are the right number.
#[actix_web::test]
async fn an_index_over_the_bare_embedding_is_rebuilt_over_the_search_key() {
    let db = TestDb::create().await;
    room_with_embedded_messages(&db, 300).await;
    replace_search_index(
        &db,
        "CREATE INDEX messages_embedding_ivfflat_idx ON messages
         USING ivfflat ((embedding::halfvec(384)) halfvec_cosine_ops) WITH (lists = 6)",
    )
    .await;
    let keyed = "SELECT count(*) AS n FROM pg_indexes
                 WHERE indexname = 'messages_embedding_ivfflat_idx'
                   AND indexdef LIKE '%message_search_key(room_id, embedding)%'";
    assert_eq!(count(&db, keyed).await, 0);

    rebuilt_once_in_the_current_shape(&db).await;
    assert_eq!(count(&db, keyed).await, 1);
}

/// An index over every row (the shape before migration 8, which a large table keeps until now,
/// and which a node of the previous version builds during a rolling deploy) costs each insert
/// its key: the next round rebuilds it over the embedded messages only, with the same lists.
#[actix_web::test]
async fn an_index_over_every_row_is_rebuilt_over_the_embedded_ones() {
    let db = TestDb::create().await;
    room_with_embedded_messages(&db, 300).await;
    replace_search_index(
        &db,
        &format!(
            "CREATE INDEX messages_embedding_ivfflat_idx ON messages
             USING ivfflat (({INDEXED}) halfvec_l2_ops) WITH (lists = 6)"
        ),
    )
    .await;
    let full = SearchIndex {
        partial: false,
        ..index("messages_embedding_ivfflat_idx", 6)
    };
    assert_eq!(search_indexes(&db).await, [full]);

    rebuilt_once_in_the_current_shape(&db).await;
}
