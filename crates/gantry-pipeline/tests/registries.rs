//! The pipeline half of docs/security.md item 16 (no SSRF): images from registries on
//! loopback, link-local, metadata or unspecified addresses are refused unless the build
//! allows private registries.

mod common;

use common::{compile_err, compile_file, compile_with, push_to_main};
use gantry_pipeline::{Code, CompileContext};

fn allowing_private_registries() -> CompileContext {
    CompileContext {
        allow_private_registries: true,
        ..push_to_main()
    }
}

fn step_with_image(image: &str) -> String {
    format!("steps:\n  - name: build\n    image: \"{image}\"\n    commands: [make]\n")
}

const PRIVATE: [&str; 17] = [
    "localhost/app",
    "localhost:5000/team/app:1.2",
    "LOCALHOST:5000/app",
    "localhost.:5000/app",
    "registry.localhost/app",
    "127.0.0.1:5000/app",
    "127.1.2.3/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "[::1]/app",
    "[::1]:5000/team/app:latest",
    "169.254.10.20/app",
    "[fe80::1]:5000/app",
    "169.254.169.254/latest/meta-data",
    "metadata.google.internal/computemetadata/v1",
    "metadata:80/app",
    "[fd00:ec2::254]/app",
    "100.100.100.200:80/app:1",
    "0.0.0.0:5000/app",
];

#[test]
fn sec_16_images_from_private_registry_hosts_are_refused_at_the_image() {
    for image in PRIVATE {
        let source = step_with_image(image);
        let diagnostics = compile_err(&source, &push_to_main());
        let refused: Vec<_> = diagnostics
            .iter()
            .filter(|d| d.code == Code::PrivateRegistry)
            .collect();
        assert_eq!(refused.len(), 1, "{image}: {diagnostics:?}");
        let d = refused[0];
        assert_eq!((d.line, d.column), (3, 12), "{image}");
        assert_eq!(d.path, "steps[0].image", "{image}");
        assert_eq!(
            diagnostics.len(),
            1,
            "{image}: only this problem: {diagnostics:?}"
        );
    }
}

#[test]
fn sec_16_private_registries_are_allowed_when_the_build_allows_them() {
    for image in PRIVATE {
        let compiled = compile_with(&step_with_image(image), &allowing_private_registries());
        assert_eq!(compiled.plans[0].steps[1].image, image);
    }
}

#[test]
fn sec_16_public_registries_and_docker_hub_names_are_not_refused() {
    for image in [
        "alpine:3.20",
        "localhost",
        "localhost:5000",
        "metadata/app",
        "library/localhost",
        "ghcr.io/localhost/app",
        "localhost.example.com/app",
        "registry.example.com:5000/team/app:1.2",
        "10.0.0.5:5000/app",
        "[2001:db8::1]:5000/app",
    ] {
        let compiled = compile_with(&step_with_image(image), &push_to_main());
        assert_eq!(compiled.plans[0].steps[1].image, image);
    }
}

#[test]
fn sec_16_services_plugins_substituted_and_drone_images_are_checked_too() {
    let source = "services:
  - name: db
    image: 127.0.0.1:5000/postgres:16
steps:
  - name: publish
    image: \"[::1]:5000/plugins/docker\"
    settings:
      repo: acme/app
  - name: test
    image: ${REGISTRY}/rust:1.85
    commands: [cargo test]
";
    let ctx = CompileContext {
        extra_env: [("REGISTRY".to_owned(), "localhost:5000".to_owned())].into(),
        ..push_to_main()
    };
    let diagnostics = compile_err(source, &ctx);
    let at: Vec<(Code, u32, &str)> = diagnostics
        .iter()
        .map(|d| (d.code, d.line, d.path.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (Code::PrivateRegistry, 3, "services[0].image"),
            (Code::PrivateRegistry, 6, "steps[0].image"),
            (Code::PrivateRegistry, 10, "steps[1].image"),
        ]
    );
    assert!(
        diagnostics[2]
            .message
            .contains("(from `${REGISTRY}/rust:1.85`)")
    );
    let allowed = CompileContext {
        allow_private_registries: true,
        ..ctx
    };
    assert_eq!(compile_with(source, &allowed).plans[0].services.len(), 1);

    let drone = "kind: pipeline\ntype: docker\nname: default\nsteps:\n  - name: build\n    image: localhost:5000/app\n    commands: [make]\n";
    let diagnostics = compile_file(".drone.yml", drone, &push_to_main()).expect_err("refused");
    assert_eq!(diagnostics[0].code, Code::PrivateRegistry);
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (6, 12));
}
