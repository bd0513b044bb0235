//! Step ordering: sequential by default, a DAG once `depends_on` or `stages` appear.
//! Reports unknown, filtered and cyclic dependencies (the cycle's path in the message).

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::Code;
use crate::read::{At, Cx, Sp};
use crate::suggest;

/// The name of the implicit checkout step.
pub const CLONE_STEP: &str = "clone";

/// One kept step, as ordering sees it.
pub struct DagStep<'a> {
    /// Its name.
    pub name: &'a str,
    /// Where its name is.
    pub at: &'a At,
    /// `depends_on`, if given.
    pub depends_on: Option<&'a [Sp<String>]>,
    /// Index of its stage in `stages`.
    pub stage: Option<usize>,
    /// Runs only after a failure (`when.status` includes `failure`, and not `success`):
    /// without `depends_on` in a DAG it waits for every other step.
    pub after_failure: bool,
}

/// What ordering needs to know about the whole pipeline.
pub struct Ordering<'a> {
    /// True when any step of the file has `depends_on`, or the pipeline has `stages`.
    pub dag: bool,
    /// Whether the clone step exists.
    pub clone: bool,
    /// Names of steps removed by their `when`, with the reason.
    pub filtered: &'a BTreeMap<String, String>,
    /// Every step name of the pipeline (for suggestions).
    pub all_steps: &'a [&'a str],
    /// Service names (depending on one is explained).
    pub services: &'a [&'a str],
}

/// The `needs` of every kept step, in order; problems go to `cx`.
pub fn order(cx: &mut Cx, steps: &[DagStep], ordering: &Ordering) -> Vec<Vec<String>> {
    let root: Vec<String> = if ordering.clone {
        vec![CLONE_STEP.into()]
    } else {
        Vec::new()
    };
    if !ordering.dag {
        return (0..steps.len())
            .map(|i| {
                if i == 0 {
                    root.clone()
                } else {
                    vec![steps[i - 1].name.to_owned()]
                }
            })
            .collect();
    }
    let kept: BTreeSet<&str> = steps.iter().map(|s| s.name).collect();
    let mut needs = Vec::with_capacity(steps.len());
    for step in steps {
        let mut list: Vec<String> = Vec::new();
        for dep in step.depends_on.unwrap_or(&[]) {
            let known =
                kept.contains(dep.value.as_str()) || (ordering.clone && dep.value == CLONE_STEP);
            if dep.value == step.name {
                cx.error(
                    Code::DependencyCycle,
                    &dep.at,
                    format!("dependency cycle: {0} -> {0}", step.name),
                    Some("a step cannot depend on itself; remove the entry".into()),
                );
            } else if known {
                push_unique(&mut list, &dep.value);
            } else {
                report_missing(cx, step.name, dep, ordering);
            }
        }
        if let Some(stage) = step.stage {
            for earlier in steps.iter().filter(|s| s.stage.is_some_and(|x| x < stage)) {
                push_unique(&mut list, earlier.name);
            }
        }
        if list.is_empty() {
            list = root.clone();
        }
        needs.push(list);
    }
    let index: BTreeMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.name, i)).collect();
    wait_for_everything(steps, &index, &mut needs);
    report_cycles(cx, steps, &index, &needs);
    needs
}

fn is_failure_handler(step: &DagStep) -> bool {
    step.after_failure && step.depends_on.is_none() && step.stage.is_none()
}

