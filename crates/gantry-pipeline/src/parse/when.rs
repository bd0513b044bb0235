//! `when:` (and Drone's `trigger:`): conditions on the build.

use globset::GlobBuilder;

use crate::EVENTS;
use crate::ast::{Condition, Dialect, Filter, GlobKey, Pattern, When};
use crate::diagnostic::Code;
use crate::plan::RunOn;
use crate::read::{self, At, Cx, Fields, Sp, index_path};
use crate::suggest;
use crate::yaml::{Node, Value};

/// Where a `when` is: the pipeline's or a step's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Pipeline `when` / Drone `trigger`.
    Pipeline,
    /// A step's or service's `when`.
    Step,
}

/// Status values of a step's `when`.
pub const STATUSES: [&str; 2] = ["success", "failure"];

const GLOB_KEYS: [(&str, GlobKey); 8] = [
    ("branch", GlobKey::Branch),
    ("ref", GlobKey::Ref),
    ("tag", GlobKey::Tag),
    ("path", GlobKey::Path),
    ("paths", GlobKey::Path),
    ("target", GlobKey::Target),
    ("cron", GlobKey::Cron),
    ("repo", GlobKey::Repo),
];

/// How the values of a condition key are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Build events, compared exactly (Drone names mapped to ours).
    Event,
    /// Step status values, compared exactly.
    Status,
    /// Globs.
    Glob,
}

/// Drone condition keys that Gantry accepts and ignores.
const DRONE_IGNORED: [&str; 2] = ["instance", "action"];

/// Parses a `when`: a map, or a list of maps (any of which may match).
pub fn when(cx: &mut Cx, node: &Node, path: &str, level: Level, dialect: Dialect) -> Option<When> {
    let at = At::of(node, path);
    let alternatives = match &node.value {
        Value::Seq(items) if items.is_empty() => {
            cx.error(
                Code::InvalidValue,
                &at,
                "`when: []` lists no conditions, so it would never run",
                Some("remove `when` to always run, or list conditions like `- event: push`".into()),
            );
            return None;
        }
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| condition(cx, item, &index_path(path, i), level, dialect))
            .collect(),
        Value::Map(_) => condition(cx, node, path, level, dialect)
            .into_iter()
            .collect(),
        _ => {
            cx.wrong_type(node, &at, "a map of conditions or a list of such maps");
            return None;
        }
    };
    Some(When { alternatives })
}

fn condition(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    level: Level,
    dialect: Dialect,
) -> Option<Condition> {
    let mut fields = Fields::open(cx, node, path)?;
    let mut condition = Condition::default();
    if let Some(field) = fields.take("event") {
        let (node, at) = (field.node, field.at.clone());
        condition.event = filter(cx, node, &at, Compare::Event);
    }
    for (key, glob_key) in GLOB_KEYS {
        if let Some(field) = fields.take(key) {
            let (node, at) = (field.node, field.at.clone());
            if let Some(f) = filter(cx, node, &at, Compare::Glob) {
                condition.globs.push((glob_key, f));
            }
        }
    }
    if let Some(field) = fields.take("status") {
        let (node, at, key_at) = (field.node, field.at.clone(), field.key_at.clone());
        condition.status = status(cx, node, &at, &key_at, level, dialect);
    }
    if dialect == Dialect::Drone {
        for key in DRONE_IGNORED {
            if let Some(field) = fields.take(key) {
                let at = field.key_at.clone();
                cx.warn(
                    Code::IgnoredField,
                    &at,
                    format!("`{key}` conditions are ignored by Gantry"),
                    None,
                );
            }
        }
    }
    let mut known = vec![
        "event", "branch", "ref", "tag", "path", "target", "cron", "repo",
    ];
    if level == Level::Step || dialect == Dialect::Drone {
        known.push("status");
    }
    fields.finish(cx, "a condition", &known);
    Some(condition)
}

