//! A kept [`StepDef`] → a [`plan::Step`]: substitution, environment, secrets, volumes and
//! the privilege checks.

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::{EnvEntry, EnvValue, StepDef, VolumeDecl, VolumeUse};
use crate::compile::settings::{self, PluginValue};
use crate::compile::substitute::{self, ProblemKind};
use crate::compile::{env, image, registry};
use crate::context::CompileContext;
use crate::diagnostic::Code;
use crate::parse::units;
use crate::paths;
use crate::plan::{Mount, RunOn, SecretEnv, Step, StepKind};
use crate::read::{At, Cx, Sp};
use crate::suggest;

/// How long an approval step waits when neither it nor the build sets a timeout (24h).
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 24 * 3600;

/// What every step of one plan shares.
pub struct Scope<'a> {
    /// The build.
    pub ctx: &'a CompileContext,
    /// CI_*, DRONE_* and matrix variables.
    pub base_env: &'a BTreeMap<String, String>,
    /// Pipeline-level `environment`.
    pub pipeline_env: &'a [EnvEntry],
    /// Pipeline `volumes:` declarations.
    pub volumes: &'a [VolumeDecl],
    /// Workspace path.
    pub workspace: &'a str,
}

/// Builds one step (or service, when `kind` is [`StepKind::Service`]).
pub fn build(
    cx: &mut Cx,
    scope: &Scope,
    def: &StepDef,
    name: &str,
    needs: Vec<String>,
    run_on: RunOn,
) -> Step {
    let kind = kind_of(def);
    let mut step = Step {
        name: name.to_owned(),
        kind,
        image: String::new(),
        pull: def.pull,
        entrypoint: None,
        commands: Vec::new(),
        environment: BTreeMap::new(),
        secrets: Vec::new(),
        needs,
        run_on,
        failure: def.failure,
        timeout_secs: def.timeout.or(scope.ctx.default_timeout_secs),
        retries: def.retries,
        detach: def.detach,
        privileged: false,
        volumes: Vec::new(),
        resources: def.resources,
        workdir: scope.workspace.to_owned(),
        approval_timeout_secs: None,
    };
    if let Some(approval) = &def.approval {
        step.timeout_secs = None;
        step.approval_timeout_secs = Some(
            approval
                .timeout
                .or(scope.ctx.default_timeout_secs)
                .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECS),
        );
        return step;
    }
    let user_env: BTreeSet<String> = scope
        .pipeline_env
        .iter()
        .chain(&def.environment)
        .map(|e| e.name.value.clone())
        .collect();
    let text = Substituter {
        vars: scope.base_env,
        step_name: name,
        user_env: &user_env,
    };
    if let Some(image) = &def.image {
        step.image = checked_image(cx, &text, image, scope.ctx.allow_private_registries);
    }
    step.entrypoint = def
        .entrypoint
        .as_ref()
        .map(|parts| parts.iter().map(|p| text.apply(cx, p, false)).collect());
    step.commands = def
        .commands
        .iter()
        .map(|c| text.apply(cx, c, true))
        .collect();
    let (environment, secrets) = environment_of(cx, scope, def, &text, kind == StepKind::Plugin);
    step.environment = environment;
    step.secrets = secrets;
    check_secrets(cx, scope, def);
    step.privileged = privileged(cx, scope, def, name);
    step.volumes = mounts(cx, scope, def, kind);
    step
}

/// The substituted image reference, reported when it is empty, not a reference, or (unless
/// allowed) pulled from a private registry host.
fn checked_image(
    cx: &mut Cx,
    text: &Substituter,
    image: &Sp<String>,
    allow_private_registries: bool,
) -> String {
    let before = cx.diagnostics.len();
    let value = text.apply(cx, image, false);
    if cx.diagnostics.len() > before {
        return value; // the substitution problem is reported already
    }
    let shown = if value == image.value {
        format!("`{value}`")
    } else {
        format!("`{value}` (from `{}`)", image.value)
    };
    if let Some(problem) = image::reference_problem(&value) {
        cx.error(
            Code::InvalidValue,
            &image.at,
            format!("image {shown} {problem}"),
            Some("write a reference like `alpine:3.20`, `registry.example.com/team/app:1.2` or `name@sha256:<digest>`".into()),
        );
    } else if let Some((registry, kind)) = registry::private_registry(&value)
        && !allow_private_registries
    {
        cx.error(
            Code::PrivateRegistry,
            &image.at,
            format!(
                "image {shown} comes from registry `{registry}`, {}, and this build may not use private registries",
                kind.describe()
            ),
            Some("use a registry with a public name; an admin can allow private registries on the server (`gantry exec` allows them)".into()),
        );
    }
    value
}

