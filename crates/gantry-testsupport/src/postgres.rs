//! A throwaway Postgres cluster for one test binary, or the one `GANTRY_TEST_POSTGRES_URL`
//! names.
//!
//! The cluster is started once per test binary (on the first call) in a temp dir on a free
//! port. A watchdog `sh` loop outlives the test process, and when that process is gone it
//! stops the cluster (`pg_ctl stop -m immediate`) and removes the directory, so nothing is
//! left running however the tests end.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Environment variable naming an existing server to use instead of a throwaway cluster.
pub const URL_ENV: &str = "GANTRY_TEST_POSTGRES_URL";

static ADMIN_URL: OnceLock<Result<String, String>> = OnceLock::new();

/// The admin URL (`postgres://postgres@127.0.0.1:PORT/postgres`) of this test binary's
/// cluster, started on the first call; or why Postgres tests cannot run here, worded to
/// be printed as the skip message.
pub fn admin_url() -> Result<String, String> {
    ADMIN_URL
        .get_or_init(|| match std::env::var(URL_ENV) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => start_cluster(),
        })
        .clone()
}

/// The newest `bin` directory under `/usr/lib/postgresql` holding `initdb` and `pg_ctl`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command run as the `postgres` user when we are root (Postgres refuses root).
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn start_cluster() -> Result<String, String> {
    let Some(bin) = postgres_bin_dir() else {
        return Err(format!(
            "no Postgres binaries under /usr/lib/postgresql/*/bin \
             (run .ci/postgres.sh, or set {URL_ENV})"
        ));
    };
    let dir = std::env::temp_dir().join(format!("gantry-test-pg-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    if running_as_root() {
        let mut chown = Command::new("chown");
        chown.args(["-R", "postgres:postgres"]).arg(&dir);
        run(chown, "chown")?;
    }
    // Before initdb, so a failure halfway still has its directory removed.
    spawn_watchdog(&bin, &dir)?;
    let mut initdb = as_postgres(&bin.join("initdb"));
    initdb
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "-D",
        ])
        .arg(&data);
    run(initdb, "initdb")?;
    let port = free_port()?;
    // Durability off: the cluster lives as long as one test binary. Concurrency tests
    // open many pools at once, hence the connection limit.
    let settings = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        dir.display()
    );
    let mut start = as_postgres(&bin.join("pg_ctl"));
    start
        .args(["-w", "-t", "60", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-o", &settings, "start"]);
    run(start, "pg_ctl start")?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Stops the cluster and removes its directory once this process has exited.
fn spawn_watchdog(bin: &Path, dir: &Path) -> Result<(), String> {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if running_as_root() {
        format!("runuser -u postgres -- '{}'", pg_ctl.display())
    } else {
        format!("'{}'", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    // Its own session, so a Ctrl-C to the test run does not kill the watchdog first.
    let mut command = if Path::new("/usr/bin/setsid").exists() {
        let mut c = Command::new("setsid");
        c.arg("sh");
        c
    } else {
        Command::new("sh")
    };
    command
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cleanup watchdog: {e}"))
}
