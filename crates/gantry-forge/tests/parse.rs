//! Parsing each forge's hooks (trimmed copies of their documented payloads) into one event.

use gantry_forge::{Forge, HookEvent, HookKind, ParseError, ParsedHook, hook_repo, parse_hook};
use http::{HeaderMap, HeaderName, HeaderValue};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn event(forge: Forge, hdrs: &[(&str, &str)], path: &str) -> HookEvent {
    match parse_hook(forge, &headers(hdrs), &fixture(path)).unwrap() {
        ParsedHook::Event(event) => event,
        ignored => panic!("{path}: expected an event, got {ignored:?}"),
    }
}

fn ignored_reason(forge: Forge, hdrs: &[(&str, &str)], path: &str) -> String {
    match parse_hook(forge, &headers(hdrs), &fixture(path)).unwrap() {
        ParsedHook::Ignored { reason, .. } => reason,
        event => panic!("{path}: expected ignored, got {event:?}"),
    }
}

#[test]
fn github_push_to_a_branch() {
    let hdrs = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let e = event(Forge::GitHub, &hdrs, "github/push.json");
    assert_eq!(e.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(e.kind, HookKind::Push);
    assert_eq!(e.repo, "octo-org/hello-world");
    assert_eq!(e.clone_url, "https://github.com/octo-org/hello-world.git");
    assert_eq!(
        (e.git_ref.as_str(), e.branch.as_str(), e.tag.as_str()),
        ("refs/heads/main", "main", "")
    );
    assert_eq!(e.sha, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert_eq!(e.before, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(e.message, "Update README.md");
    assert!(e.link.contains("/compare/"), "{}", e.link);
    assert_eq!(e.pull_request, None);
}

#[test]
fn sec_03_author_is_the_forge_login_not_the_commit_author() {
    let e = event(
        Forge::GitHub,
        &[("X-GitHub-Event", "push")],
        "github/push.json",
    );
    assert_eq!(e.author, "octocat");
    let e = event(
        Forge::GitLab,
        &[("X-Gitlab-Event", "Push Hook")],
        "gitlab/push.json",
    );
    assert_eq!(e.author, "jsmith");
    let e = event(
        Forge::Gitea,
        &[("X-Gitea-Event", "push")],
        "gitea/push.json",
    );
    assert_eq!(e.author, "gitea");
}

#[test]
fn github_tag_builds_from_push_and_create_is_ignored() {
    let e = event(
        Forge::GitHub,
        &[("X-GitHub-Event", "push")],
        "github/push_tag.json",
    );
    assert_eq!(e.kind, HookKind::Tag);
    assert_eq!((e.tag.as_str(), e.branch.as_str()), ("v1.2.0", ""));
    assert_eq!(e.kind.build_event(), Some("tag"));
    let reason = ignored_reason(
        Forge::GitHub,
        &[("X-GitHub-Event", "create")],
        "github/create_tag.json",
    );
    assert!(reason.contains("push"), "{reason}");
}

#[test]
fn github_branch_deletion_is_ignored() {
    let reason = ignored_reason(
        Forge::GitHub,
        &[("X-GitHub-Event", "push")],
        "github/push_delete.json",
    );
    assert!(reason.contains("deleted"), "{reason}");
}

#[test]
fn github_pull_request_from_a_fork() {
    let e = event(
        Forge::GitHub,
        &[("X-GitHub-Event", "pull_request")],
        "github/pull_request_opened.json",
    );
    assert_eq!(e.kind, HookKind::PullRequest);
    assert_eq!(e.git_ref, "refs/pull/7/head");
    assert_eq!(e.branch, "main");
    assert_eq!(e.sha, "aa218f56b14c9653891f9e74264a383fa43fefbd");
    assert_eq!(e.message, "Add a greeting");
    assert_eq!(e.author, "hubot");
    assert_eq!(e.link, "https://github.com/octo-org/hello-world/pull/7");
    let pr = e.pull_request.unwrap();
    assert_eq!(pr.number, 7);
    assert_eq!(pr.base_branch, "main");
    assert_eq!(pr.base_sha, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert_eq!(pr.head_sha, e.sha);
    assert!(pr.from_fork);
    assert_eq!(pr.action, "opened");
}

#[test]
fn github_closed_pull_request_and_comments_are_ignored() {
    let reason = ignored_reason(
        Forge::GitHub,
        &[("X-GitHub-Event", "pull_request")],
        "github/pull_request_closed.json",
    );
    assert!(reason.contains("closed"), "{reason}");
    let reason = ignored_reason(
        Forge::GitHub,
        &[("X-GitHub-Event", "issue_comment")],
        "github/issue_comment.json",
    );
    assert!(reason.contains("issue_comment"), "{reason}");
}

#[test]
fn github_ping() {
    let e = event(
        Forge::GitHub,
        &[("X-GitHub-Event", "ping")],
        "github/ping.json",
    );
    assert_eq!(e.kind, HookKind::Ping);
    assert_eq!(e.kind.build_event(), None);
    assert_eq!(e.repo, "octo-org/hello-world");
}

#[test]
fn gitea_push_pull_request_and_create() {
    let e = event(
        Forge::Gitea,
        &[("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "d1")],
        "gitea/push.json",
    );
    assert_eq!(
        (e.kind, e.branch.as_str(), e.delivery_id.as_str()),
        (HookKind::Push, "develop", "d1")
    );
    assert_eq!(e.repo, "gitea/webhooks");
    assert!(e.link.contains("/compare/"));
    let e = event(
        Forge::Gitea,
        &[("X-Forgejo-Event", "pull_request")],
        "gitea/pull_request_synchronized.json",
    );
    let pr = e.pull_request.clone().unwrap();
    assert_eq!(
        (e.kind, pr.number, pr.from_fork),
        (HookKind::PullRequest, 12, false)
    );
    assert_eq!(e.author, "alice");
    assert_eq!(e.git_ref, "refs/pull/12/head");
    let reason = ignored_reason(
        Forge::Gitea,
        &[("X-Gitea-Event", "create")],
        "gitea/create_tag.json",
    );
    assert!(reason.contains("push"), "{reason}");
}

#[test]
fn gitlab_push_tag_push_and_merge_requests() {
    let hdrs = [
        ("X-Gitlab-Event", "Push Hook"),
        (
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        ),
    ];
    let e = event(Forge::GitLab, &hdrs, "gitlab/push.json");
    assert_eq!((e.kind, e.branch.as_str()), (HookKind::Push, "master"));
    assert_eq!(e.delivery_id, "13792a34-cac6-4fda-95a8-c58e00a3954e");
    assert_eq!(e.repo, "mike/diaspora");
    assert_eq!(e.clone_url, "https://gitlab.example.com/mike/diaspora.git");
    assert_eq!(e.message, "fixed readme");

    let e = event(
        Forge::GitLab,
        &[("X-Gitlab-Event", "Tag Push Hook")],
        "gitlab/tag_push.json",
    );
    assert_eq!((e.kind, e.tag.as_str()), (HookKind::Tag, "v1.0.0"));
    // The commit, not the annotated tag object.
    assert_eq!(e.sha, "5937ac0a7beb003549fc5fd26fc247adbce4a52e");

    let mr = [("X-Gitlab-Event", "Merge Request Hook")];
    let e = event(Forge::GitLab, &mr, "gitlab/merge_request_open.json");
    let pr = e.pull_request.clone().unwrap();
    assert_eq!(
        (pr.number, pr.from_fork, pr.base_branch.as_str()),
        (1, true, "master")
    );
    assert_eq!(e.git_ref, "refs/merge-requests/1/head");
    assert_eq!(e.author, "root");
    let e = event(
        Forge::GitLab,
        &mr,
        "gitlab/merge_request_update_commits.json",
    );
    assert_eq!(e.pull_request.unwrap().action, "update");
    let reason = ignored_reason(Forge::GitLab, &mr, "gitlab/merge_request_update_title.json");
    assert!(reason.contains("without new commits"), "{reason}");
}

#[test]
fn generic_push_and_pull_request() {
    let e = event(
        Forge::Generic,
        &[("X-Gantry-Delivery", "run-42")],
        "generic/push.json",
    );
    assert_eq!(
        (e.kind, e.branch.as_str(), e.author.as_str()),
        (HookKind::Push, "main", "alice")
    );
    assert_eq!(e.delivery_id, "run-42");
    let e = event(Forge::Generic, &[], "generic/pull_request.json");
    let pr = e.pull_request.clone().unwrap();
    assert_eq!(
        (e.kind, e.git_ref.as_str(), pr.number, pr.from_fork),
        (HookKind::PullRequest, "refs/pull/3/head", 3, true)
    );
}

#[test]
fn generic_refuses_unknown_fields_and_conflicting_events() {
    let body = br#"{"repo":"a/b","clone_url":"file:///x","ref":"refs/heads/main","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","sha":"x"}"#;
    let err = parse_hook(Forge::Generic, &HeaderMap::new(), body).unwrap_err();
    assert!(err.to_string().contains("unknown field `sha`"), "{err}");
    let err = parse_hook(
        Forge::Generic,
        &headers(&[("X-Gantry-Event", "ping")]),
        &fixture("generic/push.json"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("X-Gantry-Event says `ping`"),
        "{err}"
    );
}

#[test]
fn delivery_id_falls_back_to_the_body_hash() {
    let body = fixture("github/push.json");
    let a = parse_hook(
        Forge::GitHub,
        &headers(&[("X-GitHub-Event", "push")]),
        &body,
    )
    .unwrap();
    let b = parse_hook(
        Forge::GitHub,
        &headers(&[("X-GitHub-Event", "push")]),
        &body,
    )
    .unwrap();
    assert!(
        a.delivery_id().starts_with("sha256:"),
        "{}",
        a.delivery_id()
    );
    assert_eq!(a.delivery_id(), b.delivery_id());
}

#[test]
fn malformed_json_reports_line_and_column() {
    let body = b"{\n  \"ref\": \"refs/heads/main\",\n  \"after\": 12,\n}";
    let err = parse_hook(Forge::GitHub, &headers(&[("X-GitHub-Event", "push")]), body).unwrap_err();
    let ParseError::Json { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*line, 3, "{err}");
    assert!(*column > 0);
    assert!(
        err.to_string().contains("GitHub push payload at line 3"),
        "{err}"
    );
}

#[test]
fn a_missing_event_header_is_an_error_that_names_it() {
    let err = parse_hook(
        Forge::GitHub,
        &HeaderMap::new(),
        &fixture("github/push.json"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("X-GitHub-Event"), "{err}");
}

#[test]
fn a_sha_that_is_not_hex_is_refused() {
    let body = br#"{"repo":"a/b","clone_url":"file:///x","ref":"refs/heads/main","after":"--upload-pack=touch /tmp/x"}"#;
    let err = parse_hook(Forge::Generic, &HeaderMap::new(), body).unwrap_err();
    assert!(err.to_string().contains("is not a commit SHA"), "{err}");
}

#[test]
fn hook_repo_reads_the_repository_before_verification() {
    assert_eq!(
        hook_repo(Forge::GitHub, &fixture("github/push.json")).unwrap(),
        "octo-org/hello-world"
    );
    assert_eq!(
        hook_repo(Forge::Gitea, &fixture("gitea/push.json")).unwrap(),
        "gitea/webhooks"
    );
    assert_eq!(
        hook_repo(Forge::GitLab, &fixture("gitlab/push.json")).unwrap(),
        "mike/diaspora"
    );
    assert_eq!(
        hook_repo(Forge::Generic, &fixture("generic/push.json")).unwrap(),
        "team/service"
    );
    assert!(
        hook_repo(Forge::GitHub, b"{}")
            .unwrap_err()
            .to_string()
            .contains("names no repository")
    );
}

#[test]
fn garbage_never_panics() {
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"[]",
        b"{\"ref\": null}",
        b"\xff\xfe",
        b"{\"repository\": 5}",
    ];
    for forge in Forge::ALL {
        for event in [
            "push",
            "pull_request",
            "Push Hook",
            "Merge Request Hook",
            "Tag Push Hook",
            "ping",
        ] {
            let hdrs = headers(&[
                ("X-GitHub-Event", event),
                ("X-Gitea-Event", event),
                ("X-Gitlab-Event", event),
            ]);
            for body in bodies {
                let _ = parse_hook(forge, &hdrs, body);
                let _ = hook_repo(forge, body);
            }
        }
    }
}

#[test]
fn the_generic_payload_in_the_docs_parses() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/webhooks.md"
    ))
    .unwrap();
    let start = doc.find("```json\n").expect("a json example") + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let body = &doc.as_bytes()[start..end];
    let ParsedHook::Event(e) = parse_hook(Forge::Generic, &HeaderMap::new(), body).unwrap() else {
        panic!("the documented payload must build");
    };
    assert_eq!(
        (e.kind, e.repo.as_str(), e.branch.as_str()),
        (HookKind::Push, "team/service", "main")
    );
}
