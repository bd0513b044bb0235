//! The CSS and JavaScript of the pages, compiled into the binary and served from
//! `/assets/{file}`. Pages link them as `/assets/app.css?v=<version>`: a versioned URL is
//! cached for a year, since a new server build changes the version.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Every asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "theme.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/theme.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "builds.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/builds.js"),
    ),
    (
        "log.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/log.js"),
    ),
    (
        "build.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/build.js"),
    ),
];

/// A hash of every asset's bytes: changes whenever one of them does.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        for (name, _, body) in ASSETS {
            name.hash(&mut hasher);
            body.hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    })
}

/// `?v=` of an asset URL.
#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    v: Option<String>,
}

/// `GET /assets/{file}`.
pub async fn serve(
    Path(file): Path<String>,
    query: Result<Query<VersionQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", version());
    let cache = if query.ok().and_then(|q| q.0.v).as_deref() == Some(version()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response
}
