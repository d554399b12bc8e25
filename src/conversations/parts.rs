//! A message's content as typed parts. Pure.
//!
//! ```json
//! [{"type": "text", "text": "What is in this picture?"},
//!  {"type": "image", "media_type": "image/png", "data": "iVBORw0KGgo…"},
//!  {"type": "image", "url": "https://example.com/cat.jpg"},
//!  {"type": "file", "file_id": "0190…", "name": "report.pdf", "media_type": "application/pdf"}]
//! ```
//!
//! Each part has a `type` tag; an unknown `type` (a `tool_call` sent before tools exist) is a
//! 422 naming the part, so new part types (tools, forms, actions) are added here as variants
//! without any old client's part ever meaning something else. A plain string is one text part
//! and is stored as it always was (`content`, with no `parts`), so rows written before parts
//! existed read back unchanged.
//!
//! Inline images are stored with the message in D1, which keeps a row to 2 MB: one is at most
//! [`MAX_STORED_INLINE_BYTES`] (and `MAX_FILE_SIZE`); larger pictures are uploaded as files and
//! attached by `file_id`.

use serde::{Deserialize, Serialize};

use crate::files::media;
use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::{Media, MediaKind, MediaSource, Part};

/// The largest inline image a stored message keeps (decoded); its base64 stays under D1's
/// 2 MB row limit with room for the rest of the row.
pub const MAX_STORED_INLINE_BYTES: usize = 1_400_000;

/// The most base64 characters of inline images one stored message may hold.
pub const MAX_STORED_INLINE_BASE64: usize = 1_900_000;

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawPart")]
pub enum MessagePart {
    Text {
        text: String,
    },
    /// An image: inline (`media_type` and base64 `data`, or a `data:` URL in `url`) or an
    /// https `url` the provider fetches.
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    /// A stored file of the user (`POST /api/files/upload`); `name` and `media_type` are
    /// filled in from the file when the message is stored.
    File {
        file_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
    },
}

/// A part as it arrives: every field of every type, so reading one needs no buffering; which
/// fields a type takes is checked in [`MessagePart::try_from`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    url: Option<String>,
    media_type: Option<String>,
    data: Option<String>,
    file_id: Option<String>,
    name: Option<String>,
}

impl TryFrom<RawPart> for MessagePart {
    type Error = String;

    fn try_from(raw: RawPart) -> Result<Self, String> {
        let RawPart {
            kind,
            text,
            url,
            media_type,
            data,
            file_id,
            name,
        } = raw;
        let only = |allowed: &[&str]| {
            let given = [
                ("text", text.is_some()),
                ("url", url.is_some()),
                ("media_type", media_type.is_some()),
                ("data", data.is_some()),
                ("file_id", file_id.is_some()),
                ("name", name.is_some()),
            ];
            match given
                .iter()
                .find(|(field, set)| *set && !allowed.contains(field))
            {
                Some((field, _)) => Err(format!("a {kind} part has no field `{field}`")),
                None => Ok(()),
            }
        };
        match kind.as_str() {
            "text" => {
                only(&["text"])?;
                let text = text.ok_or("a text part needs `text`")?;
                Ok(MessagePart::Text { text })
            }
            "image" => {
                only(&["url", "media_type", "data"])?;
                Ok(MessagePart::Image {
                    url,
                    media_type,
                    data,
                })
            }
            "file" => {
                only(&["file_id", "name", "media_type"])?;
                let file_id = file_id.ok_or("a file part needs `file_id`")?;
                Ok(MessagePart::File {
                    file_id,
                    name,
                    media_type,
                })
            }
            other => Err(format!(
                "unknown part type `{other}`; expected `text`, `image` or `file`"
            )),
        }
    }
}

impl MessagePart {
    pub fn text(text: impl Into<String>) -> MessagePart {
        MessagePart::Text { text: text.into() }
    }
}

