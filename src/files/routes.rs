//! The file routes: upload one (`POST /api/files/upload`) or several
//! (`POST /api/files/upload-multiple`) as `multipart/form-data`, list (`GET /api/files`),
//! metadata (`GET /api/files/{id}`), download (`GET /api/files/{id}/content`) and delete
//! (`DELETE /api/files/{id}`). Web+'s `/files/…` names are aliases ([`crate::compat`]).
//!
//! **Uploads.** The runtime parses the multipart body (`request.formData()`) into `File`s that
//! it holds once; the worker reads only the first and last bytes of each (to sniff its type and
//! check an image is whole), hashes it through `crypto.DigestStream`, and hands R2 the file's
//! stream. The bytes therefore never enter the worker's (wasm) memory and are held once, not
//! twice; a declared `Content-Length` over what the route can take is refused before the body is
//! read. Each file is then stored as [`super::service`] says, so D1 and R2 never disagree.

use serde::Serialize;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Headers, Response};

use futures::StreamExt;
use serde_json::json;

use super::analysis::{self, Analysis, AnalyzeBody};
use super::media::{self, is_text_type};
use super::model::{clean_name, content_disposition, object_key, FileRecord, FileView};
use super::service::{self, over_quota};
use super::settings::FileSettings;
use super::store::{blob_range, blob_sha256, bucket, D1Files, R2Objects};
use crate::auth::guard::authenticate;
use crate::chat::plan::{plan_reply, Overrides};
use crate::conversations::input::NewConversation;
use crate::conversations::model::TitleSource;
use crate::http::ctx::{parse_json, require_media_type, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, BodyLimit, Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1;
use crate::platform::ids::{is_valid_id, new_id};
use crate::providers::capability::check_model;
use crate::providers::client::failure::provider_error;
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::providers::resolve::validate_model;
use crate::providers::wire::{ChatRequest, ProviderEvent};
use crate::providers::wire::{Media, MediaKind, MediaSource, Part};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/files/upload", handler!(upload_one))
            .with_body(BodyLimit::Upload),
        Route::new(
            Method::Post,
            "/api/files/upload-multiple",
            handler!(upload_many),
        )
        .with_body(BodyLimit::Upload),
        Route::new(Method::Get, "/api/files", handler!(list)),
        Route::new(Method::Get, "/api/files/{id}", handler!(show)),
        Route::new(Method::Get, "/api/files/{id}/content", handler!(download)),
        Route::new(Method::Delete, "/api/files/{id}", handler!(delete)),
        Route::new(Method::Post, "/api/files/{id}/analyze", handler!(analyze)),
    ]
}

/// The most bytes read from the start of a file to tell what it is.
const SNIFF_BYTES: f64 = 4096.0;

/// An upload checked and ready to store.
struct Checked {
    blob: web_sys::Blob,
    name: String,
    media_type: &'static str,
    size: u64,
}

/// Checks one uploaded file: 422 empty, 413 over `MAX_FILE_SIZE`, 415 for a type that is not
/// recognised or not in `ALLOWED_FILE_TYPES`, 422 when the part's declared type disagrees with
/// the bytes or an image is cut short.
async fn check(param: &str, file: web_sys::File, settings: &FileSettings) -> ApiResult<Checked> {
    let size = file.size() as u64;
    if size == 0 {
        return Err(ApiError::validation(param, "The file is empty."));
    }
    if size > settings.max_file_size as u64 {
        return Err(media::too_large(param, settings.max_file_size));
    }
    let name = clean_name(&file.name());
    let blob: web_sys::Blob = file.clone().unchecked_into();
    let head = blob_range(&blob, 0.0, SNIFF_BYTES.min(size as f64)).await?;
    let allowed: Vec<&str> = settings.allowed_types.iter().map(String::as_str).collect();
    let Some(media_type) = media::detect(&head, &name) else {
        return Err(media::type_not_allowed(
            param,
            "an unrecognised binary type",
            &allowed,
        ));
    };
    if !settings.allows(media_type) {
        return Err(media::type_not_allowed(param, media_type, &allowed));
    }
    let declared = media::normalize(&file.type_());
    let generic = declared.is_empty() || declared == "application/octet-stream";
    let text_either = is_text_type(&declared) && is_text_type(media_type);
    if !generic && !text_either && !settings.allows(&declared) {
        return Err(media::type_not_allowed(param, &declared, &allowed));
    }
    if !generic && !text_either && declared != media_type {
        return Err(media::mismatch(param, &declared, Some(media_type)));
    }
    if media_type.starts_with("image/") {
        let tail = blob_range(&blob, (size as f64 - 16.0).max(0.0), size as f64).await?;
        if !media::image_ends_whole(media_type, &head, &tail, size as usize) {
            return Err(media::corrupt_image(param, media_type));
        }
    }
    Ok(Checked {
        blob,
        name,
        media_type,
        size,
    })
}