/// A failure handler without `depends_on` (`notify-failure`) would otherwise start right
/// after the clone, when nothing has failed yet: it waits for every step that does not
/// itself (transitively) wait for it.
fn wait_for_everything(
    steps: &[DagStep],
    index: &BTreeMap<&str, usize>,
    needs: &mut [Vec<String>],
) {
    if !steps.iter().any(is_failure_handler) {
        return;
    }
    // Who waits on whom, by index, computed once: a search per handler is linear.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, list) in needs.iter().enumerate() {
        for j in list.iter().filter_map(|n| index.get(n.as_str())) {
            dependents[*j].push(i);
        }
    }
    for (f, step) in steps.iter().enumerate() {
        if !is_failure_handler(step) {
            continue;
        }
        let mut waiting_on_f = vec![false; steps.len()];
        waiting_on_f[f] = true;
        let mut queue = vec![f];
        while let Some(node) = queue.pop() {
            for &d in &dependents[node] {
                if !waiting_on_f[d] {
                    waiting_on_f[d] = true;
                    queue.push(d);
                }
            }
        }
        let others: Vec<String> = steps
            .iter()
            .enumerate()
            .filter(|(i, s)| !waiting_on_f[*i] && !is_failure_handler(s))
            .map(|(_, s)| s.name.to_owned())
            .collect();
        if !others.is_empty() {
            needs[f] = others;
        }
    }
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_owned());
    }
}

fn report_missing(cx: &mut Cx, step: &str, dep: &Sp<String>, ordering: &Ordering) {
    if let Some(reason) = ordering.filtered.get(&dep.value) {
        cx.error(
            Code::FilteredDependency,
            &dep.at,
            format!(
                "`{step}` depends on `{}`, which does not run for this build ({reason})",
                dep.value
            ),
            Some(format!(
                "give `{step}` the same `when` as `{}`, or remove the dependency",
                dep.value
            )),
        );
    } else if ordering.services.contains(&dep.value.as_str()) {
        cx.error(
            Code::UnknownDependency,
            &dep.at,
            format!(
                "`{step}` depends on `{}`, which is a service, not a step",
                dep.value
            ),
            Some("services start before the first step; remove the dependency".into()),
        );
    } else {
        let help = suggest::did_you_mean(&dep.value, ordering.all_steps.iter().copied())
            .or_else(|| Some(format!("the steps are: {}", ordering.all_steps.join(", "))));
        cx.error(
            Code::UnknownDependency,
            &dep.at,
            format!(
                "`{step}` depends on `{}`, which is not a step of this pipeline",
                dep.value
            ),
            help,
        );
    }
}

/// Finds every cycle of the final `needs` (`depends_on` and `stages` together) with an
/// iterative depth-first search, reporting each once at the edge that closes it.
fn report_cycles(
    cx: &mut Cx,
    steps: &[DagStep],
    index: &BTreeMap<&str, usize>,
    needs: &[Vec<String>],
) {
    let edges: Vec<Vec<usize>> = needs
        .iter()
        .map(|list| {
            list.iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut state = vec![0u8; steps.len()]; // 0 new, 1 on the stack, 2 done
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    for start in 0..steps.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&target) = edges[node].get(*next) else {
                state[node] = 2;
                stack.pop();
                continue;
            };
            *next += 1;
            match state[target] {
                0 => {
                    state[target] = 1;
                    stack.push((target, 0));
                }
                1 => {
                    let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                    let cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.insert(key) {
                        report_cycle(cx, steps, &cycle);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `cycle` lists steps each of which needs the next (the last needs the first), reported
/// at the `depends_on` entry that closes it when there is one (else at a step name: the
/// cycle comes from `stages`).
fn report_cycle(cx: &mut Cx, steps: &[DagStep], cycle: &[usize]) {
    let mut path: Vec<&str> = cycle.iter().map(|&i| steps[i].name).collect();
    path.push(path[0]);
    let entry = |k: usize| {
        let needed = steps[cycle[(k + 1) % cycle.len()]].name;
        steps[cycle[k]]
            .depends_on
            .unwrap_or(&[])
            .iter()
            .find(|d| d.value == needed)
    };
    let closing = (0..cycle.len()).rev().find_map(entry);
    let through_stages = cycle.iter().any(|&i| steps[i].stage.is_some());
    let help = if through_stages {
        "a step cannot depend on a step of a later stage; move it, or remove the `depends_on` entry"
    } else {
        "remove one of these `depends_on` entries"
    };
    let at = closing.map_or(steps[cycle[0]].at, |d| &d.at);
    cx.error(
        Code::DependencyCycle,
        at,
        format!("dependency cycle: {}", path.join(" -> ")),
        Some(help.into()),
    );
}