/// The step's variables (build environment, user `environment`, `PLUGIN_*` settings) and
/// its secret variables; later sources win.
fn environment_of(
    cx: &mut Cx,
    scope: &Scope,
    def: &StepDef,
    text: &Substituter,
    plugin: bool,
) -> (BTreeMap<String, String>, Vec<SecretEnv>) {
    let mut environment = text.vars.clone();
    env::add_step_names(&mut environment, text.step_name);
    let mut secrets: BTreeMap<String, String> = BTreeMap::new();
    for entry in scope.pipeline_env.iter().chain(&def.environment) {
        add_user_env(cx, text, entry, plugin, &mut environment, &mut secrets);
    }
    // The caller's extra variables win over the file's (`--env` on the command line).
    for (name, value) in &scope.ctx.extra_env {
        if !env::is_reserved_everywhere(name) {
            secrets.remove(name);
            environment.insert(name.clone(), value.clone());
        }
    }
    let mut setting_names: BTreeMap<String, &Sp<String>> = BTreeMap::new();
    for (key, value) in &def.settings {
        let variable = settings::variable_name(&key.value);
        if let Some(first) = setting_names.get(&variable) {
            cx.error(
                Code::DuplicateKey,
                &key.at,
                format!(
                    "settings `{}` and `{}` both become `{variable}`",
                    first.value, key.value
                ),
                Some("keep one of them".into()),
            );
            continue;
        }
        setting_names.insert(variable, key);
        match settings::render(&key.value, value, &mut |s| text.apply(cx, s, false)) {
            PluginValue::Plain(v) => {
                let name = settings::variable_name(&key.value);
                secrets.remove(&name);
                environment.insert(name, v);
            }
            PluginValue::Secret(secret) => {
                environment.remove(&secret.env);
                secrets.insert(secret.env, secret.secret);
            }
        }
    }
    let secrets = secrets
        .into_iter()
        .map(|(env, secret)| SecretEnv { env, secret })
        .collect();
    (environment, secrets)
}

fn kind_of(def: &StepDef) -> StepKind {
    if def.approval.is_some() {
        StepKind::Approval
    } else if def.at.path.starts_with("services") {
        StepKind::Service
    } else if def.commands.is_empty() {
        StepKind::Plugin
    } else {
        StepKind::Commands
    }
}

fn add_user_env(
    cx: &mut Cx,
    text: &Substituter,
    entry: &EnvEntry,
    plugin: bool,
    environment: &mut BTreeMap<String, String>,
    secrets: &mut BTreeMap<String, String>,
) {
    let name = &entry.name.value;
    if env::is_reserved(name, plugin) {
        let upper = name.to_ascii_uppercase();
        let help = if upper.starts_with("PLUGIN_") {
            "configure a plugin through `settings:`, which become `PLUGIN_*` variables".to_string()
        } else if upper.starts_with("GIT_") {
            "`GIT_*` variables change what git does inside a plugin image; configure the plugin through `settings:`".to_string()
        } else {
            "Gantry sets this variable itself; pick another name".to_string()
        };
        cx.error(
            Code::ReservedEnv,
            &entry.name.at,
            format!("`{name}` is reserved and cannot be set in `environment`"),
            Some(help),
        );
        return;
    }
    match &entry.value {
        EnvValue::Text(value) => {
            secrets.remove(name);
            environment.insert(name.clone(), text.apply(cx, value, false));
        }
        EnvValue::Secret(secret) => {
            environment.remove(name);
            secrets.insert(name.clone(), secret.value.clone());
        }
    }
}

