//! Files in the web console: uploads from the chat (a file picker, the phone's camera, a paste
//! or a drop), checked and stored like any channel's, and the stored files the timeline shows
//! (image thumbnails, file links). A message names its uploads by their hash (see
//! `chat::send`); the content never passes through the inbox.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use taskgate_core::attachment;

use super::{ApiError, Console};
use crate::attachments::Fetched;

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// The file's name as the browser knows it.
    name: Option<String>,
}

/// `POST /api/files?name=shot.png`: the body is the file, its `Content-Type` the type. Checked
/// against `[attachments]` (413 or 415 with the one line the chat shows) and stored; answers
/// what a message needs to send it: `{sha256, name, mime, size, kind}`.
pub async fn upload(
    Extension(console): Extension<Arc<Console>>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Refused> {
    let name = query.name.unwrap_or_else(|| "upload".to_owned());
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "application/octet-stream");
    let mime = declared.unwrap_or_else(|| attachment::mime_from_name(&name).to_owned());
    let stash = &console.stash;
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Err(line) = stash.precheck(&mime, length) {
        return Err(Refused(refused(&line)));
    }
    let max = stash.max_bytes();
    let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Refused(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, attachment::too_big(max, max + 1))))?;
    let stored = stash
        .store(Fetched { name, mime, voice: false, bytes: bytes.to_vec() })
        .await
        .map_err(|line| Refused(refused(&line)))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "sha256": stored.sha256, "name": stored.name, "mime": stored.mime, "size": stored.size,
            "kind": stored.kind.as_str(),
        })),
    ))
}

/// A refused upload. The body may not have been read, so the connection is not reused.
pub struct Refused(ApiError);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        response
    }
}

fn refused(line: &str) -> ApiError {
    let status = if line.starts_with("files up to") {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if line.starts_with("files of type") {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    ApiError::new(status, line)
}

/// `GET /api/files/{sha256}`: a stored file. Images are shown inline (thumbnails on the
/// timeline); anything else downloads, never rendered by the browser.
pub async fn download(Extension(console): Extension<Arc<Console>>, Path(sha256): Path<String>) -> Response {
    let Some(path) = console.stash.find(&sha256) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "file not found"}))).into_response();
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "file not found"}))).into_response();
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_owned();
    let mime = attachment::mime_from_name(&name);
    let inline = matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp");
    let (content_type, disposition) = if inline {
        (mime, "inline".to_owned())
    } else {
        ("application/octet-stream", format!("attachment; filename=\"{name}\""))
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "private, max-age=86400, immutable".to_owned()),
        ],
        bytes,
    )
        .into_response()
}
