//! `matrix:`: axes of values, plus `include`/`exclude` combinations.

use std::collections::BTreeMap;

use crate::ast::{Axis, Matrix};
use crate::diagnostic::Code;
use crate::parse::units;
use crate::read::{self, At, Cx, Fields, Sp, index_path};
use crate::suggest;
use crate::yaml::{Node, Value};

/// Most combinations a matrix may produce.
pub const MAX_COMBINATIONS: usize = 256;

/// Reads `matrix:`.
pub fn matrix(cx: &mut Cx, node: &Node, path: &str) -> Option<Matrix> {
    let mut fields = Fields::open(cx, node, path)?;
    let include = fields.take("include").map(|f| (f.node, f.at.clone()));
    let exclude = fields.take("exclude").map(|f| (f.node, f.at.clone()));
    let (axes, any_axis_written) = axes(cx, &mut fields);
    let at = fields.at.clone();
    let axis_names: Vec<String> = axes.iter().map(|(n, _)| n.value.clone()).collect();
    let include = include.map_or_else(Vec::new, |(n, a)| combinations(cx, n, &a, None));
    let exclude = exclude.map_or_else(Vec::new, |(n, a)| {
        combinations(cx, n, &a, Some(&axis_names))
    });
    if axes.is_empty() && include.is_empty() {
        if any_axis_written {
            return None; // each bad axis is reported already
        }
        cx.error(
            Code::InvalidMatrix,
            &at,
            "the matrix has no variables",
            Some("add variables with lists of values, like `RUST: [stable, beta]`".into()),
        );
        return None;
    }
    let count = axes
        .iter()
        .map(|(_, v)| v.len())
        .try_fold(1usize, usize::checked_mul);
    if count.is_none_or(|c| c.saturating_add(include.len()) > MAX_COMBINATIONS) {
        cx.error(
            Code::InvalidMatrix,
            &at,
            format!("the matrix has more than {MAX_COMBINATIONS} combinations"),
            Some("use fewer values, or list the combinations you need with `include`".into()),
        );
        return None;
    }
    Some(Matrix {
        axes,
        include,
        exclude,
    })
}

/// The variables and their values; also whether any was written (even a bad one).
fn axes(cx: &mut Cx, fields: &mut Fields) -> (Vec<Axis>, bool) {
    let mut axes = Vec::new();
    let mut any_axis_written = false;
    for field in fields.rest() {
        any_axis_written = true;
        let name = Sp {
            value: field.key.clone(),
            at: field.key_at.clone(),
        };
        if !variable_ok(cx, &name) {
            continue;
        }
        let values = axis_values(cx, field.node, &field.at);
        if values.is_empty() {
            cx.error(
                Code::InvalidMatrix,
                &field.at,
                format!("matrix variable `{}` has no values", field.key),
                Some("give a list of values, like `[stable, beta]`".into()),
            );
            continue;
        }
        axes.push((name, values));
    }
    (axes, any_axis_written)
}

/// Reports a matrix variable name that is not a usable, unreserved variable name.
fn variable_ok(cx: &mut Cx, name: &Sp<String>) -> bool {
    if !units::is_env_name(&name.value) {
        cx.error(
            Code::InvalidName,
            &name.at,
            format!("`{}` is not a valid matrix variable name", name.value),
            Some("use letters, digits and `_`, like `RUST_VERSION`".into()),
        );
        return false;
    }
    if crate::compile::env::is_reserved_everywhere(&name.value) {
        cx.error(
            Code::ReservedEnv,
            &name.at,
            format!(
                "`{}` is reserved and cannot be a matrix variable",
                name.value
            ),
            Some("matrix variables reach every step, plugins included; `CI_*`, `DRONE_*`, `PLUGIN_*`, `GIT_*`, `PATH`, `HOME`, `LD_*` and proxies are not allowed".into()),
        );
        return false;
    }
    true
}

fn axis_values(cx: &mut Cx, node: &Node, at: &At) -> Vec<String> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut values = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.text(cx.source) {
            Some(text) => values.push(text),
            None => cx.wrong_type(
                item,
                &At::of(item, index_path(&at.path, i)),
                "a string or number",
            ),
        }
    }
    values
}

/// `include`/`exclude`: a list of maps of variable → value. With `axes`, every key must
/// be one of them.
fn combinations(
    cx: &mut Cx,
    node: &Node,
    at: &At,
    axes: Option<&[String]>,
) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for (i, item) in read::list(cx, node, at, "a list of maps")
        .iter()
        .enumerate()
    {
        let Some(mut fields) = Fields::open(cx, item, &index_path(&at.path, i)) else {
            continue;
        };
        let mut combination = BTreeMap::new();
        for field in fields.rest() {
            let name = Sp {
                value: field.key.clone(),
                at: field.key_at.clone(),
            };
            if let Some(axes) = axes
                && !axes.contains(&field.key)
            {
                let help = suggest::did_you_mean(&field.key, axes.iter().map(String::as_str));
                cx.error(
                    Code::InvalidMatrix,
                    &field.key_at,
                    format!("`{}` is not a matrix variable", field.key),
                    help,
                );
                continue;
            }
            if !variable_ok(cx, &name) {
                continue;
            }
            match field.node.text(cx.source) {
                Some(value) => {
                    combination.insert(field.key.clone(), value);
                }
                None => cx.wrong_type(field.node, &field.at, "a string or number"),
            }
        }
        if !combination.is_empty() {
            out.push(combination);
        }
    }
    out
}
