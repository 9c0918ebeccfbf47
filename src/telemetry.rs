//! Logging: one `tracing` subscriber for the process, JSON lines (production) or pretty text
//! (development) on stdout, filtered by `RUST_LOG`.

use std::sync::Once;

use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

static INIT: Once = Once::new();

/// Installs the global subscriber once; later calls (several nodes in one test) are no-ops.
pub fn init(log: &LogConfig) {
    INIT.call_once(|| {
        let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout);
        let result = match log.format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .try_init(),
            LogFormat::Pretty => builder.compact().try_init(),
        };
        // A subscriber installed by someone else (a test harness) is fine to keep.
        drop(result);
    });
}

/// The span of each HTTP request: method, route, path and request id. Unlike the default, it
/// never records the query string, where WebSocket clients may carry their token.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .copied()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_default(),
            http.target = %request.path(),
            request_id = %request_id,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let failure = match outcome {
            Ok(response) => response.response().error().map(|e| (response.status(), e)),
            Err(error) => Some((error.as_response_error().status_code(), error)),
        };
        if let Some((status, error)) = failure {
            let _entered = span.enter();
            let status = status.as_u16();
            match failure_level(status) {
                Level::ERROR => tracing::error!(status, "request failed: {error}"),
                Level::WARN => tracing::warn!(status, "request failed: {error}"),
                _ => tracing::info!(status, "request refused: {error}"),
            }
        }
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// How loudly a failed request is logged. A fault of the server is an error. Being unavailable
/// (PostgreSQL or Redis away, or this node draining: every client it turns away during a deploy
/// gets a 503) passes by itself, so it is a warning. A client's mistake is information.
fn failure_level(status: u16) -> Level {
    match status {
        503 => Level::WARN,
        500.. => Level::ERROR,
        _ => Level::INFO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draining_or_cut_off_node_warns_a_fault_is_an_error_a_bad_request_informs() {
        assert_eq!(failure_level(503), Level::WARN);
        assert_eq!(failure_level(500), Level::ERROR);
        assert_eq!(failure_level(502), Level::ERROR);
        assert_eq!(failure_level(401), Level::INFO);
        assert_eq!(failure_level(404), Level::INFO);
        assert_eq!(failure_level(429), Level::INFO);
    }
}
