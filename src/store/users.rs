//! Users: creation with a unique name, and lookup for login.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::DbPool;
use super::error::{StoreError, StoreResult};
use super::schema::users;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub password_hash: Option<String>,
}

/// Creates a user; `Conflict` when the name is taken.
pub async fn create(
    pool: &DbPool,
    username: &str,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let mut conn = pool.get().await?;
    diesel::insert_into(users::table)
        .values((
            users::username.eq(username),
            users::password_hash.eq(password_hash),
        ))
        .returning(User::as_returning())
        .get_result(&mut conn)
        .await
        .map_err(StoreError::from)
}

pub async fn find_by_name(pool: &DbPool, username: &str) -> StoreResult<Option<User>> {
    let mut conn = pool.get().await?;
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(StoreError::from)
}

/// The user named `username`, created (without a password) when missing.
pub async fn find_or_create(pool: &DbPool, username: &str) -> StoreResult<User> {
    if let Some(user) = find_by_name(pool, username).await? {
        return Ok(user);
    }
    match create(pool, username, None).await {
        // Someone created it in between: read theirs.
        Err(StoreError::Conflict) => find_by_name(pool, username)
            .await?
            .ok_or(StoreError::Conflict),
        other => other,
    }
}
