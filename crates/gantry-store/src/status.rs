//! Text-backed enums: run statuses, build events, forge kinds, token roles.

/// Declares an enum stored as TEXT, with `as_str` and `parse`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $table:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads the stored text back; unknown text is a clear error.
            pub fn parse(text: &str) -> Result<Self, $crate::error::StoreError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::error::StoreError::InvalidInput {
                        field: $table.to_string(),
                        reason: format!(
                            "`{other}` is not one of: {}",
                            [$($text),+].join(", ")
                        ),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// Status of a build, a workflow or a step.
    ///
    /// Moves forward only: `pending` → `running`/`blocked` → a terminal state. `blocked`
    /// (waiting for an approval) may go back to `running`. Terminal states are final.
    RunStatus, "status" {
        /// Created, waiting for a runner.
        Pending = "pending",
        /// Running on a runner.
        Running = "running",
        /// Waiting for a person to approve.
        Blocked = "blocked",
        /// Finished well.
        Success = "success",
        /// A step failed.
        Failure = "failure",
        /// Cancelled by a person.
        Killed = "killed",
        /// Could not run (bad config, lost runner, server crash).
        Error = "error",
        /// Not run because its conditions did not match or an earlier step failed.
        Skipped = "skipped",
    }
}

impl RunStatus {
    /// The statuses a row may still move out of.
    pub const ACTIVE: &'static [RunStatus] =
        &[RunStatus::Pending, RunStatus::Running, RunStatus::Blocked];

    /// True for a final status.
    pub fn is_terminal(self) -> bool {
        !Self::ACTIVE.contains(&self)
    }
}

text_enum! {
    /// What started a build.
    BuildEvent, "event" {
        /// A branch push.
        Push = "push",
        /// A pull (merge) request opened or updated.
        PullRequest = "pull_request",
        /// A tag pushed.
        Tag = "tag",
        /// Triggered by a person through the API.
        Manual = "manual",
        /// A cron job.
        Cron = "cron",
        /// A finished build promoted to a deploy target.
        Promote = "promote",
    }
}

text_enum! {
    /// Which forge sends a repository's webhooks.
    ForgeKind, "forge" {
        /// GitHub.
        Github = "github",
        /// Gitea or Forgejo.
        Gitea = "gitea",
        /// GitLab.
        Gitlab = "gitlab",
        /// Gantry's own signed payload.
        Generic = "generic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_and_unknown_text_is_an_error() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()).unwrap(), *status);
        }
        let error = RunStatus::parse("done").unwrap_err().to_string();
        assert!(error.contains("`done` is not one of"), "{error}");
    }
}
