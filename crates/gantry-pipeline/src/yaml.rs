//! YAML → a generic node tree that keeps the position of every key and value.
//!
//! serde-saphyr parses (anchors, aliases and `<<:` merges included) under a budget that
//! rejects alias bombs and deep nesting quickly; a custom visitor turns every value into a
//! [`Node`]. The typed pipeline model is built from these nodes by hand so that every
//! problem is reported, not only the first.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as YamlError, MessageFormatter, Spanned};

use crate::diagnostic::Code;

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting of maps and lists accepted. Pipelines need about ten levels; the limit
/// keeps the recursive deserializer well inside a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 24;
/// Most nodes (after alias expansion) a file may produce.
const MAX_NODES: usize = 200_000;
/// Most events aliases may replay: what a few legitimate anchors need, far below a bomb.
const MAX_REPLAYED_EVENTS: usize = 100_000;

/// A YAML value and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line where it is used (for an alias: the alias).
    pub line: u32,
    /// 1-based column in characters where it is used.
    pub column: u32,
    /// Byte offset of its definition in the source (the anchored text for an alias).
    pub start: usize,
    /// Byte length of its definition in the source (0 for collections).
    pub len: usize,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (and YAML 1.1's `yes`/`no`/`on`/`off`).
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map, keys in file order (duplicates kept: they are reported later).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The source text of a scalar as written (numbers and booleans keep their spelling:
    /// `1.10` stays `1.10`, `yes` stays `yes`); the parsed string for strings.
    pub fn text(&self, source: &str) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(
                source
                    .get(self.start..self.start + self.len)
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.value.scalar_fallback()),
            ),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// What kind of value this is, for messages ("a list", "a map", ...).
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Value {
    fn scalar_fallback(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            _ => String::new(),
        }
    }
}

/// A problem that stops parsing: a syntax error or a budget breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// Which diagnostic it becomes.
    pub code: Code,
    /// What went wrong.
    pub message: String,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// What to do about it.
    pub help: Option<String>,
}

/// Parses every document of `source` (documents separated by `---`).
pub fn parse_documents(source: &str) -> Result<Vec<Node>, ParseProblem> {
    if source.len() > MAX_FILE_BYTES {
        return Err(ParseProblem {
            code: Code::FileTooLarge,
            message: format!(
                "the file is {} bytes; pipeline files may be at most {MAX_FILE_BYTES} bytes (1 MiB)",
                source.len()
            ),
            line: 0,
            column: 0,
            help: Some("split the pipeline, or move scripts into files in the repository".into()),
        });
    }
    let raw: Vec<Spanned<RawNode>> = serde_saphyr::from_multiple_with_options(source, options())
        .map_err(|e| problem(e, source))?;
    Ok(raw.into_iter().map(into_node).collect())
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_reader_input_bytes = Some(MAX_FILE_BYTES);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    // Duplicates are reported by the model builder, all of them, with both positions.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    options
}

/// Turns a parser error into one problem with its position.
fn problem(error: YamlError, source: &str) -> ParseProblem {
    let error = unwrap_alias_error(error);
    let (line, column) = error
        .location()
        .map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
    let (code, message, help) = match &error {
        YamlError::Budget { breach, .. } => budget_problem(breach),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => alias_bomb(),
        YamlError::AliasReplayStackDepthExceeded { .. } => too_deep(),
        _ => {
            let text = serde_saphyr::DefaultMessageFormatter.format_message(&error);
            // The scanner reports flow nesting past its limit as a plain message.
            if text.contains("recursion limit") || text.contains("nesting") {
                return ParseProblem {
                    line,
                    column,
                    ..too_deep_problem()
                };
            }
            (
                Code::YamlSyntax,
                format!("invalid YAML: {text}"),
                Some(syntax_help(source, line, &text)),
            )
        }
    };
    ParseProblem {
        code,
        message,
        line,
        column,
        help,
    }
}

/// The most likely fix: `${VAR}` inside `[...]` needs quotes (`{` ends a value there).
fn syntax_help(source: &str, line: u32, message: &str) -> String {
    let text = source
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("");
    if message.contains("flow") && text.contains("${") {
        "inside `[...]` or `{...}`, quote values that contain `${`, like \"app:${CI_COMMIT_SHA}\""
            .into()
    } else if text.contains('\t') {
        "YAML does not allow tabs for indentation; use spaces".into()
    } else {
        "check the indentation and quoting near this position".into()
    }
}

