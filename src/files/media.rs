//! What bytes are, and the inline media of messages. Pure: no I/O, tested natively.
//!
//! A file's media type is always **sniffed from its bytes**, never taken from the client: a
//! declared type only has to agree with what the bytes are (`image/jpg` counts as
//! `image/jpeg`). Images are also checked for being whole — a PNG ends with its `IEND` chunk,
//! a JPEG with its end-of-image marker, a GIF with its trailer, a WebP fills the length its
//! header gives — so a truncated or corrupt picture is a 422 here instead of a puzzling
//! provider error later. Bytes that are UTF-8 without NULs are text; the file name only
//! refines which text (Markdown, CSV, JSON, or plain text for source code and the rest).

use base64ct::{Base64, Base64Unpadded, Encoding};

use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::{Media, MediaKind, MediaSource};

/// The image types every vision model takes (Anthropic's list; OpenAI and Gemini take these
/// and more).
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The document type models read themselves.
pub const PDF: &str = "application/pdf";

/// The media type of binary bytes, from their signature; `None` when unknown.
pub fn sniff_binary(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"%PDF-") {
        Some(PDF)
    } else {
        None
    }
}

/// Whether `bytes` read as text: UTF-8 (a character cut at the very end allowed, for a
/// prefix) without NUL bytes.
pub fn is_text(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return false;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none() && bytes.len() - error.valid_up_to() < 4,
    }
}

/// The media type of a file: its signature, or for text the kind its name says.
pub fn detect(bytes: &[u8], file_name: &str) -> Option<&'static str> {
    if let Some(binary) = sniff_binary(bytes) {
        return Some(binary);
    }
    if !is_text(bytes) {
        return None;
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    Some(match extension.as_str() {
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        _ => "text/plain",
    })
}

/// Whether a type is text that Threadline reads itself (analysis puts it in the prompt).
pub fn is_text_type(media_type: &str) -> bool {
    media_type.starts_with("text/") || media_type == "application/json"
}

/// A declared media type in the form it is compared: lowercase, without parameters, with the
/// common `image/jpg` alias resolved.
pub fn normalize(declared: &str) -> String {
    let bare = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match bare.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".to_string(),
        _ => bare,
    }
}

/// Whether an image of `len` bytes is whole (see the module documentation), from its first
/// and last bytes, so neither a stored file nor inline base64 has to be read all.
pub fn image_ends_whole(media_type: &str, head: &[u8], tail: &[u8], len: usize) -> bool {
    match media_type {
        "image/png" => {
            len > 20 && tail.ends_with(&[0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82])
        }
        "image/jpeg" => {
            let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            len > 4 && tail[..end].ends_with(&[0xff, 0xd9])
        }
        "image/gif" => len > 13 && tail.ends_with(&[0x3b]),
        "image/webp" if head.len() >= 8 => {
            let declared = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            len >= declared.saturating_add(8) && declared >= 4
        }
        "image/webp" => false,
        _ => true,
    }
}

/// `data:<type>;base64,<data>` split into its type and data; `None` for any other URL.
pub fn parse_data_url(url: &str) -> Option<(String, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((normalize(media_type), data))
}

/// Checks that `data` is standard base64 (padded or not) without decoding it all, and returns
/// its first and last [`EDGE_BYTES`] decoded bytes and its decoded length: a 1 MiB image is
/// checked by one scan of its characters instead of a 1 MiB allocation.
pub fn base64_edges(data: &str) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let data = data.trim();
    let body = data
        .strip_suffix("==")
        .or_else(|| data.strip_suffix('='))
        .unwrap_or(data);
    if body.len() % 4 == 1
        || (body.len() != data.len() && !data.len().is_multiple_of(4))
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    let len = body.len() / 4 * 3 + (body.len() % 4).saturating_sub(1);
    // Whole quads at the start; the tail from a quad boundary to the end.
    let quads = EDGE_BYTES.div_ceil(3) * 4;
    let head_chars = if body.len() <= quads {
        body.len()
    } else {
        quads
    };
    let mut head = Base64Unpadded::decode_vec(&body[..head_chars]).ok()?;
    head.truncate(EDGE_BYTES);
    let tail_start = body.len().saturating_sub(quads + 4) / 4 * 4;
    let tail = Base64Unpadded::decode_vec(&body[tail_start..]).ok()?;
    let tail = tail[tail.len().saturating_sub(EDGE_BYTES)..].to_vec();
    Some((head, tail, len))
}

