//! Durations, memory sizes, CPU counts and names: the small value languages of a pipeline.

/// Longest duration accepted anywhere (30 days).
pub const MAX_DURATION_SECS: u64 = 30 * 24 * 3600;
/// Smallest memory limit Docker accepts.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Parses `90s`, `10m`, `1h30m`, `2d`: whole numbers with units, largest unit first.
pub fn duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{text}` has no unit"));
    }
    if text.contains(char::is_whitespace) {
        return Err("write it without spaces, with the units d, h, m, s".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_rank = usize::MAX;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let (rank, unit) = match ch {
            'd' => (3, 86_400),
            'h' => (2, 3_600),
            'm' => (1, 60),
            's' => (0, 1),
            _ => return Err(format!("`{ch}` is not a unit (use d, h, m, s)")),
        };
        if number.is_empty() {
            return Err(format!("`{ch}` has no number before it"));
        }
        if rank >= last_rank {
            return Err("units must go from largest to smallest, each once".into());
        }
        last_rank = rank;
        let value: u64 = number
            .parse()
            .map_err(|_| "the number is too large".to_string())?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "the duration is too long".to_string())?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("`{number}` at the end has no unit"));
    }
    if total == 0 {
        return Err("a duration must be longer than zero".into());
    }
    if total > MAX_DURATION_SECS {
        return Err("a duration may be at most 30d".into());
    }
    Ok(total)
}

/// Parses a memory size: `512MiB`, `1G`, `256Mi`, `1.5GiB`, or bytes. Units are
/// case-insensitive; with an `i` they are powers of 1024, without one powers of 1000.
pub fn memory_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{other}` is not a size unit (use KiB, MiB, GiB, K, M, G)"
            ));
        }
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err("the size is too large".into());
    }
    let bytes = bytes.round() as u64;
    if bytes < MIN_MEMORY_BYTES {
        return Err("a memory limit must be at least 6MiB".into());
    }
    Ok(bytes)
}

/// Parses a CPU count: `1.5`, `2`, or Kubernetes-style millicpus `500m`.
pub fn millicpus(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let millis = if let Some(m) = text.strip_suffix('m') {
        m.parse::<f64>()
            .map_err(|_| format!("`{text}` is not a CPU count"))?
    } else {
        text.parse::<f64>()
            .map_err(|_| format!("`{text}` is not a CPU count"))?
            * 1000.0
    };
    if !millis.is_finite() || millis < 1.0 {
        return Err("a CPU limit must be at least 0.001 (1m)".into());
    }
    if millis > 1_024_000.0 {
        return Err("a CPU limit may be at most 1024".into());
    }
    Ok(millis.round() as u64)
}

/// Why `name` is not a valid step, service, stage or volume name, if it is not.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if name.len() > 63 {
        return Some("a name may be at most 63 characters".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Some(format!(
            "`{bad}` is not allowed in a name (use a-z, 0-9, `-` and `_`)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("a name must start with a letter or digit".into());
    }
    None
}

/// A valid name close to `name`: lower-case, other characters turned into `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.trim().chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-' {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '_').to_owned();
    let mut out: String = out.chars().take(63).collect();
    if out.is_empty() {
        out.push_str("step");
    }
    out
}

/// True for a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why `path` cannot be used as an absolute path inside or outside a container.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.contains('\0') {
        Some("contains a NUL character")
    } else if !path.starts_with('/') {
        Some("is not absolute (it must start with `/`)")
    } else if path.split('/').any(|part| part == "..") {
        Some("contains `..`")
    } else if path.trim_end_matches('/').is_empty() {
        Some("is the root directory")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("90s"), Ok(90));
        assert_eq!(duration_secs("10m"), Ok(600));
        assert_eq!(duration_secs("1h30m"), Ok(5400));
        assert_eq!(duration_secs("1d2h"), Ok(93_600));
        for bad in [
            "",
            "10",
            "10x",
            "m",
            "30m1h",
            "1m1m",
            "0s",
            "31d",
            "99999999999999999999h",
        ] {
            assert!(duration_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(memory_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(memory_bytes("100000000"), Ok(100_000_000));
        for bad in ["", "lots", "1X", "1KiB", "-5M", "1e30"] {
            assert!(memory_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(millicpus("1.5"), Ok(1500));
        assert_eq!(millicpus("2"), Ok(2000));
        assert_eq!(millicpus("500m"), Ok(500));
        for bad in ["0", "-1", "x", "5000"] {
            assert!(millicpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(name_problem("build_1-x"), None);
        assert!(name_problem("Build").is_some());
        assert!(name_problem("a b").is_some());
        assert!(name_problem("-a").is_some());
        assert!(name_problem("").is_some());
        assert!(name_problem(&"a".repeat(64)).is_some());
        assert_eq!(slug("Build Image!"), "build-image");
        assert_eq!(slug("***"), "step");
    }

    #[test]
    fn paths() {
        assert_eq!(path_problem("/cache"), None);
        assert!(path_problem("cache").is_some());
        assert!(path_problem("/a/../etc").is_some());
        assert!(path_problem("/a\0").is_some());
        assert!(path_problem("/").is_some());
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("A_1"));
        assert!(is_env_name("_x"));
        assert!(!is_env_name("1A"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
