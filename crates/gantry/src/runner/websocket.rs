//! `gantry runner`'s transport: a websocket to the server (`wss://`, or `ws://` to this
//! host only), authenticated with the runner token.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use futures_util::{SinkExt as _, StreamExt as _};
use gantry_agent::{ConnectError, Link, Transport};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

/// A websocket to `wss://host:port/api/runners/connect`.
pub struct WebSocket {
    /// `wss://host:port/api/runners/connect` (`ws://` only to this host).
    pub url: String,
    /// Certificates `wss://` trusts (docs/runners.md, *TLS*).
    pub tls: Arc<rustls::ClientConfig>,
    /// The runner token.
    pub token: String,
}

#[async_trait]
impl Transport for WebSocket {
    async fn connect(&self) -> Result<Link, ConnectError> {
        let mut request = (self.url.as_str()).into_client_request().map_err(|e| {
            ConnectError::Refused(anyhow!("the server URL `{}` is unusable: {e}", self.url))
        })?;
        let bearer = format!("Bearer {}", self.token).parse().map_err(|_| {
            ConnectError::Refused(anyhow!(
                "the runner token holds characters a header cannot carry"
            ))
        })?;
        request.headers_mut().insert("authorization", bearer);
        let socket = match crate::tls::connect_websocket(request, &self.tls).await {
            Ok((socket, _)) => socket,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let error = anyhow!("the server refused the runner ({status}): {}", body.trim());
                return Err(if status.as_u16() == 401 || status.as_u16() == 403 {
                    ConnectError::Refused(error)
                } else {
                    ConnectError::Unreachable(error.to_string())
                });
            }
            Err(error) => {
                return Err(match crate::tls::websocket_tls_problem(&error) {
                    Some(tls) if tls.certificate => ConnectError::Certificate(format!(
                        "cannot connect to {}: {}",
                        self.url, tls.message
                    )),
                    Some(tls) => ConnectError::Unreachable(format!(
                        "cannot connect to {}: {}",
                        self.url, tls.message
                    )),
                    None => {
                        ConnectError::Unreachable(format!("cannot reach {}: {error}", self.url))
                    }
                });
            }
        };
        let (sink, stream) = socket.split();
        let outgoing = sink
            .with(|text: String| std::future::ready(Ok(Message::text(text))))
            .sink_map_err(|e: tungstenite::Error| format!("sending failed: {e}"));
        let incoming = stream
            .take_while(|frame| std::future::ready(!matches!(frame, Ok(Message::Close(_)))))
            .filter_map(|frame| {
                std::future::ready(match frame {
                    Ok(Message::Text(text)) => Some(Ok(text.to_string())),
                    Ok(_) => None, // pings, pongs; binary frames are not part of the protocol
                    Err(error) => Some(Err(format!("the connection failed: {error}"))),
                })
            });
        Ok(Link {
            incoming: Box::pin(incoming),
            outgoing: Box::pin(outgoing),
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
