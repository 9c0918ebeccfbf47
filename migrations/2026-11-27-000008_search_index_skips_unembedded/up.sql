-- The search index leaves out the messages not embedded yet.
--
-- Every message is stored without an embedding (the indexer adds it later, off the send path),
-- and IVFFlat never held a NULL key anyway; but for an index over every row, each insert
-- statement still prepared the inlined search key, about 25 µs of the commit statement's
-- 0.23 ms. A partial index skips those rows before any of that. Searches already ask for
-- `embedding IS NOT NULL`, so they use it as before.
--
-- Rebuilt here only while the table is small: a large one keeps its index until the search
-- index upkeep rebuilds it concurrently (store/vector_index.rs), so a deploy never blocks
-- writes behind a long build.
DO $$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM messages LIMIT 10000) small) < 10000 THEN
        DROP INDEX IF EXISTS messages_embedding_ivfflat_idx;
        CREATE INDEX messages_embedding_ivfflat_idx
            ON messages USING ivfflat ((message_search_key(room_id, embedding)::halfvec(400)) halfvec_l2_ops)
            WITH (lists = 1)
            WHERE embedding IS NOT NULL;
    END IF;
END
$$;
