//! The store's error policy: callers see whether the database was unreachable (retryable,
//! `unavailable`), a uniqueness conflict, or something unexpected.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had, or it broke: the database is (for now) unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the row.
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Query(DieselError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Conflict,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                Self::Unavailable(info.message().to_owned())
            }
            DieselError::BrokenTransactionManager => Self::Unavailable(e.to_string()),
            other => Self::Query(other),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StoreError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            StoreError::Conflict => Self::Conflict("already exists".into()),
            StoreError::Query(q) => Self::Internal(q.into()),
        }
    }
}
