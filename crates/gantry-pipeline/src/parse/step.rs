//! A step or service map → [`StepDef`].

use crate::ast::{Approval, Dialect, StepDef};
use crate::diagnostic::Code;
use crate::parse::units;
use crate::parse::values;
use crate::parse::when::{self, Level};
use crate::plan::{FailurePolicy, PullPolicy};
use crate::read::{self, At, Cx, Field, Fields, Sp};
use crate::yaml::{Node, Value};

/// Whether the map is a step or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An entry of `steps:`.
    Step,
    /// An entry of `services:`.
    Service,
}

/// Every field a step accepts.
pub const STEP_FIELDS: [&str; 18] = [
    "name",
    "image",
    "commands",
    "entrypoint",
    "environment",
    "settings",
    "depends_on",
    "stage",
    "when",
    "failure",
    "timeout",
    "retries",
    "detach",
    "pull",
    "privileged",
    "volumes",
    "resources",
    "approval",
];

/// Every field a service accepts.
pub const SERVICE_FIELDS: [&str; 10] = [
    "name",
    "image",
    "commands",
    "entrypoint",
    "environment",
    "when",
    "pull",
    "privileged",
    "volumes",
    "resources",
];

/// Most retries a step may ask for.
pub const MAX_RETRIES: u64 = 10;

/// Docker/Drone step fields Gantry refuses, with what to do instead.
const UNSUPPORTED: [(&str, &str); 12] = [
    (
        "network_mode",
        "steps share the pipeline's network; services are reachable by name",
    ),
    ("devices", "device access is not available to pipelines"),
    (
        "cap_add",
        "extra capabilities are not available; a trusted repository may use `privileged`",
    ),
    ("dns", "containers use the runner's DNS"),
    ("dns_search", "containers use the runner's DNS"),
    ("extra_hosts", "services are reachable by their name"),
    (
        "user",
        "run as another user inside `commands` (e.g. `su` or `gosu`)",
    ),
    (
        "shell",
        "commands run with `/bin/sh -e`; call another shell inside a command",
    ),
    (
        "working_dir",
        "steps start in the workspace; `cd` inside `commands`",
    ),
    (
        "command",
        "use `commands:` (a list of shell commands) or `entrypoint:`",
    ),
    ("group", "use `depends_on:` to run steps in parallel"),
    ("shm_size", "not supported"),
];

/// Fields an approval step refuses.
const APPROVAL_REFUSES: [&str; 13] = [
    "image",
    "commands",
    "settings",
    "entrypoint",
    "detach",
    "timeout",
    "retries",
    "environment",
    "volumes",
    "privileged",
    "resources",
    "pull",
    "failure",
];

/// Step-only fields, explained when they appear on a service.
const NOT_FOR_SERVICES: [&str; 8] = [
    "settings",
    "depends_on",
    "stage",
    "failure",
    "timeout",
    "retries",
    "detach",
    "approval",
];

