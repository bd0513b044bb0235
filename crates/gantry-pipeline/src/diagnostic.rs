//! Problems found in a pipeline file: stable codes, positions, and rustc-like rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The file cannot be compiled.
    Error,
    /// The file compiles, but something in it is ignored or suspicious.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $id:literal, $name:literal, $doc:literal;)*) => {
        /// A stable diagnostic code. Serialised as its id (`E006`); [`Code::name`] is the
        /// readable name (`unknown-field`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $(
                #[doc = $doc]
                #[serde(rename = $id)]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in id order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable id, e.g. `E006`.
            pub fn id(self) -> &'static str {
                match self { $(Code::$variant => $id,)* }
            }

            /// The stable readable name, e.g. `unknown-field`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// One line saying what the code means.
            pub fn description(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "E001", "yaml-syntax", "The file is not valid YAML.";
    FileTooLarge = "E002", "file-too-large", "The file is larger than 1 MiB.";
    AliasBomb = "E003", "alias-bomb", "Aliases expand to too much data.";
    TooDeep = "E004", "too-deep", "Values are nested too deeply.";
    DuplicateKey = "E005", "duplicate-key", "A key appears twice in the same map.";
    UnknownField = "E006", "unknown-field", "A key that this place does not accept.";
    MissingField = "E007", "missing-field", "A required key is missing.";
    InvalidType = "E008", "invalid-type", "A value has the wrong type (e.g. a map where a list belongs).";
    InvalidValue = "E009", "invalid-value", "A value is not one of the accepted ones.";
    DuplicateStep = "E010", "duplicate-step", "Two steps or services share a name.";
    UnknownDependency = "E011", "unknown-dependency", "`depends_on` names no step.";
    DependencyCycle = "E012", "dependency-cycle", "Steps depend on each other in a cycle.";
    FilteredDependency = "E013", "filtered-dependency", "A step depends on a step that its `when` removed for this build.";
    InvalidName = "E014", "invalid-name", "A step, service or stage name has characters outside `[a-z0-9_-]`.";
    UnknownVariable = "E015", "unknown-variable", "`${VAR}` names no variable of the build environment.";
    InvalidDuration = "E016", "invalid-duration", "A duration is not like `90s`, `10m` or `1h30m`.";
    UntrustedPrivileged = "E017", "untrusted-privileged", "`privileged` in a repository that is not trusted.";
    UntrustedVolume = "E018", "untrusted-volume", "A host volume in a repository that is not trusted.";
    ReservedEnv = "E019", "reserved-env", "`environment` sets a name reserved for Gantry.";
    TooManySteps = "E020", "too-many-steps", "More than 1,000 steps in a pipeline, or more than 10,000 over all plans of a file.";
    UnknownSecret = "E021", "unknown-secret", "`from_secret` names a secret the repository does not have.";
    UnknownStage = "E022", "unknown-stage", "`stage` names no entry of `stages`.";
    InvalidPath = "E023", "invalid-path", "A workspace or volume path is relative, contains `..` or NUL.";
    UnknownVolume = "E024", "unknown-volume", "A step mounts a volume the pipeline does not declare.";
    UnsupportedPipeline = "E025", "unsupported-pipeline", "A Drone pipeline type other than `docker`.";
    NoSteps = "E026", "no-steps", "A pipeline without steps.";
    InvalidGlob = "E027", "invalid-glob", "A glob pattern in a condition does not parse.";
    InvalidMatrix = "E028", "invalid-matrix", "The matrix is empty or an include/exclude entry is malformed.";
    ConflictingFields = "E029", "conflicting-fields", "Two keys that cannot be used together.";
    InvalidSize = "E030", "invalid-size", "A memory size or CPU count is not understood.";
    DuplicatePipeline = "E031", "duplicate-pipeline", "Two pipelines of a multi-document file share a name.";
    InvalidContext = "E032", "invalid-context", "The build facts given to the compiler are invalid (e.g. an unknown event).";
    TooManyEntries = "E033", "too-many-entries", "More than 64 documents in a file, or more than 1,000 entries in an `environment`, `settings` or `labels` map.";
    PrivateRegistry = "E034", "private-registry", "An image's registry is a loopback, link-local, metadata or unspecified address, and private registries are not allowed.";
    IgnoredField = "W001", "ignored-field", "A Drone key that Gantry accepts but does not use.";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// One problem in a pipeline file, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable code (`E011`); [`Code::name`] gives `unknown-dependency`.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file name as given to [`crate::lint`] / [`crate::compile`].
    pub file: String,
    /// 1-based line (0 when the problem concerns the whole file).
    pub line: u32,
    /// 1-based column in characters (0 when the problem concerns the whole file).
    pub column: u32,
    /// Where in the document: `steps[2].depends_on[0]` (empty for the whole file).
    pub path: String,
    /// What to do about it, e.g. "did you mean `build`?".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders like rustc: a header, the source line with a caret under the column, and
    /// the help. Control characters from the file (an ANSI escape in a YAML string) are
    /// shown escaped, never sent to the terminal raw.
    pub fn render(&self, source: &str) -> String {
        let file = escape_controls(&self.file);
        let place = if self.line == 0 {
            file
        } else {
            format!("{file}:{}:{}", self.line, self.column)
        };
        let mut out = format!(
            "{place}: {}[{}]: {}\n",
            self.severity.as_str(),
            self.code.id(),
            escape_controls(&self.message)
        );
        let source_line = (self.line > 0)
            .then(|| source.lines().nth(self.line as usize - 1))
            .flatten();
        if let Some(text) = source_line {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            let (shown, caret_at) = display_line(text, self.column.max(1) as usize - 1);
            let label = if self.path.is_empty() {
                String::new()
            } else {
                format!(" {}", escape_controls(&self.path))
            };
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {shown}");
            let _ = writeln!(out, "{gutter} | {}^{label}", " ".repeat(caret_at));
        } else if !self.path.is_empty() {
            let _ = writeln!(out, "  = at: {}", escape_controls(&self.path));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {}", escape_controls(help));
        }
        out
    }
}

