//! Plugin `settings` → `PLUGIN_*` variables.

use crate::ast::Setting;
use crate::plan::SecretEnv;
use crate::read::Sp;

/// A setting's variable name: `PLUGIN_` and the key upper-cased, `-` as `_`.
pub fn variable_name(key: &str) -> String {
    format!("PLUGIN_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// What a setting becomes.
pub enum PluginValue {
    /// A plain variable.
    Plain(String),
    /// A secret resolved at run time.
    Secret(SecretEnv),
}

/// Renders one setting; `text` substitutes strings (and reports their problems).
pub fn render(
    key: &str,
    value: &Setting,
    text: &mut dyn FnMut(&Sp<String>) -> String,
) -> PluginValue {
    let env = variable_name(key);
    match value {
        Setting::Secret(secret) => PluginValue::Secret(SecretEnv {
            env,
            secret: secret.value.clone(),
        }),
        Setting::List(items) if items.iter().all(is_scalar) => PluginValue::Plain(
            items
                .iter()
                .map(|item| scalar(item, text))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Setting::List(_) | Setting::Map(_) => PluginValue::Plain(json(value, text).to_string()),
        scalar_value => PluginValue::Plain(scalar(scalar_value, text)),
    }
}

fn is_scalar(setting: &Setting) -> bool {
    matches!(
        setting,
        Setting::Text(_) | Setting::Literal(_) | Setting::Null
    )
}

fn scalar(setting: &Setting, text: &mut dyn FnMut(&Sp<String>) -> String) -> String {
    match setting {
        Setting::Text(s) => text(s),
        Setting::Literal(raw) => raw.clone(),
        _ => String::new(),
    }
}

fn json(setting: &Setting, text: &mut dyn FnMut(&Sp<String>) -> String) -> serde_json::Value {
    use serde_json::Value;
    match setting {
        Setting::Text(s) => Value::String(text(s)),
        // Integers and booleans stay JSON numbers/booleans; anything else (`1.10`, `yes`)
        // keeps its spelling as a string rather than being re-formatted.
        Setting::Literal(raw) => match (raw.parse::<i64>(), raw.as_str()) {
            (Ok(n), _) => Value::from(n),
            (_, "true") => Value::Bool(true),
            (_, "false") => Value::Bool(false),
            _ => Value::String(raw.clone()),
        },
        Setting::Null | Setting::Secret(_) => Value::Null,
        Setting::List(items) => Value::Array(items.iter().map(|i| json(i, text)).collect()),
        Setting::Map(entries) => {
            // Rendered in source order (so problems are reported in that order), then keys
            // sorted as Drone's Go encoder does, whatever map order serde_json is built with.
            let mut pairs: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| (k.clone(), json(v, text)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().collect())
        }
    }
}
