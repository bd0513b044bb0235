//! Servers on a database of the test binary's throwaway Postgres cluster (or the one
//! `GANTRY_TEST_POSTGRES_URL` names): fresh databases, replicas sharing one, and the
//! test's own connection to it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use gantry_store::{SecretKey, Store, StoreOptions};

use super::ServerProcess;

/// The secret key servers on Postgres share with each other and the test (the database
/// holds no key).
pub const KEY: &str = "5f1c0e9a7b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// The URL of a fresh database named after `name`; None, said on stderr, without Postgres
/// (a failure under `CI=true`). The cluster and its databases go when the tests end.
pub fn fresh_database(name: &str) -> Option<String> {
    let admin = match gantry_testsupport::postgres::admin_url() {
        Ok(url) => url,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Postgres is required under CI=true: {reason}");
            }
            eprintln!("skipped: Postgres is not available: {reason}");
            return None;
        }
    };
    // Unique also on a shared server used run after run.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = since.map_or(0, |d| d.as_nanos());
    let name = format!("{name}_{}_{n}_{nanos}", std::process::id());
    let created = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(created.status.success(), "{created:?}");
    let (server, _) = admin.rsplit_once('/').expect("a database part");
    Some(format!("{server}/{name}"))
}

/// The test's own store on the database at `url`.
pub async fn open_store(url: &str) -> Arc<dyn Store> {
    let options = StoreOptions::new(SecretKey::parse(KEY).expect("key"));
    gantry_store::connect(url, options).await.expect("store")
}

/// `gantry server` (local backend) on the database at `url` with the shared key: its
/// data directory `dir/<name>`, its log `dir/<name>.log`, `env` added.
pub fn start_replica(dir: &Path, name: &str, url: &str, env: &[(&str, &str)]) -> ServerProcess {
    let mut all = vec![("GANTRY_DATABASE_URL", url), ("GANTRY_SECRET_KEY", KEY)];
    all.extend_from_slice(env);
    let log = dir.join(format!("{name}.log"));
    super::start_server(&dir.join(name), "local", &all, &log)
}
