//! The typed pipeline model, as written (before conditions, ordering and substitution).
//! Every value keeps where it came from so that later checks can point at it.

use std::collections::BTreeMap;

use globset::GlobMatcher;

use crate::plan::{FailurePolicy, PullPolicy, Resources, RunOn};
use crate::read::{At, Sp};

/// Which vocabulary a document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `.pipeline.yml`.
    Gantry,
    /// Drone 1.x `kind: pipeline` documents.
    Drone,
}

/// One pipeline (one YAML document).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Which vocabulary it was written in.
    pub dialect: Dialect,
    /// Where the document starts.
    pub at: At,
    /// `name:` (the plan is called `default` without one).
    pub name: Option<Sp<String>>,
    /// Pipeline-level `when` (Drone: `trigger`).
    pub when: Option<When>,
    /// `workspace.path` (Drone: `base` joined with `path`).
    pub workspace: Option<Sp<String>>,
    /// `clone:` settings.
    pub clone: CloneConfig,
    /// Runner labels (`labels`, Drone `platform`/`node`).
    pub labels: BTreeMap<String, String>,
    /// `stages:` in order, and where the key is.
    pub stages: Option<(At, Vec<Sp<String>>)>,
    /// Pipeline-level `environment`, given to every step and service.
    pub environment: Vec<EnvEntry>,
    /// `volumes:` declarations.
    pub volumes: Vec<VolumeDecl>,
    /// `services:`.
    pub services: Vec<StepDef>,
    /// `steps:`.
    pub steps: Vec<StepDef>,
    /// `matrix:`.
    pub matrix: Option<Matrix>,
    /// Drone's pipeline-level `depends_on`: names of pipelines of the same file.
    pub depends_on: Vec<Sp<String>>,
}

/// `clone:` settings.
#[derive(Debug, Clone, Default)]
pub struct CloneConfig {
    /// `disable: true`.
    pub disable: bool,
    /// `depth:` (default 50).
    pub depth: Option<u64>,
    /// `retries:`.
    pub retries: u32,
    /// Drone's `skip_verify: true`.
    pub skip_verify: bool,
}

/// One `environment` entry.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    /// The variable name.
    pub name: Sp<String>,
    /// Its value.
    pub value: EnvValue,
}

/// An `environment` value.
#[derive(Debug, Clone)]
pub enum EnvValue {
    /// A string, substituted at compile time.
    Text(Sp<String>),
    /// `{ from_secret: name }`.
    Secret(Sp<String>),
}

/// A `settings` value (becomes a `PLUGIN_*` variable).
#[derive(Debug, Clone)]
pub enum Setting {
    /// A string, substituted at compile time.
    Text(Sp<String>),
    /// A number or boolean, as written.
    Literal(String),
    /// `null`.
    Null,
    /// A list.
    List(Vec<Setting>),
    /// A map (becomes JSON).
    Map(Vec<(String, Setting)>),
    /// `{ from_secret: name }` (only directly under a setting).
    Secret(Sp<String>),
}

/// A pipeline `volumes:` entry.
#[derive(Debug, Clone)]
pub struct VolumeDecl {
    /// The volume name steps refer to.
    pub name: Sp<String>,
    /// `host: {path}`: a host directory (trusted repositories only); `temp: {}` otherwise.
    pub host: Option<Sp<String>>,
}

/// A step's `volumes:` entry.
#[derive(Debug, Clone)]
pub enum VolumeUse {
    /// `{name, path}`: a volume declared at the pipeline level.
    Declared {
        /// Declared volume name.
        name: Sp<String>,
        /// Path in the container.
        target: Sp<String>,
    },
    /// `"name:/path"`: a workflow-scoped volume.
    Named {
        /// Volume name.
        name: Sp<String>,
        /// Path in the container.
        target: Sp<String>,
    },
    /// `"/host/path:/path"`: a host directory (trusted repositories only).
    Host {
        /// Host path.
        source: Sp<String>,
        /// Path in the container.
        target: Sp<String>,
    },
}

/// A step or service as written.
#[derive(Debug, Clone, Default)]
pub struct StepDef {
    /// Where the step's map is (`steps[2]`).
    pub at: At,
    /// `name:`.
    pub name: Option<Sp<String>>,
    /// `image:`.
    pub image: Option<Sp<String>>,
    /// `commands:`.
    pub commands: Vec<Sp<String>>,
    /// `entrypoint:`.
    pub entrypoint: Option<Vec<Sp<String>>>,
    /// `environment:`.
    pub environment: Vec<EnvEntry>,
    /// `settings:`.
    pub settings: Vec<(Sp<String>, Setting)>,
    /// `depends_on:`, and whether the key is present (even empty, it makes the file a DAG).
    pub depends_on: Option<Vec<Sp<String>>>,
    /// `stage:`.
    pub stage: Option<Sp<String>>,
    /// `when:`.
    pub when: Option<When>,
    /// `failure:`.
    pub failure: FailurePolicy,
    /// `timeout:` in seconds.
    pub timeout: Option<u64>,
    /// `retries:`.
    pub retries: u32,
    /// `detach:`.
    pub detach: bool,
    /// `pull:`.
    pub pull: PullPolicy,
    /// Where `privileged: true` is, if it is.
    pub privileged: Option<At>,
    /// `volumes:`.
    pub volumes: Vec<VolumeUse>,
    /// `resources:`.
    pub resources: Resources,
    /// `approval:`.
    pub approval: Option<Approval>,
}

/// An `approval:` block.
#[derive(Debug, Clone)]
pub struct Approval {
    /// `timeout:` in seconds.
    pub timeout: Option<u64>,
}

/// `when:`: alternatives (OR), each a set of conditions (AND).
#[derive(Debug, Clone)]
pub struct When {
    /// The alternatives.
    pub alternatives: Vec<Condition>,
}

/// One map of a `when`.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// `event:` values (exact).
    pub event: Option<Filter>,
    /// Glob filters by key.
    pub globs: Vec<(GlobKey, Filter)>,
    /// `status:` (step level only).
    pub status: Option<RunOn>,
}

/// A condition key matched with globs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobKey {
    /// `branch`.
    Branch,
    /// `ref`.
    Ref,
    /// `tag`.
    Tag,
    /// `path` (Drone-style `paths` too).
    Path,
    /// `target` (the promote target).
    Target,
    /// `cron` (the cron job name).
    Cron,
    /// `repo`.
    Repo,
}

impl GlobKey {
    /// The YAML key.
    pub fn key(self) -> &'static str {
        match self {
            GlobKey::Branch => "branch",
            GlobKey::Ref => "ref",
            GlobKey::Tag => "tag",
            GlobKey::Path => "path",
            GlobKey::Target => "target",
            GlobKey::Cron => "cron",
            GlobKey::Repo => "repo",
        }
    }
}

/// Include/exclude values of one condition key.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Matches when any of these matches (or when empty).
    pub include: Vec<Pattern>,
    /// Never matches when any of these matches.
    pub exclude: Vec<Pattern>,
}

/// One value of a filter.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub text: Sp<String>,
    /// Compiled glob (`None` for `event`, compared exactly).
    pub glob: Option<GlobMatcher>,
}

/// A matrix variable and its values.
pub type Axis = (Sp<String>, Vec<String>);

/// `matrix:`.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Axes in file order: variable name and its values.
    pub axes: Vec<Axis>,
    /// Extra combinations.
    pub include: Vec<BTreeMap<String, String>>,
    /// Combinations to leave out (an entry matches when all its keys match).
    pub exclude: Vec<BTreeMap<String, String>>,
}
