//! `environment`, `settings`, `volumes` and `resources` values.

use std::collections::BTreeMap;

use crate::ast::{EnvEntry, EnvValue, Setting, VolumeDecl, VolumeUse};
use crate::diagnostic::Code;
use crate::parse::{MAX_MAP_ENTRIES, too_many_entries, too_many_items, units};
use crate::plan::Resources;
use crate::read::{self, At, Cx, Fields, Sp, index_path, key_path};
use crate::yaml::{Node, Value};

/// `environment:` as a map (or a list of `NAME=value` strings).
pub fn environment(cx: &mut Cx, node: &Node, path: &str) -> Vec<EnvEntry> {
    if let Value::Seq(items) = &node.value {
        if items.len() > MAX_MAP_ENTRIES {
            too_many_items(cx, &At::of(node, path), items.len(), "environment");
            return Vec::new();
        }
        return env_list(cx, items, path);
    }
    let Some(mut fields) = Fields::open(cx, node, path) else {
        return Vec::new();
    };
    if too_many_entries(cx, &fields, "environment") {
        return Vec::new();
    }
    let mut entries = Vec::new();
    for field in fields.rest() {
        if !env_name_ok(cx, &field.key, &field.key_at) {
            continue;
        }
        let value = match &field.node.value {
            Value::Map(_) => match secret_ref(cx, field.node, &field.at) {
                Some(secret) => EnvValue::Secret(secret),
                None => continue,
            },
            Value::Null => EnvValue::Text(Sp {
                value: String::new(),
                at: field.at.clone(),
            }),
            _ => match read::string(cx, field.node, &field.at) {
                Some(text) => EnvValue::Text(text),
                None => continue,
            },
        };
        entries.push(EnvEntry {
            name: Sp {
                value: field.key.clone(),
                at: field.key_at.clone(),
            },
            value,
        });
    }
    entries
}

/// The list form of `environment`; a name given twice is reported.
fn env_list(cx: &mut Cx, items: &[Node], path: &str) -> Vec<EnvEntry> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(entry) = env_pair(cx, item, &index_path(path, i)) else {
            continue;
        };
        if let Some(first) = seen.get(&entry.name.value) {
            cx.error(
                Code::DuplicateKey,
                &entry.name.at,
                format!("`{}` is set twice", entry.name.value),
                Some(format!("remove one of them (the first is at line {first})")),
            );
            continue;
        }
        seen.insert(entry.name.value.clone(), entry.name.at.line);
        entries.push(entry);
    }
    entries
}

/// `NAME=value` in the list form of `environment`.
fn env_pair(cx: &mut Cx, node: &Node, path: &str) -> Option<EnvEntry> {
    let at = At::of(node, path);
    let text = read::string(cx, node, &at)?;
    let Some((name, value)) = text.value.split_once('=') else {
        cx.error(
            Code::InvalidValue,
            &at,
            format!("`{}` is not `NAME=value`", text.value),
            Some("write the environment as a map: `NAME: value`".into()),
        );
        return None;
    };
    env_name_ok(cx, name, &at).then(|| EnvEntry {
        name: Sp {
            value: name.to_owned(),
            at: at.clone(),
        },
        value: EnvValue::Text(Sp {
            value: value.to_owned(),
            at: at.clone(),
        }),
    })
}

fn env_name_ok(cx: &mut Cx, name: &str, at: &At) -> bool {
    if units::is_env_name(name) {
        return true;
    }
    cx.error(
        Code::InvalidName,
        at,
        format!("`{name}` is not a valid environment variable name"),
        Some("use letters, digits and `_`, not starting with a digit".into()),
    );
    false
}

/// `{ from_secret: name }`.
pub fn secret_ref(cx: &mut Cx, node: &Node, at: &At) -> Option<Sp<String>> {
    let mut fields = Fields::open(cx, node, &at.path)?;
    let secret = match fields.take("from_secret") {
        Some(field) => {
            let (node, at) = (field.node, field.at.clone());
            read::string(cx, node, &at)
        }
        None => {
            cx.error(
                Code::MissingField,
                at,
                "a map here must be a secret reference: `{ from_secret: name }`",
                None,
            );
            None
        }
    };
    fields.finish(cx, "a secret reference", &["from_secret"]);
    let secret = secret?;
    let valid = !secret.value.is_empty()
        && secret
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        cx.error(
            Code::InvalidName,
            &secret.at,
            format!("`{}` is not a valid secret name", secret.value),
            Some("secret names use letters, digits, `_`, `-` and `.`".into()),
        );
        return None;
    }
    Some(secret)
}

