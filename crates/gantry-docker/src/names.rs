//! Names and labels of the Docker objects a workflow creates.
//!
//! Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; workflow ids and step names come from
//! elsewhere, so they are sanitised. The workflow part always ends with a hash of the full
//! id, so two ids that sanitise to the same text (`org/repo#7`, `org-repo-7`), or that are
//! cut to the same prefix, still get different names, and no id can end up looking like
//! another id plus a step. A step name that sanitising changed gets a hash as well.

use std::collections::{BTreeMap, HashMap};

use gantry_runner::WorkflowId;

/// Label carrying the workflow id on every object.
pub const LABEL_WORKFLOW: &str = "gantry.workflow";
/// Label carrying the step name on containers.
pub const LABEL_STEP: &str = "gantry.step";
/// Label carrying who created the object (`exec:<hostname>:<pid>` for `gantry exec`).
pub const LABEL_OWNER: &str = "gantry.owner";

/// Longest name part kept verbatim; longer parts are cut and hashed.
const MAX_PART: usize = 64;
/// Longest part of a workflow id kept in names (its hash follows).
const MAX_ID_PART: usize = 40;
/// Longest host name label (RFC 1123).
const MAX_HOSTNAME: usize = 63;

/// The bridge network of a workflow.
pub fn network_name(id: &WorkflowId) -> String {
    format!("gantry-{}", id_part(id))
}

/// The sandbox container of a workflow, whose network namespace every step and service
/// joins. It shares the network's name: containers and networks are named apart, and a
/// step's container always has a step part after the workflow part.
pub fn sandbox_name(id: &WorkflowId) -> String {
    network_name(id)
}

/// The host name of a workflow's sandbox, which its steps and services share:
/// `gantry-<id>-<hash>` cut to a valid host name label (lower case, at most 63 bytes).
pub fn sandbox_hostname(id: &WorkflowId) -> String {
    let hash = short_hash(&id.0);
    let room = MAX_HOSTNAME - "gantry-".len() - hash.len() - 1;
    let mut clean: String =
        id.0.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(room)
            .collect();
    while clean.ends_with('-') {
        clean.pop();
    }
    if clean.is_empty() {
        format!("gantry-{hash}")
    } else {
        format!("gantry-{clean}-{hash}")
    }
}

/// The workspace volume of a workflow.
pub fn workspace_volume(id: &WorkflowId) -> String {
    format!("gantry-{}-workspace", id_part(id))
}

/// The workflow-scoped volume behind a named [`Mount`](gantry_pipeline::plan::Mount).
pub fn mount_volume(id: &WorkflowId, mount: &str) -> String {
    format!("gantry-{}-vol-{}", id_part(id), part(mount))
}

/// The container of one step or service of workflow `id`.
pub fn container_name(id: &WorkflowId, step: &str) -> String {
    format!("gantry-{}-{}", id_part(id), part(step))
}

/// Labels for a workflow's network and volumes.
pub fn workflow_labels(
    id: &WorkflowId,
    owner: &str,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = extra.clone().into_iter().collect();
    labels.insert(LABEL_WORKFLOW.to_string(), id.0.clone());
    labels.insert(LABEL_OWNER.to_string(), owner.to_string());
    labels
}

/// Labels for a step's container.
pub fn step_labels(
    id: &WorkflowId,
    step: &str,
    owner: &str,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels = workflow_labels(id, owner, extra);
    labels.insert(LABEL_STEP.to_string(), step.to_string());
    labels
}

/// The workflow id made safe for a Docker object name and cut, followed by a hash of the
/// whole id: `<clean>-<hash>`.
fn id_part(id: &WorkflowId) -> String {
    let mut clean = sanitize(&id.0);
    clean.truncate(MAX_ID_PART);
    format!("{clean}-{}", short_hash(&id.0))
}

/// `raw` made safe for a Docker object name, unique per distinct `raw`.
fn part(raw: &str) -> String {
    let mut clean = sanitize(raw);
    let changed = clean != raw || raw.is_empty();
    if clean.len() > MAX_PART {
        clean.truncate(MAX_PART);
    }
    if changed || raw.len() > MAX_PART {
        clean.push('-');
        clean.push_str(&short_hash(raw));
    }
    clean
}