/// The text parts joined by newlines: a message's `content`.
pub fn text_of(parts: &[MessagePart]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            MessagePart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the parts are only text (stored as `content` alone).
pub fn text_only(parts: &[MessagePart]) -> bool {
    parts.iter().all(|p| matches!(p, MessagePart::Text { .. }))
}

/// A message's content as sent: a string, or a list of parts. Read in the one pass over the
/// body, so a bad part is a 422 naming its path (`content[1].type`) like any other field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Parts(Vec<MessagePart>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of parts")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Content, E> {
                Ok(Content::Text(text.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Content, E> {
                Ok(Content::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<MessagePart>()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// Checks the parts of a user's message, returning them in their stored form (an image's
/// `data:` URL split into `media_type` and `data`, its type sniffed): 422 for an empty list,
/// a bad image or a malformed file id; 413/415 as [`media`] says.
pub fn validate(
    field: &str,
    parts: Vec<MessagePart>,
    max_file_size: usize,
) -> ApiResult<Vec<MessagePart>> {
    if parts.is_empty() {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must hold at least one part."),
        ));
    }
    let max_inline = max_file_size.min(MAX_STORED_INLINE_BYTES);
    let mut inline_total = 0usize;
    let mut checked = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let param = format!("{field}[{i}]");
        checked.push(match part {
            MessagePart::Text { text } => MessagePart::Text { text },
            MessagePart::Image {
                url,
                media_type,
                data,
            } => {
                let media =
                    match (url, data) {
                        (Some(url), None) if media_type.is_none() => {
                            media::image_from_url(&format!("{param}.url"), &url, max_inline)?
                        }
                        (None, Some(data)) => media::inline(
                            &format!("{param}.data"),
                            MediaKind::Image,
                            media_type.as_deref(),
                            &data,
                            None,
                            max_inline,
                        )?,
                        _ => return Err(ApiError::validation(
                            param,
                            "An image part has either `url`, or `media_type` and base64 `data`.",
                        )),
                    };
                match media.source {
                    MediaSource::Url(url) => MessagePart::Image {
                        url: Some(url),
                        media_type: None,
                        data: None,
                    },
                    MediaSource::Base64(data) => {
                        inline_total += data.len();
                        MessagePart::Image {
                            url: None,
                            media_type: Some(media.media_type),
                            data: Some(data),
                        }
                    }
                }
            }
            MessagePart::File { file_id, .. } => {
                if !crate::platform::ids::is_valid_id(&file_id) {
                    return Err(no_such_file(&param));
                }
                MessagePart::File {
                    file_id,
                    name: None,
                    media_type: None,
                }
            }
        });
    }
    if inline_total > MAX_STORED_INLINE_BASE64 {
        return Err(ApiError::new(
            413,
            "file_too_large",
            format!("A message holds at most {MAX_STORED_INLINE_BASE64} bytes of inline images (base64); upload larger ones as files and attach them by `file_id`."),
        )
        .with_field(field));
    }
    Ok(checked)
}

/// 422 for a file id that names none of the user's files (missing and another user's alike).
pub fn no_such_file(param: &str) -> ApiError {
    ApiError::new(422, "file_not_found", "No file of yours has this id.")
        .with_field(format!("{param}.file_id"))
}

/// The parts as providers take them, for a message in the history: texts and images as they
/// are; an attached file as a note naming it (its contents went to the model with the message
/// that attached it).
pub fn to_wire(parts: &[MessagePart]) -> Vec<Part> {
    parts
        .iter()
        .map(|part| match part {
            MessagePart::Text { text } => Part::Text(text.clone()),
            MessagePart::Image { url: Some(url), .. } => Part::Media(Media {
                kind: MediaKind::Image,
                media_type: "image/jpeg".into(),
                source: MediaSource::Url(url.clone()),
                name: None,
            }),
            MessagePart::Image {
                media_type, data, ..
            } => Part::Media(Media {
                kind: MediaKind::Image,
                media_type: media_type.clone().unwrap_or_default(),
                source: MediaSource::Base64(data.clone().unwrap_or_default()),
                name: None,
            }),
            MessagePart::File {
                file_id,
                name,
                media_type,
            } => Part::Text(file_note(file_id, name.as_deref(), media_type.as_deref())),
        })
        .collect()
}

/// `[attached file report.pdf (application/pdf), id …]`.
pub fn file_note(file_id: &str, name: Option<&str>, media_type: Option<&str>) -> String {
    format!(
        "[attached file {} ({}), id {file_id}]",
        name.unwrap_or("file"),
        media_type.unwrap_or("unknown type")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::media::{encode_base64, samples::PNG};

    #[derive(Deserialize)]
    struct Body {
        content: Content,
    }

    fn parts_of(json: &str) -> ApiResult<Vec<MessagePart>> {
        let body: Body =
            crate::http::ctx::parse_json(format!(r#"{{"content":{json}}}"#).as_bytes())?;
        match body.content {
            Content::Parts(parts) => Ok(parts),
            Content::Text(_) => panic!("parts expected"),
        }
    }

    fn parse(json: &str) -> ApiResult<Vec<MessagePart>> {
        validate("content", parts_of(json)?, 1024 * 1024)
    }

    #[test]
    fn parts_are_tagged_and_an_unknown_type_is_a_422_naming_it() {
        let err = parse(r#"[{"type":"text","text":"a"},{"type":"tool_call","name":"f"}]"#)
            .expect_err("unknown");
        assert_eq!(err.status, 422);
        assert!(
            err.field
                .as_deref()
                .is_some_and(|f| f.starts_with("content[1]")),
            "{:?}",
            err.field
        );
        assert!(err.message.contains("tool_call"), "{}", err.message);
        assert_eq!(
            parse("[]").expect_err("empty").field.as_deref(),
            Some("content")
        );
    }

    #[test]
    fn a_data_url_image_is_stored_as_media_type_and_data() {
        let url = format!("data:image/png;base64,{}", encode_base64(PNG));
        let parts = parse(&format!(r#"[{{"type":"image","url":"{url}"}}]"#)).expect("valid");
        assert_eq!(
            parts,
            [MessagePart::Image {
                url: None,
                media_type: Some("image/png".into()),
                data: Some(encode_base64(PNG))
            }]
        );
        let wire = to_wire(&parts);
        assert!(matches!(&wire[0], Part::Media(m) if m.media_type == "image/png"));
    }

    #[test]
    fn bad_images_and_file_ids_name_the_part() {
        let cases = [
            (
                r#"[{"type":"image","url":"http://x.test/a.png"}]"#.to_string(),
                422,
                "content[0].url",
            ),
            (
                format!(
                    r#"[{{"type":"image","media_type":"image/gif","data":"{}"}}]"#,
                    encode_base64(PNG)
                ),
                422,
                "content[0].data",
            ),
            (r#"[{"type":"image"}]"#.to_string(), 422, "content[0]"),
            (
                r#"[{"type":"file","file_id":"../x"}]"#.to_string(),
                422,
                "content[0].file_id",
            ),
        ];
        for (json, status, field) in cases {
            let err = parse(&json).expect_err(&json);
            assert_eq!(
                (err.status, err.field.as_deref()),
                (status, Some(field)),
                "{json}"
            );
        }
    }

    #[test]
    fn inline_images_are_capped_below_the_d1_row_limit() {
        let big = vec![0u8; 1_500_000];
        let mut png = PNG[..33].to_vec();
        png.extend_from_slice(&big);
        png.extend_from_slice(&PNG[33..]);
        let json = format!(
            r#"[{{"type":"image","media_type":"image/png","data":"{}"}}]"#,
            encode_base64(&png)
        );
        let parts = parts_of(&json).expect("parts");
        let err = validate("content", parts, 10 << 20).expect_err("big");
        assert_eq!(err.status, 413);
    }

    #[test]
    fn history_sends_files_as_a_note_and_text_as_text() {
        let parts = [
            MessagePart::text("Look"),
            MessagePart::File {
                file_id: "f".into(),
                name: Some("a.pdf".into()),
                media_type: Some("application/pdf".into()),
            },
        ];
        assert_eq!(text_of(&parts), "Look");
        assert_eq!(
            to_wire(&parts),
            [
                Part::Text("Look".into()),
                Part::Text("[attached file a.pdf (application/pdf), id f]".into())
            ]
        );
    }
}
