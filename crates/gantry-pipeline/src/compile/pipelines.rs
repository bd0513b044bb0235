//! Drone's pipeline-level `depends_on`: which pipelines of a file wait for which.
//! Unknown names and cycles are reported; a dependency skipped for this build is replaced
//! by its own dependencies (as Drone does), so the chain is not broken.

use std::collections::{BTreeMap, BTreeSet};

use crate::SkippedPipeline;
use crate::ast::Pipeline;
use crate::diagnostic::Code;
use crate::plan::Plan;
use crate::read::{Cx, Sp};
use crate::suggest;

/// Checks every pipeline's `depends_on` and fills [`Plan::depends_on`].
pub fn link(cx: &mut Cx, pipelines: &[Pipeline], plans: &mut [Plan], skipped: &[SkippedPipeline]) {
    let names: Vec<String> = pipelines.iter().map(super::pipeline_name).collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut edges: Vec<Vec<(usize, &Sp<String>)>> = vec![Vec::new(); pipelines.len()];
    for (i, pipeline) in pipelines.iter().enumerate() {
        for dep in &pipeline.depends_on {
            match index.get(dep.value.as_str()) {
                Some(&j) => edges[i].push((j, dep)),
                None => unknown(cx, &names[i], dep, &names),
            }
        }
    }
    report_cycles(cx, &names, &edges);
    let skipped: BTreeSet<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
    for plan in plans.iter_mut() {
        let Some(&i) = index.get(plan.name.as_str()) else {
            continue;
        };
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([i]);
        resolve(i, &edges, &names, &skipped, &mut seen, &mut out);
        plan.depends_on = out;
    }
}

/// The pipelines `i` waits for, looking through skipped ones to their dependencies.
fn resolve(
    i: usize,
    edges: &[Vec<(usize, &Sp<String>)>],
    names: &[String],
    skipped: &BTreeSet<&str>,
    seen: &mut BTreeSet<usize>,
    out: &mut Vec<String>,
) {
    for &(j, _) in &edges[i] {
        if !seen.insert(j) {
            continue;
        }
        if skipped.contains(names[j].as_str()) {
            resolve(j, edges, names, skipped, seen, out);
        } else {
            out.push(names[j].clone());
        }
    }
}

fn unknown(cx: &mut Cx, pipeline: &str, dep: &Sp<String>, names: &[String]) {
    let help = suggest::did_you_mean(&dep.value, names.iter().map(String::as_str))
        .unwrap_or_else(|| format!("the pipelines are: {}", names.join(", ")));
    cx.error(
        Code::UnknownDependency,
        &dep.at,
        format!(
            "pipeline `{pipeline}` depends on `{}`, which is not a pipeline of this file",
            dep.value
        ),
        Some(help),
    );
}

/// Reports each cycle once, at the entry that closes it (pipelines are few: a plain
/// recursive search over at most 64 documents).
fn report_cycles(cx: &mut Cx, names: &[String], edges: &[Vec<(usize, &Sp<String>)>]) {
    let mut state = vec![0u8; names.len()];
    let mut stack = Vec::new();
    let mut reported = BTreeSet::new();
    for start in 0..names.len() {
        visit(
            cx,
            start,
            names,
            edges,
            &mut state,
            &mut stack,
            &mut reported,
        );
    }
}

fn visit(
    cx: &mut Cx,
    node: usize,
    names: &[String],
    edges: &[Vec<(usize, &Sp<String>)>],
    state: &mut [u8],
    stack: &mut Vec<usize>,
    reported: &mut BTreeSet<Vec<usize>>,
) {
    if state[node] != 0 {
        return;
    }
    state[node] = 1;
    stack.push(node);
    for &(target, dep) in &edges[node] {
        match state[target] {
            0 => visit(cx, target, names, edges, state, stack, reported),
            1 => {
                let from = stack.iter().position(|&n| n == target).unwrap_or(0);
                let mut key = stack[from..].to_vec();
                key.sort_unstable();
                if reported.insert(key) {
                    let mut path: Vec<&str> =
                        stack[from..].iter().map(|&n| names[n].as_str()).collect();
                    path.push(&names[target]);
                    cx.error(
                        Code::DependencyCycle,
                        &dep.at,
                        format!("pipeline dependency cycle: {}", path.join(" -> ")),
                        Some("remove one of these pipeline `depends_on` entries".into()),
                    );
                }
            }
            _ => {}
        }
    }
    stack.pop();
    state[node] = 2;
}
