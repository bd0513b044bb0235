//! The JSON schema of a `.pipeline.yml` document, for editors and `gantry schema`.
//!
//! These types only describe the document: they are never built (the parser reads the
//! YAML by hand so that it can report every problem with its position). A unit test keeps
//! them in step with the fields the parser accepts.
#![allow(dead_code)]

use std::collections::BTreeMap;

use schemars::JsonSchema;

/// A Gantry pipeline (`.pipeline.yml`); several may share a file, separated by `---`.
#[derive(JsonSchema)]
#[schemars(title = "Gantry pipeline", deny_unknown_fields)]
struct PipelineDoc {
    /// Pipeline name (`default` without one); unique within the file.
    name: Option<String>,
    /// When the pipeline runs: a map of conditions, or a list of maps (any may match).
    when: Option<WhenDoc>,
    /// Where the checkout lives inside every container.
    workspace: Option<WorkspaceDoc>,
    /// The implicit first step that checks out the commit.
    clone: Option<CloneDoc>,
    /// Only runners with these labels take this pipeline.
    labels: Option<BTreeMap<String, String>>,
    /// Stage names in order: a step with `stage: X` needs every step of the stages before X.
    stages: Option<Vec<NameDoc>>,
    /// Environment given to every step and service.
    environment: Option<BTreeMap<String, EnvValueDoc>>,
    /// Volumes steps can mount by name.
    volumes: Option<Vec<VolumeDeclDoc>>,
    /// Long-running sidecars, reachable by `name` as a host name.
    services: Option<Vec<ServiceDoc>>,
    /// Run the whole pipeline once per combination of these variables.
    matrix: Option<MatrixDoc>,
    /// The steps (at most 1,000).
    #[schemars(length(min = 1, max = 1000))]
    steps: Vec<StepDoc>,
}

/// A step, service or stage name.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct NameDoc(#[schemars(pattern("^[a-z0-9][a-z0-9_-]{0,62}$"))] String);

/// A duration such as `90s`, `10m` or `1h30m`.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct DurationDoc(#[schemars(pattern("^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"))] String);

/// One string or a list of strings.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

/// `workspace:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct WorkspaceDoc {
    /// Absolute path (default `/workspace`); relative to `base` when both are given.
    path: Option<String>,
    /// Drone's base directory.
    base: Option<String>,
}

/// `clone:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct CloneDoc {
    /// Skip the clone step.
    disable: Option<bool>,
    /// History depth (default 50).
    depth: Option<u64>,
    /// Retries of the clone step.
    #[schemars(range(max = 10))]
    retries: Option<u32>,
    /// Do not verify TLS certificates when cloning.
    skip_verify: Option<bool>,
}

/// `when:`: one map of conditions, or a list of maps of which any may match.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum WhenDoc {
    /// All conditions must match.
    All(Box<ConditionDoc>),
    /// Any map may match.
    Any(Vec<ConditionDoc>),
}

/// Conditions on the build (all must match). `status` is accepted in steps only.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ConditionDoc {
    /// Build events.
    event: Option<FilterDoc<EventDoc>>,
    /// Branch globs.
    branch: Option<FilterDoc<String>>,
    /// Git ref globs (`refs/tags/*`).
    #[schemars(rename = "ref")]
    git_ref: Option<FilterDoc<String>>,
    /// Tag globs.
    tag: Option<FilterDoc<String>>,
    /// Globs over the files changed by the push or pull request.
    path: Option<FilterDoc<String>>,
    /// Drone spelling of `path`.
    paths: Option<FilterDoc<String>>,
    /// Promote target globs.
    target: Option<FilterDoc<String>>,
    /// Cron job name globs.
    cron: Option<FilterDoc<String>>,
    /// Repository (`owner/name`) globs.
    repo: Option<FilterDoc<String>>,
    /// Step only: the pipeline status under which the step runs (default `success`).
    status: Option<OneOrMany<StatusDoc>>,
}

/// A condition value: a value, a list, or include/exclude lists.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum FilterDoc<T> {
    /// One value.
    One(T),
    /// Any of these.
    Many(Vec<T>),
    /// Include and exclude lists.
    Split(IncludeExcludeDoc<T>),
}

/// `{include, exclude}`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct IncludeExcludeDoc<T> {
    /// Matches when any of these matches (or when absent).
    include: Option<OneOrMany<T>>,
    /// Never matches when any of these matches.
    exclude: Option<OneOrMany<T>>,
}

