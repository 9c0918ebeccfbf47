-- Semantic search moves from HNSW to IVFFlat over half-precision vectors.
--
-- Every HNSW insert walks and rewires the graph: 1.5 to 4 ms of a core per message here, far
-- too slow for the indexer to keep up with the chat. An IVFFlat insert appends the row to the
-- list of its nearest centroid (tens of microseconds). IVFFlat's centroids are fixed when the
-- index is built, so the index starts with one list (an exhaustive scan, exact whatever the
-- data) and the indexer's maintenance rebuilds it with more lists as the table grows
-- (store/vector_index.rs). The index covers `embedding::halfvec(384)`: half the size of the
-- vectors, the same ranking to three decimal places.
DROP INDEX IF EXISTS messages_embedding_hnsw_idx;
CREATE INDEX messages_embedding_ivfflat_idx
    ON messages USING ivfflat ((embedding::halfvec(384)) halfvec_cosine_ops)
    WITH (lists = 1);
