DROP INDEX IF EXISTS messages_embedding_ivfflat_idx;
DROP INDEX IF EXISTS messages_embedding_ivfflat_next;
CREATE INDEX messages_embedding_ivfflat_idx
    ON messages USING ivfflat ((message_search_key(room_id, embedding)::halfvec(400)) halfvec_l2_ops)
    WITH (lists = 1);
