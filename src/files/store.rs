//! The D1 rows and R2 objects of files: every `files` statement, and the `FILES` bucket.
//! What an upload's bytes are here: the runtime's `Blob` from the parsed multipart body.

use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};
use worker::{Bucket, D1Database, Data, HttpMetadata};

use super::model::{user_prefix, FileRecord};
use super::service::{FileRows, Objects};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1::{self, Val};

/// The columns of a file row, in `FileRecord`'s order.
const COLUMNS: &str = "id, user_id, name, media_type, size, sha256, status, created_at, analysis";

/// The `FILES` bucket.
pub fn bucket(cx: &Ctx) -> ApiResult<Bucket> {
    cx.env
        .bucket("FILES")
        .map_err(|e| ApiError::internal(format!("R2 binding FILES: {e}")))
}

fn r2_error(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("R2 {what}: {err}"))
}

/// The `files` table.
pub struct D1Files {
    pub db: D1Database,
}

impl D1Files {
    /// The user's ready file `id`.
    pub async fn get(&self, user_id: &str, id: &str) -> ApiResult<Option<FileRecord>> {
        let sql = format!(
            "select {COLUMNS} from files where id = ?1 and user_id = ?2 and status = 'ready'"
        );
        d1::first(&self.db, &sql, &[id.into(), user_id.into()]).await
    }

    /// Up to `limit` of the user's ready files, newest first, older than the id `before`.
    pub async fn list(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> ApiResult<Vec<FileRecord>> {
        let sql = format!(
            "select {COLUMNS} from files
             where user_id = ?1 and status = 'ready' and (?2 is null or id < ?2)
             order by id desc limit ?3"
        );
        d1::all(
            &self.db,
            &sql,
            &[user_id.into(), before.into(), i64::from(limit).into()],
        )
        .await
    }

    /// The bytes the user's files take (every status: pending uploads hold their place).
    pub async fn usage(&self, user_id: &str) -> ApiResult<u64> {
        #[derive(Deserialize)]
        struct Used {
            used: Option<f64>,
        }
        let row: Option<Used> = d1::first(
            &self.db,
            "select sum(size) as used from files where user_id = ?1",
            &[user_id.into()],
        )
        .await?;
        Ok(row.and_then(|r| r.used).unwrap_or(0.0) as u64)
    }

    /// Keeps `analysis` (JSON) as the file's latest analysis.
    pub async fn set_analysis(&self, user_id: &str, id: &str, analysis: &str) -> ApiResult<()> {
        d1::execute(
            &self.db,
            "update files set analysis = ?3 where id = ?1 and user_id = ?2 and status = 'ready'",
            &[id.into(), user_id.into(), analysis.into()],
        )
        .await
        .map(|_| ())
    }

    /// Hides every file of the user (`deleting`) before their objects go with the account.
    pub async fn mark_all_deleting(&self, user_id: &str) -> ApiResult<()> {
        d1::execute(
            &self.db,
            "update files set status = 'deleting' where user_id = ?1",
            &[user_id.into()],
        )
        .await
        .map(|_| ())
    }
}

impl FileRows for D1Files {
    fn insert_pending<'a>(
        &'a self,
        file: &'a FileRecord,
        quota: u64,
    ) -> LocalBoxFuture<'a, ApiResult<bool>> {
        async move {
            // One statement: the quota check and the insert cannot be split by another upload.
            let changed = d1::execute(
                &self.db,
                "insert into files (id, user_id, name, media_type, size, sha256, status, created_at)
                 select ?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7
                 where (select coalesce(sum(size), 0) from files where user_id = ?2) + ?5 <= ?8",
                &[
                    Val::from(&file.id),
                    Val::from(&file.user_id),
                    Val::from(&file.name),
                    Val::from(&file.media_type),
                    Val::from(file.size),
                    Val::from(&file.sha256),
                    Val::from(file.created_at),
                    Val::from(quota),
                ],
            )
            .await?;
            Ok(changed == 1)
        }
        .boxed_local()
    }

    fn mark_ready<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        async move {
            let changed = d1::execute(
                &self.db,
                "update files set status = 'ready' where id = ?1 and user_id = ?2 and status = 'pending'",
                &[id.into(), user_id.into()],
            )
            .await?;
            if changed == 1 {
                Ok(())
            } else {
                Err(ApiError::internal("pending file row vanished"))
            }
        }
        .boxed_local()
    }

    fn mark_deleting<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<bool>> {
        async move {
            let changed = d1::execute(
                &self.db,
                "update files set status = 'deleting' where id = ?1 and user_id = ?2 and status = 'ready'",
                &[id.into(), user_id.into()],
            )
            .await?;
            Ok(changed == 1)
        }
        .boxed_local()
    }

    fn restore<'a>(&'a self, user_id: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
        async move {
            d1::execute(
                &self.db,
                "update files set status = 'ready' where id = ?1 and user_id = ?2 and status = 'deleting'",
                &[id.into(), user_id.into()],
            )
            .await
            .map(|_| ())
        }
        .boxed_local()
    }

    fn remove<'a>(&'a self, user_id: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
        async move {
            d1::execute(
                &self.db,
                "delete from files where id = ?1 and user_id = ?2",
                &[id.into(), user_id.into()],
            )
            .await
            .map(|_| ())
        }
        .boxed_local()
    }

    fn stale<'a>(
        &'a self,
        user_id: &'a str,
        before_ms: u64,
    ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>> {
        async move {
            #[derive(Deserialize)]
            struct Id {
                id: String,
            }
            let rows: Vec<Id> = d1::all(
                &self.db,
                "select id from files where user_id = ?1 and status != 'ready' and created_at < ?2 limit 100",
                &[user_id.into(), before_ms.into()],
            )
            .await?;
            Ok(rows.into_iter().map(|r| r.id).collect())
        }
        .boxed_local()
    }
}

