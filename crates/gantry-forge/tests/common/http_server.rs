//! A dumb-HTTP git server: static files of a bare repository, behind Basic auth.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `root` on loopback until dropped; every request needs `Authorization: Basic <auth>`
/// when `auth` is set.
pub struct DumbHttp {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl DumbHttp {
    pub async fn start(root: PathBuf, auth: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, root.clone(), auth));
            }
        });
        Self { port, task }
    }
}

impl Drop for DumbHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, root: PathBuf, auth: Option<&'static str>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let authorised = auth.is_none_or(|want| {
        text.lines().any(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("authorization: basic ") && line[21..].trim() == want
        })
    });
    let file = root.join(path.trim_start_matches('/'));
    let (status, body) = if !authorised {
        (
            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"",
            Vec::new(),
        )
    } else if path.contains("..") {
        ("400 Bad Request", Vec::new())
    } else {
        match tokio::fs::read(&file).await {
            Ok(bytes) => ("200 OK", bytes),
            Err(_) => ("404 Not Found", Vec::new()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}
