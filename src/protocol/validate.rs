//! Field rules shared by REST and WebSocket input: names, sizes and limits.

/// What [`is_valid_username`] asks, for error messages.
pub const USERNAME_RULE: &str = "username must be 3 to 32 letters, digits, '_', '.' or '-'";

/// Usernames: `^[A-Za-z0-9_.-]{3,32}$`.
pub fn is_valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Room names: `^[a-z0-9][a-z0-9_.:-]{0,63}$`.
pub fn is_valid_room_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= 64
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// Passwords: 8 to 128 characters.
pub fn is_valid_password(password: &str) -> bool {
    (8..=128).contains(&password.chars().count())
}

/// `client_msg_id` and `ref`: 1 to 64 characters, none of them NUL.
pub fn is_valid_short_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= 64 && is_storable(id)
}

/// Whether PostgreSQL's `text` can hold `s`: it takes any UTF-8 but the NUL character, and a
/// statement binding one fails whole (a commit batch with it would fail every sender in it).
pub fn is_storable(s: &str) -> bool {
    !s.contains('\0')
}

pub const HISTORY_DEFAULT_LIMIT: i64 = 50;
pub const HISTORY_MAX_LIMIT: i64 = 200;
pub const SEARCH_DEFAULT_LIMIT: i64 = 10;
pub const SEARCH_MAX_LIMIT: i64 = 50;

/// A page size: the default when absent, at most `max`; zero or negative is an error.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, String> {
    match limit {
        None => Ok(default),
        Some(n) if n < 1 => Err("limit must be at least 1".into()),
        Some(n) => Ok(n.min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["bob", "Alice_01", "a.b-c", &"x".repeat(32)] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in ["", "ab", "has space", "ünï", &"x".repeat(33), "a/b"] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn room_names() {
        for ok in ["general", "0", "a.b:c-d_e", &"r".repeat(64)] {
            assert!(is_valid_room_name(ok), "{ok}");
        }
        for bad in ["", "General", "-x", "_x", "a b", &"r".repeat(65), "é"] {
            assert!(!is_valid_room_name(bad), "{bad}");
        }
    }

    #[test]
    fn short_ids_and_storable_text() {
        for ok in ["c-17", "é", &"x".repeat(64)] {
            assert!(is_valid_short_id(ok), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a\0b"] {
            assert!(!is_valid_short_id(bad), "{bad}");
        }
        assert!(is_storable("tab\tand newline\n are fine"));
        assert!(!is_storable("nul\0"));
    }

    #[test]
    fn limits() {
        assert_eq!(page_limit(None, 50, 200), Ok(50));
        assert_eq!(page_limit(Some(500), 50, 200), Ok(200));
        assert!(page_limit(Some(0), 50, 200).is_err());
    }
}
