//! `POST /api/auth/register` and `POST /api/auth/login`. Argon2 runs on the hashing pool; a
//! login for an unknown user verifies against a decoy hash so both failures look the same.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::password;
use crate::error::ApiError;
use crate::protocol::validate::{USERNAME_RULE, is_valid_password, is_valid_username};
use crate::state::AppState;
use crate::store::{StoreError, users};

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct UserView<'a> {
    id: Uuid,
    username: &'a str,
}

#[derive(Serialize)]
struct Session<'a> {
    user: UserView<'a>,
    token: String,
}

/// The `{"user","token"}` answer for a signed-in user.
fn session<'a>(state: &AppState, id: Uuid, username: &'a str) -> Result<Session<'a>, ApiError> {
    let token = state
        .jwt
        .issue(id, username, None)
        .map_err(ApiError::Internal)?;
    Ok(Session {
        user: UserView { id, username },
        token,
    })
}

/// Runs password work on the node's hashing pool; a saturated pool answers 429.
async fn hashing<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    state
        .hasher
        .run(f)
        .await
        .map_err(|busy| ApiError::RateLimited(busy.to_string()))
}

pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    if !is_valid_username(&username) {
        return Err(ApiError::BadRequest(USERNAME_RULE.into()));
    }
    if !is_valid_password(&password) {
        return Err(ApiError::BadRequest(
            "password must be 8 to 128 characters".into(),
        ));
    }
    let hash = hashing(&state, move || password::hash(&password))
        .await?
        .map_err(ApiError::Internal)?;
    let user = match users::create(&state.pool, &username, Some(&hash)).await {
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict("that username is taken".into()));
        }
        other => other?,
    };
    Ok(HttpResponse::Created().json(session(&state, user.id, &user.username)?))
}

pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let user = if is_valid_username(&username) {
        users::find_by_name(&state.pool, &username).await?
    } else {
        None
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = hashing(&state, move || match stored {
        Some(hash) => password::verify(&password, &hash),
        None => {
            password::verify(&password, password::decoy_hash());
            false
        }
    })
    .await?;
    match user {
        Some(user) if matches => {
            Ok(HttpResponse::Ok().json(session(&state, user.id, &user.username)?))
        }
        _ => Err(ApiError::Unauthorized("wrong username or password".into())),
    }
}
