//! The step graph of a build, laid out on the server: each step goes in the column after
//! the deepest step it needs (longest path from a root), in YAML order within a column;
//! workflows are stacked as bands. The page draws it as SVG.

use std::collections::HashMap;

use gantry_store::WorkflowDetail;

const NODE_WIDTH: i64 = 168;
const NODE_HEIGHT: i64 = 34;
const COLUMN_GAP: i64 = 56;
const ROW_GAP: i64 = 14;
const MARGIN: i64 = 12;
/// Room above a band for its workflow's name, when there are several.
const BAND_TITLE: i64 = 22;
/// Characters of a step name shown in its box (the full name is its tooltip).
const LABEL_CHARS: usize = 20;

/// A step's box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Step name.
    pub name: String,
    /// The name as shown (shortened).
    pub label: String,
    /// Status, for the colour.
    pub status: String,
    /// Top-left corner.
    pub x: i64,
    /// Top-left corner.
    pub y: i64,
    /// Text position.
    pub text_x: i64,
    /// Text position.
    pub text_y: i64,
}

/// An arrow from a needed step to the step needing it, as an SVG path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The path's `d` attribute.
    pub d: String,
}

/// A workflow's name over its band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandTitle {
    /// The workflow's name.
    pub name: String,
    /// Baseline position.
    pub y: i64,
}

/// The laid-out graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Canvas width.
    pub width: i64,
    /// Canvas height.
    pub height: i64,
    /// Box width and height (the same for every node).
    pub node_width: i64,
    /// Box height.
    pub node_height: i64,
    /// Steps.
    pub nodes: Vec<Node>,
    /// Needs edges.
    pub edges: Vec<Edge>,
    /// Workflow names, when there are several workflows.
    pub bands: Vec<BandTitle>,
}

/// Lays out every workflow of a build.
pub fn layout(workflows: &[WorkflowDetail]) -> Graph {
    let mut graph = Graph {
        node_width: NODE_WIDTH,
        node_height: NODE_HEIGHT,
        ..Graph::default()
    };
    let titled = workflows.len() > 1;
    let mut top = MARGIN;
    for workflow in workflows {
        if titled {
            graph.bands.push(BandTitle {
                name: workflow.workflow.name.clone(),
                y: top + 14,
            });
            top += BAND_TITLE;
        }
        let bottom = lay_band(&mut graph, workflow, top);
        top = bottom + ROW_GAP * 2;
    }
    graph.height = (top - ROW_GAP * 2 + MARGIN).max(NODE_HEIGHT + 2 * MARGIN);
    graph
}

/// Lays out one workflow's steps from `top`; returns the band's bottom edge.
fn lay_band(graph: &mut Graph, workflow: &WorkflowDetail, top: i64) -> i64 {
    let steps = &workflow.steps;
    let columns = columns(steps.iter().map(|s| (s.name.as_str(), s.needs.as_slice())));
    let mut rows_used: HashMap<usize, i64> = HashMap::new();
    let mut placed: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut bottom = top;
    for (step, column) in steps.iter().zip(&columns) {
        let row = rows_used.entry(*column).or_insert(0);
        let x = MARGIN + *column as i64 * (NODE_WIDTH + COLUMN_GAP);
        let y = top + *row * (NODE_HEIGHT + ROW_GAP);
        *row += 1;
        placed.insert(step.name.as_str(), (x, y));
        bottom = bottom.max(y + NODE_HEIGHT);
        graph.width = graph.width.max(x + NODE_WIDTH + MARGIN);
        graph.nodes.push(Node {
            name: step.name.clone(),
            label: shorten(&step.name),
            status: step.status.as_str().to_string(),
            x,
            y,
            text_x: x + 22,
            text_y: y + NODE_HEIGHT / 2 + 5,
        });
    }
    for step in steps {
        let Some(&(to_x, to_y)) = placed.get(step.name.as_str()) else {
            continue;
        };
        for need in &step.needs {
            if let Some(&(from_x, from_y)) = placed.get(need.as_str()) {
                graph
                    .edges
                    .push(edge(from_x + NODE_WIDTH, from_y, to_x, to_y));
            }
        }
    }
    bottom
}

/// A curve from the right middle of one box to the left middle of another.
fn edge(from_x: i64, from_y: i64, to_x: i64, to_y: i64) -> Edge {
    let (y1, y2) = (from_y + NODE_HEIGHT / 2, to_y + NODE_HEIGHT / 2);
    let bend = (to_x - from_x).max(COLUMN_GAP) / 2;
    Edge {
        d: format!(
            "M{from_x},{y1} C{},{y1} {},{y2} {to_x},{y2}",
            from_x + bend,
            to_x - bend
        ),
    }
}

/// Each step's column: one past the deepest column among the steps it needs (needs that
/// name no step of the workflow are ignored; a cycle, which the compiler never emits,
/// cannot loop forever).
pub fn columns<'a>(steps: impl Iterator<Item = (&'a str, &'a [String])> + Clone) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .clone()
        .enumerate()
        .map(|(i, (n, _))| (n, i))
        .collect();
    let needs: Vec<Vec<usize>> = steps
        .map(|(_, needs)| {
            needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut column = vec![0usize; needs.len()];
    for _ in 0..needs.len() {
        let mut changed = false;
        for (i, needed) in needs.iter().enumerate() {
            let deepest = needed.iter().map(|&n| column[n] + 1).max().unwrap_or(0);
            if deepest > column[i] && deepest < needs.len() {
                column[i] = deepest;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    column
}

fn shorten(name: &str) -> String {
    if name.chars().count() <= LABEL_CHARS {
        return name.to_string();
    }
    let mut short: String = name.chars().take(LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(steps: &[(&str, &[&str])]) -> Vec<usize> {
        let owned: Vec<(String, Vec<String>)> = steps
            .iter()
            .map(|(n, needs)| (n.to_string(), needs.iter().map(|s| s.to_string()).collect()))
            .collect();
        columns(
            owned
                .iter()
                .map(|(n, needs)| (n.as_str(), needs.as_slice())),
        )
    }

    #[test]
    fn a_step_sits_one_column_after_its_deepest_need() {
        let steps: &[(&str, &[&str])] = &[
            ("clone", &[]),
            ("build", &["clone"]),
            ("lint", &["clone"]),
            ("test", &["build"]),
            ("deploy", &["test", "lint"]),
        ];
        assert_eq!(cols(steps), vec![0, 1, 1, 2, 3]);
    }

    #[test]
    fn unknown_needs_and_cycles_do_not_hang() {
        assert_eq!(cols(&[("a", &["ghost"])]), vec![0]);
        let cyclic = cols(&[("a", &["b"]), ("b", &["a"])]);
        assert!(cyclic.iter().all(|c| *c < 2));
    }

    #[test]
    fn long_names_are_shortened() {
        assert_eq!(shorten("short"), "short");
        assert_eq!(shorten(&"x".repeat(30)).chars().count(), LABEL_CHARS);
    }
}