/// A build event.
#[derive(JsonSchema)]
#[schemars(rename_all = "snake_case")]
enum EventDoc {
    /// A push to a branch.
    Push,
    /// A pull request opened or updated.
    PullRequest,
    /// A tag pushed.
    Tag,
    /// Started by hand.
    Manual,
    /// Started by a cron job.
    Cron,
    /// A finished build promoted to a target.
    Promote,
}

/// A pipeline status.
#[derive(JsonSchema)]
#[schemars(rename_all = "snake_case")]
enum StatusDoc {
    /// Nothing failed so far.
    Success,
    /// Something failed.
    Failure,
}

/// An environment value: text, or a secret.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum EnvValueDoc {
    /// A string (numbers and booleans are taken as written).
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A repository secret.
    Secret(FromSecretDoc),
    /// Empty.
    Null(()),
}

/// `{ from_secret: name }`: a repository secret, resolved at run time and masked in logs.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct FromSecretDoc {
    /// The secret's name.
    from_secret: String,
}

/// A pipeline volume declaration.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct VolumeDeclDoc {
    /// The name steps mount it by.
    name: NameDoc,
    /// A volume that lives as long as the workflow (`temp: {}`).
    temp: Option<BTreeMap<String, serde_json::Value>>,
    /// A host directory (trusted repositories only).
    host: Option<HostPathDoc>,
}

/// `host: {path}`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct HostPathDoc {
    /// Absolute host path.
    path: String,
}

/// A step's volume: `name:/path`, `/host:/path`, or `{name, path}`.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum VolumeUseDoc {
    /// `name:/path` (workflow volume) or `/host/path:/path` (trusted repositories only).
    Short(String),
    /// A declared volume.
    Declared(DeclaredVolumeDoc),
}

/// `{name, path}`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct DeclaredVolumeDoc {
    /// A name from the pipeline's `volumes`.
    name: String,
    /// Absolute path in the container.
    path: String,
}

/// Resource limits.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ResourcesDoc {
    /// Memory limit: `512MiB`, `1GiB`, `1G`, or bytes.
    memory: Option<StringOrNumber>,
    /// CPU limit: `1.5` cores, or millicpus like `500m`.
    cpus: Option<StringOrNumber>,
}

/// A string or a number.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum StringOrNumber {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
}

/// Pull policy.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum PullDoc {
    /// `if-not-exists` (default), `always` or `never`.
    Policy(PullPolicyDoc),
    /// `true` is `always`.
    Bool(bool),
}

/// Pull policy names.
#[derive(JsonSchema)]
#[schemars(rename_all = "kebab-case")]
enum PullPolicyDoc {
    /// Pull only when missing.
    IfNotExists,
    /// Always pull.
    Always,
    /// Never pull.
    Never,
}

/// What a failure does.
#[derive(JsonSchema)]
#[schemars(rename_all = "snake_case")]
enum FailureDoc {
    /// The pipeline fails (default).
    Fail,
    /// The pipeline goes on.
    Ignore,
}

/// `approval:`: `true`, or `{timeout}`.
#[derive(JsonSchema)]
#[schemars(untagged)]
enum ApprovalDoc {
    /// Wait for approval with the server's default timeout.
    Yes(bool),
    /// Wait at most `timeout`.
    Timeout(ApprovalTimeoutDoc),
}

/// `{timeout}`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ApprovalTimeoutDoc {
    /// How long to wait before failing.
    timeout: Option<DurationDoc>,
}

/// A step: `commands` in `image`, a plugin configured by `settings`, or an approval.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct StepDoc {
    /// Unique name.
    name: NameDoc,
    /// Image (required unless `approval`).
    image: Option<String>,
    /// Shell commands, run by `/bin/sh -e` in order, each echoed as `+ cmd`.
    commands: Option<OneOrMany<String>>,
    /// Entrypoint override.
    entrypoint: Option<OneOrMany<String>>,
    /// Environment variables (`{from_secret: name}` for secrets).
    environment: Option<BTreeMap<String, EnvValueDoc>>,
    /// Plugin settings, given as `PLUGIN_*` variables (lists comma-joined, maps as JSON).
    settings: Option<BTreeMap<String, serde_json::Value>>,
    /// Steps that must finish first; any `depends_on` makes the file a DAG.
    depends_on: Option<OneOrMany<String>>,
    /// The step's stage (see `stages`).
    stage: Option<String>,
    /// When the step runs.
    when: Option<WhenDoc>,
    /// `ignore` lets the pipeline go on after a failure.
    failure: Option<FailureDoc>,
    /// Kill the step after this long.
    timeout: Option<DurationDoc>,
    /// Rerun a failed step up to this many times.
    #[schemars(range(max = 10))]
    retries: Option<u32>,
    /// Keep running in the background, like a service.
    detach: Option<bool>,
    /// Image pull policy.
    pull: Option<PullDoc>,
    /// Privileged container (trusted repositories only).
    privileged: Option<bool>,
    /// Volumes to mount.
    volumes: Option<Vec<VolumeUseDoc>>,
    /// Resource limits.
    resources: Option<ResourcesDoc>,
    /// Wait for a person to approve.
    approval: Option<ApprovalDoc>,
}

