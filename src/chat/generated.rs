//! Images a model generates, kept with the reply that brought them.
//!
//! An image-output model (Gemini's image models, an OpenAI-compatible server that returns
//! `images`) answers with pictures beside its text. While the reply streams, each picture is
//! sent to the client whole as a `part` event (inline, so it shows at once). When the reply
//! is stored, each becomes one of the user's files — in R2 with its row, by the same
//! all-or-nothing store an upload uses ([`crate::files::service::store`]) — and the stored
//! message's parts are its text, then a `file` part per picture in the order they came. So a
//! generated image is listed, downloaded and deleted like an upload, counts against
//! `FILE_STORAGE_QUOTA_BYTES`, and goes when the account goes; the conversation row stays
//! small whatever the picture's size.
//!
//! Keeping a picture never fails the reply: one that cannot be kept (over the quota, not the
//! picture it says it is, R2 down) is stored inline in the message when it is small enough
//! for a D1 row, else replaced by a note saying so — the text the user already saw is never
//! lost to an image.

use base64ct::Encoding;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use sha2::{Digest, Sha256};

use crate::conversations::parts::{MessagePart, MAX_STORED_INLINE_BASE64};
use crate::files::media::sniff_binary;
use crate::files::model::FileRecord;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::ids::{hex, new_id};
use crate::providers::wire::{Media, MediaSource};

/// Where the pictures of a reply are kept: the user's files in the worker, memory in tests.
pub trait GeneratedMedia {
    /// The parts that stand for `media` in the stored reply, in order; never fails (see the
    /// module documentation).
    fn keep<'a>(
        &'a self,
        user_id: &'a str,
        media: Vec<Media>,
    ) -> LocalBoxFuture<'a, Vec<MessagePart>>;
}

/// The stored parts of a reply: none when it is its text alone (the `content` column is its
/// one part), else the text (when there is any), then the kept pictures.
pub fn reply_parts(text: &str, kept: Vec<MessagePart>) -> Vec<MessagePart> {
    if kept.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::with_capacity(kept.len() + 1);
    if !text.is_empty() {
        parts.push(MessagePart::text(text));
    }
    parts.extend(kept);
    parts
}

/// A picture as it goes out in a `part` event (and is stored when it cannot be a file): an
/// image part, inline or by URL.
pub fn image_part(media: &Media) -> MessagePart {
    match &media.source {
        MediaSource::Url(url) => MessagePart::Image {
            url: Some(url.clone()),
            media_type: None,
            data: None,
        },
        MediaSource::Base64(data) => MessagePart::Image {
            url: None,
            media_type: Some(media.media_type.clone()),
            data: Some(data.clone()),
        },
    }
}

/// What stands for a picture that could not be kept as a file: inline if it fits a row,
/// else a note.
pub fn unkept_part(media: &Media) -> MessagePart {
    match &media.source {
        MediaSource::Base64(data) if data.len() > MAX_STORED_INLINE_BASE64 => {
            MessagePart::text(format!(
                "[the model returned an image ({}) that could not be kept]",
                media.media_type
            ))
        }
        _ => image_part(media),
    }
}

/// A picture's bytes, checked, and the file row that will hold them.
#[derive(Debug)]
pub struct Prepared {
    pub record: FileRecord,
    pub bytes: Vec<u8>,
}