/// Reads one step or service.
pub fn step(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    place: Place,
    dialect: Dialect,
) -> Option<StepDef> {
    let mut fields = Fields::open(cx, node, path)?;
    let mut step = StepDef {
        at: fields.at.clone(),
        ..StepDef::default()
    };
    step.name = name(cx, &mut fields, dialect);
    if let Some(f) = fields.take("image") {
        step.image = read::string(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("commands") {
        step.commands = read::strings(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("entrypoint") {
        step.entrypoint = Some(read::strings(cx, f.node, &f.at.clone()));
    }
    if let Some(f) = fields.take("environment") {
        step.environment = values::environment(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("when") {
        step.when = when::when(cx, f.node, &f.at.path.clone(), Level::Step, dialect);
    }
    read_runtime_fields(cx, &mut fields, &mut step);
    if place == Place::Step {
        read_step_only_fields(cx, &mut fields, &mut step, dialect);
        check_step_shape(cx, &fields, &step);
    } else {
        explain_step_only_fields(cx, &mut fields);
        if step.image.is_none() {
            missing(cx, &step.at, "image", "a service needs an `image`");
        }
    }
    refuse_unsupported(cx, &mut fields);
    let known: &[&str] = if place == Place::Step {
        &STEP_FIELDS
    } else {
        &SERVICE_FIELDS
    };
    let what = if place == Place::Step {
        "a step"
    } else {
        "a service"
    };
    fields.finish(cx, what, known);
    Some(step)
}

fn name(cx: &mut Cx, fields: &mut Fields, dialect: Dialect) -> Option<Sp<String>> {
    let Some(f) = fields.take("name") else {
        let at = fields.at.clone();
        missing(cx, &at, "name", "every step and service needs a `name`");
        return None;
    };
    let mut name = read::string(cx, f.node, &f.at.clone())?;
    if let Some(problem) = units::name_problem(&name.value) {
        let slug = units::slug(&name.value);
        if dialect == Dialect::Drone {
            cx.warn(
                Code::InvalidName,
                &name.at,
                format!("step name `{}` is used as `{slug}`: {problem}", name.value),
                None,
            );
            name.value = slug;
        } else {
            cx.error(
                Code::InvalidName,
                &name.at,
                format!("invalid name `{}`: {problem}", name.value),
                Some(format!("did you mean `{slug}`?")),
            );
            return None;
        }
    }
    Some(name)
}

/// Fields steps and services share that shape the container.
fn read_runtime_fields(cx: &mut Cx, fields: &mut Fields, step: &mut StepDef) {
    if let Some(f) = fields.take("pull") {
        step.pull = pull(cx, f);
    }
    if let Some(f) = fields.take("privileged")
        && read::boolean(cx, f.node, &f.at.clone()) == Some(true)
    {
        step.privileged = Some(f.key_at.clone());
    }
    if let Some(f) = fields.take("volumes") {
        step.volumes = values::volume_uses(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("resources") {
        step.resources = values::resources(cx, f.node, &f.at.path.clone());
    }
}

fn pull(cx: &mut Cx, field: &Field) -> PullPolicy {
    if let Value::Bool(always) = field.node.value {
        return if always {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotExists
        };
    }
    match read::choice(
        cx,
        field.node,
        &field.at,
        &["if-not-exists", "always", "never"],
    )
    .as_deref()
    {
        Some("always") => PullPolicy::Always,
        Some("never") => PullPolicy::Never,
        _ => PullPolicy::IfNotExists,
    }
}

fn read_step_only_fields(cx: &mut Cx, fields: &mut Fields, step: &mut StepDef, dialect: Dialect) {
    if let Some(f) = fields.take("settings") {
        step.settings = values::settings(cx, f.node, &f.at.path.clone());
    }
    if let Some(f) = fields.take("depends_on") {
        let mut names = read::strings(cx, f.node, &f.at.clone());
        if dialect == Dialect::Drone {
            for name in &mut names {
                name.value = units::slug(&name.value);
            }
        }
        step.depends_on = Some(names);
    }
    if let Some(f) = fields.take("stage") {
        step.stage = read::string(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("failure") {
        let value = read::choice(cx, f.node, &f.at.clone(), &["fail", "ignore"]);
        step.failure = match value.as_deref() {
            Some("ignore") => FailurePolicy::Ignore,
            _ => FailurePolicy::Fail,
        };
    }
    if let Some(f) = fields.take("timeout") {
        step.timeout = values::duration(cx, f.node, &f.at.clone());
    }
    if let Some(f) = fields.take("retries") {
        step.retries = read::integer(cx, f.node, &f.at.clone(), MAX_RETRIES).unwrap_or(0) as u32;
    }
    if let Some(f) = fields.take("detach") {
        step.detach = read::boolean(cx, f.node, &f.at.clone()).unwrap_or(false);
    }
    if let Some(f) = fields.take("approval") {
        step.approval = approval(cx, f);
    }
}

fn approval(cx: &mut Cx, field: &Field) -> Option<Approval> {
    match field.node.value {
        Value::Bool(false) => return None,
        Value::Bool(true) | Value::Null => return Some(Approval { timeout: None }),
        _ => {}
    }
    let mut fields = Fields::open(cx, field.node, &field.at.path)?;
    let timeout = fields.take("timeout").map(|f| (f.node, f.at.clone()));
    let timeout = timeout.and_then(|(node, at)| values::duration(cx, node, &at));
    fields.finish(cx, "an approval", &["timeout"]);
    Some(Approval { timeout })
}

/// Which fields a step needs and which cannot go together.
fn check_step_shape(cx: &mut Cx, fields: &Fields, step: &StepDef) {
    if step.approval.is_some() {
        check_approval_shape(cx, fields);
        return;
    }
    if step.detach {
        for key in ["retries", "timeout"] {
            if let Some(at) = fields.key_at(key) {
                cx.error(
                    Code::ConflictingFields,
                    at,
                    format!("a detached step cannot have `{key}`: it runs in the background until the pipeline ends"),
                    Some("remove `detach`, or remove this field".into()),
                );
            }
        }
    }
    if step.image.is_none() {
        missing(
            cx,
            &step.at,
            "image",
            "add `image:`, or `approval:` for a step that waits for a person",
        );
    }
    if let Some(at) = fields
        .key_at("settings")
        .filter(|_| !step.commands.is_empty())
    {
        cx.error(
            Code::ConflictingFields,
            at,
            "a step has either `commands` or plugin `settings`, not both",
            Some(
                "`settings` configure a plugin image; steps with `commands` use `environment`"
                    .into(),
            ),
        );
    }
}

/// Fields an approval step cannot have: it runs no container, and its only time limit is
/// `approval.timeout`.
fn check_approval_shape(cx: &mut Cx, fields: &Fields) {
    for key in APPROVAL_REFUSES {
        let Some(at) = fields.key_at(key) else {
            continue;
        };
        let help = match key {
            "timeout" => "write the time to wait for a person as `approval: {timeout: 1h}`",
            "failure" => {
                "a rejected approval fails the pipeline; steps after it can use `when: {status: [failure]}`"
            }
            _ => "put the work in a step that `depends_on` the approval",
        };
        cx.error(
            Code::ConflictingFields,
            at,
            format!("an approval step runs no container, so it cannot have `{key}`"),
            Some(help.into()),
        );
    }
}

fn explain_step_only_fields(cx: &mut Cx, fields: &mut Fields) {
    for key in NOT_FOR_SERVICES {
        if let Some(f) = fields.take(key) {
            let at = f.key_at.clone();
            cx.error(
                Code::UnknownField,
                &at,
                format!("a service does not take `{key}`"),
                Some("services start before the first step and run until the end; move this to a step (with `detach: true` for a background step)".into()),
            );
        }
    }
}

fn refuse_unsupported(cx: &mut Cx, fields: &mut Fields) {
    for (key, help) in UNSUPPORTED {
        if let Some(f) = fields.take(key) {
            let at = f.key_at.clone();
            cx.error(
                Code::UnknownField,
                &at,
                format!("`{key}` is not supported by Gantry"),
                Some(help.into()),
            );
        }
    }
}

fn missing(cx: &mut Cx, at: &At, field: &str, help: &str) {
    let what = if at.path.starts_with("services") {
        "service"
    } else {
        "step"
    };
    cx.error(
        Code::MissingField,
        at,
        format!("the {what} has no `{field}`"),
        Some(help.into()),
    );
}
