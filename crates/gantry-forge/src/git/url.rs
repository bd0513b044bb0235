//! Which clone URLs the server fetches from, and how they are shown (never with credentials).

use super::GitError;

/// A clone URL we agreed to fetch from, with its credential-free form for messages.
#[derive(Clone)]
pub(crate) struct RemoteUrl {
    /// As given, possibly with `user:password@` (only ever handed to git as an argument).
    url: String,
    /// The URL without its user info: the only form that appears in errors and logs.
    display: String,
    /// The password from the user info, redacted from git's output.
    password: Option<String>,
}

impl RemoteUrl {
    /// Accepts `file://`, `git://`, `http://` and `https://`; refuses the rest clearly.
    pub(crate) fn parse(url: &str) -> Result<Self, GitError> {
        let url = url.trim();
        let unsupported = |reason: &str| GitError::UnsupportedUrl {
            url: display_form(url),
            reason: reason.to_owned(),
        };
        if url.is_empty() {
            return Err(unsupported("the clone URL is empty"));
        }
        if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(unsupported(
                "it starts with `-` or holds spaces or control characters",
            ));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            if url.contains(':') && !url.starts_with('/') {
                return Err(unsupported(
                    "SSH clone URLs are not supported yet: use the https:// clone URL (with credentials for a private repository)",
                ));
            }
            return Err(unsupported(
                "a local path needs the file:// scheme (file:///srv/git/repo.git)",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" | "git" | "http" | "https" => {}
            "ssh" | "git+ssh" | "ssh+git" => {
                return Err(unsupported(
                    "SSH clone URLs are not supported yet: use the https:// clone URL (with credentials for a private repository)",
                ));
            }
            _ => {
                return Err(unsupported(
                    "only file://, git://, http:// and https:// clone URLs are supported",
                ));
            }
        }
        if rest.is_empty() {
            return Err(unsupported("it names no host or path"));
        }
        Ok(Self {
            url: url.to_owned(),
            display: display_form(url),
            password: user_info(url)
                .and_then(|info| info.split_once(':'))
                .map(|(_, pw)| pw.to_owned()),
        })
    }

    /// The URL to hand to git.
    pub(crate) fn as_git_arg(&self) -> &str {
        &self.url
    }

    /// The URL without credentials.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The password embedded in the URL, if any.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref().filter(|p| !p.is_empty())
    }

    /// For a `file://` URL naming a repository on this machine: its git directory (the
    /// bare repository, or the `.git` of a work tree).
    pub(crate) fn local_repository(&self) -> Option<std::path::PathBuf> {
        let rest = self.url.strip_prefix("file://")?;
        let path = std::path::Path::new(rest);
        if !path.is_absolute() {
            return None;
        }
        [path.join(".git"), path.to_owned()]
            .into_iter()
            .find(|dir| dir.join("HEAD").is_file() && dir.join("objects").is_dir())
    }

    /// The host name, for a netrc `machine` line.
    pub(crate) fn host(&self) -> Option<&str> {
        let rest = self.display.split_once("://")?.1;
        let authority = rest.split('/').next()?;
        let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                authority
            }
        });
        (!host.is_empty()).then_some(host)
    }
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// `scheme://user:pw@host/path` → `user:pw`.
fn user_info(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once('@').map(|(info, _)| info)
}

/// The URL with any user info removed.
pub(crate) fn display_form(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.chars().take(200).collect();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
        .chars()
        .take(200)
        .collect()
}
