//! Node tree → typed [`Pipeline`]s, reporting every structural problem.

mod drone;
mod matrix;
mod step;
pub mod units;
mod values;
mod when;

use std::collections::BTreeMap;

use crate::ast::{CloneConfig, Dialect, Pipeline, StepDef};
use crate::diagnostic::Code;
use crate::read::{self, At, Cx, Fields, Sp, index_path};
use crate::suggest;
use crate::yaml::{self, Node, Value};

#[cfg(test)]
pub use step::{SERVICE_FIELDS, STEP_FIELDS};

/// Most steps a pipeline may have.
pub const MAX_STEPS: usize = 1000;
/// Most YAML documents (pipelines) a file may have.
pub const MAX_DOCUMENTS: usize = 64;
/// Most entries an `environment`, `settings` or `labels` map may have.
pub const MAX_MAP_ENTRIES: usize = 1000;

/// Every top-level field of a `.pipeline.yml` document.
pub const PIPELINE_FIELDS: [&str; 11] = [
    "name",
    "when",
    "workspace",
    "clone",
    "labels",
    "stages",
    "environment",
    "volumes",
    "services",
    "matrix",
    "steps",
];

/// Parses every pipeline of a file. `drone` says the file is a `.drone.yml`; documents
/// with a top-level `kind:` are read as Drone pipelines either way.
pub fn parse_file(cx: &mut Cx, drone: bool) -> Vec<Pipeline> {
    let documents = match yaml::parse_documents(cx.source) {
        Ok(documents) => documents,
        Err(problem) => {
            let at = At {
                line: problem.line,
                column: problem.column,
                ..At::default()
            };
            cx.error(problem.code, &at, problem.message, problem.help);
            return Vec::new();
        }
    };
    let mut pipelines = Vec::new();
    let count = documents.iter().filter(|d| d.value != Value::Null).count();
    if count > MAX_DOCUMENTS {
        let at = At {
            line: 1,
            column: 1,
            ..At::default()
        };
        cx.error(
            Code::TooManyEntries,
            &at,
            format!("the file has {count} documents; at most {MAX_DOCUMENTS} are allowed"),
            Some("merge pipelines, or use a matrix".into()),
        );
        return Vec::new();
    }
    for document in documents.iter().filter(|d| d.value != Value::Null) {
        if !matches!(document.value, Value::Map(_)) {
            cx.wrong_type(document, &At::of(document, ""), "a map (a pipeline)");
            continue;
        }
        let is_drone = drone || map_has_key(cx, document, "kind");
        let pipeline = if is_drone {
            drone::pipeline(cx, document)
        } else {
            pipeline(cx, document)
        };
        pipelines.extend(pipeline);
    }
    if pipelines.is_empty() && !cx.has_errors() {
        let at = At {
            line: 1,
            column: 1,
            ..At::default()
        };
        cx.error(
            Code::NoSteps,
            &at,
            "the file defines no pipeline",
            Some("add `steps:` with at least one step".into()),
        );
    }
    check_pipeline_names(cx, &pipelines);
    pipelines
}

fn map_has_key(cx: &Cx, node: &Node, key: &str) -> bool {
    matches!(&node.value, Value::Map(pairs) if pairs.iter().any(|(k, _)| k.text(cx.source).as_deref() == Some(key)))
}