/// 413 naming the limit.
pub fn too_large(param: &str, limit: usize) -> ApiError {
    ApiError::new(
        413,
        "file_too_large",
        format!("The file is larger than MAX_FILE_SIZE ({limit} bytes)."),
    )
    .with_field(param)
}

/// 415 for a type that is not accepted here.
pub fn type_not_allowed(param: &str, media_type: &str, allowed: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "unsupported_file_type",
        format!(
            "Files of type {media_type:?} are not accepted here; accepted: {}.",
            allowed.join(", ")
        ),
    )
    .with_field(param)
}

/// 422 for bytes that are not what they say.
pub fn mismatch(param: &str, declared: &str, actual: Option<&str>) -> ApiError {
    let actual = actual.unwrap_or("not a recognised format");
    ApiError::new(
        422,
        "media_type_mismatch",
        format!("The data is declared as {declared:?} but its bytes are {actual}."),
    )
    .with_field(param)
}

/// 422 for a picture that is cut short or corrupt.
pub fn corrupt_image(param: &str, media_type: &str) -> ApiError {
    ApiError::new(
        422,
        "invalid_image",
        format!("The {media_type} image is truncated or corrupt."),
    )
    .with_field(param)
}

/// Checks bytes said to be media of one of `allowed` types (`declared` may be absent) and
/// returns their sniffed type: 413 over `max_bytes`, 415 for a type not in `allowed`, 422 for
/// bytes that are not what was declared or an image that is not whole.
pub fn check_bytes(
    param: &str,
    declared: Option<&str>,
    bytes: &[u8],
    allowed: &[&str],
    max_bytes: usize,
) -> ApiResult<&'static str> {
    let head = &bytes[..bytes.len().min(EDGE_BYTES)];
    let tail = &bytes[bytes.len().saturating_sub(EDGE_BYTES)..];
    check_edges(param, declared, head, tail, bytes.len(), allowed, max_bytes)
}

/// How many bytes at each end of a file tell its type and whether an image is whole.
pub const EDGE_BYTES: usize = 16;

/// [`check_bytes`] from the first and last [`EDGE_BYTES`] of `len` bytes.
pub fn check_edges(
    param: &str,
    declared: Option<&str>,
    head: &[u8],
    tail: &[u8],
    len: usize,
    allowed: &[&str],
    max_bytes: usize,
) -> ApiResult<&'static str> {
    if len > max_bytes {
        return Err(too_large(param, max_bytes));
    }
    let declared = declared.map(normalize);
    if let Some(declared) = &declared {
        if !allowed.contains(&declared.as_str()) {
            return Err(type_not_allowed(param, declared, allowed));
        }
    }
    let actual = sniff_binary(head);
    match (actual, &declared) {
        (Some(actual), Some(declared)) if actual != declared => {
            Err(mismatch(param, declared, Some(actual)))
        }
        (Some(actual), _) if !allowed.contains(&actual) => {
            Err(type_not_allowed(param, actual, allowed))
        }
        (Some(actual), _) if !image_ends_whole(actual, head, tail, len) => {
            Err(corrupt_image(param, actual))
        }
        (Some(actual), _) => Ok(actual),
        (None, Some(declared)) if declared.starts_with("image/") => {
            Err(corrupt_image(param, declared))
        }
        (None, declared) => Err(mismatch(
            param,
            declared.as_deref().unwrap_or(allowed[0]),
            None,
        )),
    }
}

/// The media type an https URL's path suggests (providers that fetch by URL still want one);
/// `fallback` when the path says nothing.
fn type_from_path(url: &str, fallback: &'static str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let extension = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => PDF,
        _ => fallback,
    }
}

/// An https URL (the provider fetches it), or 422.
fn https_url(param: &str, url: &str) -> ApiResult<String> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host().is_some());
    match parsed {
        Some(_) => Ok(url.to_string()),
        None => Err(ApiError::validation(
            param,
            "The URL must be an https URL or a data: URL (data:image/png;base64,…).",
        )),
    }
}

