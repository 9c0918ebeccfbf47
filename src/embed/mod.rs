//! Message embeddings for semantic search: the [`Embedder`] trait every provider implements, the
//! providers themselves (`hash` built in, `openai` over HTTP), the background [`indexer`] that
//! fills `messages.embedding` off the send path, and the [`recluster`] task that keeps the search
//! index's clusters matched to the table.
//!
//! Every embedder returns vectors of [`DIMENSIONS`] floats, the width of the `vector(384)`
//! column, so that providers can be switched without a migration (re-embedding is then a matter
//! of setting the column back to NULL: the indexer picks such rows up again).

pub mod hash;
pub mod indexer;
pub mod openai;
pub mod recluster;
pub mod search;

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use crate::config::EmbeddingsConfig;

/// The width of every embedding, fixed by the `messages.embedding vector(384)` column.
pub const DIMENSIONS: usize = 384;

/// Why a batch could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The provider could not be reached, timed out, or kept failing after every retry.
    #[error("embeddings service unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (bad key, unknown model, malformed input, ...).
    #[error("embeddings service refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// The provider answered with vectors of the wrong width: a model or `dimensions` problem.
    #[error(
        "embeddings service returned {got}-dimensional vectors; {expected} are needed (choose a model that supports `dimensions: {expected}`)"
    )]
    Dimension { expected: usize, got: usize },
    /// The answer did not have the OpenAI embeddings shape.
    #[error("embeddings service answered something unexpected: {0}")]
    Malformed(String),
}

/// Turns texts into unit-length vectors of [`DIMENSIONS`] floats.
///
/// The futures are not `Send`: they run on the actix runtime (HTTP workers, connection actors and
/// the indexer are all single-threaded tasks), which lets the HTTP embedder use `awc`.
pub trait Embedder: Send + Sync {
    /// The provider's name, for logs and metrics.
    fn name(&self) -> &'static str;

    /// How many texts the indexer should hand over per call.
    fn batch_size(&self) -> usize;

    /// One vector per text, in the order given.
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// The embedder that `EMBEDDINGS_PROVIDER` asks for; `None` for `off`.
pub fn from_config(config: &EmbeddingsConfig) -> Option<Arc<dyn Embedder>> {
    match config {
        EmbeddingsConfig::Off => None,
        EmbeddingsConfig::Hash => Some(Arc::new(hash::HashEmbedder)),
        EmbeddingsConfig::OpenAi {
            url,
            api_key,
            model,
        } => Some(Arc::new(openai::OpenAiEmbedder::new(
            url,
            api_key.as_ref().map(|k| k.expose().to_owned()),
            model,
        ))),
    }
}
