-- The search index clusters each room's messages apart from every other room's.
--
-- Search is always within one room, but the index of migration 6 clustered all rooms together:
-- the lists a search scanned held mostly other rooms' messages, filtered out one by one. The
-- index now covers a search key: 16 dimensions spelling the low 16 bits of the room id as ±1.5,
-- followed by the unit-length embedding. Two rooms' keys differ by at least 3 in one dimension
-- (a squared distance of 9), more than any two unit vectors (at most 4), so k-means gives rooms
-- lists of their own, and within a room the Euclidean order of the keys is the cosine order of
-- the embeddings. A search probes the lists nearest to its key: lists of its own room.
--
-- The function is not STRICT so that the planner inlines it (a NULL embedding still gives a NULL
-- key): inlined, it costs about 1.5 µs a row; called, 8 µs.
--
-- The index starts with one list again; the indexer's maintenance rebuilds it with as many as
-- the table needs (store/vector_index.rs).
CREATE FUNCTION message_search_key(room_id bigint, embedding vector) RETURNS halfvec
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY[
        (room_id & 1)::real * 3 - 1.5, ((room_id >> 1) & 1)::real * 3 - 1.5,
        ((room_id >> 2) & 1)::real * 3 - 1.5, ((room_id >> 3) & 1)::real * 3 - 1.5,
        ((room_id >> 4) & 1)::real * 3 - 1.5, ((room_id >> 5) & 1)::real * 3 - 1.5,
        ((room_id >> 6) & 1)::real * 3 - 1.5, ((room_id >> 7) & 1)::real * 3 - 1.5,
        ((room_id >> 8) & 1)::real * 3 - 1.5, ((room_id >> 9) & 1)::real * 3 - 1.5,
        ((room_id >> 10) & 1)::real * 3 - 1.5, ((room_id >> 11) & 1)::real * 3 - 1.5,
        ((room_id >> 12) & 1)::real * 3 - 1.5, ((room_id >> 13) & 1)::real * 3 - 1.5,
        ((room_id >> 14) & 1)::real * 3 - 1.5, ((room_id >> 15) & 1)::real * 3 - 1.5
    ]::halfvec(16) || l2_normalize(embedding::halfvec(384));

DROP INDEX IF EXISTS messages_embedding_ivfflat_idx;
DROP INDEX IF EXISTS messages_embedding_ivfflat_next;
CREATE INDEX messages_embedding_ivfflat_idx
    ON messages USING ivfflat ((message_search_key(room_id, embedding)::halfvec(400)) halfvec_l2_ops)
    WITH (lists = 1);
