//! `GET /api/rooms/{name}/search?q=TEXT&limit=N`: semantic search over a room's history, with
//! the same access rules as history (404 unknown room, 403 private room of others).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::AuthUser;
use super::rooms::readable;
use crate::embed::search::{self, Query};
use crate::error::ApiError;
use crate::protocol::server::SearchHit;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Params {
    q: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct Hits {
    hits: Vec<SearchHit>,
}

pub async fn search(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    search::embedder(&state)?;
    let Params { q, limit } = params.into_inner();
    let query = Query::new(q, limit, state.config.limits.max_body_bytes)?;
    let access = readable(&state, &path, user.sub).await?;
    let room: Arc<str> = Arc::from(path.into_inner());
    let hits = search::run(&state, &room, access.room_id, &query).await?;
    Ok(HttpResponse::Ok().json(Hits { hits }))
}