/// The files of the multipart body under `fields` (first field that has any), in order.
async fn form_files(cx: &Ctx, fields: &[&str]) -> ApiResult<Vec<web_sys::File>> {
    require_media_type(cx.header("content-type").as_deref(), "multipart/form-data")?;
    if cx.header("content-length").is_none() {
        return Err(ApiError::new(
            411,
            "length_required",
            "Uploads need a Content-Length header.",
        ));
    }
    let promise = cx.req.inner().form_data().map_err(|_| bad_multipart())?;
    let form: web_sys::FormData = JsFuture::from(promise)
        .await
        .map_err(|_| bad_multipart())?
        .unchecked_into();
    for field in fields {
        let files: Vec<web_sys::File> = form
            .get_all(field)
            .iter()
            .filter_map(|value| value.dyn_into::<web_sys::File>().ok())
            .collect();
        if !files.is_empty() {
            return Ok(files);
        }
    }
    Err(ApiError::validation(
        fields[0],
        format!("The form has no file in `{}`.", fields[0]),
    ))
}

fn bad_multipart() -> ApiError {
    ApiError::bad_request(
        "invalid_multipart",
        "The body is not a readable multipart/form-data form.",
    )
}

/// Checks every file, then stores them one by one; if one cannot be stored, those already
/// stored are removed again, so an upload is all or nothing.
async fn upload(cx: &Ctx, fields: &[&str], most: usize) -> ApiResult<Vec<FileView>> {
    let principal = authenticate(cx).await?;
    let settings = &cx.config.files;
    let files = form_files(cx, fields).await?;
    if files.len() > most {
        return Err(ApiError::new(
            413,
            "too_many_files",
            format!("At most {most} files per upload (MAX_FILES_PER_UPLOAD)."),
        )
        .with_field(fields[0]));
    }
    let mut checked = Vec::with_capacity(files.len());
    for (i, file) in files.into_iter().enumerate() {
        let param = if most == 1 {
            fields[0].to_string()
        } else {
            format!("{}[{i}]", fields[0])
        };
        checked.push(check(&param, file, settings).await?);
    }
    let rows = D1Files {
        db: d1::database(cx)?,
    };
    let objects = R2Objects {
        bucket: bucket(cx)?,
    };
    let now = SystemClock.now_ms();
    // Leftovers of uploads or deletes that failed part-way (see `service`); never in the way.
    let _ = service::sweep(&rows, &objects, &principal.user_id, now).await;
    let total: u64 = checked.iter().map(|c| c.size).sum();
    if rows.usage(&principal.user_id).await? + total > settings.storage_quota_bytes {
        return Err(over_quota(settings.storage_quota_bytes));
    }
    let mut stored: Vec<FileRecord> = Vec::with_capacity(checked.len());
    for file in checked {
        let record = FileRecord {
            id: new_id(now)?,
            user_id: principal.user_id.clone(),
            name: file.name,
            media_type: file.media_type.to_string(),
            size: file.size,
            sha256: blob_sha256(&file.blob).await?,
            status: "ready".into(),
            created_at: now,
            analysis: None,
        };
        let result = service::store(
            &rows,
            &objects,
            &record,
            &file.blob,
            settings.storage_quota_bytes,
        )
        .await;
        if let Err(err) = result {
            for done in &stored {
                let _ = service::remove(&rows, &objects, &done.user_id, &done.id).await;
            }
            return Err(err);
        }
        stored.push(record);
    }
    Ok(stored.iter().map(FileView::from).collect())
}