/// `text` with every control character but a tab shown as an escape (`\u{1b}`).
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if ch.is_control() && ch != '\t' {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The line as displayed (tabs expanded to 4 spaces, control characters escaped) and the
/// display column of the character at index `column` (characters, not bytes, wide
/// characters count twice).
fn display_line(text: &str, column: usize) -> (String, usize) {
    let mut shown = String::with_capacity(text.len());
    let mut width = 0;
    let mut caret_at = None;
    for (index, ch) in text.chars().enumerate() {
        if index == column {
            caret_at = Some(width);
        }
        if ch == '\t' {
            shown.push_str("    ");
            width += 4;
        } else if ch.is_control() {
            let escaped: String = ch.escape_default().collect();
            width += escaped.len();
            shown.push_str(&escaped);
        } else {
            shown.push(ch);
            width += char_width(ch);
        }
    }
    (shown, caret_at.unwrap_or(width))
}

/// Terminal width of a character: 0 for combining marks, 2 for East Asian wide
/// characters and emoji, 1 otherwise (close enough for a caret, without a table crate).
fn char_width(ch: char) -> usize {
    match ch as u32 {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Sorts by position (file, line, column), keeping the order of equal positions.
pub(crate) fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, column: u32) -> Diagnostic {
        Diagnostic {
            code: Code::UnknownField,
            severity: Severity::Error,
            message: "m".into(),
            file: "f.yml".into(),
            line,
            column,
            path: "steps[0].x".into(),
            help: Some("h".into()),
        }
    }

    #[test]
    fn caret_counts_characters_and_expands_tabs() {
        let rendered = at(1, 4).render("\té x");
        assert!(rendered.contains("1 |     é x\n"), "{rendered}");
        assert!(rendered.contains("  |       ^ steps[0].x\n"), "{rendered}");
    }

    #[test]
    fn caret_after_wide_characters_moves_two_columns_each() {
        let rendered = at(1, 3).render("日本x");
        assert!(rendered.contains("  |     ^"), "{rendered}");
    }

    #[test]
    fn line_past_the_end_renders_without_source() {
        let rendered = at(9, 1).render("a: 1\n");
        assert!(rendered.starts_with("f.yml:9:1: error[E006]: m\n"));
        assert!(rendered.contains("= at: steps[0].x"));
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut d = at(1, 5);
        d.message = "bad `\u{1b}[31mred`".into();
        d.help = Some("\u{7}".into());
        let rendered = d.render("a: \u{1b}[2Jx\n");
        assert!(
            !rendered.contains('\u{1b}') && !rendered.contains('\u{7}'),
            "{rendered}"
        );
        assert!(rendered.contains("bad `\\u{1b}[31mred`"), "{rendered}");
        assert!(rendered.contains("1 | a: \\u{1b}[2Jx\n"), "{rendered}");
        let caret = format!("  | {}^", " ".repeat(9));
        assert!(rendered.contains(&caret), "{rendered}");
    }

    #[test]
    fn codes_are_unique() {
        let mut ids: Vec<_> = Code::ALL.iter().map(|c| c.id()).collect();
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.name()).collect();
        ids.sort();
        ids.dedup();
        names.sort();
        names.dedup();
        assert_eq!(ids.len(), Code::ALL.len());
        assert_eq!(names.len(), Code::ALL.len());
    }
}
