//! Clone credentials, written only into a private temporary HOME for one git call.

use std::io::Write;
use std::path::Path;

/// Credentials for fetching a private repository over HTTP(S).
///
/// Its `Debug` shows the machine and login only; the password never leaves this value except
/// into a `0600` `.netrc` in a temporary HOME that is removed after the git call.
#[derive(Clone, PartialEq, Eq)]
pub struct Netrc {
    /// Host the credentials are for; empty means the clone URL's host.
    pub machine: String,
    /// User name (for token-based forges often `oauth2`, `x-access-token` or the login).
    pub login: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Netrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netrc")
            .field("machine", &self.machine)
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Netrc {
    /// Writes `home/.netrc` readable by the owner only.
    pub(crate) fn write_into(&self, home: &Path, default_machine: &str) -> std::io::Result<()> {
        let machine = if self.machine.is_empty() {
            default_machine
        } else {
            &self.machine
        };
        // netrc tokens are whitespace-separated; quoting is not portable, so refuse spaces.
        for value in [machine, &self.login, &self.password] {
            if value.is_empty() || value.chars().any(char::is_whitespace) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "netrc machine, login and password must be non-empty and hold no spaces",
                ));
            }
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(home.join(".netrc"))?;
        writeln!(
            file,
            "machine {machine}\nlogin {}\npassword {}",
            self.login, self.password
        )
    }
}