/// POST /api/files/upload — one file in the multipart field `file`: 201 with the file.
async fn upload_one(cx: Ctx) -> ApiResult<Response> {
    let mut files = upload(&cx, &["file"], 1).await?;
    let file = files
        .pop()
        .ok_or_else(|| ApiError::internal("no file stored"))?;
    response::json(201, &file)
}

#[derive(Serialize)]
struct FileList {
    files: Vec<FileView>,
    /// For `?cursor=` to get the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// POST /api/files/upload-multiple — files in the multipart field `files` (or `file`), at most
/// `MAX_FILES_PER_UPLOAD`: 201 with `{"files": […]}`, all stored or none.
async fn upload_many(cx: Ctx) -> ApiResult<Response> {
    let most = cx.config.files.max_files_per_upload;
    let files = upload(&cx, &["files", "file"], most).await?;
    response::json(
        201,
        &FileList {
            files,
            next_cursor: None,
        },
    )
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;

/// GET /api/files — the caller's files, newest first, `limit` (1–100, default 50) at a time,
/// the next page from `cursor`.
async fn list(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let limit = match cx.query("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation("limit", "`limit` must be a whole number from 1 to 100.")
            })?,
    };
    let cursor = cx.query("cursor");
    if cursor.as_deref().is_some_and(|c| !is_valid_id(c)) {
        return Err(ApiError::validation(
            "cursor",
            "`cursor` is not one this API gave.",
        ));
    }
    let rows = D1Files {
        db: d1::database(&cx)?,
    };
    let mut files = rows
        .list(&principal.user_id, cursor.as_deref(), limit + 1)
        .await?;
    let more = files.len() > limit as usize;
    files.truncate(limit as usize);
    let next_cursor = more.then(|| files.last().map(|f| f.id.clone())).flatten();
    response::json(
        200,
        &FileList {
            files: files.iter().map(FileView::from).collect(),
            next_cursor,
        },
    )
}

