//! Set-up through the REST API: users (registered, or logged in when they exist), tokens (the
//! ones the API returns, or minted locally with `--jwt-secret`), and public rooms.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cli::Common;

/// Registrations in flight at once: the server hashes each password with Argon2, which is
/// deliberately slow, so more would only queue there.
const REGISTER_CONCURRENCY: usize = 8;
/// Lifetime of minted tokens.
const MINTED_TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub token: String,
}

#[derive(Deserialize)]
struct AuthReply {
    user: UserReply,
    token: String,
}

#[derive(Deserialize)]
struct UserReply {
    id: Uuid,
    username: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: Uuid,
    name: &'a str,
    iat: i64,
    exp: i64,
}

/// Talks to one node's REST API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.to_owned(),
        })
    }

    /// Registers `name`, or logs in when the name is taken (a previous run made it).
    pub async fn user(&self, name: &str, password: &str) -> anyhow::Result<User> {
        let body = serde_json::json!({ "username": name, "password": password });
        let url = format!("{}/api/auth/register", self.base);
        let response = self.http.post(&url).json(&body).send().await?;
        let response = if response.status() == StatusCode::CONFLICT {
            let url = format!("{}/api/auth/login", self.base);
            self.http.post(&url).json(&body).send().await?
        } else {
            response
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("registering or logging in {name}: HTTP {status}: {text}");
        }
        let reply: AuthReply = response.json().await?;
        Ok(User {
            id: reply.user.id,
            name: reply.user.username,
            token: reply.token,
        })
    }

    /// Creates a public room; one that already exists is fine.
    pub async fn room(&self, token: &str, name: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/rooms", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({ "name": name, "private": false }))
            .send()
            .await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::CONFLICT {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        bail!("creating room {name}: HTTP {status}: {text}")
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.text().await?)
    }
}

/// Who the clients are.
pub struct Identities {
    /// Registered users; sending clients use these round-robin.
    pub users: Vec<User>,
    minter: Option<Minter>,
}

struct Minter {
    key: EncodingKey,
    run: String,
}

impl Identities {
    /// Registers (or logs in) `common.users` users, at most `needed` of them.
    pub async fn provision(api: &Api, common: &Common, needed: usize) -> anyhow::Result<Self> {
        let count = common.users.clamp(1, needed.max(1));
        let password = Arc::new(common.password.clone());
        let names: Vec<String> = (0..count)
            .map(|i| format!("{}-u{i}", common.user_prefix))
            .collect();
        let mut users: Vec<User> = stream::iter(names)
            .map(|name| {
                let (api, password) = (api.clone(), password.clone());
                async move { api.user(&name, &password).await }
            })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        users.sort_by(|a, b| natural(&a.name).cmp(&natural(&b.name)));
        let minter = common.jwt_secret.as_ref().map(|secret| Minter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            run: run_id(),
        });
        let mut identities = Self { users, minter };
        if identities.minter.is_some() {
            // Same users, tokens signed here: proves the secret matches before the run starts.
            for i in 0..identities.users.len() {
                let (id, name) = (identities.users[i].id, identities.users[i].name.clone());
                identities.users[i].token = identities.mint(id, &name)?;
            }
        }
        Ok(identities)
    }

    /// The token of sending client `client`.
    pub fn sender(&self, client: usize) -> &User {
        &self.users[client % self.users.len()]
    }

    /// A token for a client that only listens: a fresh identity when minting (no database row
    /// is needed to join a public room and receive), else a registered user's.
    pub fn listener(&self, client: usize) -> anyhow::Result<String> {
        match &self.minter {
            Some(minter) => {
                let name = format!("{}-l{client}", minter.run);
                self.mint(Uuid::new_v4(), &name)
            }
            None => Ok(self.sender(client).token.clone()),
        }
    }

    fn mint(&self, id: Uuid, name: &str) -> anyhow::Result<String> {
        let Some(minter) = &self.minter else {
            bail!("no --jwt-secret to mint with");
        };
        let now = unix_secs();
        let claims = Claims {
            sub: id,
            name,
            iat: now,
            exp: now + MINTED_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &minter.key)
            .context("minting a token")
    }
}

/// Sort key so that `lt-u2` comes before `lt-u10`.
fn natural(name: &str) -> (usize, &str) {
    (name.len(), name)
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// A short id for this run (base 36 of the Unix time in tenths of a second), for room and
/// listener names.
pub fn run_id() -> String {
    let mut n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() / 100)
        .unwrap_or(0);
    let mut out = Vec::new();
    while n > 0 {
        let digit = u8::try_from(n % 36).unwrap_or(0);
        out.push(if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        });
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Room `i` of this run.
pub fn room_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-r{i}")
}

/// Creates `count` rooms, a few at a time, and returns their names.
pub async fn rooms(
    api: &Api,
    token: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (0..count).map(|i| room_name(prefix, i)).collect();
    let results: Vec<anyhow::Result<()>> = stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
            let token = token.to_owned();
            async move { api.room(&token, &name).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_contract() {
        let id = run_id();
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let room = room_name(&format!("lt-{id}"), 12);
        assert!(room.len() <= 64);
        assert!(
            room.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
}
