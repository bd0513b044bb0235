//! How a run is carried out: limits and the secrets it may use.

use std::collections::BTreeMap;
use std::time::Duration;

/// Settings for [`Runtime`](crate::Runtime).
#[derive(Clone)]
pub struct RunConfig {
    /// Most steps running at once (services and started detached steps do not count);
    /// 0 is taken as 1.
    pub concurrency: usize,
    /// Timeout of a step without `timeout_secs`.
    pub default_timeout: Duration,
    /// Secret name → value. Every value is masked in the run's logs and errors.
    pub secrets: BTreeMap<String, String>,
    /// After a cancel, how long final step reports may wait for room in a full event
    /// channel before they are dropped (see [`Runtime::run`](crate::Runtime::run)).
    pub delivery_grace: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            default_timeout: Duration::from_secs(60 * 60),
            secrets: BTreeMap::new(),
            delivery_grace: Duration::from_secs(5),
        }
    }
}

// Written by hand so that printing a config never prints a secret value.
impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("concurrency", &self.concurrency)
            .field("default_timeout", &self.default_timeout)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("delivery_grace", &self.delivery_grace)
            .finish()
    }
}
