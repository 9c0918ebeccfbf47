//! Request extractors: the authenticated user from `Authorization: Bearer`, and JSON bodies
//! whose errors speak the contract's error format.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::{FromRequest, HttpRequest, web};

use crate::auth::Claims;
use crate::error::ApiError;
use crate::state::AppState;

/// The caller, from a valid bearer token.
pub struct AuthUser(pub Claims);

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Internal(anyhow::anyhow!("no app state"))));
        };
        let result = match bearer_token(req) {
            None => Err(ApiError::Unauthorized("missing bearer token".into())),
            Some(token) => state
                .jwt
                .verify(token)
                .map(AuthUser)
                .map_err(|e| ApiError::Unauthorized(e.to_string())),
        };
        ready(result)
    }
}

/// JSON body settings: a size limit and contract-shaped errors.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _| {
            match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::TooLarge("request body too large".into())
                }
                JsonPayloadError::ContentType => {
                    ApiError::BadRequest("expected Content-Type: application/json".into())
                }
                other => ApiError::BadRequest(format!("invalid JSON body: {other}")),
            }
            .into()
        })
}

/// Query-string errors in the contract's error format.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid query: {err}")).into())
}

/// Path errors in the contract's error format.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into())
}
