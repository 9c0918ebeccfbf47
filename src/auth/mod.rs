//! Authentication: Argon2id password hashes and HS256 JSON Web Tokens.

pub mod hasher;
pub mod jwt;
pub mod password;

pub use jwt::{Claims, JwtKeys};