/// A service: a sidecar started before the first step.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ServiceDoc {
    /// Unique name, also its host name.
    name: NameDoc,
    /// Image.
    image: String,
    /// Commands instead of the image's default command.
    commands: Option<OneOrMany<String>>,
    /// Entrypoint override.
    entrypoint: Option<OneOrMany<String>>,
    /// Environment variables.
    environment: Option<BTreeMap<String, EnvValueDoc>>,
    /// When the service runs.
    when: Option<WhenDoc>,
    /// Image pull policy.
    pull: Option<PullDoc>,
    /// Privileged container (trusted repositories only).
    privileged: Option<bool>,
    /// Volumes to mount.
    volumes: Option<Vec<VolumeUseDoc>>,
    /// Resource limits.
    resources: Option<ResourcesDoc>,
}

/// `matrix:`: variables with their values, plus `include`/`exclude` combinations.
#[derive(JsonSchema)]
struct MatrixDoc {
    /// Extra combinations.
    include: Option<Vec<BTreeMap<String, StringOrNumber>>>,
    /// Combinations to leave out.
    exclude: Option<Vec<BTreeMap<String, StringOrNumber>>>,
    /// Each variable: a list of values.
    #[schemars(flatten)]
    axes: BTreeMap<String, Vec<StringOrNumber>>,
}

/// The JSON schema of a `.pipeline.yml` document.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PipelineDoc);
    let mut value = serde_json::to_value(schema).unwrap_or_default();
    not_nullable(&mut value);
    // Top-level `x-` keys hold YAML anchors and are ignored.
    if let Some(object) = value.as_object_mut() {
        object.insert("patternProperties".into(), serde_json::json!({ "^x-": {} }));
    }
    sorted(value)
}

/// The same value with every object's keys in sorted order, so the printed schema does not
/// depend on whether serde_json was built with `preserve_order` (a feature other crates of
/// a workspace build may turn on).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            let mut pairs: Vec<(String, Value)> = object.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// An absent optional key is fine, but `key: ~` is not (the parser reports it): drops the
/// `null` that `Option` adds to every property's schema.
fn not_nullable(value: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(object) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(not_nullable);
        }
        return;
    };
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for property in properties.values_mut() {
            drop_null(property);
        }
    }
    object.values_mut().for_each(not_nullable);
}

fn drop_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(object) = schema else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = object.get_mut("anyOf") {
        any.retain(|s| s.get("type").and_then(Value::as_str) != Some("null"));
        if any.len() == 1 {
            let only = any.remove(0);
            object.remove("anyOf");
            if let Value::Object(inner) = only {
                object.extend(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{PIPELINE_FIELDS, SERVICE_FIELDS, STEP_FIELDS};

    fn properties<'a>(schema: &'a serde_json::Value, pointer: &str) -> Vec<&'a str> {
        let mut keys: Vec<&str> = schema
            .pointer(pointer)
            .and_then(|p| p.as_object())
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    fn sorted(fields: &[&'static str]) -> Vec<&'static str> {
        let mut fields = fields.to_vec();
        fields.sort_unstable();
        fields
    }

    #[test]
    fn schema_lists_exactly_the_fields_the_parser_accepts() {
        let schema = json_schema();
        assert_eq!(properties(&schema, "/properties"), sorted(&PIPELINE_FIELDS));
        assert_eq!(
            properties(&schema, "/$defs/StepDoc/properties"),
            sorted(&STEP_FIELDS)
        );
        assert_eq!(
            properties(&schema, "/$defs/ServiceDoc/properties"),
            sorted(&SERVICE_FIELDS)
        );
        assert_eq!(schema["required"], serde_json::json!(["steps"]));
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn events_in_the_schema_are_the_compilers() {
        let schema = json_schema();
        let text = schema["$defs"]["EventDoc"].to_string();
        for event in crate::EVENTS {
            assert!(
                text.contains(&format!("\"{event}\"")),
                "{event} missing in {text}"
            );
        }
    }
}
