//! The message shape shared by REST, WebSocket events and history replies.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

/// One stored message, as every client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub room: Arc<str>,
    pub seq: i64,
    pub user: Arc<str>,
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub ts: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_msg_id: Option<String>,
}

/// RFC 3339 UTC with milliseconds: `2026-11-26T10:00:00.123Z`.
pub fn rfc3339_millis<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Timestamps are kept at millisecond precision everywhere, so what is stored, acknowledged and
/// delivered is the same instant.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