/// An image given as a URL, as OpenAI's `image_url` takes it: a `data:` URL holding the bytes
/// (checked: type, size, whole) or an https URL the provider fetches.
pub fn image_from_url(param: &str, url: &str, max_bytes: usize) -> ApiResult<Media> {
    if let Some((declared, data)) = parse_data_url(url) {
        return inline(
            param,
            MediaKind::Image,
            Some(&declared),
            data,
            None,
            max_bytes,
        );
    }
    if url.starts_with("data:") {
        return Err(ApiError::validation(
            param,
            "A data: URL must be base64: data:image/png;base64,….",
        ));
    }
    let url = https_url(param, url)?;
    Ok(Media {
        kind: MediaKind::Image,
        media_type: type_from_path(&url, "image/jpeg").to_string(),
        source: MediaSource::Url(url),
        name: None,
    })
}

/// A document given as base64 (with or without a `data:` prefix, as OpenAI's `file.file_data`
/// is sent either way) or as an https URL.
pub fn document(
    param: &str,
    data_or_url: &str,
    name: Option<String>,
    max_bytes: usize,
) -> ApiResult<Media> {
    if data_or_url.starts_with("https://") {
        return Ok(Media {
            kind: MediaKind::Document,
            media_type: type_from_path(data_or_url, PDF).to_string(),
            source: MediaSource::Url(https_url(param, data_or_url)?),
            name,
        });
    }
    let (declared, data) = match parse_data_url(data_or_url) {
        Some((declared, data)) => (Some(declared), data),
        None => (None, data_or_url),
    };
    inline(
        param,
        MediaKind::Document,
        declared.as_deref(),
        data,
        name,
        max_bytes,
    )
}

/// Base64 media checked into a [`Media`] of `kind`.
pub fn inline(
    param: &str,
    kind: MediaKind,
    declared: Option<&str>,
    data: &str,
    name: Option<String>,
    max_bytes: usize,
) -> ApiResult<Media> {
    // Four characters carry three bytes: refuse an oversized part before decoding it.
    if data.len() / 4 * 3 > max_bytes.saturating_add(3) {
        return Err(too_large(param, max_bytes));
    }
    let (head, tail, len) = base64_edges(data)
        .ok_or_else(|| ApiError::validation(param, "The data is not valid base64."))?;
    let allowed: &[&str] = match kind {
        MediaKind::Image => IMAGE_TYPES,
        MediaKind::Document => &[PDF],
    };
    let media_type = check_edges(param, declared, &head, &tail, len, allowed, max_bytes)?;
    Ok(Media {
        kind,
        media_type: media_type.to_string(),
        source: MediaSource::Base64(data.trim().to_string()),
        name,
    })
}

