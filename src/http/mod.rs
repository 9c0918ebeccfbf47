//! The HTTP routes of the service, one module per area.

mod health;

use actix_web::web;

use crate::error::ApiError;

/// Registers every route; shared by the server and nothing else.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api", web::get().to(health::liveness))
        .route("/api/health", web::get().to(health::readiness))
        .route("/metrics", web::get().to(health::metrics))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
