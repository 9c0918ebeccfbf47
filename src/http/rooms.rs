//! Rooms over REST: create, list, add members to private rooms, and read history.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::AuthUser;
use crate::error::ApiError;
use crate::protocol::Message;
use crate::protocol::validate::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, USERNAME_RULE, is_valid_room_name, is_valid_username,
    page_limit,
};
use crate::state::AppState;
use crate::store::rooms::{self, RoomAccess};
use crate::store::{StoreError, history, users};

#[derive(Deserialize)]
pub struct NewRoom {
    name: String,
    #[serde(default)]
    private: bool,
}

pub async fn create(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    body: web::Json<NewRoom>,
) -> Result<HttpResponse, ApiError> {
    let NewRoom { name, private } = body.into_inner();
    if !is_valid_room_name(&name) {
        return Err(ApiError::BadRequest(
            "room names are 1 to 64 of a-z, 0-9, '_', '.', ':' and '-', starting with a letter or digit"
                .into(),
        ));
    }
    match rooms::create(&state.pool, &name, private, user.sub).await {
        Ok(room) => Ok(HttpResponse::Created().json(room)),
        Err(StoreError::Conflict) => Err(ApiError::Conflict("a room with that name exists".into())),
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct RoomList {
    rooms: Vec<rooms::Room>,
}

pub async fn list(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let rooms = rooms::list_visible(&state.pool, user.sub).await?;
    Ok(HttpResponse::Ok().json(RoomList { rooms }))
}

/// The room named in the path, if the caller may read it.
pub(super) async fn readable(
    state: &AppState,
    name: &str,
    user: uuid::Uuid,
) -> Result<RoomAccess, ApiError> {
    if !is_valid_room_name(name) {
        return Err(ApiError::NotFound("no such room".into()));
    }
    match rooms::access(&state.pool, name, user).await? {
        None => Err(ApiError::NotFound("no such room".into())),
        Some(access) if !access.allowed => Err(ApiError::Forbidden("this room is private".into())),
        Some(access) => Ok(access),
    }
}

#[derive(Deserialize)]
pub struct NewMember {
    username: String,
}

pub async fn add_member(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let access = readable(&state, &path, user.sub).await?;
    if access.owner_id != user.sub {
        return Err(ApiError::Forbidden(
            "only the room's owner adds members".into(),
        ));
    }
    // A name no account can have is refused before the lookup (a NUL character in it would
    // fail the query itself).
    if !is_valid_username(&body.username) {
        return Err(ApiError::BadRequest(USERNAME_RULE.into()));
    }
    let Some(member) = users::find_by_name(&state.pool, &body.username).await? else {
        return Err(ApiError::NotFound("no such user".into()));
    };
    rooms::add_member(&state.pool, access.room_id, member.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct Page {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct Messages {
    messages: Vec<Message>,
}

pub async fn messages(
    state: web::Data<AppState>,
    AuthUser(user): AuthUser,
    path: web::Path<String>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let access = readable(&state, &path, user.sub).await?;
    let limit = page_limit(page.limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)
        .map_err(ApiError::BadRequest)?;
    let room: Arc<str> = Arc::from(path.into_inner());
    let messages = history::page(
        &state.pool,
        &room,
        access.room_id,
        page.before,
        page.after,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Messages { messages }))
}
