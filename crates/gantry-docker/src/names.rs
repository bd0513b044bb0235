//! Names and labels of the Docker objects a workflow creates.
//!
//! Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; workflow ids and step names come from
//! elsewhere, so they are sanitised. When sanitising changed something (or the name had to
//! be shortened), a hash of the original is appended so two different ids never share a
//! name.

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

/// The bridge network of a workflow.
pub fn network_name(id: &WorkflowId) -> String {
    format!("gantry-{}", part(&id.0))
}

/// The workspace volume of a workflow.
pub fn workspace_volume(id: &WorkflowId) -> String {
    format!("gantry-{}-workspace", part(&id.0))
}

/// The workflow-scoped volume behind a named [`Mount`](gantry_pipeline::plan::Mount).
pub fn mount_volume(id: &WorkflowId, mount: &str) -> String {
    format!("gantry-{}-vol-{}", part(&id.0), part(mount))
}

/// The container of one step or service.
pub fn container_name(id: &WorkflowId, step: &str) -> String {
    format!("gantry-{}-{}", part(&id.0), part(step))
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

/// `raw` made safe for a Docker object name, unique per distinct `raw`.
fn part(raw: &str) -> String {
    let mut clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let changed = clean != raw || raw.is_empty();
    if clean.len() > MAX_PART {
        clean.truncate(MAX_PART);
    }
    if changed || raw.len() > MAX_PART {
        clean.push('-');
        clean.push_str(&format!("{:08x}", fnv1a(raw.as_bytes()) as u32));
    }
    clean
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

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(container_name(&wf("b42-1"), "build"), "gantry-b42-1-build");
        assert_eq!(network_name(&wf("b42-1")), "gantry-b42-1");
        assert_eq!(workspace_volume(&wf("b42-1")), "gantry-b42-1-workspace");
        assert_eq!(
            mount_volume(&wf("b42-1"), "cache"),
            "gantry-b42-1-vol-cache"
        );
    }

    #[test]
    fn unsafe_characters_are_replaced_and_disambiguated() {
        let a = container_name(&wf("org/repo#7"), "build");
        let b = container_name(&wf("org-repo-7"), "build");
        assert!(a.starts_with("gantry-org-repo-7-"), "{a}");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        );
    }

    #[test]
    fn long_and_empty_parts_are_bounded_and_distinct() {
        let long = "x".repeat(300);
        let name = network_name(&wf(&long));
        assert!(name.len() < 100, "{name}");
        assert_ne!(network_name(&wf("")), network_name(&wf("-")));
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
