//! Webhook authenticity (security rule 1): every forge's signature, accepted when right,
//! refused with a clear message when missing, malformed or wrong — and no error ever
//! carries the secret or a MAC (rule 10).

use gantry_forge::{Forge, VerifyError, gantry_signature, hmac_hex, verify};
use http::{HeaderMap, HeaderName, HeaderValue};

const SECRET: &[u8] = b"It's a Secret to Everybody";
const BODY: &[u8] = b"Hello, World!";

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

/// A signed request for `forge` over `body`.
fn signed(forge: Forge, body: &[u8], secret: &[u8]) -> HeaderMap {
    let mac = hmac_hex(body, secret);
    match forge {
        Forge::GitHub => headers(&[("X-Hub-Signature-256", &format!("sha256={mac}"))]),
        Forge::Gitea => headers(&[("X-Gitea-Signature", &mac)]),
        Forge::GitLab => headers(&[("X-Gitlab-Token", std::str::from_utf8(secret).unwrap())]),
        Forge::Generic => headers(&[("X-Gantry-Signature", &gantry_signature(body, secret))]),
    }
}

#[test]
fn github_documented_example_signature_verifies() {
    // The example from GitHub's "Validating webhook deliveries" page.
    let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(hmac_hex(BODY, SECRET), expected);
    let hdrs = headers(&[("X-Hub-Signature-256", &format!("sha256={expected}"))]);
    verify(Forge::GitHub, &hdrs, BODY, SECRET).unwrap();
}

#[test]
fn every_forge_accepts_its_own_signature() {
    for forge in Forge::ALL {
        verify(forge, &signed(forge, BODY, SECRET), BODY, SECRET)
            .unwrap_or_else(|e| panic!("{forge}: {e}"));
    }
}

#[test]
fn forgejo_header_alone_is_enough() {
    let hdrs = headers(&[("X-Forgejo-Signature", &hmac_hex(BODY, SECRET))]);
    verify(Forge::Gitea, &hdrs, BODY, SECRET).unwrap();
}

#[test]
fn sec_01_missing_signature_names_the_expected_header() {
    let cases = [
        (Forge::GitHub, "x-hub-signature-256"),
        (Forge::Gitea, "x-gitea-signature"),
        (Forge::GitLab, "x-gitlab-token"),
        (Forge::Generic, "x-gantry-signature"),
    ];
    for (forge, header) in cases {
        let err = verify(forge, &HeaderMap::new(), BODY, SECRET).unwrap_err();
        assert_eq!(err, VerifyError::MissingSignature { header, forge });
        assert!(err.to_string().contains(header), "{err}");
    }
}

#[test]
fn sec_01_tampered_body_is_refused() {
    for forge in [Forge::GitHub, Forge::Gitea, Forge::Generic] {
        let hdrs = signed(forge, BODY, SECRET);
        let err = verify(forge, &hdrs, b"Hello, World?", SECRET).unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch { .. }),
            "{forge}: {err}"
        );
    }
}

#[test]
fn sec_01_wrong_secret_is_refused() {
    for forge in Forge::ALL {
        let hdrs = signed(forge, BODY, b"another secret");
        let err = verify(forge, &hdrs, BODY, SECRET).unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch { .. }),
            "{forge}: {err}"
        );
    }
}

#[test]
fn sec_01_malformed_signatures_are_refused_with_the_expected_form() {
    let mac = hmac_hex(BODY, SECRET);
    let cases = [
        (Forge::GitHub, headers(&[("X-Hub-Signature-256", &mac)])),
        (
            Forge::GitHub,
            headers(&[("X-Hub-Signature-256", "sha256=zz")]),
        ),
        (
            Forge::GitHub,
            headers(&[("X-Hub-Signature-256", &format!("sha1={mac}"))]),
        ),
        (Forge::Gitea, headers(&[("X-Gitea-Signature", &mac[..40])])),
        (
            Forge::Generic,
            headers(&[("X-Gantry-Signature", "sha256=")]),
        ),
    ];
    for (forge, hdrs) in cases {
        let err = verify(forge, &hdrs, BODY, SECRET).unwrap_err();
        assert!(
            matches!(err, VerifyError::MalformedSignature { .. }),
            "{forge}: {err}"
        );
        assert!(err.to_string().contains("expected"), "{err}");
    }
}

#[test]
fn sec_01_a_signature_for_one_forge_does_not_pass_another() {
    // A GitHub-signed request sent to the generic route carries the wrong header.
    let hdrs = signed(Forge::GitHub, BODY, SECRET);
    assert!(verify(Forge::Generic, &hdrs, BODY, SECRET).is_err());
    assert!(verify(Forge::Gitea, &hdrs, BODY, SECRET).is_err());
    assert!(verify(Forge::GitLab, &hdrs, BODY, SECRET).is_err());
}

#[test]
fn sec_01_an_empty_secret_verifies_nothing() {
    for forge in Forge::ALL {
        let hdrs = signed(forge, BODY, b"");
        assert_eq!(
            verify(forge, &hdrs, BODY, b""),
            Err(VerifyError::NoSecret),
            "{forge}"
        );
    }
}

#[test]
fn sec_01_gitlab_token_prefix_or_extension_is_refused() {
    for token in ["It's a Secret", "It's a Secret to Everybody!", ""] {
        let hdrs = headers(&[("X-Gitlab-Token", token)]);
        assert!(
            verify(Forge::GitLab, &hdrs, BODY, SECRET).is_err(),
            "{token:?}"
        );
    }
}

#[test]
fn sec_10_errors_never_carry_the_secret_or_a_mac() {
    let right_mac = hmac_hex(BODY, SECRET);
    let sent_mac = hmac_hex(BODY, b"attacker");
    let attempts = [
        (
            Forge::GitHub,
            headers(&[("X-Hub-Signature-256", &format!("sha256={sent_mac}"))]),
        ),
        (Forge::Gitea, headers(&[("X-Gitea-Signature", &sent_mac)])),
        (Forge::GitLab, headers(&[("X-Gitlab-Token", "guess")])),
        (
            Forge::Generic,
            headers(&[("X-Gantry-Signature", &format!("sha256={sent_mac}"))]),
        ),
        (Forge::GitHub, HeaderMap::new()),
    ];
    let secret = std::str::from_utf8(SECRET).unwrap();
    for (forge, hdrs) in attempts {
        let err = verify(forge, &hdrs, BODY, SECRET).unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(secret), "{forge}: secret leaked: {shown}");
            assert!(
                !shown.contains(&right_mac),
                "{forge}: computed MAC leaked: {shown}"
            );
            assert!(
                !shown.contains(&sent_mac),
                "{forge}: received MAC echoed: {shown}"
            );
            assert!(
                !shown.contains("guess"),
                "{forge}: received token echoed: {shown}"
            );
        }
    }
}

#[test]
fn forge_names_parse_from_routes() {
    assert_eq!("github".parse::<Forge>().unwrap(), Forge::GitHub);
    assert_eq!("Forgejo".parse::<Forge>().unwrap(), Forge::Gitea);
    assert_eq!("gitlab".parse::<Forge>().unwrap(), Forge::GitLab);
    let err = "bitbucket".parse::<Forge>().unwrap_err();
    assert!(
        err.to_string()
            .contains("expected one of github, gitea, forgejo, gitlab, generic")
    );
}
