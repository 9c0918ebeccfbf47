//! `GET /ws`: refuses draining nodes (503) and bad tokens (401) before the upgrade, then hands
//! the socket to a [`Connection`] actor behind its outbound byte budget.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use serde::Deserialize;

use super::extract::bearer_token;
use crate::actors::connection::outbound::{CountedStream, Outbound};
use crate::actors::connection::{Connection, Session};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Upgrade {
    token: Option<String>,
}

pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<Upgrade>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable(
            "this node is restarting; connect to another".into(),
        ));
    }
    let token = bearer_token(&req).or(query.token.as_deref());
    let session = match token {
        None => None,
        Some(token) => Some(Session::from(
            state
                .jwt
                .verify(token)
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?,
        )),
    };
    let mut response = ws::handshake(&req)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let codec = actix_http::ws::Codec::new().max_size(state.config.limits.max_frame_bytes);
    let outbound = Outbound::new(state.config.ws.outbound_budget);
    let actor = Connection::new(state, session, outbound.clone());
    let frames = ws::WebsocketContext::with_codec(actor, stream, codec);
    Ok(response.streaming(CountedStream::new(frames, outbound)))
}