fn status(
    cx: &mut Cx,
    node: &Node,
    at: &At,
    key_at: &At,
    level: Level,
    dialect: Dialect,
) -> Option<RunOn> {
    // A Drone trigger's `status` says whether the pipeline runs after its `depends_on`
    // pipelines failed.
    if level == Level::Pipeline && dialect == Dialect::Gantry {
        cx.error(
            Code::UnknownField,
            key_at,
            "`status` is only accepted in a step's `when`",
            Some("move it to the `when` of the steps that should run after a failure".into()),
        );
        return None;
    }
    let filter = filter(cx, node, at, Compare::Status)?;
    if filter.include.is_empty() && filter.exclude.is_empty() {
        cx.error(
            Code::InvalidValue,
            at,
            "`status: []` lists no status, so it would never run",
            Some("use `[success]`, `[failure]` or `[success, failure]`".into()),
        );
        return None;
    }
    if !filter.exclude.is_empty() {
        cx.error(
            Code::InvalidValue,
            at,
            "`status` takes a list of values, not include/exclude",
            None,
        );
        return None;
    }
    let mut run_on = RunOn {
        success: false,
        failure: false,
    };
    for value in &filter.include {
        match value.text.value.as_str() {
            "success" => run_on.success = true,
            "failure" => run_on.failure = true,
            other => invalid_word(cx, &value.text.at, "status", other, &STATUSES),
        }
    }
    (run_on.success || run_on.failure).then_some(run_on)
}

fn invalid_word(cx: &mut Cx, at: &At, what: &str, value: &str, allowed: &[&str]) {
    let help = suggest::did_you_mean(value, allowed.iter().copied())
        .unwrap_or_else(|| format!("use one of: {}", allowed.join(", ")));
    cx.error(
        Code::InvalidValue,
        at,
        format!("`{value}` is not a {what}"),
        Some(help),
    );
}

/// A condition value: a string, a list, or `{include, exclude}`.
fn filter(cx: &mut Cx, node: &Node, at: &At, compare: Compare) -> Option<Filter> {
    let mut out = Filter::default();
    if let Value::Map(_) = node.value {
        let mut fields = Fields::open(cx, node, &at.path)?;
        if let Some(field) = fields.take("include") {
            let (node, at) = (field.node, field.at.clone());
            out.include = patterns(cx, node, &at, compare);
        }
        if let Some(field) = fields.take("exclude") {
            let (node, at) = (field.node, field.at.clone());
            out.exclude = patterns(cx, node, &at, compare);
        }
        fields.finish(cx, "a condition value", &["include", "exclude"]);
    } else {
        out.include = patterns(cx, node, at, compare);
    }
    Some(out)
}

fn patterns(cx: &mut Cx, node: &Node, at: &At, compare: Compare) -> Vec<Pattern> {
    let texts = read::strings(cx, node, at);
    texts
        .into_iter()
        .filter_map(|text| pattern(cx, text, compare))
        .collect()
}

fn pattern(cx: &mut Cx, mut text: Sp<String>, compare: Compare) -> Option<Pattern> {
    match compare {
        Compare::Status => return Some(Pattern { text, glob: None }),
        Compare::Event => {
            text.value = event_name(cx, &text)?.to_owned();
            return Some(Pattern { text, glob: None });
        }
        Compare::Glob => {}
    }
    match GlobBuilder::new(&text.value)
        .literal_separator(true)
        .build()
    {
        Ok(g) => Some(Pattern {
            glob: Some(g.compile_matcher()),
            text,
        }),
        Err(e) => {
            cx.error(
                Code::InvalidGlob,
                &text.at,
                format!("`{}` is not a valid glob: {}", text.value, e.kind()),
                Some(
                    "`*` matches within one path segment, `**` across segments, `{a,b}` either"
                        .into(),
                ),
            );
            None
        }
    }
}

/// Our name for an event value; Drone's `custom` is `manual`, `rollback` is `promote`.
fn event_name(cx: &mut Cx, text: &Sp<String>) -> Option<&'static str> {
    if let Some(event) = EVENTS.iter().find(|e| **e == text.value) {
        return Some(event);
    }
    match text.value.as_str() {
        "custom" => Some("manual"),
        "rollback" => Some("promote"),
        other => {
            invalid_word(cx, &text.at, "build event", other, &EVENTS);
            None
        }
    }
}