/// Decodes the `index`-th picture of a reply and describes its file: named
/// `generated-<index>.<ext>`, its type sniffed from the bytes (a picture whose bytes are not
/// the image type it claims is refused, as an upload would be). `None` for a URL picture,
/// which the provider keeps and is stored as the URL.
pub fn prepare(
    user_id: &str,
    index: usize,
    media: &Media,
    max_bytes: usize,
    now_ms: u64,
) -> ApiResult<Option<Prepared>> {
    let MediaSource::Base64(data) = &media.source else {
        return Ok(None);
    };
    let bytes = base64ct::Base64::decode_vec(data.trim())
        .or_else(|_| base64ct::Base64Unpadded::decode_vec(data.trim()))
        .map_err(|_| ApiError::new(422, "generated_image_invalid", "not base64"))?;
    if bytes.len() > max_bytes {
        return Err(ApiError::new(
            422,
            "generated_image_too_large",
            "larger than MAX_FILE_SIZE",
        ));
    }
    let media_type = match sniff_binary(&bytes) {
        Some(sniffed) if sniffed.starts_with("image/") => sniffed,
        _ => {
            return Err(ApiError::new(
                422,
                "generated_image_invalid",
                "not a known image type",
            ))
        }
    };
    let extension = media_type.trim_start_matches("image/");
    let record = FileRecord {
        id: new_id(now_ms)?,
        user_id: user_id.to_string(),
        name: format!("generated-{}.{extension}", index + 1),
        media_type: media_type.to_string(),
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(&bytes)),
        status: "ready".into(),
        created_at: now_ms,
        analysis: None,
    };
    Ok(Some(Prepared { record, bytes }))
}

/// The file part a kept picture becomes.
pub fn file_part(record: &FileRecord) -> MessagePart {
    MessagePart::File {
        file_id: record.id.clone(),
        name: Some(record.name.clone()),
        media_type: Some(record.media_type.clone()),
    }
}

/// The user's files: D1 rows and the `FILES` bucket.
pub struct FilesMedia {
    pub rows: crate::files::store::D1Files,
    pub objects: crate::files::store::R2Objects,
    pub max_file_size: usize,
    pub quota: u64,
    pub log_level: crate::platform::logging::LogLevel,
}

impl FilesMedia {
    /// The request's (or the conversation object's) files.
    pub fn new(cx: &crate::http::ctx::Ctx) -> ApiResult<FilesMedia> {
        Ok(FilesMedia {
            rows: crate::files::store::D1Files {
                db: crate::platform::d1::database(cx)?,
            },
            objects: crate::files::store::R2Objects {
                bucket: crate::files::store::bucket(cx)?,
            },
            max_file_size: cx.config.files.max_file_size,
            quota: cx.config.files.storage_quota_bytes,
            log_level: cx.config.log_level,
        })
    }

    async fn keep_one(&self, user_id: &str, index: usize, media: &Media) -> ApiResult<MessagePart> {
        use crate::platform::clock::{Clock, SystemClock};
        let Some(prepared) = prepare(
            user_id,
            index,
            media,
            self.max_file_size,
            SystemClock.now_ms(),
        )?
        else {
            return Ok(image_part(media));
        };
        let blob = blob_of(&prepared.bytes)?;
        crate::files::service::store(
            &self.rows,
            &self.objects,
            &prepared.record,
            &blob,
            self.quota,
        )
        .await?;
        Ok(file_part(&prepared.record))
    }
}

impl GeneratedMedia for FilesMedia {
    fn keep<'a>(
        &'a self,
        user_id: &'a str,
        media: Vec<Media>,
    ) -> LocalBoxFuture<'a, Vec<MessagePart>> {
        async move {
            let mut parts = Vec::with_capacity(media.len());
            for (index, picture) in media.iter().enumerate() {
                match self.keep_one(user_id, index, picture).await {
                    Ok(part) => parts.push(part),
                    Err(err) => {
                        use crate::platform::clock::{Clock, SystemClock};
                        use crate::platform::logging::{LogLevel, LogLine};
                        LogLine::new(
                            LogLevel::Warn,
                            SystemClock.now_ms(),
                            "generated image not kept",
                        )
                        .field("error_code", err.code)
                        .field(
                            "error_detail",
                            err.internal.clone().unwrap_or(err.message.clone()),
                        )
                        .emit(self.log_level);
                        parts.push(unkept_part(picture));
                    }
                }
            }
            parts
        }
        .boxed_local()
    }
}

