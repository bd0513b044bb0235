//! Which absolute paths a workspace or a volume may use inside a container: none that
//! would hide or replace the image's programs, libraries or system files (a plugin's
//! entrypoint must not be overwritable from the workspace).

use crate::parse::units;

/// Top-level directories that hold programs and libraries: nothing may be mounted on,
/// above or inside them.
const PROGRAM_DIRS: [&str; 11] = [
    "bin", "sbin", "usr", "lib", "lib32", "lib64", "libx32", "proc", "sys", "dev", "boot",
];

/// System directories that may not be mounted on or above, but below which a mount is
/// fine (`/var/run/docker.sock`, `/etc/ssl/certs`).
const SYSTEM_DIRS: [&str; 3] = ["etc", "run", "var/run"];

/// Why `path` cannot be a workspace path or a volume target in a container, if it
/// cannot: not absolute, `..`, NUL, the root, or a system directory (`/bin`, `/usr/...`,
/// `/lib*`, `/etc`, `/proc`, `/sys`, `/dev`, `/run`, `/var/run`, `/boot`) or a parent of
/// one. Backends reuse it on what they receive.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if let Some(problem) = units::path_problem(path) {
        return Some(problem);
    }
    let normal = normalize(path);
    if normal.is_empty() {
        return Some("is the root directory");
    }
    let first = normal.split('/').next().unwrap_or_default();
    if PROGRAM_DIRS.contains(&first) {
        return Some("is a system directory (programs and libraries live there)");
    }
    let covers = |dir: &str| dir == normal || dir.starts_with(&format!("{normal}/"));
    if SYSTEM_DIRS.iter().chain(&PROGRAM_DIRS).any(|d| covers(d)) {
        return Some("is or contains a system directory");
    }
    None
}

/// True when `path` is `dir` or below it (both absolute, compared by segments).
pub fn is_within(path: &str, dir: &str) -> bool {
    let (path, dir) = (normalize(path), normalize(dir));
    path == dir || dir.is_empty() || path.starts_with(&format!("{dir}/"))
}

/// `/usr//./local/` → `usr/local`.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_directories_and_their_parents_are_refused() {
        for bad in [
            "/",
            "/bin",
            "/bin/",
            "/usr",
            "/usr/local/bin",
            "/usr//./bin",
            "/lib64",
            "/etc",
            "/var",
            "/var/run",
            "/run",
            "/proc/1",
            "/dev/shm",
            "/boot",
            "relative",
            "/a/../b",
        ] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "/workspace",
            "/drone/src",
            "/cache",
            "/var/run/docker.sock",
            "/etc/ssl/certs",
            "/var/cache/x",
            "/library",
        ] {
            assert_eq!(path_problem(good), None, "{good}");
        }
    }

    #[test]
    fn within() {
        assert!(is_within("/workspace/cache", "/workspace"));
        assert!(is_within("/workspace", "/workspace/"));
        assert!(!is_within("/workspace2", "/workspace"));
    }
}
