DROP INDEX IF EXISTS messages_embedding_ivfflat_idx;
DROP INDEX IF EXISTS messages_embedding_ivfflat_next;
CREATE INDEX messages_embedding_hnsw_idx
    ON messages USING hnsw (embedding vector_cosine_ops);
