//! HS256 tokens: issued at register, login and by `bosar-chat token`; verified on every
//! authenticated request and WebSocket. Claims: `sub` (user id), `name`, `iat`, `exp`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The user's name, so that sockets need no database lookup.
    pub name: String,
    pub iat: i64,
    pub exp: i64,
}

/// The signing and verifying keys made once from `JWT_SECRET`.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A token for `user` valid for the configured lifetime (or `ttl` when given).
    pub fn issue(
        &self,
        user_id: Uuid,
        name: &str,
        ttl: Option<Duration>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.unwrap_or(self.ttl).as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id,
            name: name.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60));
        let id = Uuid::new_v4();
        let claims = keys
            .verify(&keys.issue(id, "alice", None).unwrap())
            .unwrap();
        assert_eq!(claims.sub, id);
        assert_eq!(claims.name, "alice");
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn other_keys_expired_and_garbage_tokens_are_refused() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60));
        let other = JwtKeys::new(
            b"another-secret-another-secret-0123",
            Duration::from_secs(60),
        );
        let token = other.issue(Uuid::new_v4(), "bob", None).unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Invalid));

        let now = chrono::Utc::now().timestamp();
        let expired = Claims {
            sub: Uuid::new_v4(),
            name: "c".into(),
            iat: now - 20,
            exp: now - 10,
        };
        let token = jsonwebtoken::encode(
            &Header::default(),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }
}
