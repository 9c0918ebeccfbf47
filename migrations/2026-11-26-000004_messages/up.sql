CREATE TABLE messages (
    id            UUID PRIMARY KEY,
    room_id       BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL CHECK (seq > 0),
    user_id       UUID NOT NULL REFERENCES users (id),
    body          TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    -- Filled in the background by the indexer, off the send path.
    embedding     vector(384),
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq)
);

-- Idempotent sends: one row per (room, user, client_msg_id).
CREATE UNIQUE INDEX messages_client_msg_id_key
    ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Semantic search: cosine distance over the embeddings.
CREATE INDEX messages_embedding_hnsw_idx
    ON messages USING hnsw (embedding vector_cosine_ops);

-- The indexer's backlog: rows still waiting for an embedding.
CREATE INDEX messages_unembedded_idx
    ON messages (created_at)
    WHERE embedding IS NULL;
