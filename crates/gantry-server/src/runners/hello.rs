//! Checking a runner's hello: version, capacity, backends, labels (against its token's
//! scope: the token's labels are imposed, a declared label may not contradict them).

use std::collections::BTreeMap;

use gantry_proto::{Hello, PROTOCOL_VERSION};
use gantry_store::RunnerScope;

use crate::config::BackendChoice;

/// Most workflows one runner connection may run at once.
pub const MAX_CAPACITY: u32 = 256;
/// Most labels a runner may declare.
const MAX_LABELS: usize = 64;
/// Longest label key or value, and runner name.
const MAX_LABEL_CHARS: usize = 200;

/// What the server keeps of an accepted hello.
#[derive(Debug, Clone)]
pub struct RunnerInfo {
    /// The runner's own name (for people; not its identity).
    pub name: String,
    /// Its labels: those it declared and its token's (which it cannot contradict).
    pub labels: BTreeMap<String, String>,
    /// The repositories its token restricts it to (None: every one).
    pub repos: Option<Vec<String>>,
    /// Workflows at once.
    pub capacity: usize,
    /// The backend plans are adapted to.
    pub backend: BackendChoice,
}

/// The runner's settings under its token's `scope`, or why the hello is refused (what is
/// wrong and what to do).
pub fn check(hello: &Hello, scope: &RunnerScope) -> Result<RunnerInfo, String> {
    if hello.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version mismatch: the runner speaks version {}, this server speaks \
             version {PROTOCOL_VERSION}; run the same gantry release on the server and its runners",
            hello.version
        ));
    }
    if hello.capacity == 0 || hello.capacity > MAX_CAPACITY {
        return Err(format!(
            "capacity {} is out of range; give 1 to {MAX_CAPACITY} workflows",
            hello.capacity
        ));
    }
    let backend = match hello.backends.first().map(String::as_str) {
        Some("docker") => BackendChoice::Docker,
        Some("local") => BackendChoice::Local,
        Some(other) => {
            return Err(format!(
                "unknown backend `{}`; this server assigns work to `docker` or `local` runners",
                other.chars().take(MAX_LABEL_CHARS).collect::<String>()
            ));
        }
        None => return Err("the hello names no backend; declare `docker` or `local`".into()),
    };
    if hello.labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels are too many; declare at most {MAX_LABELS}",
            hello.labels.len()
        ));
    }
    let too_long = |s: &String| s.is_empty() || s.chars().count() > MAX_LABEL_CHARS;
    if let Some((key, _)) = hello
        .labels
        .iter()
        .find(|(k, v)| too_long(k) || v.chars().count() > MAX_LABEL_CHARS)
    {
        return Err(format!(
            "label `{}` is empty or longer than {MAX_LABEL_CHARS} characters",
            key.chars().take(MAX_LABEL_CHARS).collect::<String>()
        ));
    }
    let mut labels = hello.labels.clone();
    for (key, imposed) in &scope.labels {
        match labels.insert(key.clone(), imposed.clone()) {
            Some(declared) if declared != *imposed => {
                return Err(format!(
                    "the runner declares the label `{key}={}` but its token sets \
                     `{key}={imposed}`; a runner cannot contradict its token's labels: drop \
                     `{key}` from --labels, or run it with a token made for this host",
                    declared.chars().take(MAX_LABEL_CHARS).collect::<String>()
                ));
            }
            _ => {}
        }
    }
    Ok(RunnerInfo {
        name: hello.runner_name.chars().take(MAX_LABEL_CHARS).collect(),
        labels,
        repos: scope.repos.clone(),
        capacity: hello.capacity as usize,
        backend,
    })
}

/// `key=value,key2=value2`, for messages.
pub fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            runner_name: "r".into(),
            labels: BTreeMap::from([("os".into(), "linux".into())]),
            capacity: 2,
            backends: vec!["local".into()],
            resume: vec![],
        }
    }

    fn check(hello: &Hello) -> Result<RunnerInfo, String> {
        super::check(hello, &RunnerScope::default())
    }

    #[test]
    fn good_hellos_are_accepted() {
        let info = check(&hello()).unwrap();
        assert_eq!((info.capacity, info.backend), (2, BackendChoice::Local));
        assert_eq!(describe_labels(&info.labels), "os=linux");
    }

    #[test]
    fn bad_hellos_say_what_to_fix() {
        let version = check(&Hello {
            version: 9,
            ..hello()
        })
        .unwrap_err();
        assert!(
            version.contains("version 9") && version.contains("version 1"),
            "{version}"
        );
        let capacity = check(&Hello {
            capacity: 0,
            ..hello()
        })
        .unwrap_err();
        assert!(capacity.contains("capacity 0"), "{capacity}");
        let backend = check(&Hello {
            backends: vec!["vm".into()],
            ..hello()
        })
        .unwrap_err();
        assert!(backend.contains("`vm`"), "{backend}");
        let none = check(&Hello {
            backends: vec![],
            ..hello()
        })
        .unwrap_err();
        assert!(none.contains("no backend"), "{none}");
        let mut labels = hello();
        labels.labels.insert(String::new(), "x".into());
        assert!(check(&labels).unwrap_err().contains("label"));
    }

    #[test]
    fn a_tokens_labels_are_imposed_and_cannot_be_contradicted() {
        let scope = RunnerScope {
            labels: BTreeMap::from([("gpu".into(), "true".into()), ("os".into(), "linux".into())]),
            repos: Some(vec!["acme/app".into()]),
        };
        let info = super::check(&hello(), &scope).unwrap();
        assert_eq!(describe_labels(&info.labels), "gpu=true,os=linux");
        assert_eq!(info.repos, scope.repos);
        let mut windows = hello();
        windows.labels.insert("os".into(), "windows".into());
        let refused = super::check(&windows, &scope).unwrap_err();
        assert!(
            refused.contains("`os=windows`") && refused.contains("token sets `os=linux`"),
            "{refused}"
        );
    }
}
