//! The HTTP routes of the service, one module per area.

mod auth;
mod extract;
mod health;
mod rooms;
mod search;
mod web_ui;
mod ws;

use actix_web::web;

use crate::error::ApiError;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    web_ui::routes(cfg);
    cfg.app_data(extract::json_config())
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .route("/api", web::get().to(health::liveness))
        .route("/api/health", web::get().to(health::readiness))
        .route("/metrics", web::get().to(health::metrics))
        .route("/api/auth/register", web::post().to(auth::register))
        .route("/api/auth/login", web::post().to(auth::login))
        .route("/api/rooms", web::post().to(rooms::create))
        .route("/api/rooms", web::get().to(rooms::list))
        .route(
            "/api/rooms/{name}/members",
            web::post().to(rooms::add_member),
        )
        .route("/api/rooms/{name}/messages", web::get().to(rooms::messages))
        .route("/api/rooms/{name}/search", web::get().to(search::search))
        .route("/ws", web::get().to(ws::upgrade))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