/// Reports `from_secret` names the repository does not have (when the caller knows them).
fn check_secrets(cx: &mut Cx, scope: &Scope, def: &StepDef) {
    let Some(known) = &scope.ctx.secrets else {
        return;
    };
    let from_env = scope
        .pipeline_env
        .iter()
        .chain(&def.environment)
        .filter_map(|e| match &e.value {
            EnvValue::Secret(s) => Some(s),
            EnvValue::Text(_) => None,
        });
    let from_settings = def.settings.iter().filter_map(|(_, v)| match v {
        crate::ast::Setting::Secret(s) => Some(s),
        _ => None,
    });
    for secret in from_env.chain(from_settings) {
        if known.contains(&secret.value) {
            continue;
        }
        let help = suggest::did_you_mean(&secret.value, known.iter().map(String::as_str))
            .or_else(|| Some("add the secret in the repository settings (or with `gantry exec --secret NAME=VALUE`)".into()));
        cx.error(
            Code::UnknownSecret,
            &secret.at,
            format!("the repository has no secret `{}`", secret.value),
            help,
        );
    }
}

fn privileged(cx: &mut Cx, scope: &Scope, def: &StepDef, name: &str) -> bool {
    let Some(at) = &def.privileged else {
        return false;
    };
    if !scope.ctx.trusted {
        cx.error(
            Code::UntrustedPrivileged,
            at,
            format!("`{name}` asks for `privileged: true`, but this repository is not trusted"),
            Some("an admin can mark the repository trusted; otherwise remove `privileged`".into()),
        );
        return false;
    }
    true
}

fn mounts(cx: &mut Cx, scope: &Scope, def: &StepDef, kind: StepKind) -> Vec<Mount> {
    let mut out = Vec::new();
    for volume in &def.volumes {
        let Some(Resolved { name, host, target }) = resolve(cx, scope, volume) else {
            continue;
        };
        if paths::is_within(scope.workspace, &target.value) {
            let message = format!(
                "a volume cannot be mounted over the workspace `{}`",
                scope.workspace
            );
            cx.error(Code::InvalidPath, &target.at, message, None);
            continue;
        }
        // A plugin runs its image's own entrypoint: a volume elsewhere could replace it.
        if kind == StepKind::Plugin
            && host.is_none()
            && !paths::is_within(&target.value, scope.workspace)
        {
            cx.error(
                Code::InvalidPath,
                &target.at,
                format!(
                    "a plugin step can mount volumes only inside the workspace `{}`, not at `{}`",
                    scope.workspace, target.value
                ),
                Some(format!(
                    "mount it under the workspace, like `{}/cache`",
                    scope.workspace.trim_end_matches('/')
                )),
            );
            continue;
        }
        if let Some(host) = host
            && !scope.ctx.trusted
        {
            cx.error(
                Code::UntrustedVolume,
                &host.at,
                format!("host path `{}` can only be mounted in a trusted repository", host.value),
                Some("use a workflow volume (`name:/path` or `temp: {}`), or ask an admin to trust the repository".into()),
            );
            continue;
        }
        out.push(Mount {
            name,
            host_path: host.map(|h| h.value.clone()),
            target: target.value.clone(),
        });
    }
    out
}

/// A step volume with its declaration looked up.
struct Resolved<'a> {
    name: String,
    host: Option<&'a Sp<String>>,
    target: &'a Sp<String>,
}

