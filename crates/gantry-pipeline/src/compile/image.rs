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

/// The registry part of an image reference (`host`, `host:port`, `[ipv6]:port`), if it
/// names one. Docker's rule: the first path component is a registry only when it contains
/// `.` or `:` or is `localhost`; otherwise the image comes from Docker Hub.
pub fn registry_of(reference: &str) -> Option<&str> {
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    split_registry(name).0
}

/// `name` (no digest) → its registry, if any, and the repository path after it.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// A registry's host (without brackets) and port: `host[:port]` or `[ipv6][:port]`.
/// `None` when brackets do not close or something other than a port follows them.
pub fn host_and_port(registry: &str) -> Option<(&str, Option<&str>)> {
    let Some(bracketed) = registry.strip_prefix('[') else {
        return Some(match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        });
    };
    let (host, after) = bracketed.split_once(']')?;
    match after {
        "" => Some((host, None)),
        _ => Some((host, Some(after.strip_prefix(':')?))),
    }
}

fn registry_problem(registry: &str) -> Option<&'static str> {
    const MALFORMED: &str = "has a malformed registry host";
    let Some((host, port)) = host_and_port(registry) else {
        return Some(MALFORMED);
    };
    let host_ok = if registry.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && !host.contains("..")
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    (!(host_ok && port_ok)).then_some(MALFORMED)
}

fn name_problem(name: &str) -> Option<&'static str> {
    let (registry, path) = split_registry(name);
    if let Some(problem) = registry.and_then(registry_problem) {
        return Some(problem);
    }
    let parts = path.split('/');
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
            "localhost:5000/app",
            "[::1]/app",
            "[fd00:ec2::254]:5000/team/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
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
            "[::1/app",
            "[::1]x/app",
            "[::1]:/app",
            "[not-v6]/app",
            ":5000/app",
        ] {
            assert!(reference_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn registries_by_dockers_rule() {
        for (reference, registry) in [
            ("alpine", None),
            ("alpine:3.20", None),
            ("library/alpine", None),
            ("metadata/app", None),
            ("localhost", None),
            ("localhost:5000", None),
            ("localhost/app", Some("localhost")),
            ("localhost:5000/app:1", Some("localhost:5000")),
            ("ghcr.io/a/b", Some("ghcr.io")),
            ("metadata:80/app", Some("metadata:80")),
            ("[::1]:5000/app@sha256:abc", Some("[::1]:5000")),
            ("app@sha256:a/b", None),
        ] {
            assert_eq!(registry_of(reference), registry, "{reference}");
        }
        assert_eq!(host_and_port("[::1]:5000"), Some(("::1", Some("5000"))));
        assert_eq!(host_and_port("[::1]"), Some(("::1", None)));
        assert_eq!(host_and_port("h.example:1"), Some(("h.example", Some("1"))));
        assert_eq!(host_and_port("[::1]5000"), None);
    }
}
