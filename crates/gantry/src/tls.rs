//! How the command line reaches a server: TLS for `https://` and `wss://`, and the rule
//! that keeps a token off plain connections to other hosts (docs/security.md, rule 15).
//!
//! One rustls configuration serves the runner's websocket and the client commands' API
//! calls: the ring provider, TLS 1.2 and 1.3, the Mozilla roots that `webpki-roots`
//! carries (the same on every host, also in a container without a CA bundle) plus the
//! certificates of `--ca-cert` (`GANTRY_CA_CERT`) for a private CA. Certificates are
//! always verified: there is no switch to turn that off.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use reqwest::Url;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, error::TlsError};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The environment variable `--ca-cert` may come from.
pub const CA_CERT_ENV: &str = "GANTRY_CA_CERT";

/// The client TLS configuration: public roots plus the PEM certificates in `ca_cert`.
pub fn client_config(ca_cert: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| {
                anyhow!(
                    "{}: a certificate in it cannot be used as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every `CERTIFICATE` block of a PEM file; a file with none is an error.
fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the CA certificate {} (--ca-cert, {CA_CERT_ENV})",
            path.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: not a readable PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{} holds no PEM certificate (a `-----BEGIN CERTIFICATE-----` block); \
             --ca-cert takes the CA certificate that signed the server's certificate",
            path.display()
        );
    }
    Ok(certs)
}

/// Parses a `--server` URL and checks that a token may go there: `https://` (or `wss://`)
/// anywhere, plain `http://` (or `ws://`) only to this host (127.0.0.0/8, `::1`,
/// `localhost`). `token` names what would be sent ("runner token", "API token").
pub fn server_url(server: &str, token: &str) -> anyhow::Result<Url> {
    let url = Url::parse(server.trim()).map_err(|e| {
        anyhow!("--server `{server}` is not a URL ({e}); write it like https://ci.example")
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        bail!("--server `{server}` names no host; write it like https://ci.example");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server `{server}` must not carry a query or fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--server `{server}` must not carry a user name or password; pass --token");
    }
    check_transport(&url, token)?;
    Ok(url)
}

/// Refuses a plain (`http`, `ws`) URL whose host is not this host, and any other scheme
/// but `https` and `wss`.
pub fn check_transport(url: &Url, token: &str) -> anyhow::Result<()> {
    match url.scheme() {
        "https" | "wss" => Ok(()),
        "http" | "ws" if is_loopback(url) => Ok(()),
        "http" | "ws" => bail!(
            "refusing to send the {token} over plain {}:// to `{}`, which is not this host: \
             anyone on the path could read it. Serve Gantry through a TLS front (a reverse \
             proxy with a certificate) and use https://{} (pass --ca-cert FILE if a private \
             CA signed its certificate), or reach the server through a loopback address such \
             as an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST, then http://127.0.0.1:8000)",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.host_str().unwrap_or_default(),
        ),
        other => bail!(
            "the server URL must start with https:// (or http:// on this host), not {other}://"
        ),
    }
}

/// True for a host on this machine: an address in 127.0.0.0/8, `::1` (or
/// `::ffff:127.x.y.z`), or the name `localhost`. Any other name counts as remote, whatever
/// it resolves to.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            let name = bare.strip_suffix('.').unwrap_or(bare);
            name.eq_ignore_ascii_case("localhost")
        }
    }
}

/// A websocket to the server; `wss://` through `tls`.
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a websocket: checks the URL's transport again (nothing is sent in clear to
/// another host), then connects, with the TLS handshake before any HTTP is sent.
pub async fn connect_websocket(
    request: Request,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(WebSocket, Response), tungstenite::Error> {
    let uri = request.uri().to_string();
    let plain_elsewhere = Url::parse(&uri)
        .map_err(|_| ())
        .and_then(|url| check_transport(&url, "token").map_err(|_| ()));
    if plain_elsewhere.is_err() {
        return Err(tungstenite::Error::Url(
            tungstenite::error::UrlError::UnsupportedUrlScheme,
        ));
    }
    let connector = Connector::Rustls(Arc::clone(tls));
    tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)).await
}

/// What went wrong in TLS, if `error` (or what caused it) is a TLS error; `certificate`
/// tells whether the server's certificate was refused (which retrying does not fix).
pub struct TlsProblem {
    pub message: String,
    pub certificate: bool,
}

/// Finds a rustls error in a websocket error.
pub fn websocket_tls_problem(error: &tungstenite::Error) -> Option<TlsProblem> {
    match error {
        tungstenite::Error::Tls(TlsError::InvalidDnsName) => Some(TlsProblem {
            message: "the server's host name cannot be checked against a certificate".into(),
            certificate: true,
        }),
        tungstenite::Error::Io(io) => tls_problem(io),
        _ => None,
    }
}

/// Finds a rustls error in an error's chain of causes (reqwest wraps it in a few).
pub fn tls_problem(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(explain(tls));
        }
        // An io::Error's `source` skips the error it wraps (maybe another io::Error):
        // step into that one instead.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

fn explain(error: &rustls::Error) -> TlsProblem {
    match error {
        rustls::Error::InvalidCertificate(why) => TlsProblem {
            message: format!(
                "the server's TLS certificate is not trusted ({why}); if a private CA signed \
                 it, pass that CA's certificate with --ca-cert FILE ({CA_CERT_ENV}); the \
                 certificate must name the host of --server"
            ),
            certificate: true,
        },
        other => TlsProblem {
            message: format!("the TLS handshake with the server failed: {other}"),
            certificate: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str) -> bool {
        server_url(url, "runner token").is_ok()
    }

    #[test]
    fn sec_15_plain_urls_are_allowed_only_to_this_host() {
        for url in [
            "http://127.0.0.1:8000",
            "http://127.9.8.7",
            "http://[::1]:8000/ci",
            "http://[::ffff:127.0.0.1]:8000",
            "http://localhost:8000",
            "http://LOCALHOST.:8000",
            "ws://localhost",
            "https://ci.example",
            "https://10.0.0.5:8443",
            "wss://ci.example/prefix",
        ] {
            assert!(allowed(url), "{url} is refused");
        }
        for url in [
            "http://ci.example:8000",
            "http://10.0.0.5:8000",
            "http://192.168.1.2",
            "http://0.0.0.0:8000",
            "http://[::]:8000",
            "http://[fe80::1]:8000",
            "ws://ci.example",
            "http://localhost.ci.example",
            "http://127.0.0.1.nip.io",
        ] {
            let error = server_url(url, "runner token").unwrap_err().to_string();
            assert!(
                error.contains("refusing to send the runner token over plain")
                    && error.contains("https://")
                    && error.contains("--ca-cert"),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn unusable_server_urls_are_named() {
        for (url, expected) in [
            ("ci.example:8000", "https://"),
            ("ftp://ci.example", "ftp://"),
            ("https://", "not a URL"),
            ("https://ci.example/?x=1", "query"),
            ("https://user:pw@ci.example", "password"),
        ] {
            let error = server_url(url, "API token").unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn ca_files_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = format!("{:#}", client_config(Some(&missing)).unwrap_err());
        assert!(
            error.contains("missing.pem") && error.contains("--ca-cert"),
            "{error}"
        );

        let empty = dir.path().join("key.pem");
        std::fs::write(
            &empty,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = client_config(Some(&garbage)).unwrap_err().to_string();
        assert!(error.contains("cannot be used as a CA"), "{error}");

        assert!(client_config(None).is_ok());
    }
}
