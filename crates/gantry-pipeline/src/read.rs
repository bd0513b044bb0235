//! Reading typed values out of [`Node`]s while collecting every problem.
//!
//! Nothing here stops at the first problem: a bad value is reported and skipped, and the
//! caller carries on with what is left.

use std::collections::HashMap;

use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::suggest;
use crate::yaml::{Node, Value};

/// Where something is: position and document path (`steps[2].depends_on[0]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At {
    /// 1-based line (0: the whole file).
    pub line: u32,
    /// 1-based column in characters.
    pub column: u32,
    /// Document path.
    pub path: String,
    /// Byte offset of the value's definition (used to find `${VAR}` inside it).
    pub start: usize,
    /// Byte length of the value's definition.
    pub len: usize,
}

impl At {
    /// The position of `node`, named `path`.
    pub fn of(node: &Node, path: impl Into<String>) -> At {
        At {
            line: node.line,
            column: node.column,
            path: path.into(),
            start: node.start,
            len: node.len,
        }
    }
}

/// A value and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it is.
    pub at: At,
}

/// `parent.key` (or `key` at the top).
pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The diagnostics sink for one file, with the source to take scalar spellings from.
pub struct Cx<'s> {
    /// File name shown in diagnostics.
    pub file: &'s str,
    /// The whole source text.
    pub source: &'s str,
    /// Everything found so far.
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    /// An empty sink for `file`.
    pub fn new(file: &'s str, source: &'s str) -> Self {
        Self {
            file,
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Records an error at `at`.
    pub fn error(&mut self, code: Code, at: &At, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Error, code, at, message.into(), help);
    }

    /// Records a warning at `at`.
    pub fn warn(&mut self, code: Code, at: &At, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Warning, code, at, message.into(), help);
    }

    fn push(
        &mut self,
        severity: Severity,
        code: Code,
        at: &At,
        message: String,
        help: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            code,
            severity,
            message,
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            path: at.path.clone(),
            help,
        });
    }

    /// True when an error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Line and column (characters) of a byte offset in the source.
    pub fn position_of(&self, byte: usize) -> (u32, u32) {
        let before = self.source.get(..byte).unwrap_or(self.source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line as u32, column as u32)
    }

    /// Reports that `node` is not what was expected.
    pub fn wrong_type(&mut self, node: &Node, at: &At, expected: &str) {
        let name = at.path.rsplit(['.']).next().unwrap_or(&at.path).to_owned();
        self.error(
            Code::InvalidType,
            at,
            format!("`{name}` must be {expected}, found {}", node.kind()),
            None,
        );
    }
}

/// One entry taken out of a map.
pub struct Field<'n> {
    /// The value.
    pub node: &'n Node,
    /// Where the value is (its path ends with the key).
    pub at: At,
    /// Where the key is.
    pub key_at: At,
    /// The key.
    pub key: String,
}

/// The entries of a map, taken one by one; whatever is left is an unknown field.
pub struct Fields<'n> {
    /// Where the map is.
    pub at: At,
    entries: Vec<(Field<'n>, bool)>,
    /// Key → index in `entries` (duplicate detection and `take` without a scan).
    index: HashMap<String, usize>,
}

impl<'n> Fields<'n> {
    /// Opens `node` as a map at `path`, reporting a non-map, non-string keys and duplicate
    /// keys (the first of duplicates is used). `null` opens as an empty map.
    pub fn open(cx: &mut Cx, node: &'n Node, path: &str) -> Option<Self> {
        let at = At::of(node, path);
        let pairs = match &node.value {
            Value::Map(pairs) => pairs.as_slice(),
            Value::Null => &[],
            _ => {
                cx.wrong_type(node, &at, "a map (`key: value` lines)");
                return None;
            }
        };
        let mut entries: Vec<(Field<'n>, bool)> = Vec::with_capacity(pairs.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
        for (key_node, value) in pairs {
            let Some(key) = key_node.text(cx.source) else {
                let key_at = At::of(key_node, path);
                cx.error(
                    Code::InvalidType,
                    &key_at,
                    format!("map keys must be strings, found {}", key_node.kind()),
                    None,
                );
                continue;
            };
            let field_path = key_path(path, &key);
            let key_at = At::of(key_node, field_path.clone());
            if let Some((first, _)) = index.get(&key).map(|&i| &entries[i]) {
                let help = format!(
                    "remove one of them (the first is at line {})",
                    first.key_at.line
                );
                cx.error(
                    Code::DuplicateKey,
                    &key_at,
                    format!("`{key}` appears twice"),
                    Some(help),
                );
                continue;
            }
            let field = Field {
                node: value,
                at: At::of(value, field_path),
                key_at,
                key,
            };
            index.insert(field.key.clone(), entries.len());
            entries.push((field, false));
        }
        Some(Self { at, entries, index })
    }

    /// Takes the entry named `key`.
    pub fn take(&mut self, key: &str) -> Option<&Field<'n>> {
        let &i = self.index.get(key)?;
        let (field, taken) = &mut self.entries[i];
        *taken = true;
        Some(field)
    }

