//! Semantic search over one room's history, shared by REST and WebSocket: checks the query,
//! embeds it with the node's embedder and asks the store for the nearest messages. Access to the
//! room is the caller's business (the same rules as history).

use std::sync::Arc;

use super::{EmbedError, Embedder};
use crate::error::ApiError;
use crate::protocol::server::SearchHit;
use crate::protocol::validate::{SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT, page_limit};
use crate::state::AppState;
use crate::store::{StoreError, search};

/// Why a search was not answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// `EMBEDDINGS_PROVIDER=off`, or the provider failed: `unavailable`.
    #[error("{0}")]
    Unavailable(String),
    /// An empty or oversized query, or a bad limit: `bad_request`.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checked search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    pub limit: i64,
}

impl Query {
    /// The query text must have something besides white space and be at most `max_bytes` long
    /// (the largest message body: longer queries cannot be about one message); the limit
    /// defaults to 10 and is capped at 50.
    pub fn new(
        text: Option<String>,
        limit: Option<i64>,
        max_bytes: usize,
    ) -> Result<Self, SearchError> {
        let text = text.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(SearchError::BadRequest(
                "the search query must not be empty".into(),
            ));
        }
        if text.len() > max_bytes {
            return Err(SearchError::BadRequest(format!(
                "the search query is {} bytes; the limit is {max_bytes}",
                text.len()
            )));
        }
        let limit = page_limit(limit, SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT)
            .map_err(SearchError::BadRequest)?;
        Ok(Self { text, limit })
    }
}

/// This node's embedder; `unavailable` when search is turned off.
pub fn embedder(state: &AppState) -> Result<&Arc<dyn Embedder>, SearchError> {
    state.embedder.as_ref().ok_or_else(|| {
        SearchError::Unavailable(
            "semantic search is turned off on this server (EMBEDDINGS_PROVIDER=off)".into(),
        )
    })
}

/// The room's messages closest to the query, best first.
pub async fn run(
    state: &AppState,
    room: &Arc<str>,
    room_id: i64,
    query: &Query,
) -> Result<Vec<SearchHit>, SearchError> {
    let embedder = embedder(state)?;
    let vector = embedder
        .embed(&[query.text.as_str()])
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, provider = embedder.name(), "embedding a search query failed");
            match e {
                EmbedError::Unavailable(_) => SearchError::Unavailable(
                    "the embeddings service is unavailable; try again".into(),
                ),
                _ => SearchError::Unavailable("the embeddings service failed".into()),
            }
        })?
        .pop()
        .ok_or_else(|| SearchError::Unavailable("the embeddings service returned nothing".into()))?;
    let tuning = search::Tuning {
        exact_up_to: state.config.limits.search_exact_up_to,
        probe_fraction: state.config.limits.search_probe_percent / 100.0,
    };
    Ok(search::nearest_tuned(&state.pool, room, room_id, vector, query.limit, tuning).await?)
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Unavailable(m) => Self::Unavailable(m),
            SearchError::BadRequest(m) => Self::BadRequest(m),
            SearchError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        assert_eq!(
            Query::new(Some("deploy".into()), None, 10).unwrap(),
            Query {
                text: "deploy".into(),
                limit: 10
            }
        );
        assert_eq!(
            Query::new(Some("x".into()), Some(500), 10).unwrap().limit,
            50
        );
        for (text, limit) in [
            (None, None),
            (Some("  "), None),
            (Some("x"), Some(0)),
            (Some("01234567890"), None),
        ] {
            let result = Query::new(text.map(str::to_owned), limit, 10);
            assert!(
                matches!(result, Err(SearchError::BadRequest(_))),
                "{text:?} {limit:?}"
            );
        }
    }
}
