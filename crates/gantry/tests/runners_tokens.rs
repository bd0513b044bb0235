//! `gantry runner-token create|list|revoke` against a real server process.

mod server_common;

use server_common::{gantry_as_admin as gantry, start_remote_only_server};

#[test]
fn runner_tokens_are_created_listed_and_revoked() {
    let (done, finished) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        create_list_revoke();
        let _ = done.send(());
    });
    match finished.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(()) => {}
        // The body panicked: joining shows why.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => body.join().expect("the test body"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("timed out after 120 s"),
    }
}

fn create_list_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_remote_only_server(dir.path());

    let (ok, token, said) = gantry(&server.base, &["runner-token", "create", "build-01"]);
    assert!(ok, "{said}");
    assert!(
        token.trim().starts_with("gantry_"),
        "the token text alone on stdout: {token}"
    );
    assert!(said.contains("shown once"), "{said}");

    let (ok, list, said) = gantry(&server.base, &["runner-token", "list"]);
    assert!(ok, "{said}");
    assert!(
        list.contains("build-01") && list.contains("active"),
        "{list}"
    );
    assert!(
        !list.contains("admin"),
        "only runner tokens are listed: {list}"
    );
    assert!(
        !list.contains(token.trim()),
        "the text is never shown again"
    );
    let id = list
        .lines()
        .find(|l| l.contains("build-01"))
        .and_then(|l| l.split_whitespace().next())
        .expect("an id")
        .to_owned();

    // The admin token (id 1) is not a runner token: revoke refuses it.
    let (ok, _, said) = gantry(&server.base, &["runner-token", "revoke", "1"]);
    assert!(!ok && said.contains("no runner token with id 1"), "{said}");

    let (ok, _, said) = gantry(&server.base, &["runner-token", "revoke", &id]);
    assert!(ok, "{said}");
    let (_, list, _) = gantry(&server.base, &["runner-token", "list"]);
    assert!(list.contains("revoked"), "{list}");
}
