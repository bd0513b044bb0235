//! Every message survives encode → decode unchanged, and a peer of another version gets a
//! version error rather than a parse error.

use std::collections::BTreeMap;

use gantry_proto::*;

fn plan() -> gantry_pipeline::plan::Plan {
    let yaml = "labels:\n  os: linux\nsteps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n    environment:\n      TOKEN:\n        from_secret: token\n";
    let ctx = gantry_pipeline::CompileContext {
        repo: "acme/app".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        ..Default::default()
    };
    gantry_pipeline::compile(".pipeline.yml", yaml, &ctx)
        .expect("compiles")
        .plans
        .remove(0)
}

fn runner_messages() -> Vec<RunnerMessage> {
    vec![
        RunnerMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            runner_name: "build-01".into(),
            labels: BTreeMap::from([("os".into(), "linux".into()), ("gpu".into(), "true".into())]),
            capacity: 2,
            backends: vec!["docker".into()],
            resume: vec![7, 9],
        }),
        RunnerMessage::Heartbeat,
        RunnerMessage::StepUpdate(StepUpdate {
            assignment: 7,
            seq: 1,
            step: "test".into(),
            state: StepState::Failure,
            exit_code: Some(2),
            error: Some("exit code 2".into()),
        }),
        RunnerMessage::Logs(Logs {
            assignment: 7,
            seq: 2,
            step: "test".into(),
            lines: vec![
                LogLine {
                    number: 1,
                    stream: Stream::Stdout,
                    text: "hi é".into(),
                    elapsed_ms: 3,
                },
                LogLine {
                    number: 2,
                    stream: Stream::Stderr,
                    text: String::new(),
                    elapsed_ms: 4,
                },
            ],
        }),
        RunnerMessage::Done(Done {
            assignment: 7,
            seq: 3,
            outcome: Outcome::Failure,
            error: None,
        }),
    ]
}

fn server_messages() -> Vec<ServerMessage> {
    vec![
        ServerMessage::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            runner_id: "runner:3".into(),
            lease_ms: DEFAULT_LEASE_MS,
            heartbeat_ms: 3_000,
            resumed: vec![7],
            dropped: vec![Dropped {
                assignment: 9,
                reason: "requeued".into(),
            }],
        }),
        ServerMessage::Refused(Refused {
            reason: "no".into(),
            server_version: PROTOCOL_VERSION,
        }),
        ServerMessage::Assign(Box::new(Assign {
            assignment: 7,
            workflow: WorkflowInfo {
                repo: "acme/app".into(),
                build_number: 4,
                name: "default".into(),
                key: "b4-w5".into(),
            },
            plan: plan(),
            secrets: Secrets(BTreeMap::from([("token".into(), "s3cr3t-value".into())])),
            lease_ms: DEFAULT_LEASE_MS,
            log_offsets: BTreeMap::from([("test".into(), 12)]),
        })),
        ServerMessage::Ack(Ack {
            assignment: 7,
            seq: 3,
        }),
        ServerMessage::Cancel(Cancel {
            assignment: 7,
            reason: Some("timeout".into()),
        }),
        ServerMessage::Decision(Decision {
            assignment: 7,
            step: "deploy".into(),
            approved: true,
            by: "admin".into(),
        }),
        ServerMessage::Error(ErrorMessage {
            assignment: Some(8),
            message: "not yours".into(),
        }),
    ]
}

#[test]
fn runner_messages_round_trip() {
    for message in runner_messages() {
        let text = encode(&message);
        assert_eq!(decode_runner(&text).expect(&text), message);
    }
}

#[test]
fn server_messages_round_trip() {
    for message in server_messages() {
        let text = encode(&message);
        assert_eq!(decode_server(&text).expect(&text), message);
    }
}

#[test]
fn messages_are_tagged_by_type() {
    assert_eq!(encode(&RunnerMessage::Heartbeat), r#"{"type":"heartbeat"}"#);
    let ack = encode(&ServerMessage::Ack(Ack {
        assignment: 1,
        seq: 2,
    }));
    assert_eq!(ack, r#"{"type":"ack","assignment":1,"seq":2}"#);
}

#[test]
fn a_runner_of_another_version_gets_a_version_error() {
    // A future hello with a field this version does not know still names its version.
    let text = r#"{"type":"hello","version":2,"runner_name":"r","labels":{},"capacity":1,"backends":["docker"],"shiny":true}"#;
    let error = decode_runner(text).unwrap_err();
    assert_eq!(
        error,
        ProtocolError::Version {
            peer: "runner",
            theirs: 2,
            ours: PROTOCOL_VERSION
        }
    );
    assert!(error.to_string().contains("version 2"), "{error}");
    let parsable =
        r#"{"type":"hello","version":0,"runner_name":"r","labels":{},"capacity":1,"backends":[]}"#;
    assert!(matches!(
        decode_runner(parsable),
        Err(ProtocolError::Version { theirs: 0, .. })
    ));
}

#[test]
fn a_server_of_another_version_gets_a_version_error() {
    let text = r#"{"type":"refused","reason":"old runner","server_version":3}"#;
    let error = decode_server(text).unwrap_err();
    assert!(
        matches!(
            error,
            ProtocolError::Version {
                peer: "server",
                theirs: 3,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn malformed_frames_say_what_is_wrong() {
    let error = decode_runner(r#"{"type":"logs","assignment":1}"#).unwrap_err();
    assert!(matches!(error, ProtocolError::Malformed { .. }));
    assert!(error.to_string().contains("seq"), "{error}");
    let huge = format!(
        r#"{{"type":"heartbeat","x":"{}"}}"#,
        "a".repeat(MAX_FRAME_BYTES)
    );
    assert!(matches!(
        decode_runner(&huge),
        Err(ProtocolError::TooLarge { .. })
    ));
    assert!(decode_runner("not json").is_err());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let assign = &server_messages()[2];
    let printed = format!("{assign:?}");
    assert!(printed.contains("token"), "names are shown");
    assert!(
        !printed.contains("s3cr3t-value"),
        "values are not: {printed}"
    );
}

#[test]
fn log_numbering_is_checked() {
    let mut logs = match &runner_messages()[3] {
        RunnerMessage::Logs(logs) => logs.clone(),
        _ => unreachable!(),
    };
    assert!(logs.check_numbering().is_ok());
    logs.lines[1].number = 5;
    assert!(
        logs.check_numbering()
            .unwrap_err()
            .contains("not consecutive")
    );
    logs.lines[0].number = 0;
    assert!(logs.check_numbering().is_err());
}

#[test]
fn sequenced_messages_name_their_assignment() {
    let numbers: Vec<_> = runner_messages()
        .iter()
        .map(RunnerMessage::sequenced)
        .collect();
    assert_eq!(
        numbers,
        [None, None, Some((7, 1)), Some((7, 2)), Some((7, 3))]
    );
}

#[test]
fn host_labels_name_os_arch_and_backend() {
    let labels = host_labels("docker");
    assert_eq!(labels["backend"], "docker");
    assert_eq!(labels["os"], std::env::consts::OS);
    assert!(!labels["arch"].is_empty());
}