/// A `.pipeline.yml` document.
fn pipeline(cx: &mut Cx, document: &Node) -> Option<Pipeline> {
    let mut fields = Fields::open(cx, document, "")?;
    skip_extensions(&mut fields);
    let mut pipeline = empty_pipeline(Dialect::Gantry, &fields);
    if let Some(f) = fields.take("when") {
        pipeline.when = when::when(
            cx,
            f.node,
            &f.at.path.clone(),
            when::Level::Pipeline,
            Dialect::Gantry,
        );
    }
    if let Some(f) = fields.take("labels") {
        pipeline.labels = string_map(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("stages") {
        let (node, at) = (f.node, f.at.clone());
        pipeline.stages = Some((f.key_at.clone(), stage_names(cx, node, &at)));
    }
    if let Some(f) = fields.take("matrix") {
        pipeline.matrix = matrix::matrix(cx, f.node, &f.at.path.clone());
    }
    read_shared_fields(cx, &mut fields, &mut pipeline);
    fields.finish(cx, "a pipeline", &PIPELINE_FIELDS);
    check_steps(cx, &pipeline);
    Some(pipeline)
}

/// Top-level keys starting with `x-` are a place for anchors (`x-defaults: &defaults`);
/// Gantry ignores them.
fn skip_extensions(fields: &mut Fields) {
    let keys: Vec<String> = fields
        .keys()
        .filter(|k| k.starts_with("x-"))
        .map(str::to_owned)
        .collect();
    for key in keys {
        fields.take(&key);
    }
}

fn empty_pipeline(dialect: Dialect, fields: &Fields) -> Pipeline {
    Pipeline {
        dialect,
        at: fields.at.clone(),
        name: None,
        when: None,
        workspace: None,
        clone: CloneConfig::default(),
        labels: BTreeMap::new(),
        stages: None,
        environment: Vec::new(),
        volumes: Vec::new(),
        services: Vec::new(),
        steps: Vec::new(),
        matrix: None,
        depends_on: Vec::new(),
    }
}

/// Fields both dialects share: name, workspace, clone, environment, volumes, services,
/// steps.
fn read_shared_fields(cx: &mut Cx, fields: &mut Fields, pipeline: &mut Pipeline) {
    let dialect = pipeline.dialect;
    if let Some(f) = fields.take("name") {
        pipeline.name = pipeline_name(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("workspace") {
        pipeline.workspace = workspace(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("clone") {
        pipeline.clone = clone_config(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("environment") {
        pipeline.environment = values::environment(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("volumes") {
        pipeline.volumes = values::volume_decls(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("services") {
        let (node, at) = (f.node, f.at.clone());
        pipeline.services = steps(cx, node, &at, step::Place::Service, dialect);
    }
    match fields.take("steps") {
        Some(f) => {
            let (node, at, key_at) = (f.node, f.at.clone(), f.key_at.clone());
            let count = match &node.value {
                Value::Seq(items) => items.len(),
                _ => 0,
            };
            if count > MAX_STEPS {
                cx.error(
                    Code::TooManySteps,
                    &key_at,
                    format!("the pipeline has {count} steps; at most {MAX_STEPS} are allowed"),
                    Some("split the work into fewer, larger steps or several pipelines".into()),
                );
            } else {
                pipeline.steps = steps(cx, node, &at, step::Place::Step, dialect);
                if count == 0 {
                    no_steps(cx, &key_at);
                }
            }
        }
        None => no_steps(cx, &fields.at.clone()),
    }
}

fn no_steps(cx: &mut Cx, at: &At) {
    cx.error(
        Code::NoSteps,
        at,
        "the pipeline has no steps",
        Some("add `steps:` with at least one step (`name`, `image`, `commands`)".into()),
    );
}

fn steps(cx: &mut Cx, node: &Node, at: &At, place: step::Place, dialect: Dialect) -> Vec<StepDef> {
    let items = read::list(cx, node, at, "a list of steps");
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| step::step(cx, item, &index_path(&at.path, i), place, dialect))
        .collect()
}

fn pipeline_name(cx: &mut Cx, node: &Node, at: &At) -> Option<Sp<String>> {
    let name = read::string(cx, node, at)?;
    let bad = name.value.trim().is_empty()
        || name.value.len() > 100
        || name.value.chars().any(char::is_control);
    if bad {
        cx.error(
            Code::InvalidName,
            at,
            "a pipeline name must be 1 to 100 printable characters",
            None,
        );
        return None;
    }
    Some(name)
}

/// `workspace: {path}` (Drone: `{base, path}`, joined).
fn workspace(cx: &mut Cx, node: &Node, at: &At) -> Option<Sp<String>> {
    let mut fields = Fields::open(cx, node, &at.path)?;
    let base = fields.take("base").map(|f| (f.node, f.at.clone()));
    let path = fields.take("path").map(|f| (f.node, f.at.clone()));
    fields.finish(cx, "workspace", &["path", "base"]);
    let base = base.and_then(|(n, a)| read::string(cx, n, &a));
    let path = path.and_then(|(n, a)| read::string(cx, n, &a));
    let joined = match (base, path) {
        (Some(base), Some(path)) if !path.value.starts_with('/') => Sp {
            value: format!("{}/{}", base.value.trim_end_matches('/'), path.value),
            at: path.at,
        },
        (_, Some(path)) => path,
        (Some(base), None) => base,
        (None, None) => return None,
    };
    values::container_path_ok(cx, &joined, "workspace path").then_some(joined)
}

/// Reports a map with more than [`MAX_MAP_ENTRIES`] entries.
pub fn too_many_entries(cx: &mut Cx, fields: &Fields, what: &str) -> bool {
    let count = fields.keys().count();
    if count <= MAX_MAP_ENTRIES {
        return false;
    }
    let at = fields.at.clone();
    too_many_items(cx, &at, count, what);
    true
}

/// Reports `count` entries of `what` (over [`MAX_MAP_ENTRIES`]).
pub fn too_many_items(cx: &mut Cx, at: &At, count: usize, what: &str) {
    cx.error(
        Code::TooManyEntries,
        at,
        format!("`{what}` has {count} entries; at most {MAX_MAP_ENTRIES} are allowed"),
        Some("pass large data in a file of the repository instead".into()),
    );
}

fn clone_config(cx: &mut Cx, node: &Node, path: &str) -> CloneConfig {
    let mut config = CloneConfig::default();
    let Some(mut fields) = Fields::open(cx, node, path) else {
        return config;
    };
    if let Some(f) = fields.take("disable") {
        config.disable = read::boolean(cx, f.node, &f.at.clone()).unwrap_or(false);
    }
    if let Some(f) = fields.take("depth") {
        config.depth = read::integer(cx, f.node, &f.at.clone(), 1_000_000);
    }
    if let Some(f) = fields.take("retries") {
        config.retries =
            read::integer(cx, f.node, &f.at.clone(), step::MAX_RETRIES).unwrap_or(0) as u32;
    }
    if let Some(f) = fields.take("skip_verify") {
        config.skip_verify = read::boolean(cx, f.node, &f.at.clone()).unwrap_or(false);
    }
    fields.finish(cx, "clone", &["disable", "depth", "retries", "skip_verify"]);
    config
}

/// A map of strings (`labels`, Drone `node`).
fn string_map(cx: &mut Cx, node: &Node, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(mut fields) = Fields::open(cx, node, path) else {
        return out;
    };
    if too_many_entries(cx, &fields, "labels") {
        return out;
    }
    for field in fields.rest() {
        if let Some(value) = read::string(cx, field.node, &field.at) {
            out.insert(field.key.clone(), value.value);
        }
    }
    out
}

fn stage_names(cx: &mut Cx, node: &Node, at: &At) -> Vec<Sp<String>> {
    let mut names: Vec<Sp<String>> = Vec::new();
    for name in read::strings(cx, node, at) {
        if let Some(problem) = units::name_problem(&name.value) {
            cx.error(
                Code::InvalidName,
                &name.at,
                format!("invalid stage name `{}`: {problem}", name.value),
                None,
            );
        } else if names.iter().any(|n| n.value == name.value) {
            cx.error(
                Code::InvalidValue,
                &name.at,
                format!("stage `{}` is listed twice", name.value),
                None,
            );
        } else {
            names.push(name);
        }
    }
    names
}

/// Duplicate names, and stages that do not exist or are missing.
fn check_steps(cx: &mut Cx, pipeline: &Pipeline) {
    let mut seen: BTreeMap<&str, &At> = BTreeMap::new();
    for name in pipeline
        .services
        .iter()
        .chain(&pipeline.steps)
        .filter_map(|s| s.name.as_ref())
    {
        if let Some(first) = seen.get(name.value.as_str()) {
            cx.error(
                Code::DuplicateStep,
                &name.at,
                format!("the name `{}` is used twice", name.value),
                Some(format!(
                    "names of steps and services must be unique (the first is at line {})",
                    first.line
                )),
            );
        } else {
            seen.insert(&name.value, &name.at);
        }
    }
    check_stages(cx, pipeline);
}

fn check_stages(cx: &mut Cx, pipeline: &Pipeline) {
    let stages: Vec<&str> = pipeline
        .stages
        .as_ref()
        .map(|(_, s)| s.iter().map(|n| n.value.as_str()).collect())
        .unwrap_or_default();
    for step in &pipeline.steps {
        match (&step.stage, &pipeline.stages) {
            (Some(stage), Some(_)) if !stages.contains(&stage.value.as_str()) => {
                let help = suggest::did_you_mean(&stage.value, stages.iter().copied())
                    .unwrap_or_else(|| format!("the stages are: {}", stages.join(", ")));
                cx.error(
                    Code::UnknownStage,
                    &stage.at,
                    format!("there is no stage `{}`", stage.value),
                    Some(help),
                );
            }
            (Some(stage), None) => cx.error(
                Code::UnknownStage,
                &stage.at,
                format!(
                    "stage `{}` is used, but the pipeline has no `stages:`",
                    stage.value
                ),
                Some("list the stages in order at the top level: `stages: [build, test]`".into()),
            ),
            (None, Some(_)) => cx.error(
                Code::MissingField,
                &step.at,
                "the step has no `stage`, but the pipeline has `stages:`",
                Some(format!("add `stage:` with one of: {}", stages.join(", "))),
            ),
            _ => {}
        }
    }
}

/// Pipelines of one file need distinct names (an unnamed pipeline is `default`).
fn check_pipeline_names(cx: &mut Cx, pipelines: &[Pipeline]) {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for pipeline in pipelines {
        let (name, at) = match &pipeline.name {
            Some(name) => (name.value.as_str(), &name.at),
            None => ("default", &pipeline.at),
        };
        if let Some(first_line) = seen.get(name) {
            cx.error(
                Code::DuplicatePipeline,
                at,
                format!("two pipelines are named `{name}`"),
                Some(format!(
                    "give each pipeline its own `name:` (the other is at line {first_line})"
                )),
            );
        } else {
            seen.insert(name, at.line);
        }
    }
}