/// `settings:` of a plugin step.
pub fn settings(cx: &mut Cx, node: &Node, path: &str) -> Vec<(Sp<String>, Setting)> {
    let Some(mut fields) = Fields::open(cx, node, path) else {
        return Vec::new();
    };
    if too_many_entries(cx, &fields, "settings") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for field in fields.rest() {
        let valid = !field.key.is_empty()
            && field
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            cx.error(
                Code::InvalidName,
                &field.key_at,
                format!("`{}` is not a valid setting name", field.key),
                Some("setting names use letters, digits, `_` and `-`".into()),
            );
            continue;
        }
        if let Some(value) = setting(cx, field.node, &field.at, true) {
            let key = Sp {
                value: field.key.clone(),
                at: field.key_at.clone(),
            };
            out.push((key, value));
        }
    }
    out
}

fn setting(cx: &mut Cx, node: &Node, at: &At, top: bool) -> Option<Setting> {
    Some(match &node.value {
        Value::Null => Setting::Null,
        Value::Str(s) => Setting::Text(Sp {
            value: s.clone(),
            at: at.clone(),
        }),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
            Setting::Literal(node.text(cx.source).unwrap_or_default())
        }
        Value::Seq(items) => Setting::List(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    setting(cx, item, &At::of(item, index_path(&at.path, i)), false)
                })
                .collect(),
        ),
        Value::Map(pairs) => {
            let is_secret = pairs
                .iter()
                .any(|(k, _)| k.text(cx.source).as_deref() == Some("from_secret"));
            if is_secret {
                if !top {
                    cx.error(
                        Code::InvalidValue,
                        at,
                        "`from_secret` is only accepted directly under a setting",
                        Some(
                            "give the secret its own setting: `password: { from_secret: name }`"
                                .into(),
                        ),
                    );
                    return None;
                }
                return secret_ref(cx, node, at).map(Setting::Secret);
            }
            let mut entries = Vec::new();
            for (key, value) in pairs {
                let key = key.text(cx.source).unwrap_or_default();
                let child = At::of(value, key_path(&at.path, &key));
                if let Some(value) = setting(cx, value, &child, false) {
                    entries.push((key, value));
                }
            }
            Setting::Map(entries)
        }
    })
}

/// The pipeline's `volumes:` declarations.
pub fn volume_decls(cx: &mut Cx, node: &Node, path: &str) -> Vec<VolumeDecl> {
    let at = At::of(node, path);
    let mut decls: Vec<VolumeDecl> = Vec::new();
    for (i, item) in read::list(cx, node, &at, "a list of volumes")
        .iter()
        .enumerate()
    {
        let item_path = index_path(path, i);
        let Some(mut fields) = Fields::open(cx, item, &item_path) else {
            continue;
        };
        let name = fields.take("name").map(|f| (f.node, f.at.clone()));
        let name = name.and_then(|(n, at)| read::string(cx, n, &at));
        let temp = fields.take("temp").is_some();
        let host = fields.take("host").map(|f| (f.node, f.at.clone()));
        let host = host.and_then(|(n, at)| host_path(cx, n, &at));
        if temp && host.is_some() {
            cx.error(
                Code::ConflictingFields,
                &fields.at,
                "a volume is either `temp` or `host`, not both",
                None,
            );
        }
        fields.finish(cx, "a volume declaration", &["name", "temp", "host"]);
        let Some(name) = name else {
            cx.error(
                Code::MissingField,
                &At::of(item, item_path),
                "the volume has no `name`",
                None,
            );
            continue;
        };
        if !volume_name_ok(cx, &name) {
            continue;
        }
        if decls.iter().any(|d| d.name.value == name.value) {
            cx.error(
                Code::DuplicateKey,
                &name.at,
                format!("volume `{}` is declared twice", name.value),
                None,
            );
            continue;
        }
        decls.push(VolumeDecl { name, host });
    }
    decls
}

fn host_path(cx: &mut Cx, node: &Node, at: &At) -> Option<Sp<String>> {
    let mut fields = Fields::open(cx, node, &at.path)?;
    let path = fields.take("path").map(|f| (f.node, f.at.clone()));
    fields.finish(cx, "a host volume", &["path"]);
    let Some((node, at)) = path else {
        cx.error(Code::MissingField, at, "a host volume needs a `path`", None);
        return None;
    };
    let path = read::string(cx, node, &at)?;
    absolute_path_ok(cx, &path, "host path").then_some(path)
}

/// Reports a workspace path or volume target that [`crate::plan::path_problem`] refuses
/// (relative, `..`, NUL, a system directory or a parent of one).
pub fn container_path_ok(cx: &mut Cx, path: &Sp<String>, what: &str) -> bool {
    match crate::paths::path_problem(&path.value) {
        None => true,
        Some(problem) => {
            cx.error(
                Code::InvalidPath,
                &path.at,
                format!("{what} `{}` {problem}", path.value.replace('\0', "\\0")),
                Some("use an absolute path without `..`, like `/cache`".into()),
            );
            false
        }
    }
}

