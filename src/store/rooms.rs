//! Rooms and their members: creation (the creator owns it and is a member), listing what a user
//! may see, access checks, and adding members to private rooms.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::DbPool;
use super::error::{StoreError, StoreResult};
use super::schema::{room_members, rooms, users};
use crate::protocol::message::rfc3339_millis;

/// A room as the API shows it.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Room {
    pub name: String,
    pub private: bool,
    pub owner: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

/// What a user may do in a room, with what the engine needs to serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomAccess {
    pub room_id: i64,
    pub private: bool,
    pub last_seq: i64,
    pub owner_id: Uuid,
    /// True for public rooms and for members of private ones.
    pub allowed: bool,
}

/// Creates a room owned by `owner`; `Conflict` when the name exists.
pub async fn create(pool: &DbPool, name: &str, private: bool, owner: Uuid) -> StoreResult<Room> {
    let mut conn = pool.get().await?;
    let name = name.to_owned();
    conn.transaction(async |conn| {
        let (room_id, created_at): (i64, DateTime<Utc>) = diesel::insert_into(rooms::table)
            .values((
                rooms::name.eq(&name),
                rooms::private.eq(private),
                rooms::owner_id.eq(owner),
            ))
            .returning((rooms::id, rooms::created_at))
            .get_result(conn)
            .await?;
        diesel::insert_into(room_members::table)
            .values((
                room_members::room_id.eq(room_id),
                room_members::user_id.eq(owner),
            ))
            .execute(conn)
            .await?;
        let owner_name: String = users::table
            .find(owner)
            .select(users::username)
            .first(conn)
            .await?;
        Ok::<_, diesel::result::Error>(Room {
            name,
            private,
            owner: owner_name,
            created_at,
        })
    })
    .await
    .map_err(StoreError::from)
}

/// Public rooms and the private rooms `user` is a member of, by name.
pub async fn list_visible(pool: &DbPool, user: Uuid) -> StoreResult<Vec<Room>> {
    let mut conn = pool.get().await?;
    let member_of = room_members::table
        .filter(room_members::user_id.eq(user))
        .select(room_members::room_id);
    rooms::table
        .inner_join(users::table)
        .filter(rooms::private.eq(false).or(rooms::id.eq_any(member_of)))
        .order(rooms::name.asc())
        .select((
            rooms::name,
            rooms::private,
            users::username,
            rooms::created_at,
        ))
        .load(&mut conn)
        .await
        .map_err(StoreError::from)
}

/// The room's id and whether `user` may read and join it; `None` when there is no such room.
pub async fn access(pool: &DbPool, name: &str, user: Uuid) -> StoreResult<Option<RoomAccess>> {
    let mut conn = pool.get().await?;
    let is_member = diesel::dsl::exists(
        room_members::table
            .filter(room_members::room_id.eq(rooms::id))
            .filter(room_members::user_id.eq(user)),
    );
    let row: Option<(i64, bool, i64, Uuid, bool)> = rooms::table
        .filter(rooms::name.eq(name))
        .select((
            rooms::id,
            rooms::private,
            rooms::last_seq,
            rooms::owner_id,
            is_member,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    Ok(row.map(
        |(room_id, private, last_seq, owner_id, member)| RoomAccess {
            room_id,
            private,
            last_seq,
            owner_id,
            allowed: !private || member,
        },
    ))
}

/// Adds `user` to the room; adding an existing member is not an error.
pub async fn add_member(pool: &DbPool, room_id: i64, user: Uuid) -> StoreResult<()> {
    let mut conn = pool.get().await?;
    diesel::insert_into(room_members::table)
        .values((
            room_members::room_id.eq(room_id),
            room_members::user_id.eq(user),
        ))
        .on_conflict_do_nothing()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `(room id, last_seq)` of each of `ids` that exists: one query for every room of a node.
pub async fn last_seqs(pool: &DbPool, ids: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
    let mut conn = pool.get().await?;
    rooms::table
        .filter(rooms::id.eq_any(ids))
        .select((rooms::id, rooms::last_seq))
        .load(&mut conn)
        .await
        .map_err(StoreError::from)
}
