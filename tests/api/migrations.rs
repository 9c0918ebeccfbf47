//! The embedded migrations: a fresh database gets the whole schema with pgvector, a second run
//! is a no-op, every migration can be reverted and applied again, and the search index is rebuilt
//! by a migration only on a small table.

use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;

use bosar_chat::config::DatabaseConfig;
use bosar_chat::store::migrate::{self, MIGRATIONS};

use crate::helpers::{TestDb, migration_count};

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

async fn names(db: &TestDb, sql: &str) -> Vec<String> {
    let mut conn = db.connect().await;
    let rows: Vec<Name> = diesel::sql_query(sql).load(&mut conn).await.expect(sql);
    rows.into_iter().map(|r| r.name).collect()
}

#[actix_web::test]
async fn applying_twice_is_a_no_op() {
    let db = TestDb::create_empty().await;

    let first = migrate::run_pending(&DatabaseConfig::for_url(&db.url))
        .await
        .expect("first run");
    assert_eq!(first.len(), migration_count(), "{first:?}");
    assert!(
        first[0].contains("enable_vector") || first[0].starts_with("2026"),
        "{first:?}"
    );

    let second = migrate::run_pending(&DatabaseConfig::for_url(&db.url))
        .await
        .expect("second run");
    assert!(second.is_empty(), "second run applied {second:?}");
}

#[actix_web::test]
async fn the_schema_has_tables_constraints_and_the_vector_index() {
    let db = TestDb::create().await;

    let tables = names(
        &db,
        "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .await;
    for table in ["messages", "room_members", "rooms", "users"] {
        assert!(
            tables.iter().any(|t| t == table),
            "missing {table}: {tables:?}"
        );
    }

    let extensions = names(&db, "SELECT extname::text AS name FROM pg_extension").await;
    assert!(extensions.iter().any(|e| e == "vector"), "{extensions:?}");

    let indexes = names(
        &db,
        "SELECT indexdef AS name FROM pg_indexes WHERE tablename = 'messages'",
    )
    .await
    .join("\n");
    assert!(
        indexes.contains(
            "USING ivfflat (((message_search_key(room_id, embedding))::halfvec(400)) halfvec_l2_ops) WITH (lists='1') WHERE (embedding IS NOT NULL)"
        ),
        "{indexes}"
    );
    assert!(
        indexes.contains("UNIQUE INDEX messages_room_seq_key"),
        "{indexes}"
    );
    assert!(
        indexes.contains("(room_id, user_id, client_msg_id)"),
        "{indexes}"
    );

    let column = names(
        &db,
        "SELECT format_type(atttypid, atttypmod) AS name FROM pg_attribute \
         WHERE attrelid = 'messages'::regclass AND attname = 'embedding'",
    )
    .await;
    assert_eq!(column, ["vector(384)"]);
}

#[actix_web::test]
async fn every_migration_reverts_and_reapplies() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).expect("connect");
        let reverted = conn.revert_all_migrations(MIGRATIONS).expect("revert all");
        assert_eq!(reverted.len(), migration_count());
        let applied = conn.run_pending_migrations(MIGRATIONS).expect("reapply");
        assert_eq!(applied.len(), migration_count());
    })
    .await
    .expect("migration thread");
}

/// Migration 8 rebuilds the search index as a partial one only on a small table: a large one
/// keeps its index (writes are never blocked behind a long build at deploy) until the search
/// index upkeep rebuilds it concurrently.
#[actix_web::test]
async fn a_large_table_keeps_its_search_index_for_the_upkeep_to_rebuild() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let revert = move || {
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).expect("connect");
        conn.revert_last_migration(MIGRATIONS).expect("revert");
    };
    tokio::task::spawn_blocking(revert)
        .await
        .expect("migration thread");
    let mut conn = db.connect().await;
    for sql in [
        "INSERT INTO users (username) VALUES ('owner')",
        "INSERT INTO rooms (name, owner_id) SELECT 'big', id FROM users",
        "INSERT INTO messages (id, room_id, seq, user_id, body, created_at)
         SELECT gen_random_uuid(), r.id, g, r.owner_id, 'm' || g, now()
         FROM rooms r, generate_series(1, 10000) g",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.expect(sql);
    }
    let applied = migrate::run_pending(&DatabaseConfig::for_url(&db.url))
        .await
        .expect("reapply");
    assert_eq!(applied.len(), 1, "{applied:?}");

    let search_index = "SELECT indexdef AS name FROM pg_indexes
                        WHERE indexname = 'messages_embedding_ivfflat_idx'";
    let definition = names(&db, search_index).await;
    assert_eq!(definition.len(), 1, "{definition:?}");
    assert!(
        !definition[0].contains("WHERE"),
        "rebuilt on a large table: {definition:?}"
    );
}
