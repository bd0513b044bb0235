//! Drone 1.x documents (`kind: pipeline`, `type: docker`) → the same [`Pipeline`] model.

use crate::ast::{Dialect, Pipeline};
use crate::diagnostic::Code;
use crate::parse::{
    check_steps, empty_pipeline, read_shared_fields, skip_extensions, string_map, when,
};
use crate::read::{self, Cx, Fields};
use crate::yaml::Node;

/// Every top-level field of a Drone pipeline document that Gantry reads.
pub const DRONE_FIELDS: [&str; 13] = [
    "kind",
    "type",
    "name",
    "trigger",
    "platform",
    "node",
    "workspace",
    "clone",
    "environment",
    "volumes",
    "services",
    "steps",
    "depends_on",
];

/// Drone document kinds that carry no pipeline (skipped).
const OTHER_KINDS: [&str; 3] = ["secret", "signature", "template"];

/// Drone pipeline fields that Gantry accepts and ignores.
const IGNORED: [(&str, &str); 2] = [
    (
        "concurrency",
        "limit concurrency in the repository settings",
    ),
    (
        "image_pull_secrets",
        "registry credentials are configured on the runner",
    ),
];

/// Reads one Drone document; `None` for non-pipeline kinds and unsupported types.
pub fn pipeline(cx: &mut Cx, document: &Node) -> Option<Pipeline> {
    let mut fields = Fields::open(cx, document, "")?;
    skip_extensions(&mut fields);
    if !kind_is_pipeline(cx, &mut fields) || !type_is_docker(cx, &mut fields) {
        return None;
    }
    let mut pipeline = empty_pipeline(Dialect::Drone, &fields);
    if let Some(f) = fields.take("trigger") {
        pipeline.when = when::when(
            cx,
            f.node,
            &f.at.path.clone(),
            when::Level::Pipeline,
            Dialect::Drone,
        );
    }
    if let Some(f) = fields.take("platform") {
        pipeline
            .labels
            .extend(string_map(cx, f.node, &f.at.path.clone()));
    }
    if let Some(f) = fields.take("node") {
        pipeline
            .labels
            .extend(string_map(cx, f.node, &f.at.path.clone()));
    }
    if let Some(f) = fields.take("depends_on") {
        let (node, at) = (f.node, f.at.clone());
        pipeline.depends_on = read::strings(cx, node, &at);
    }
    for (key, help) in IGNORED {
        if let Some(f) = fields.take(key) {
            let at = f.key_at.clone();
            cx.warn(
                Code::IgnoredField,
                &at,
                format!("`{key}` is ignored by Gantry"),
                Some(help.into()),
            );
        }
    }
    read_shared_fields(cx, &mut fields, &mut pipeline);
    fields.finish(cx, "a Drone pipeline", &DRONE_FIELDS);
    check_steps(cx, &pipeline);
    Some(pipeline)
}

/// `kind: pipeline`; other known kinds are skipped silently.
fn kind_is_pipeline(cx: &mut Cx, fields: &mut Fields) -> bool {
    let Some(f) = fields.take("kind") else {
        return true;
    };
    let (node, at) = (f.node, f.at.clone());
    let Some(kind) = read::string(cx, node, &at) else {
        return false;
    };
    if kind.value == "pipeline" {
        return true;
    }
    if !OTHER_KINDS.contains(&kind.value.as_str()) {
        cx.error(
            Code::InvalidValue,
            &at,
            format!(
                "`kind: {}` is not a Drone document kind Gantry knows",
                kind.value
            ),
            Some("use `kind: pipeline`".into()),
        );
    }
    false
}

/// `type: docker` (the default); other runner types are refused.
fn type_is_docker(cx: &mut Cx, fields: &mut Fields) -> bool {
    let Some(f) = fields.take("type") else {
        return true;
    };
    let (node, at) = (f.node, f.at.clone());
    let Some(kind) = read::string(cx, node, &at) else {
        return false;
    };
    if kind.value == "docker" {
        return true;
    }
    cx.error(
        Code::UnsupportedPipeline,
        &at,
        format!("Drone `type: {}` pipelines are not supported", kind.value),
        Some("Gantry runs `type: docker` pipelines (on Docker or Kubernetes); rewrite the steps as container steps".into()),
    );
    false
}