/// Reports a path that is relative, contains `..` or NUL.
pub fn absolute_path_ok(cx: &mut Cx, path: &Sp<String>, what: &str) -> bool {
    match units::path_problem(&path.value) {
        None => true,
        Some(problem) => {
            cx.error(
                Code::InvalidPath,
                &path.at,
                format!("{what} `{}` {problem}", path.value.replace('\0', "\\0")),
                Some("use an absolute path without `..`, like `/cache`".into()),
            );
            false
        }
    }
}

fn volume_name_ok(cx: &mut Cx, name: &Sp<String>) -> bool {
    match units::name_problem(&name.value) {
        None => true,
        Some(problem) => {
            cx.error(
                Code::InvalidName,
                &name.at,
                format!("volume name `{}`: {problem}", name.value),
                None,
            );
            false
        }
    }
}

/// A step's `volumes:`: `{name, path}` maps or `"source:/target"` strings.
pub fn volume_uses(cx: &mut Cx, node: &Node, path: &str) -> Vec<VolumeUse> {
    let at = At::of(node, path);
    let mut uses = Vec::new();
    for (i, item) in read::list(cx, node, &at, "a list of volumes")
        .iter()
        .enumerate()
    {
        let item_at = At::of(item, index_path(path, i));
        let found = match &item.value {
            Value::Map(_) => declared_use(cx, item, &item_at),
            _ => read::string(cx, item, &item_at).and_then(|s| short_use(cx, s)),
        };
        uses.extend(found);
    }
    uses
}

fn declared_use(cx: &mut Cx, node: &Node, at: &At) -> Option<VolumeUse> {
    let mut fields = Fields::open(cx, node, &at.path)?;
    let name = fields.take("name").map(|f| (f.node, f.at.clone()));
    let target = fields.take("path").map(|f| (f.node, f.at.clone()));
    fields.finish(cx, "a step volume", &["name", "path"]);
    let name = name.and_then(|(n, a)| read::string(cx, n, &a));
    let target = target.and_then(|(n, a)| read::string(cx, n, &a));
    let (Some(name), Some(target)) = (name, target) else {
        cx.error(
            Code::MissingField,
            at,
            "a step volume needs `name` and `path`",
            None,
        );
        return None;
    };
    container_path_ok(cx, &target, "volume path").then_some(VolumeUse::Declared { name, target })
}

fn short_use(cx: &mut Cx, text: Sp<String>) -> Option<VolumeUse> {
    let parts: Vec<&str> = text.value.split(':').collect();
    let [source, target] = parts.as_slice() else {
        cx.error(
            Code::InvalidValue,
            &text.at,
            format!("`{}` is not `source:/path`", text.value),
            Some("write `name:/path` for a workflow volume or `/host/path:/path` for a host directory (read-only mounts are not supported)".into()),
        );
        return None;
    };
    let source = Sp {
        value: (*source).to_owned(),
        at: text.at.clone(),
    };
    let target = Sp {
        value: (*target).to_owned(),
        at: text.at.clone(),
    };
    if !container_path_ok(cx, &target, "volume path") {
        return None;
    }
    if source.value.starts_with('/') || source.value.contains(['.', '\0']) {
        return absolute_path_ok(cx, &source, "host path")
            .then_some(VolumeUse::Host { source, target });
    }
    volume_name_ok(cx, &source).then_some(VolumeUse::Named {
        name: source,
        target,
    })
}

/// `resources: {memory, cpus}`.
pub fn resources(cx: &mut Cx, node: &Node, path: &str) -> Resources {
    let mut out = Resources::default();
    let Some(mut fields) = Fields::open(cx, node, path) else {
        return out;
    };
    if let Some(field) = fields.take("memory") {
        let (node, at) = (field.node, field.at.clone());
        out.memory = read::string(cx, node, &at).and_then(|t| {
            units::memory_bytes(&t.value)
                .map_err(|e| {
                    cx.error(
                        Code::InvalidSize,
                        &at,
                        format!("memory `{}`: {e}", t.value),
                        Some("write a size like `512MiB` or `2GiB`".into()),
                    )
                })
                .ok()
        });
    }
    if let Some(field) = fields.take("cpus") {
        let (node, at) = (field.node, field.at.clone());
        out.millicpus = read::string(cx, node, &at).and_then(|t| {
            units::millicpus(&t.value)
                .map_err(|e| {
                    cx.error(
                        Code::InvalidSize,
                        &at,
                        format!("cpus `{}`: {e}", t.value),
                        Some("write a number of cores like `1.5`, or millicpus like `500m`".into()),
                    )
                })
                .ok()
        });
    }
    fields.finish(cx, "resources", &["memory", "cpus"]);
    out
}

/// A duration value (`10m`) in seconds.
pub fn duration(cx: &mut Cx, node: &Node, at: &At) -> Option<u64> {
    let text = read::string(cx, node, at)?;
    units::duration_secs(&text.value)
        .map_err(|e| {
            cx.error(
                Code::InvalidDuration,
                at,
                format!("`{}` is not a duration: {e}", text.value),
                Some("write durations like `90s`, `10m` or `1h30m`".into()),
            )
        })
        .ok()
}