/// Looks up declared volumes (reporting unknown ones).
fn resolve<'a>(cx: &mut Cx, scope: &Scope<'a>, volume: &'a VolumeUse) -> Option<Resolved<'a>> {
    match volume {
        VolumeUse::Named { name, target } => Some(Resolved {
            name: name.value.clone(),
            host: None,
            target,
        }),
        VolumeUse::Host { source, target } => Some(Resolved {
            name: format!("host-{}", units::slug(&source.value)),
            host: Some(source),
            target,
        }),
        VolumeUse::Declared { name, target } => {
            let Some(decl) = scope.volumes.iter().find(|d| d.name.value == name.value) else {
                let declared = scope.volumes.iter().map(|d| d.name.value.as_str());
                let help = suggest::did_you_mean(&name.value, declared).or_else(|| {
                    Some("declare it in the pipeline: `volumes: [{name: cache, temp: {}}]`".into())
                });
                cx.error(
                    Code::UnknownVolume,
                    &name.at,
                    format!("volume `{}` is not declared by the pipeline", name.value),
                    help,
                );
                return None;
            };
            Some(Resolved {
                name: name.value.clone(),
                host: decl.host.as_ref(),
                target,
            })
        }
    }
}

/// Substitutes strings of one step and reports their problems.
pub struct Substituter<'a> {
    /// Variables (without the per-step names).
    pub vars: &'a BTreeMap<String, String>,
    /// The step's name (`CI_STEP_NAME`, `DRONE_STEP_NAME`).
    pub step_name: &'a str,
    /// The step's own `environment` names: in commands, the shell expands them.
    pub user_env: &'a BTreeSet<String>,
}

impl Substituter<'_> {
    /// The substituted string (the original where it has problems, which are reported).
    pub fn apply(&self, cx: &mut Cx, text: &Sp<String>, command: bool) -> String {
        let lookup = |name: &str| match name {
            "CI_STEP_NAME" | "DRONE_STEP_NAME" => Some(self.step_name.to_owned()),
            _ => self.vars.get(name).cloned(),
        };
        // In commands the shell expands the step's own variables and the ones the runtime
        // sets when the step starts.
        let keep = |name: &str| {
            command && (self.user_env.contains(name) || env::RUNTIME_NAMES.contains(&name))
        };
        match substitute::substitute(&text.value, &lookup, &keep) {
            Ok(done) => done,
            Err(problems) => {
                for problem in problems {
                    self.report(cx, text, &problem);
                }
                text.value.clone()
            }
        }
    }

    fn report(&self, cx: &mut Cx, text: &Sp<String>, problem: &substitute::Problem) {
        let at = locate(cx, &text.at, &text.value, problem.offset);
        match &problem.kind {
            ProblemKind::Unknown if env::RUNTIME_NAMES.contains(&problem.name.as_str()) => {
                cx.error(
                    Code::UnknownVariable,
                    &at,
                    format!(
                        "`{}` is only known at run time, when the step starts",
                        problem.name
                    ),
                    Some(format!(
                        "use it in `commands`, where the shell expands `${{{}}}`",
                        problem.name
                    )),
                );
            }
            ProblemKind::Unknown => {
                let name = &problem.name;
                let help = suggest::did_you_mean(name, self.vars.keys().map(String::as_str)).or_else(|| {
                    Some(if self.user_env.contains(name) {
                        format!("step environment is not substituted here; only in `commands` is `${{{name}}}` left for the shell")
                    } else {
                        format!("to pass `${{{name}}}` to the shell, write `$${{{name}}}`")
                    })
                });
                cx.error(
                    Code::UnknownVariable,
                    &at,
                    format!("unknown variable `{name}`"),
                    help,
                );
            }
            ProblemKind::Malformed(message) => cx.error(
                Code::InvalidValue,
                &at,
                message.clone(),
                Some("write `$$` for a literal `$`".into()),
            ),
        }
    }
}

/// The position of the `${` at byte `offset` of `text`, found in the source text of the
/// value (falls back to the value's own position).
fn locate(cx: &Cx, at: &At, text: &str, offset: usize) -> At {
    let end = text[offset..]
        .find('}')
        .map_or(text.len(), |i| offset + i + 1);
    let needle = &text[offset..end];
    let occurrence = text[..offset].matches(needle).count();
    let region = cx.source.get(at.start..at.start + at.len).unwrap_or("");
    let found = region.match_indices(needle).nth(occurrence).map(|(i, _)| i);
    match found {
        Some(i) if at.len > 0 => {
            let (line, column) = cx.position_of(at.start + i);
            At {
                line,
                column,
                ..at.clone()
            }
        }
        _ => at.clone(),
    }
}
