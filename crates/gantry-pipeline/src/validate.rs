//! [`Plan::validate`]: a runner re-checks a plan it receives instead of trusting the wire.

use std::collections::{BTreeMap, BTreeSet};

use crate::parse::{MAX_STEPS, units};
use crate::paths::{is_within, path_problem};
use crate::plan::{Plan, Step, StepKind};

impl Plan {
    /// Re-checks what the compiler guarantees: names, paths, environment names, that
    /// `needs` name existing steps and form no cycle. An error says what and where.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return Err("the plan name is empty or has control characters".into());
        }
        if let Some(problem) = path_problem(&self.workspace) {
            return Err(format!(
                "workspace `{}` {problem}",
                escaped(&self.workspace)
            ));
        }
        if self.steps.len() + self.services.len() > MAX_STEPS {
            return Err(format!("the plan has more than {MAX_STEPS} steps"));
        }
        let mut names = BTreeSet::new();
        for step in self.services.iter().chain(&self.steps) {
            if let Some(problem) = units::name_problem(&step.name) {
                return Err(format!("step `{}`: {problem}", escaped(&step.name)));
            }
            if !names.insert(step.name.as_str()) {
                return Err(format!("two steps are named `{}`", step.name));
            }
            check_step(self, step).map_err(|e| format!("step `{}`: {e}", step.name))?;
        }
        for service in &self.services {
            if !service.needs.is_empty() {
                return Err(format!("service `{}` has `needs`", service.name));
            }
        }
        check_needs(&self.steps)
    }
}

fn check_step(plan: &Plan, step: &Step) -> Result<(), String> {
    if let Some(problem) = path_problem(&step.workdir) {
        return Err(format!("workdir `{}` {problem}", escaped(&step.workdir)));
    }
    let names = step
        .environment
        .keys()
        .chain(step.secrets.iter().map(|s| &s.env));
    for name in names {
        if !units::is_env_name(name) {
            return Err(format!("`{}` is not a variable name", escaped(name)));
        }
    }
    let runs_image_entrypoint = matches!(step.kind, StepKind::Plugin | StepKind::Clone);
    for mount in &step.volumes {
        if let Some(problem) = path_problem(&mount.target) {
            return Err(format!(
                "volume target `{}` {problem}",
                escaped(&mount.target)
            ));
        }
        if is_within(&plan.workspace, &mount.target) {
            return Err(format!(
                "volume target `{}` covers the workspace",
                mount.target
            ));
        }
        match &mount.host_path {
            Some(host) => {
                if let Some(problem) = units::path_problem(host) {
                    return Err(format!("host path `{}` {problem}", escaped(host)));
                }
            }
            None if runs_image_entrypoint && !is_within(&mount.target, &plan.workspace) => {
                return Err(format!(
                    "volume target `{}` is outside the workspace of a plugin step",
                    mount.target
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// Every `needs` entry names another step, and the steps form no cycle (Kahn's algorithm).
fn check_needs(steps: &[Step]) -> Result<(), String> {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut waiting = vec![0usize; steps.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for need in &step.needs {
            let Some(&j) = index.get(need.as_str()).filter(|&&j| j != i) else {
                return Err(format!(
                    "step `{}` needs `{}`, which is not another step of the plan",
                    step.name,
                    escaped(need)
                ));
            };
            waiting[i] += 1;
            dependents[j].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    if done < steps.len() {
        let stuck: Vec<&str> = (0..steps.len())
            .filter(|&i| waiting[i] > 0)
            .map(|i| steps[i].name.as_str())
            .collect();
        return Err(format!("the needs of {} form a cycle", stuck.join(", ")));
    }
    Ok(())
}

/// Text from the wire, with control characters made visible.
fn escaped(text: &str) -> String {
    crate::diagnostic::escape_controls(text)
}