/// The bytes as the runtime's `Blob`, the body R2 takes.
fn blob_of(bytes: &[u8]) -> ApiResult<worker::web_sys::Blob> {
    use worker::js_sys::{Array, Uint8Array};
    let parts = Array::of1(&Uint8Array::from(bytes));
    worker::web_sys::Blob::new_with_u8_array_sequence(&parts)
        .map_err(|e| ApiError::internal(format!("blob: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::media::{encode_base64, samples::PNG};
    use crate::providers::wire::MediaKind;

    fn picture(media_type: &str, data: String) -> Media {
        Media {
            kind: MediaKind::Image,
            media_type: media_type.into(),
            source: MediaSource::Base64(data),
            name: None,
        }
    }

    #[test]
    fn a_reply_with_pictures_stores_its_text_then_each_picture() {
        let kept = vec![file_part(
            &prepare(
                "u",
                0,
                &picture("image/png", encode_base64(PNG)),
                1 << 20,
                5,
            )
            .unwrap()
            .unwrap()
            .record,
        )];
        let parts = reply_parts("Here it is.", kept);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], MessagePart::text("Here it is."));
        let MessagePart::File {
            name, media_type, ..
        } = &parts[1]
        else {
            panic!("a file part: {parts:?}");
        };
        assert_eq!(name.as_deref(), Some("generated-1.png"));
        assert_eq!(media_type.as_deref(), Some("image/png"));
        assert!(reply_parts("text only", Vec::new()).is_empty());
        assert_eq!(reply_parts("", vec![MessagePart::text("x")]).len(), 1);
    }

    #[test]
    fn a_picture_is_sniffed_hashed_and_sized_from_its_bytes() {
        let prepared = prepare(
            "u1",
            2,
            &picture("image/jpeg", encode_base64(PNG)),
            1 << 20,
            7,
        )
        .unwrap()
        .unwrap();
        // Claimed JPEG, sniffed PNG: the bytes decide.
        assert_eq!(prepared.record.media_type, "image/png");
        assert_eq!(prepared.record.name, "generated-3.png");
        assert_eq!(prepared.record.size, PNG.len() as u64);
        assert_eq!(prepared.record.sha256, hex(&Sha256::digest(PNG)));
        assert_eq!(prepared.record.user_id, "u1");
        assert_eq!(prepared.bytes, PNG);
    }

    #[test]
    fn bytes_that_are_no_picture_or_too_many_are_refused() {
        let not_image = prepare(
            "u",
            0,
            &picture("image/png", encode_base64(b"%PDF-1.4 x")),
            1 << 20,
            1,
        );
        assert_eq!(not_image.unwrap_err().code, "generated_image_invalid");
        let garbage = prepare("u", 0, &picture("image/png", "***".into()), 1 << 20, 1);
        assert_eq!(garbage.unwrap_err().code, "generated_image_invalid");
        let big = prepare("u", 0, &picture("image/png", encode_base64(PNG)), 10, 1);
        assert_eq!(big.unwrap_err().code, "generated_image_too_large");
    }

    #[test]
    fn a_url_picture_is_kept_as_its_url_and_an_unkept_one_inline_or_as_a_note() {
        let by_url = Media {
            kind: MediaKind::Image,
            media_type: "image/png".into(),
            source: MediaSource::Url("https://example.com/a.png".into()),
            name: None,
        };
        assert!(prepare("u", 0, &by_url, 1 << 20, 1).unwrap().is_none());
        assert_eq!(
            image_part(&by_url),
            MessagePart::Image {
                url: Some("https://example.com/a.png".into()),
                media_type: None,
                data: None
            }
        );
        let small = picture("image/png", encode_base64(PNG));
        assert_eq!(unkept_part(&small), image_part(&small));
        let huge = picture("image/png", "A".repeat(MAX_STORED_INLINE_BASE64 + 4));
        let MessagePart::Text { text } = unkept_part(&huge) else {
            panic!("a note");
        };
        assert!(text.contains("could not be kept"), "{text}");
    }
}
