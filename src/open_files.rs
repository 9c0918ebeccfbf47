//! The open-file limit. Every WebSocket is a file, and many hosts start processes with a soft
//! RLIMIT_NOFILE of 1,024 under a far higher hard limit, so a node raises its soft limit to the
//! hard one before it listens.

/// Raises the soft RLIMIT_NOFILE to the hard limit; the limit now in force.
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