/// The caller's ready file of the path: 404 for a missing one, another user's, or an id this
/// API could not have issued — all alike.
async fn own_file(cx: &Ctx) -> ApiResult<FileRecord> {
    let principal = authenticate(cx).await?;
    let id = cx.param("id")?;
    if !is_valid_id(id) {
        return Err(ApiError::not_found());
    }
    let rows = D1Files {
        db: d1::database(cx)?,
    };
    rows.get(&principal.user_id, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// GET /api/files/{id} — the file's metadata.
async fn show(cx: Ctx) -> ApiResult<Response> {
    let file = own_file(&cx).await?;
    response::json(200, &FileView::from(&file))
}

/// GET /api/files/{id}/content — the bytes, owner only, streamed from R2 by the runtime: the
/// sniffed `content-type`, `content-disposition: attachment` with the name, `nosniff` (set on
/// every response), so a browser never renders an uploaded file as a page of this origin.
async fn download(cx: Ctx) -> ApiResult<Response> {
    let file = own_file(&cx).await?;
    let object = bucket(&cx)?
        .get(object_key(&file.user_id, &file.id))
        .execute()
        .await
        .map_err(|e| ApiError::internal(format!("R2 get: {e}")))?
        .ok_or_else(|| ApiError::internal("ready file without its object"))?;
    let body = object
        .body()
        .ok_or_else(|| ApiError::internal("R2 object without a body"))?
        .response_body()
        .map_err(|e| ApiError::internal(format!("R2 body: {e}")))?;
    let headers = Headers::new();
    let content_type = if is_text_type(&file.media_type) {
        format!("{}; charset=utf-8", file.media_type)
    } else {
        file.media_type.clone()
    };
    headers.set("content-type", &content_type)?;
    headers.set("content-disposition", &content_disposition(&file.name))?;
    headers.set("content-length", &file.size.to_string())?;
    headers.set("etag", &format!("\"{}\"", file.sha256))?;
    headers.set("cache-control", "private, no-store")?;
    headers.set("content-security-policy", "default-src 'none'; sandbox")?;
    Ok(Response::from_body(body)?.with_headers(headers))
}

/// DELETE /api/files/{id} — removes the file's bytes and its row: 204. Messages that attached
/// it keep their reference, shown as a file that is gone.
async fn delete(cx: Ctx) -> ApiResult<Response> {
    let file = own_file(&cx).await?;
    let rows = D1Files {
        db: d1::database(&cx)?,
    };
    let objects = R2Objects {
        bucket: bucket(&cx)?,
    };
    service::remove(&rows, &objects, &file.user_id, &file.id).await?;
    response::no_content()
}

/// POST /api/files/{id}/analyze — asks a model about the file ([`super::analysis`]), with an
/// optional `instruction` and `model` (default: as for chat), stores the result as the file's
/// `analysis` and returns it; with `stream: true` as Server-Sent Events: `delta` `{"text"}`
/// pieces, then `done` with the stored analysis (or `error` with the envelope). A streamed
/// analysis is stored when the model finishes while the client is still reading. Counted
/// against `RATE_LIMIT_CHAT` like a chat message.
async fn analyze(mut cx: Ctx) -> ApiResult<Response> {
    let file = own_file(&cx).await?;
    // A model call, counted with the user's chat messages (RATE_LIMIT_CHAT).
    let limit = cx.config.rate_limits.chat_per_user;
    crate::rate_limit::kv::enforce(&cx, "chat", &file.user_id, limit).await?;
    let bytes = cx.body_bytes().await?;
    let body: AnalyzeBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        AnalyzeBody::default()
    } else {
        require_media_type(cx.header("content-type").as_deref(), "application/json")?;
        parse_json(&bytes)?
    };
    let instruction = match body.instruction.as_deref().map(str::trim) {
        None => analysis::DEFAULT_INSTRUCTION.to_string(),
        Some("") => {
            return Err(ApiError::validation(
                "instruction",
                "`instruction` must not be blank.",
            ))
        }
        Some(text) if text.chars().count() > analysis::MAX_INSTRUCTION_CHARS => {
            return Err(ApiError::validation(
                "instruction",
                format!(
                    "`instruction` is longer than {} characters.",
                    analysis::MAX_INSTRUCTION_CHARS
                ),
            ))
        }
        Some(text) => text.to_string(),
    };
    let model = body.model.as_deref().map(validate_model).transpose()?;
    let now = SystemClock.now_ms();
    let blank = NewConversation {
        title: String::new(),
        title_source: TitleSource::Default,
        model: None,
        mode: None,
        system_prompt: None,
        settings: Default::default(),
    }
    .conversation("", now);
    let overrides = Overrides {
        model: model.as_deref(),
        mode: None,
        system_prompt: Some(analysis::SYSTEM_PROMPT),
    };
    let plan = plan_reply(&blank, overrides, &cx.config.chat, &cx.config.providers)?;
    let text_bytes;
    let content = if is_text_type(&file.media_type) {
        text_bytes = object_bytes(&cx, &file).await?;
        analysis::Content::Text(&text_bytes)
    } else {
        analysis::Content::Media(attachment(&cx, &file, 0).await?)
    };
    let (messages, truncated) =
        analysis::messages(&file.name, content, &instruction, plan.budget_tokens);
    check_model(&cx.config.providers, &plan.model, &messages)?;
    let request = ChatRequest {
        messages,
        temperature: plan.settings.temperature,
        top_p: plan.settings.top_p,
        max_tokens: plan.settings.max_tokens,
        include_usage: true,
        ..ChatRequest::default()
    };
    let client = ProviderClient::new(&cx);
    let rows = D1Files {
        db: d1::database(&cx)?,
    };
    let result = |model: String, text: String| Analysis {
        file_id: file.id.clone(),
        model,
        instruction: instruction.clone(),
        analysis: text,
        truncated,
        created_at: SystemClock.now_ms(),
    };
    if !body.stream.unwrap_or(false) {
        let answer = client.complete(&plan.model, request).await?;
        let done = result(answer.model.id, answer.completion.text);
        keep_analysis(&rows, &file, &done).await?;
        return response::json(200, &done);
    }
    let stream = client.stream(&plan.model, request).await?;
    let model_id = stream.model().id.clone();
    let provider = stream.model().provider.clone();
    let done = result(model_id, String::new());
    let request_id = cx.request_id.clone();
    let events = futures::stream::unfold(Some((stream, done, rows, file)), move |state| {
        let provider = provider.clone();
        let request_id = request_id.clone();
        async move {
            let (mut stream, mut done, rows, file) = state?;
            loop {
                let event = match stream.next().await {
                    Some(ProviderEvent::TextDelta(text)) => {
                        done.analysis.push_str(&text);
                        sse("delta", &json!({ "text": text }))
                    }
                    // An analysis is text: usage is not shown, and an image the model drew
                    // has no place in it.
                    Some(ProviderEvent::Usage(_) | ProviderEvent::Media(_)) => continue,
                    Some(ProviderEvent::Error(error)) => {
                        let err = provider_error(&provider, &error);
                        let data = json!({ "error": err.envelope(&request_id) });
                        return Some((Ok(sse("error", &data)), None));
                    }
                    Some(ProviderEvent::Finish(_)) | None => {
                        done.created_at = SystemClock.now_ms();
                        let event = match keep_analysis(&rows, &file, &done).await {
                            Ok(()) => sse("done", &done),
                            Err(err) => {
                                sse("error", &json!({ "error": err.envelope(&request_id) }))
                            }
                        };
                        return Some((Ok(event), None));
                    }
                };
                return Some((Ok(event), Some((stream, done, rows, file))));
            }
        }
    });
    event_stream_response(events)
}

fn sse<T: Serialize>(name: &str, data: &T) -> Vec<u8> {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

async fn keep_analysis(rows: &D1Files, file: &FileRecord, done: &Analysis) -> ApiResult<()> {
    let json = serde_json::to_string(done)
        .map_err(|e| ApiError::internal(format!("analysis json: {e}")))?;
    rows.set_analysis(&file.user_id, &file.id, &json).await
}

/// The whole object of a file, read into memory (text files analysis puts in the prompt).
async fn object_bytes(cx: &Ctx, file: &FileRecord) -> ApiResult<Vec<u8>> {
    bucket(cx)?
        .get(object_key(&file.user_id, &file.id))
        .execute()
        .await
        .map_err(|e| ApiError::internal(format!("R2 get: {e}")))?
        .ok_or_else(|| ApiError::internal("ready file without its object"))?
        .body()
        .ok_or_else(|| ApiError::internal("R2 object without a body"))?
        .bytes()
        .await
        .map_err(|e| ApiError::internal(format!("R2 read: {e}")))
}

/// What a model gets for an attached file: an image or PDF as base64 media, a text file as
/// its text (cut at `max_text_chars`, saying so). 422 for a type no model reads.
pub async fn attachment(cx: &Ctx, file: &FileRecord, max_text_chars: usize) -> ApiResult<Part> {
    let bytes = object_bytes(cx, file).await?;
    if is_text_type(&file.media_type) {
        return Ok(Part::Text(media::text_for_model(
            &file.name,
            &bytes,
            max_text_chars,
        )));
    }
    let kind = if file.media_type == media::PDF {
        MediaKind::Document
    } else {
        MediaKind::Image
    };
    Ok(Part::Media(Media {
        kind,
        media_type: file.media_type.clone(),
        source: MediaSource::Base64(media::encode_base64(&bytes)),
        name: Some(file.name.clone()),
    }))
}

/// The user's ready file `id`, if it is theirs.
pub async fn find(cx: &Ctx, user_id: &str, id: &str) -> ApiResult<Option<FileRecord>> {
    D1Files {
        db: d1::database(cx)?,
    }
    .get(user_id, id)
    .await
}

/// Deleting an account: every file is hidden first, then the user's objects are removed from
/// R2 (by their key prefix), before the user row (and with it, by cascade, the file rows) goes.
/// A failure stops the account deletion with the account still there.
pub async fn delete_all_of(cx: &Ctx, user_id: &str) -> ApiResult<()> {
    let rows = D1Files {
        db: d1::database(cx)?,
    };
    rows.mark_all_deleting(user_id).await?;
    R2Objects {
        bucket: bucket(cx)?,
    }
    .delete_all(user_id)
    .await
    .map_err(|err| service::storage_failed(&err))
}
