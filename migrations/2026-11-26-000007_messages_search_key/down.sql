DROP INDEX IF EXISTS messages_embedding_ivfflat_idx;
DROP INDEX IF EXISTS messages_embedding_ivfflat_next;
DROP FUNCTION IF EXISTS message_search_key(bigint, vector);
CREATE INDEX messages_embedding_ivfflat_idx
    ON messages USING ivfflat ((embedding::halfvec(384)) halfvec_cosine_ops)
    WITH (lists = 1);