    /// Every key, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(f, _)| f.key.as_str())
    }

    /// Where the key `key` is, if the map has it (taken or not).
    pub fn key_at(&self, key: &str) -> Option<&At> {
        self.index.get(key).map(|&i| &self.entries[i].0.key_at)
    }

    /// Every entry not taken yet, in file order (for free-form maps like `environment`).
    pub fn rest(&mut self) -> Vec<&Field<'n>> {
        self.entries
            .iter_mut()
            .filter(|(_, taken)| !*taken)
            .map(|(f, taken)| {
                *taken = true;
                &*f
            })
            .collect()
    }

    /// Reports every entry not taken as an unknown field, suggesting the closest of `known`.
    pub fn finish(self, cx: &mut Cx, place: &str, known: &[&str]) {
        for (field, taken) in &self.entries {
            if *taken {
                continue;
            }
            let help = suggest::did_you_mean(&field.key, known.iter().copied())
                .or_else(|| Some(format!("{place} accepts: {}", known.join(", "))));
            cx.error(
                Code::UnknownField,
                &field.key_at,
                format!("unknown field `{}` in {place}", field.key),
                help,
            );
        }
    }
}

/// A string (numbers and booleans are taken as written).
pub fn string(cx: &mut Cx, node: &Node, at: &At) -> Option<Sp<String>> {
    match node.text(cx.source) {
        Some(value) => Some(Sp {
            value,
            at: at.clone(),
        }),
        None => {
            cx.wrong_type(node, at, "a string");
            None
        }
    }
}

/// A list of strings; a single string is taken as a list of one.
pub fn strings(cx: &mut Cx, node: &Node, at: &At) -> Vec<Sp<String>> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| string(cx, item, &At::of(item, index_path(&at.path, i))))
            .collect(),
        Value::Map(_) | Value::Null => {
            cx.wrong_type(node, at, "a string or a list of strings");
            Vec::new()
        }
        _ => string(cx, node, at).into_iter().collect(),
    }
}

/// A boolean.
pub fn boolean(cx: &mut Cx, node: &Node, at: &At) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            cx.wrong_type(node, at, "`true` or `false`");
            None
        }
    }
}

/// A whole number within `0..=max`.
pub fn integer(cx: &mut Cx, node: &Node, at: &At, max: u64) -> Option<u64> {
    match node.value {
        Value::Int(i) if (0..=i128::from(max)).contains(&i) => Some(i as u64),
        Value::Int(_) => {
            cx.error(
                Code::InvalidValue,
                at,
                format!("`{}` must be between 0 and {max}", last_segment(&at.path)),
                None,
            );
            None
        }
        _ => {
            cx.wrong_type(node, at, "a whole number");
            None
        }
    }
}

/// One of `allowed` (with a suggestion when it is close to one).
pub fn choice(cx: &mut Cx, node: &Node, at: &At, allowed: &[&str]) -> Option<String> {
    let value = string(cx, node, at)?.value;
    if allowed.contains(&value.as_str()) {
        return Some(value);
    }
    let help = suggest::did_you_mean(&value, allowed.iter().copied())
        .unwrap_or_else(|| format!("use one of: {}", allowed.join(", ")));
    cx.error(
        Code::InvalidValue,
        at,
        format!("`{}` cannot be `{value}`", last_segment(&at.path)),
        Some(help),
    );
    None
}

/// The last key of a path (`steps[2].pull` → `pull`).
pub fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The items of a list (a reported error and nothing for anything else).
pub fn list<'n>(cx: &mut Cx, node: &'n Node, at: &At, what: &str) -> &'n [Node] {
    match &node.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        _ => {
            cx.wrong_type(node, at, what);
            &[]
        }
    }
}