fn unwrap_alias_error(error: YamlError) -> YamlError {
    match error {
        YamlError::AliasError { error, .. } => unwrap_alias_error(*error),
        YamlError::WithSnippet { error, .. } => unwrap_alias_error(*error),
        other => other,
    }
}

fn budget_problem(breach: &BudgetBreach) -> (Code, String, Option<String>) {
    match breach {
        BudgetBreach::Depth { .. } => too_deep(),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::Nodes { .. }
        | BudgetBreach::Events { .. } => alias_bomb(),
        other => (
            Code::FileTooLarge,
            format!("the document is too large to process ({other:?})"),
            Some("split the pipeline into smaller files".into()),
        ),
    }
}

fn alias_bomb() -> (Code, String, Option<String>) {
    (
        Code::AliasBomb,
        format!(
            "the document expands to too much data (more than {MAX_NODES} values after \
             expanding aliases)"
        ),
        Some("aliases (`*name`) that repeat other aliases multiply; use fewer levels".into()),
    )
}

fn too_deep_problem() -> ParseProblem {
    let (code, message, help) = too_deep();
    ParseProblem {
        code,
        message,
        line: 0,
        column: 0,
        help,
    }
}

fn too_deep() -> (Code, String, Option<String>) {
    (
        Code::TooDeep,
        format!("values are nested more than {MAX_DEPTH} levels deep"),
        Some("a pipeline needs only a few levels of nesting; flatten this value".into()),
    )
}

fn into_node(raw: Spanned<RawNode>) -> Node {
    let used = raw.referenced;
    let defined = raw.defined.span();
    let value = match raw.value {
        RawNode::Null => Value::Null,
        RawNode::Bool(b) => Value::Bool(b),
        RawNode::Int(i) => Value::Int(i),
        RawNode::Float(f) => Value::Float(f),
        RawNode::Str(s) => Value::Str(s),
        RawNode::Seq(items) => Value::Seq(items.into_iter().map(into_node).collect()),
        RawNode::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (into_node(k), into_node(v)))
                .collect(),
        ),
    };
    Node {
        value,
        line: used.line() as u32,
        column: used.column() as u32,
        start: defined.byte_offset().unwrap_or(0) as usize,
        len: defined.byte_len().unwrap_or(0) as usize,
    }
}

/// What the visitor builds: a value whose children carry serde-saphyr spans.
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
        Ok(i128::try_from(v).map_or(RawNode::Float(v as f64), RawNode::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.into()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawNode::Map(entries))
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(RawNodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(source: &str) -> Node {
        parse_documents(source).unwrap().remove(0)
    }

    #[test]
    fn scalars_keep_their_spelling_and_position() {
        let node = one("a: 1.10\nb: yes\nc: 'q'\n");
        let Value::Map(entries) = &node.value else {
            panic!("map expected")
        };
        let texts: Vec<_> = entries
            .iter()
            .map(|(_, v)| v.text("a: 1.10\nb: yes\nc: 'q'\n"))
            .collect();
        assert_eq!(
            texts,
            [Some("1.10".into()), Some("yes".into()), Some("q".into())]
        );
        assert_eq!((entries[1].1.line, entries[1].1.column), (2, 4));
    }

    #[test]
    fn merge_keys_let_explicit_keys_win() {
        let node = one("a: &x {b: 1, c: 2}\nd:\n  <<: *x\n  b: 3\n");
        let Value::Map(top) = &node.value else {
            panic!()
        };
        let Value::Map(d) = &top[1].1.value else {
            panic!()
        };
        let b: Vec<_> = d
            .iter()
            .filter(|(k, _)| k.value == Value::Str("b".into()))
            .collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].1.value, Value::Int(3));
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let err = parse_documents("a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!(err.code, Code::YamlSyntax);
        assert_eq!((err.line, err.column), (2, 2));
        assert!(!err.message.contains("at line"), "{}", err.message);
    }

    #[test]
    fn deep_block_nesting_is_refused_without_overflowing_a_small_stack() {
        let mut deep = String::new();
        for i in 0..200 {
            deep.push_str(&" ".repeat(i));
            deep.push_str("a:\n");
        }
        let code = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse_documents(&deep).unwrap_err().code)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(code, Code::TooDeep);
    }

    #[test]
    fn deep_flow_nesting_is_refused() {
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert_eq!(parse_documents(&deep).unwrap_err().code, Code::TooDeep);
    }

    #[test]
    fn several_documents_and_empty_files() {
        assert_eq!(parse_documents("---\na: 1\n---\nb: 2\n").unwrap().len(), 2);
        assert!(parse_documents("").unwrap().is_empty());
    }
}
