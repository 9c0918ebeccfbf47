//! The `openai` embedder: any server that speaks the OpenAI embeddings API (`POST
//! /v1/embeddings` with `{"model","input":[…],"dimensions":384}`), such as OpenAI itself, Azure
//! OpenAI, vLLM, text-embeddings-inference or Ollama.
//!
//! Requests carry `Authorization: Bearer` when `EMBEDDINGS_API_KEY` is set, at most
//! [`MAX_INPUTS`] texts each, and time out after [`REQUEST_TIMEOUT`]. Timeouts, connection
//! failures, 429 and 5xx answers are retried with exponential backoff and jitter, waiting at least
//! what a `Retry-After` header asks for; other 4xx answers fail at once with the server's own
//! message. Vectors of any width other than [`DIMENSIONS`] are refused with a clear error.

use std::time::Duration;

use awc::error::SendRequestError;
use awc::http::StatusCode;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{DIMENSIONS, EmbedError, Embedder};

/// Most texts sent in one request.
pub const MAX_INPUTS: usize = 256;
/// Longest wait for one request's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest answer read: 256 vectors of 384 floats as JSON take about 1 MiB.
const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Longest wait between two tries, unless `Retry-After` asks for longer.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a server asking for more is waited on this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The `openai` provider.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    url: String,
    api_key: Option<String>,
    model: String,
    timeout: Duration,
    retry: RetryPolicy,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [&'a str],
    dimensions: usize,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    embedding: Vec<f32>,
    index: usize,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// One failed try: whether another may help, and after how long at least.
struct Failure {
    error: EmbedError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl OpenAiEmbedder {
    /// `url` is the embeddings endpoint (`…/v1/embeddings`); a base URL such as
    /// `https://api.openai.com/v1` gets `/embeddings` appended.
    pub fn new(url: &str, api_key: Option<String>, model: &str) -> Self {
        let url = url.trim_end_matches('/');
        let url = if url.ends_with("/embeddings") {
            url.to_owned()
        } else {
            format!("{url}/embeddings")
        };
        Self {
            url,
            api_key,
            model: model.to_owned(),
            timeout: REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// The same embedder with other timings (tests use short ones).
    pub fn with_timing(mut self, timeout: Duration, retry: RetryPolicy) -> Self {
        self.timeout = timeout;
        self.retry = retry;
        self
    }

    /// Embeds at most [`MAX_INPUTS`] texts, retrying as the policy allows.
    async fn embed_chunk(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.try_once(texts).await {
                Ok(vectors) => return Ok(vectors),
                Err(failure) => failure,
            };
            if !failure.retryable || attempt >= self.retry.attempts {
                return Err(failure.error);
            }
            let wait = self.backoff(attempt, failure.retry_after);
            tracing::warn!(
                error = %failure.error,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "embeddings request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with up to 50% jitter, but never less than `Retry-After`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .retry
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.retry.max_delay);
        let jitter_ms = exponential.as_millis() as u64 / 2;
        let jitter = Duration::from_millis(rand::random::<u64>() % (jitter_ms + 1));
        let wait = exponential + jitter;
        match retry_after {
            Some(asked) => wait.max(asked.min(self.retry.max_retry_after)),
            None => wait,
        }
    }

    async fn try_once(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Failure> {
        // awc clients are per thread (not `Send`); one per call keeps the embedder shareable.
        let client = awc::Client::builder()
            .timeout(self.timeout)
            .disable_redirects()
            .finish();
        let mut request = client.post(&self.url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let body = Request {
            model: &self.model,
            input: texts,
            dimensions: DIMENSIONS,
        };
        let mut response = request.send_json(&body).await.map_err(|e| Failure {
            retryable: !matches!(e, SendRequestError::Url(_)),
            error: EmbedError::Unavailable(match e {
                SendRequestError::Timeout => format!("no answer within {:?}", self.timeout),
                other => other.to_string(),
            }),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| Failure {
                error: EmbedError::Unavailable(format!("reading the answer: {e}")),
                retryable: true,
                retry_after: None,
            })?;
        if !status.is_success() {
            return Err(refusal(status, &bytes, retry_after));
        }
        parse(&bytes, texts.len()).map_err(|error| Failure {
            error,
            retryable: false,
            retry_after: None,
        })
    }
}

/// A non-2xx answer: 429 and 5xx may pass, anything else will not.
fn refusal(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Failure {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    let error = if retryable {
        EmbedError::Unavailable(format!("HTTP {}: {message}", status.as_u16()))
    } else {
        EmbedError::Refused {
            status: status.as_u16(),
            message,
        }
    };
    Failure {
        error,
        retryable,
        retry_after,
    }
}

/// The vectors of a 200 answer, in input order, each checked for its width.
fn parse(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| EmbedError::Malformed(e.to_string()))?;
    if response.data.len() != expected {
        return Err(EmbedError::Malformed(format!(
            "{} embeddings for {expected} inputs",
            response.data.len()
        )));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for datum in response.data {
        if datum.embedding.len() != DIMENSIONS {
            return Err(EmbedError::Dimension {
                expected: DIMENSIONS,
                got: datum.embedding.len(),
            });
        }
        match vectors.get_mut(datum.index) {
            Some(slot @ None) => *slot = Some(datum.embedding),
            _ => {
                return Err(EmbedError::Malformed(format!(
                    "index {} is out of range or repeated",
                    datum.index
                )));
            }
        }
    }
    // Every slot is filled: as many distinct in-range indexes as inputs.
    Ok(vectors.into_iter().flatten().collect())
}

impl Embedder for OpenAiEmbedder {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn batch_size(&self) -> usize {
        128
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(MAX_INPUTS) {
                vectors.extend(self.embed_chunk(chunk).await?);
            }
            Ok(vectors)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_the_endpoint_appended() {
        let e = OpenAiEmbedder::new("https://api.openai.com/v1/", None, "m");
        assert_eq!(e.url, "https://api.openai.com/v1/embeddings");
        let e = OpenAiEmbedder::new("http://127.0.0.1:8080/v1/embeddings", None, "m");
        assert_eq!(e.url, "http://127.0.0.1:8080/v1/embeddings");
    }

    #[test]
    fn answers_are_put_back_in_input_order() {
        let a = vec![0.5; DIMENSIONS];
        let b = vec![0.25; DIMENSIONS];
        let body = serde_json::json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": b},
                {"object": "embedding", "index": 0, "embedding": a},
            ],
            "model": "m",
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        });
        let vectors = parse(body.to_string().as_bytes(), 2).unwrap();
        assert_eq!(vectors, vec![a, b]);
    }

    #[test]
    fn wrong_widths_and_shapes_are_refused() {
        let body = serde_json::json!({"data": [{"index": 0, "embedding": [0.1, 0.2]}]});
        let error = parse(body.to_string().as_bytes(), 1).unwrap_err();
        assert!(
            matches!(
                error,
                EmbedError::Dimension {
                    expected: 384,
                    got: 2
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("384"));
        let body = serde_json::json!({"data": []});
        assert!(matches!(
            parse(body.to_string().as_bytes(), 1),
            Err(EmbedError::Malformed(_))
        ));
        let twice = vec![0.0; DIMENSIONS];
        let body = serde_json::json!({"data": [
            {"index": 0, "embedding": twice}, {"index": 0, "embedding": twice}
        ]});
        assert!(matches!(
            parse(body.to_string().as_bytes(), 2),
            Err(EmbedError::Malformed(_))
        ));
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let e = OpenAiEmbedder::new("http://x/v1", None, "m");
        let first = e.backoff(1, None);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(375));
        let third = e.backoff(3, None);
        assert!(third >= Duration::from_secs(1));
        assert!(e.backoff(30, None) <= Duration::from_secs(12));
        assert!(e.backoff(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert_eq!(
            e.backoff(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }
}