/// Every character Docker does not allow in a name replaced by `-` (ASCII only, so
/// truncating by bytes stays on a character boundary).
fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// 48 bits of the hash of `raw`, as 12 hex digits: short in a name, and far from the
/// birthday bound for the number of workflows one engine sees.
fn short_hash(raw: &str) -> String {
    format!("{:012x}", fnv1a(raw.as_bytes()) & 0xffff_ffff_ffff)
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between releases, and names
/// must stay the same across versions so leftovers can still be found).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(s: &str) -> WorkflowId {
        WorkflowId(s.to_string())
    }

    fn is_docker_name(name: &str) -> bool {
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }

    #[test]
    fn plain_names_stay_readable() {
        let id = wf("b42-1");
        let hash = short_hash("b42-1");
        assert_eq!(
            container_name(&id, "build"),
            format!("gantry-b42-1-{hash}-build")
        );
        assert_eq!(network_name(&id), format!("gantry-b42-1-{hash}"));
        assert_eq!(sandbox_name(&id), network_name(&id));
        assert_eq!(
            workspace_volume(&id),
            format!("gantry-b42-1-{hash}-workspace")
        );
        assert_eq!(
            mount_volume(&id, "cache"),
            format!("gantry-b42-1-{hash}-vol-cache")
        );
    }

    #[test]
    fn ids_that_sanitise_alike_get_different_names() {
        for (a, b) in [
            ("org/repo#7", "org-repo-7"),
            ("a b", "a-b"),
            ("é", "-"),
            ("", "-"),
        ] {
            let (a, b) = (wf(a), wf(b));
            assert_ne!(container_name(&a, "build"), container_name(&b, "build"));
            assert_ne!(network_name(&a), network_name(&b));
            assert_ne!(workspace_volume(&a), workspace_volume(&b));
            assert_ne!(sandbox_hostname(&a), sandbox_hostname(&b));
            assert!(is_docker_name(&container_name(&a, "build")));
        }
    }

    #[test]
    fn an_id_cannot_pose_as_another_id_plus_a_step() {
        // Without a hash after the id, `a` + step `b-c` and `a-b` + step `c` would both be
        // `gantry-a-b-c`; the same holds for volumes and the workspace.
        assert_ne!(
            container_name(&wf("a"), "b-c"),
            container_name(&wf("a-b"), "c")
        );
        assert_ne!(
            workspace_volume(&wf("a-vol-x")),
            mount_volume(&wf("a"), "x-workspace")
        );
        assert_ne!(network_name(&wf("a-b")), container_name(&wf("a"), "b"));
    }

    #[test]
    fn long_ids_are_cut_but_stay_distinct() {
        let (long, longer) = ("x".repeat(300), "x".repeat(301));
        let name = network_name(&wf(&long));
        assert!(name.len() < 70, "{name}");
        assert_ne!(name, network_name(&wf(&longer)));
        assert_ne!(
            container_name(&wf("b"), &long),
            container_name(&wf("b"), &longer)
        );
    }

    #[test]
    fn sandbox_host_names_are_valid_labels() {
        for id in ["b42-1", "Org/Repo#7", "", "-", &"y".repeat(300), "a__b..c"] {
            let host = sandbox_hostname(&wf(id));
            assert!(host.len() <= 63, "{host}");
            assert!(
                host.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{host}"
            );
            assert!(!host.starts_with('-') && !host.ends_with('-'), "{host}");
        }
    }

    #[test]
    fn labels_carry_workflow_step_owner_and_extras() {
        let extra = BTreeMap::from([("gantry.test".to_string(), "t1".to_string())]);
        let labels = step_labels(&wf("w"), "build", "exec:h:1", &extra);
        assert_eq!(labels[LABEL_WORKFLOW], "w");
        assert_eq!(labels[LABEL_STEP], "build");
        assert_eq!(labels[LABEL_OWNER], "exec:h:1");
        assert_eq!(labels["gantry.test"], "t1");
    }
}