/// The `FILES` bucket as the [`Objects`] seam.
pub struct R2Objects {
    pub bucket: Bucket,
}

impl Objects for R2Objects {
    type Body = web_sys::Blob;

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: &'a web_sys::Blob,
        media_type: &'a str,
        sha256: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>> {
        async move {
            let digest = hex_bytes(sha256).ok_or_else(|| ApiError::internal("bad sha256"))?;
            // The Blob's stream has a known length, so R2 takes it as it is: the bytes go from
            // the runtime's parsed body to R2 without passing through the worker's memory.
            self.bucket
                .put(key, Data::ReadableStream(body.stream()))
                .http_metadata(HttpMetadata {
                    content_type: Some(media_type.to_string()),
                    ..HttpMetadata::default()
                })
                .sha256(digest)
                .execute()
                .await
                .map_err(|e| r2_error("put", e))?;
            Ok(())
        }
        .boxed_local()
    }

    fn delete<'a>(&'a self, keys: Vec<String>) -> LocalBoxFuture<'a, ApiResult<()>> {
        async move {
            for chunk in keys.chunks(1000) {
                self.bucket
                    .delete_multiple(chunk.to_vec())
                    .await
                    .map_err(|e| r2_error("delete", e))?;
            }
            Ok(())
        }
        .boxed_local()
    }
}

impl R2Objects {
    /// Deletes every object of the user (account deletion), listing them by their prefix.
    pub async fn delete_all(&self, user_id: &str) -> ApiResult<()> {
        loop {
            let listed = self
                .bucket
                .list()
                .prefix(user_prefix(user_id))
                .execute()
                .await
                .map_err(|e| r2_error("list", e))?;
            let keys: Vec<String> = listed.objects().iter().map(|o| o.key()).collect();
            if keys.is_empty() {
                return Ok(());
            }
            self.delete(keys).await?;
            if !listed.truncated() {
                return Ok(());
            }
        }
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn js_error(what: &str, err: JsValue) -> ApiError {
    ApiError::internal(format!("{what}: {err:?}"))
}

/// Bytes `start..end` of `blob`.
pub async fn blob_range(blob: &web_sys::Blob, start: f64, end: f64) -> ApiResult<Vec<u8>> {
    let part = blob
        .slice_with_f64_and_f64(start, end)
        .map_err(|e| js_error("blob slice", e))?;
    let buffer = JsFuture::from(part.array_buffer())
        .await
        .map_err(|e| js_error("blob read", e))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The hex SHA-256 of `blob`, streamed through the runtime's `crypto.DigestStream`, so the
/// bytes are never copied into the worker's memory.
pub async fn blob_sha256(blob: &web_sys::Blob) -> ApiResult<String> {
    let global = js_sys::global();
    let crypto =
        js_sys::Reflect::get(&global, &"crypto".into()).map_err(|e| js_error("crypto", e))?;
    let constructor: js_sys::Function = js_sys::Reflect::get(&crypto, &"DigestStream".into())
        .map_err(|e| js_error("DigestStream", e))?
        .dyn_into()
        .map_err(|e| js_error("DigestStream", e))?;
    let args = js_sys::Array::of1(&"SHA-256".into());
    let digest_stream =
        js_sys::Reflect::construct(&constructor, &args).map_err(|e| js_error("DigestStream", e))?;
    let writable: web_sys::WritableStream = digest_stream
        .clone()
        .dyn_into()
        .map_err(|e| js_error("DigestStream", e))?;
    JsFuture::from(blob.stream().pipe_to(&writable))
        .await
        .map_err(|e| js_error("digest", e))?;
    let digest: js_sys::Promise = js_sys::Reflect::get(&digest_stream, &"digest".into())
        .map_err(|e| js_error("digest", e))?
        .dyn_into()
        .map_err(|e| js_error("digest", e))?;
    let buffer = JsFuture::from(digest)
        .await
        .map_err(|e| js_error("digest", e))?;
    Ok(crate::platform::ids::hex(
        &js_sys::Uint8Array::new(&buffer).to_vec(),
    ))
}
