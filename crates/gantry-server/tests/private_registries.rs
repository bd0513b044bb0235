//! Security rule 16 on a server: an image from a registry on a loopback (or link-local,
//! metadata, unspecified) address is a compile error (E034 `private-registry`) unless the
//! server was started with `allow_private_registries` (`--allow-private-registries`).
//! Builds are triggered through the API on a real git repository and SQLite; the
//! in-process runner is off, so nothing runs.

mod api_support;

use api_support::{TestServer, git_repo, timed};
use serde_json::{Value, json};

/// One image on a loopback registry, one on a private LAN address (not refused: that is
/// where self-hosted registries usually live).
const PIPELINE: &str = "\
steps:
  - name: lint
    image: 127.0.0.1:5000/tools/lint:1
    commands: [lint]
  - name: test
    image: 10.1.2.3:5000/img
    commands: [test]
";

async fn server(allow_private_registries: bool) -> TestServer {
    TestServer::start_configured(|config| {
        config.allow_private_registries = allow_private_registries;
    })
    .await
}

/// Triggers a build of `main` and returns it once prepared.
async fn build_main(server: &TestServer) -> Value {
    let git = tempfile::tempdir().unwrap();
    let (url, _sha) = git_repo(git.path(), &[(".pipeline.yml", PIPELINE)]);
    server.add_repo("acme", "app", &url, false).await;
    server.trigger_build("acme/app", "main").await
}

#[tokio::test]
async fn sec_16_a_server_refuses_private_registries_unless_started_to_allow_them() {
    timed(async {
        let refusing = server(false).await;
        let build = build_main(&refusing).await;
        assert_eq!(build["status"], "error", "{build}");
        let diagnostics = build["diagnostics"].as_array().expect("diagnostics");
        let codes: Vec<&str> = diagnostics
            .iter()
            .filter_map(|d| d["code"].as_str())
            .collect();
        assert_eq!(codes, ["E034"], "only the loopback registry: {build}");
        let message = diagnostics[0]["message"].as_str().unwrap();
        assert!(message.contains("127.0.0.1:5000"), "{message}");
        assert_eq!(diagnostics[0]["line"], 3, "{build}");
        refusing.stop().await;

        let allowing = server(true).await;
        let build = build_main(&allowing).await;
        assert_eq!(build["status"], "pending", "{build}");
        assert_eq!(build["diagnostics"], json!([]), "{build}");
        let steps: Vec<&str> = build["workflows"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert!(
            steps.contains(&"lint") && steps.contains(&"test"),
            "{build}"
        );
        allowing.stop().await;
    })
    .await;
}
