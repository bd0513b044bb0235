//! Image references: `[registry[:port]/]path[:tag][@algorithm:hex]`, as Docker reads them.

/// Why `reference` is not an image reference Docker would accept, if it is not.
pub fn reference_problem(reference: &str) -> Option<&'static str> {
    if reference.trim().is_empty() {
        return Some("is empty");
    }
    if reference.len() > 4096 {
        return Some("is too long");
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Some("contains spaces or control characters");
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(problem) = digest.and_then(digest_problem) {
        return Some(problem);
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].split_once(':') {
        Some((_, tag)) => (&rest[..rest.len() - tag.len() - 1], Some(tag)),
        None => (rest, None),
    };
    if let Some(problem) = tag.and_then(tag_problem) {
        return Some(problem);
    }
    name_problem(name)
}

fn digest_problem(digest: &str) -> Option<&'static str> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Some("has a digest without `algorithm:`");
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    (!(algorithm_ok && hex_ok)).then_some("has a malformed digest")
}

fn tag_problem(tag: &str) -> Option<&'static str> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!ok).then_some("has a malformed tag (letters, digits, `_`, `.`, `-`)")
}

fn name_problem(name: &str) -> Option<&'static str> {
    let mut parts: Vec<&str> = name.split('/').collect();
    let has_registry =
        parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost");
    if has_registry {
        let registry = parts.remove(0);
        let (host, port) = registry.split_once(':').unwrap_or((registry, "1"));
        let host_ok = !host.is_empty()
            && !host.contains("..")
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        if !host_ok || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Some("has a malformed registry host");
        }
    }
    for part in parts {
        if part.chars().any(|c| c.is_ascii_uppercase()) {
            return Some("has upper-case letters in its repository name");
        }
        let ok = part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !part.contains("..")
            && part.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !ok {
            return Some(
                "has a malformed repository name (a-z, 0-9, `.`, `_`, `-` between letters)",
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references() {
        for good in [
            "alpine",
            "alpine:3.20",
            "library/alpine:latest",
            "gantry/clone:latest",
            "registry.example.com:5000/team/app:1.2",
            "localhost/app",
            "Registry.Example.com/app",
            "ghcr.io/a/b-c__d.e:v1_2",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(reference_problem(good), None, "{good}");
        }
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "  ",
            "alpine 3",
            "Alpine",
            "team/App:1",
            "a/../b",
            "a..b",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:xyz",
            "-alpine",
            "a//b",
            "host:port/app",
        ] {
            assert!(reference_problem(bad).is_some(), "{bad}");
        }
    }
}
