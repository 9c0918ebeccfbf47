//! The `search` frame: semantic search over a room's history, answered with `search_results`
//! (same access rules as `history`: joined rooms are known, others are checked).

use actix::prelude::*;
use actix_web_actors::ws;

use super::Connection;
use super::frames::{Code, Refusal, check_room_name, refuse};
use crate::embed::search::{self, Query, SearchError};
use crate::protocol::ServerFrame;

impl From<SearchError> for Refusal {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Unavailable(m) => refuse(Code::Unavailable, m),
            SearchError::BadRequest(m) => refuse(Code::BadRequest, m),
            SearchError::Store(e) => e.into(),
        }
    }
}

impl Connection {
    pub(super) fn on_search(
        &mut self,
        room: String,
        query: String,
        limit: Option<i64>,
        reference: Option<String>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let r = reference.as_deref();
        let checked = check_room_name(&room)
            .and_then(|()| {
                search::embedder(&self.state)
                    .map(|_| ())
                    .map_err(Refusal::from)
            })
            .and_then(|()| {
                Query::new(Some(query), limit, self.state.config.limits.max_body_bytes)
                    .map_err(Refusal::from)
            });
        let query = match checked {
            Ok(query) => query,
            Err(refusal) => return self.error(ctx, r, refusal),
        };
        let Some(readable) = self.readable(room) else {
            return;
        };
        let state = self.state.clone();
        let work = async move {
            let (name, room_id) = readable.resolve(&state).await?;
            let hits = search::run(&state, &name, room_id, &query).await?;
            Ok::<_, Refusal>((name, hits))
        };
        ctx.spawn(work.into_actor(self).map(move |result, conn, ctx| {
            let r = reference.as_deref();
            match result {
                Ok((room, hits)) => conn.send_frame(
                    ctx,
                    &ServerFrame::SearchResults {
                        room: &room,
                        hits: &hits,
                        reference: r,
                    },
                ),
                Err(refusal) => conn.error(ctx, r, refusal),
            }
        }));
    }
}
