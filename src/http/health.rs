//! Liveness (`/api`, never touches the database), readiness (`/api/health`, real checks of the
//! database and Redis with short timeouts) and Prometheus metrics (`/metrics`).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;
use crate::store::pool;

const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// 200 while the node serves; 503 while it drains, or once one of its own actors (a commit
/// lane, the bus) has died, so that the container's health check has it replaced.
pub async fn liveness(state: web::Data<AppState>) -> HttpResponse {
    let (code, status) = if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if !state.services_running() {
        tracing::error!("a commit lane or the bus has stopped; this node must be replaced");
        (StatusCode::SERVICE_UNAVAILABLE, "failed")
    } else {
        (StatusCode::OK, "ok")
    };
    HttpResponse::build(code).json(json!({
        "status": status,
        "node": state.node_id(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    redis: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let database = pool::ping(&state.pool, CHECK_TIMEOUT);
    let redis = async {
        match &state.redis {
            None => None,
            Some(link) => Some(link.ping(CHECK_TIMEOUT).await),
        }
    };
    let (database, redis) = futures_util::join!(database, redis);

    let mut errors = Vec::new();
    let database = part("database", database, &mut errors);
    let redis = match redis {
        None => "disabled",
        Some(result) => part("redis", result, &mut errors),
    };
    state.metrics.redis_up.set(i64::from(redis == "ok"));

    let healthy = errors.is_empty();
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        database,
        redis,
        errors,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn part(name: &str, result: anyhow::Result<()>, errors: &mut Vec<String>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(part = name, error = format!("{e:#}"), "health check failed");
            errors.push(format!("{name}: {e:#}"));
            "unavailable"
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let status = state.pool.status();
    let m = &state.metrics;
    m.db_pool_size
        .set(i64::try_from(status.max_size).unwrap_or(i64::MAX));
    m.db_pool_available
        .set(i64::try_from(status.available).unwrap_or(i64::MAX));
    m.db_pool_waiting
        .set(i64::try_from(status.waiting).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    #[actix_rt::test]
    async fn liveness_fails_once_a_commit_lane_has_died() {
        let (state, services) = crate::state::unstarted(false);
        let state = web::Data::new(state);
        assert_eq!(liveness(state.clone()).await.status(), 200);

        drop(services);
        let response = liveness(state).await;
        assert_eq!(response.status(), 503);
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["status"], "failed");
    }
}
