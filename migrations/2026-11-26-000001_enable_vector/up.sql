-- pgvector: the `vector` type and its HNSW index for semantic search over message history.
CREATE EXTENSION IF NOT EXISTS vector;
