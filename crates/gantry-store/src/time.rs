//! Times are i64 unix milliseconds, so both databases store and decode the same type.

/// Unix time in milliseconds.
pub type Millis = i64;

/// The current unix time in milliseconds.
pub fn now_ms() -> Millis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