/// A text file as the model reads it: its name, then its text (invalid UTF-8 replaced), cut
/// at `max_chars` characters on a line break where one is near, saying so when it is.
pub fn text_for_model(name: &str, bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let total = text.chars().count();
    if total <= max_chars {
        return format!("File {name}:\n{text}");
    }
    let cut: String = text.chars().take(max_chars).collect();
    let cut = match cut.rfind('\n') {
        Some(at) if at > cut.len() / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    let shown = cut.chars().count();
    format!(
        "File {name} (truncated: the first {shown} of {total} characters, to fit the model's context):\n{cut}"
    )
}

/// Standard padded base64 of `bytes` (what providers take).
pub fn encode_base64(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

#[cfg(test)]
pub(crate) mod samples {
    /// A whole 1×1 PNG.
    pub const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
}

#[cfg(test)]
mod tests {
    use super::samples::PNG;
    use super::*;

    fn data_url(media_type: &str, bytes: &[u8]) -> String {
        format!("data:{media_type};base64,{}", encode_base64(bytes))
    }

    #[test]
    fn types_are_sniffed_from_bytes_and_text_refined_by_name() {
        assert_eq!(detect(PNG, "photo.txt"), Some("image/png"));
        assert_eq!(detect(b"%PDF-1.7\n...", "a.bin"), Some(PDF));
        assert_eq!(detect(b"# Title\n", "notes.MD"), Some("text/markdown"));
        assert_eq!(detect(b"a,b\n1,2\n", "t.csv"), Some("text/csv"));
        assert_eq!(detect(b"fn main() {}", "main.rs"), Some("text/plain"));
        assert_eq!(detect(&[0, 1, 2, 3], "x.txt"), None);
        assert_eq!(detect("é".as_bytes(), "x"), Some("text/plain"));
        assert!(
            is_text(&"é".as_bytes()[..1]),
            "a character cut at the end of a prefix"
        );
    }

    #[test]
    fn a_png_data_url_becomes_bare_base64_with_its_sniffed_type() {
        let media = image_from_url("p", &data_url("image/png", PNG), 1024).expect("image");
        assert_eq!(media.media_type, "image/png");
        assert_eq!(media.source, MediaSource::Base64(encode_base64(PNG)));
        assert_eq!(media.url(), data_url("image/png", PNG));
    }

    #[test]
    fn https_images_pass_by_url_and_other_schemes_are_refused() {
        let media = image_from_url("p", "https://example.com/cat.webp?x=1", 10).expect("url");
        assert_eq!(
            (media.media_type.as_str(), media.source),
            (
                "image/webp",
                MediaSource::Url("https://example.com/cat.webp?x=1".into())
            )
        );
        for bad in ["http://example.com/a.png", "file:///etc/passwd", "cat.png"] {
            assert_eq!(image_from_url("p", bad, 10).expect_err(bad).status, 422);
        }
    }

    #[test]
    fn bad_inline_images_get_the_status_that_says_why() {
        let cases = [
            (
                data_url("image/svg+xml", b"<svg/>"),
                415,
                "unsupported_file_type",
            ),
            (data_url("image/jpeg", PNG), 422, "media_type_mismatch"),
            (data_url("image/png", &PNG[..40]), 422, "invalid_image"),
            (
                data_url("image/png", b"not a picture"),
                422,
                "invalid_image",
            ),
            (
                "data:image/png;base64,@@@".to_string(),
                422,
                "validation_failed",
            ),
        ];
        for (url, status, code) in cases {
            let err = image_from_url("messages[0].content[1]", &url, 1024).expect_err(&url);
            assert_eq!((err.status, err.code), (status, code), "{url}");
            assert_eq!(err.field.as_deref(), Some("messages[0].content[1]"));
        }
        let err = image_from_url("p", &data_url("image/png", PNG), 10).expect_err("large");
        assert_eq!((err.status, err.code), (413, "file_too_large"));
        assert!(err.message.contains("MAX_FILE_SIZE"), "{}", err.message);
    }

    #[test]
    fn documents_take_base64_with_or_without_the_data_prefix() {
        let pdf = b"%PDF-1.4\n%%EOF\n";
        let bare = document("p", &encode_base64(pdf), Some("a.pdf".into()), 1024).expect("bare");
        let prefixed = document("p", &data_url(PDF, pdf), None, 1024).expect("prefixed");
        assert_eq!(bare.source, prefixed.source);
        assert_eq!(
            (bare.kind, bare.media_type.as_str()),
            (MediaKind::Document, PDF)
        );
        let err = document("p", &encode_base64(PNG), None, 1024).expect_err("png");
        assert_eq!(err.status, 415);
    }

    #[test]
    fn long_text_is_cut_on_a_line_and_says_so() {
        assert_eq!(text_for_model("a.txt", b"hi", 10), "File a.txt:\nhi");
        let long = "line one\nline two\nline three\n";
        let cut = text_for_model("a.txt", long.as_bytes(), 20);
        assert!(
            cut.starts_with("File a.txt (truncated: the first 17 of 29 characters"),
            "{cut}"
        );
        assert!(cut.ends_with("line one\nline two"), "{cut}");
    }

    #[test]
    fn base64_is_checked_by_its_edges_without_decoding_it_all() {
        for n in [0usize, 1, 2, 3, 15, 16, 17, 40, 71] {
            let bytes: Vec<u8> = (0..n as u8).collect();
            let padded = encode_base64(&bytes);
            let unpadded = padded.trim_end_matches('=').to_string();
            for data in [padded, unpadded] {
                let (head, tail, len) = base64_edges(&data).expect(&data);
                assert_eq!(len, n, "{data}");
                assert_eq!(head, bytes[..n.min(EDGE_BYTES)], "{data}");
                assert_eq!(tail, bytes[n.saturating_sub(EDGE_BYTES)..], "{data}");
            }
        }
        for bad in ["@@@@", "abcde", "ab=c", "a===", "abc=="] {
            assert!(base64_edges(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn declared_types_are_normalised() {
        assert_eq!(normalize("Image/JPG; q=1"), "image/jpeg");
        assert_eq!(parse_data_url("data:text/plain,hi"), None);
    }
}
