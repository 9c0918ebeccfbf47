//! Reading a room's history by seq: pages before/after a seq for clients, and exact ranges for
//! replay on join and for filling delivery gaps.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::DbPool;
use super::error::{StoreError, StoreResult};
use super::schema::{messages, users};
use crate::protocol::Message;

type Row = (Uuid, i64, String, String, Option<String>, DateTime<Utc>);

fn to_message(room: &Arc<str>, (id, seq, user, body, client_msg_id, ts): Row) -> Message {
    Message {
        id,
        room: room.clone(),
        seq,
        user: Arc::from(user),
        body,
        ts,
        client_msg_id,
    }
}

/// The room's messages with their authors' names, in the shape [`to_message`] reads.
#[diesel::dsl::auto_type]
fn with_authors(room_id: i64) -> _ {
    messages::table
        .inner_join(users::table)
        .filter(messages::room_id.eq(room_id))
        .select((
            messages::id,
            messages::seq,
            users::username,
            messages::body,
            messages::client_msg_id,
            messages::created_at,
        ))
}

/// Up to `limit` messages with `after < seq < before`, ascending. With only `before` (or
/// neither) the page ends at the newest matching message; with `after` it starts right after it.
pub async fn page(
    pool: &DbPool,
    room: &Arc<str>,
    room_id: i64,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<Message>> {
    let mut conn = pool.get().await?;
    let mut query = with_authors(room_id).limit(limit).into_boxed();
    if let Some(before) = before {
        query = query.filter(messages::seq.lt(before));
    }
    if let Some(after) = after {
        query = query.filter(messages::seq.gt(after));
    }
    let newest_first = after.is_none();
    query = if newest_first {
        query.order(messages::seq.desc())
    } else {
        query.order(messages::seq.asc())
    };
    let mut rows: Vec<Row> = query.load(&mut conn).await.map_err(StoreError::from)?;
    if newest_first {
        rows.reverse();
    }
    Ok(rows.into_iter().map(|r| to_message(room, r)).collect())
}

/// Every message with `from < seq <= to`, ascending.
pub async fn range(
    pool: &DbPool,
    room: &Arc<str>,
    room_id: i64,
    from: i64,
    to: i64,
) -> StoreResult<Vec<Message>> {
    let mut conn = pool.get().await?;
    let rows: Vec<Row> = with_authors(room_id)
        .filter(messages::seq.gt(from))
        .filter(messages::seq.le(to))
        .order(messages::seq.asc())
        .load(&mut conn)
        .await
        .map_err(StoreError::from)?;
    Ok(rows.into_iter().map(|r| to_message(room, r)).collect())
}
