//! What clients send: request bodies, query parameters and their validation. Everything here
//! is pure, so every rule is tested natively; handlers only call it.
//!
//! Rules shared by every route: ids in paths that are not ids this service issues answer 404,
//! exactly like ids that do not exist or belong to someone else; a body or query value that
//! is wrong answers 422 naming it in `param`.

use crate::providers::resolve::require_known_model;
use crate::providers::resolve::validate_model;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::cursor::{ConversationCursor, MessageCursor, Order};
use super::model::{Conversation, TitleSource};
use super::search::Search;
use super::title::{normalize_title, DEFAULT_TITLE};
use crate::http::error::{ApiError, ApiResult};
use crate::modes::catalogue::{GenerationSettings, ModeCatalogue};
use crate::providers::settings::ProviderSettings;

/// The longest system prompt a conversation may set, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 32_000;
/// The largest `settings` object, serialized, in bytes.
pub const MAX_SETTINGS_BYTES: usize = 8 * 1024;

pub const DEFAULT_CONVERSATION_PAGE: usize = 20;
pub const MAX_CONVERSATION_PAGE: usize = 100;
pub const DEFAULT_MESSAGE_PAGE: usize = 50;
pub const MAX_MESSAGE_PAGE: usize = 200;

/// Distinguishes a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `POST /api/conversations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationBody {
    pub title: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    pub settings: Option<Map<String, Value>>,
}

/// A conversation about to be stored, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    pub title: String,
    pub title_source: TitleSource,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    pub settings: Map<String, Value>,
}

impl NewConversation {
    /// The conversation as it reads once stored at `now_ms` under `id` (no messages yet).
    pub fn conversation(&self, id: &str, now_ms: u64) -> Conversation {
        let new = self;
        Conversation {
            id: id.to_string(),
            title: new.title.clone(),
            title_source: new.title_source,
            model: new.model.clone(),
            mode: new.mode.clone(),
            system_prompt: new.system_prompt.clone(),
            settings: new.settings.clone(),
            pinned: false,
            archived: false,
            created_at: now_ms,
            updated_at: now_ms,
            last_message_at: None,
            message_count: 0,
        }
    }

    pub fn from_body(body: CreateConversationBody, choices: Choices<'_>) -> ApiResult<Self> {
        let (title, title_source) = match body.title.as_deref() {
            Some(t) => (normalize_title(t)?, TitleSource::User),
            None => (DEFAULT_TITLE.to_string(), TitleSource::Default),
        };
        Ok(NewConversation {
            title,
            title_source,
            model: body
                .model
                .as_deref()
                .map(|m| choices.model(m))
                .transpose()?,
            mode: body
                .mode
                .as_deref()
                .map(|m| validate_mode(m, choices.modes))
                .transpose()?,
            system_prompt: validate_system_prompt(body.system_prompt.as_deref())?,
            settings: validate_settings(body.settings.unwrap_or_default())?,
        })
    }
}

/// `PATCH /api/conversations/{id}`. `null` clears `model`, `mode` and `system_prompt`, and
/// resets `settings` to `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchConversationBody {
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub pinned: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub archived: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub mode: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub system_prompt: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub settings: Option<Option<Map<String, Value>>>,
    // The fields a conversation returns but no client sets: a client that PUTs back the
    // whole object it read (LLM_MODES' `PUT /api/chats/{id}`) sends them, and they are
    // ignored, while a field a conversation does not have is still refused.
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "last_message_at")]
    _last_message_at: Option<IgnoredAny>,
    #[serde(default, rename = "message_count")]
    _message_count: Option<IgnoredAny>,
    #[serde(default, rename = "messages")]
    _messages: Option<IgnoredAny>,
    #[serde(default, rename = "has_more_messages")]
    _has_more_messages: Option<IgnoredAny>,
    #[serde(default, rename = "messages_cursor")]
    _messages_cursor: Option<IgnoredAny>,
}

/// `PUT /api/conversations/{id}/title` (ChronoChat's rename).
#[derive(Debug, Deserialize)]
pub struct TitleBody {
    pub title: String,
}

/// What a conversation may name: the deployment's modes and models.
#[derive(Clone, Copy)]
pub struct Choices<'a> {
    pub modes: &'a ModeCatalogue,
    pub providers: &'a ProviderSettings,
}

impl Choices<'_> {
    fn model(&self, model: &str) -> ApiResult<String> {
        let model = validate_model(model)?;
        require_known_model(&model, self.providers)?;
        Ok(model)
    }
}

/// A validated change: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationPatch {
    pub title: Option<String>,
    pub pinned: Option<bool>,
    pub archived: Option<bool>,
    pub model: Option<Option<String>>,
    pub mode: Option<Option<String>>,
    pub system_prompt: Option<Option<String>>,
    pub settings: Option<Map<String, Value>>,
}

fn not_null<T>(field: &str, value: Option<Option<T>>) -> ApiResult<Option<T>> {
    match value {
        Some(None) => Err(ApiError::validation(
            field,
            format!("`{field}` cannot be null."),
        )),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

impl ConversationPatch {
    pub fn from_body(body: PatchConversationBody, choices: Choices<'_>) -> ApiResult<Self> {
        let patch = ConversationPatch {
            title: not_null("title", body.title)?
                .as_deref()
                .map(normalize_title)
                .transpose()?,
            pinned: not_null("pinned", body.pinned)?,
            archived: not_null("archived", body.archived)?,
            model: body
                .model
                .map(|m| m.as_deref().map(|m| choices.model(m)).transpose())
                .transpose()?,
            mode: body
                .mode
                .map(|m| {
                    m.as_deref()
                        .map(|m| validate_mode(m, choices.modes))
                        .transpose()
                })
                .transpose()?,
            system_prompt: body
                .system_prompt
                .map(|p| validate_system_prompt(p.as_deref()))
                .transpose()?,
            settings: body
                .settings
                .map(|s| validate_settings(s.unwrap_or_default()))
                .transpose()?,
        };
        if patch == ConversationPatch::default() {
            return Err(ApiError::new(
                422,
                "validation_failed",
                "The body changes nothing: send at least one of title, pinned, archived, model, \
                 mode, system_prompt, settings.",
            ));
        }
        Ok(patch)
    }

    pub fn title_only(title: &str) -> ApiResult<Self> {
        Ok(ConversationPatch {
            title: Some(normalize_title(title)?),
            ..ConversationPatch::default()
        })
    }
}

/// A mode must be one of the deployment's modes.
pub fn validate_mode(mode: &str, modes: &ModeCatalogue) -> ApiResult<String> {
    match modes.get(mode) {
        Some(m) => Ok(m.id.clone()),
        None => Err(ApiError::validation(
            "mode",
            format!(
                "Unknown mode {:?}; GET /api/modes lists the modes.",
                mode.chars().take(60).collect::<String>()
            ),
        )),
    }
}

/// A blank system prompt is none at all.
pub fn validate_system_prompt(prompt: Option<&str>) -> ApiResult<Option<String>> {
    let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    if prompt.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
        return Err(ApiError::validation(
            "system_prompt",
            format!("`system_prompt` is longer than {MAX_SYSTEM_PROMPT_CHARS} characters."),
        ));
    }
    Ok(Some(prompt.to_string()))
}

/// The generation keys of a settings object, read leniently (stored settings were validated
/// when written).
pub fn generation_settings(settings: &Map<String, Value>) -> GenerationSettings {
    GenerationSettings {
        temperature: settings.get("temperature").and_then(Value::as_f64),
        top_p: settings.get("top_p").and_then(Value::as_f64),
        max_tokens: settings
            .get("max_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

/// `temperature`, `top_p` and `max_tokens` must be numbers in range; other keys are kept as
/// they are (client preferences), within [`MAX_SETTINGS_BYTES`].
pub fn validate_settings(settings: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    for (key, integer) in [
        ("temperature", false),
        ("top_p", false),
        ("max_tokens", true),
    ] {
        if let Some(value) = settings.get(key) {
            let ok = if integer {
                value.as_u64().is_some()
            } else {
                value.is_number()
            };
            if !ok {
                let kind = if integer {
                    "a whole number"
                } else {
                    "a number"
                };
                return Err(ApiError::validation(
                    format!("settings.{key}"),
                    format!("`settings.{key}` must be {kind}."),
                ));
            }
        }
    }
    if let Some((field, problem)) = generation_settings(&settings).problem() {
        return Err(ApiError::validation(
            format!("settings.{field}"),
            format!("`settings.{field}` {problem}."),
        ));
    }
    let size = serde_json::to_string(&settings).map_or(usize::MAX, |s| s.len());
    if size > MAX_SETTINGS_BYTES {
        return Err(ApiError::validation(
            "settings",
            format!("`settings` is larger than {MAX_SETTINGS_BYTES} bytes."),
        ));
    }
    Ok(settings)
}

/// A message a user sends: not blank, at most `max_chars` characters. `field` is how the
/// route names it (`content`, or `message` for ThreadFlow's `/chat`).
pub fn validate_message_content(field: &str, content: &str, max_chars: usize) -> ApiResult<()> {
    if content.trim().is_empty() {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must not be empty."),
        ));
    }
    if content.chars().count() > max_chars {
        return Err(ApiError::validation(
            field,
            format!("`{field}` is longer than the limit of {max_chars} characters."),
        ));
    }
    Ok(())
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_bool(field: &str, value: &str) -> ApiResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::validation(
            field,
            format!("`{field}` must be true or false."),
        )),
    }
}

/// `?<name>=`: a page cursor that is the id of the previous page's last row (422 otherwise).
pub fn parse_id_cursor(pairs: &[(String, String)], name: &str) -> ApiResult<Option<String>> {
    match first(pairs, name) {
        None => Ok(None),
        Some(raw) if crate::platform::ids::is_valid_id(raw) => Ok(Some(raw.to_string())),
        Some(_) => Err(ApiError::validation(
            name,
            format!("`{name}` must be the `next_cursor` of a previous page."),
        )),
    }
}

/// `?limit=`: a whole number from 1 to `max`, `default` when absent (422 otherwise).
pub fn parse_limit(pairs: &[(String, String)], default: usize, max: usize) -> ApiResult<usize> {
    match first(pairs, "limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {max}."),
                )
            }),
    }
}

/// `GET /api/conversations/{id}?limit=`: how many of the latest messages to include.
pub fn recent_messages_limit(pairs: &[(String, String)]) -> ApiResult<usize> {
    parse_limit(pairs, DEFAULT_MESSAGE_PAGE, MAX_MESSAGE_PAGE)
}

/// `GET /api/conversations` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub pinned: Option<bool>,
    /// `Some(false)` (the default) hides archived conversations, `Some(true)` shows only
    /// them, `None` (`archived=all`) shows both.
    pub archived: Option<bool>,
    pub search: Option<Search>,
    pub cursor: Option<ConversationCursor>,
    pub limit: usize,
}

impl ListQuery {
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        Ok(ListQuery {
            pinned: first(pairs, "pinned")
                .map(|v| parse_bool("pinned", v))
                .transpose()?,
            archived: match first(pairs, "archived") {
                None => Some(false),
                Some(v) if v.eq_ignore_ascii_case("all") => None,
                Some(v) => Some(parse_bool("archived", v).map_err(|_| {
                    ApiError::validation("archived", "`archived` must be true, false or all.")
                })?),
            },
            search: first(pairs, "q").map(Search::parse).transpose()?.flatten(),
            cursor: first(pairs, "cursor")
                .map(ConversationCursor::decode)
                .transpose()?,
            limit: parse_limit(pairs, DEFAULT_CONVERSATION_PAGE, MAX_CONVERSATION_PAGE)?,
        })
    }
}

/// `GET /api/conversations/{id}/messages` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryQuery {
    /// Where the page starts (its order included).
    pub after: MessageCursor,
    pub limit: usize,
}

impl HistoryQuery {
    /// `order` (`asc`, the default, or `desc`) applies to the first page; later pages follow
    /// their cursor's order, and an `order` that contradicts it is a 422.
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        let order = first(pairs, "order")
            .map(|v| {
                Order::parse(v)
                    .ok_or_else(|| ApiError::validation("order", "`order` must be asc or desc."))
            })
            .transpose()?;
        let after = match first(pairs, "cursor")
            .map(MessageCursor::decode)
            .transpose()?
        {
            Some(cursor) if order.is_some_and(|o| o != cursor.order) => {
                return Err(ApiError::validation(
                    "order",
                    "`order` differs from the order of `cursor`; leave it out when paging.",
                ))
            }
            Some(cursor) => cursor,
            None => MessageCursor::start(order.unwrap_or(Order::Asc)),
        };
        Ok(HistoryQuery {
            after,
            limit: parse_limit(pairs, DEFAULT_MESSAGE_PAGE, MAX_MESSAGE_PAGE)?,
        })
    }
}

/// `GET /api/conversations/{id}/export?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Markdown,
}

impl ExportFormat {
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        match first(pairs, "format")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => Ok(ExportFormat::Json),
            Some("markdown") | Some("md") => Ok(ExportFormat::Markdown),
            Some(_) => Err(ApiError::validation(
                "format",
                "`format` must be json or markdown.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;
    use crate::providers::resolve::MAX_MODEL_CHARS;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_whole_conversation_put_back_is_a_patch_of_its_writable_fields() {
        let detail = json!({
            "id": "0123456789abcdef0123456789abcdef",
            "title": "Renamed",
            "model": null,
            "mode": null,
            "system_prompt": null,
            "settings": {},
            "pinned": true,
            "archived": false,
            "created_at": 1,
            "updated_at": 2,
            "last_message_at": 3,
            "message_count": 4,
            "messages": [{"id": "m", "role": "user", "content": "hi"}],
            "has_more_messages": false,
            "messages_cursor": null,
        });
        let body: PatchConversationBody =
            parse_json(detail.to_string().as_bytes()).expect("read-only fields are accepted");
        assert_eq!(body.title, Some(Some("Renamed".into())));
        assert_eq!(body.pinned, Some(Some(true)));

        let err =
            parse_json::<PatchConversationBody>(br#"{"title":"t","colour":"red"}"#).unwrap_err();
        assert_eq!(err.status, 422);
        assert!(err.message.contains("colour"), "{}", err.message);
    }

    /// The built-in modes and models, no provider configured.
    fn choices() -> Choices<'static> {
        let providers = ProviderSettings::from_source(
            &std::collections::BTreeMap::<String, String>::new(),
            false,
            &mut Vec::new(),
        );
        Choices {
            modes: Box::leak(Box::new(ModeCatalogue::default())),
            providers: Box::leak(Box::new(providers)),
        }
    }

    fn field(err: ApiError) -> (u16, Option<String>) {
        (err.status, err.field)
    }

    #[test]
    fn a_conversation_without_a_title_gets_the_placeholder_to_be_replaced() {
        let c =
            NewConversation::from_body(CreateConversationBody::default(), choices()).expect("ok");
        assert_eq!(
            (c.title.as_str(), c.title_source),
            (DEFAULT_TITLE, TitleSource::Default)
        );
        let named = NewConversation::from_body(
            CreateConversationBody {
                title: Some(" Trip ".into()),
                ..Default::default()
            },
            choices(),
        )
        .expect("ok");
        assert_eq!(
            (named.title.as_str(), named.title_source),
            ("Trip", TitleSource::User)
        );
    }

    #[test]
    fn an_unknown_mode_is_422_naming_mode() {
        let err = NewConversation::from_body(
            CreateConversationBody {
                mode: Some("pirate".into()),
                ..Default::default()
            },
            choices(),
        )
        .unwrap_err();
        assert_eq!(field(err), (422, Some("mode".into())));
    }

    #[test]
    fn models_must_look_like_provider_slash_model_or_an_alias() {
        assert_eq!(
            validate_model(" openai/gpt-4o ").expect("ok"),
            "openai/gpt-4o"
        );
        assert_eq!(
            validate_model("ollama/library/llama3").expect("ok"),
            "ollama/library/llama3"
        );
        assert_eq!(validate_model("fast").expect("ok"), "fast");
        for bad in [
            "",
            "/gpt",
            "openai/",
            "gpt 4",
            &"a".repeat(MAX_MODEL_CHARS + 1),
        ] {
            assert_eq!(
                field(validate_model(bad).unwrap_err()),
                (422, Some("model".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_models_are_422_and_known_ones_accepted_even_if_their_provider_is_not_configured() {
        let c = choices();
        assert_eq!(
            c.model("openai/gpt-4o").expect("catalogued"),
            "openai/gpt-4o"
        );
        for unknown in ["nosuch/model", "no-such-alias"] {
            let err = c.model(unknown).unwrap_err();
            assert_eq!(field(err), (422, Some("model".into())), "{unknown}");
        }
    }

    #[test]
    fn settings_check_the_generation_keys_and_keep_the_others() {
        let ok = validate_settings(
            json!({"temperature": 0.7, "max_tokens": 500, "theme": "dark"})
                .as_object()
                .cloned()
                .expect("object"),
        )
        .expect("ok");
        assert_eq!(ok["theme"], "dark");
        assert_eq!(generation_settings(&ok).max_tokens, Some(500));
        for (bad, param) in [
            (json!({"temperature": "hot"}), "settings.temperature"),
            (json!({"temperature": 3}), "settings.temperature"),
            (json!({"max_tokens": 1.5}), "settings.max_tokens"),
            (json!({"top_p": -1}), "settings.top_p"),
            (json!({"blob": "x".repeat(MAX_SETTINGS_BYTES)}), "settings"),
        ] {
            let err = validate_settings(bad.as_object().cloned().expect("object")).unwrap_err();
            assert_eq!(field(err), (422, Some(param.into())));
        }
    }

    #[test]
    fn a_blank_system_prompt_is_none_and_an_overlong_one_422() {
        assert_eq!(validate_system_prompt(Some("  ")).expect("ok"), None);
        assert_eq!(
            validate_system_prompt(Some("Be terse."))
                .expect("ok")
                .as_deref(),
            Some("Be terse.")
        );
        let long = "x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1);
        assert_eq!(
            field(validate_system_prompt(Some(&long)).unwrap_err())
                .1
                .as_deref(),
            Some("system_prompt")
        );
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let body: PatchConversationBody =
            parse_json(br#"{"model": null, "pinned": true, "settings": null}"#).expect("parses");
        let patch = ConversationPatch::from_body(body, choices()).expect("ok");
        assert_eq!(patch.model, Some(None));
        assert_eq!(patch.pinned, Some(true));
        assert_eq!(patch.settings, Some(Map::new()));
        assert_eq!(patch.mode, None);
        assert_eq!(patch.title, None);
    }

    #[test]
    fn patch_refuses_null_title_and_flags_and_an_empty_body() {
        for body in [
            r#"{"title": null}"#,
            r#"{"pinned": null}"#,
            r#"{"archived": null}"#,
        ] {
            let parsed: PatchConversationBody = parse_json(body.as_bytes()).expect("parses");
            let err = ConversationPatch::from_body(parsed, choices()).unwrap_err();
            assert_eq!(err.status, 422, "{body}");
            assert!(err.field.is_some(), "{body}");
        }
        let empty: PatchConversationBody = parse_json(b"{}").expect("parses");
        assert_eq!(
            ConversationPatch::from_body(empty, choices())
                .unwrap_err()
                .status,
            422
        );
    }

    #[test]
    fn unknown_body_fields_are_422_naming_the_field() {
        let err = parse_json::<PatchConversationBody>(br#"{"pin": true}"#)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(field(err.clone()), (422, Some("pin".into())));
        assert!(
            err.message.starts_with("Unknown field `pin`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("pinned"), "{}", err.message);
    }

    #[test]
    fn message_content_must_be_non_blank_and_within_the_limit() {
        assert!(validate_message_content("content", "hi", 10).is_ok());
        assert!(validate_message_content("content", "日本語日本語日本語日", 10).is_ok());
        assert_eq!(
            field(validate_message_content("message", " \n ", 10).unwrap_err()),
            (422, Some("message".into()))
        );
        assert_eq!(
            field(validate_message_content("content", "01234567890", 10).unwrap_err()),
            (422, Some("content".into()))
        );
    }

    #[test]
    fn list_parameters_default_to_hiding_archived_and_validate_each_value() {
        let q = ListQuery::parse(&[]).expect("ok");
        assert_eq!(
            (q.pinned, q.archived, q.limit),
            (None, Some(false), DEFAULT_CONVERSATION_PAGE)
        );
        let q = ListQuery::parse(&pairs(&[
            ("pinned", "true"),
            ("archived", "all"),
            ("limit", "5"),
            ("q", "rust"),
        ]))
        .expect("ok");
        assert_eq!((q.pinned, q.archived, q.limit), (Some(true), None, 5));
        assert_eq!(
            q.search.expect("search").fts_query.as_deref(),
            Some("\"rust\"*")
        );
        for (k, v) in [
            ("pinned", "yes"),
            ("archived", "maybe"),
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "x"),
            ("cursor", "junk"),
        ] {
            assert_eq!(
                field(ListQuery::parse(&pairs(&[(k, v)])).unwrap_err()),
                (422, Some(k.into())),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn history_parameters_follow_the_cursor_order() {
        let q = HistoryQuery::parse(&[]).expect("ok");
        assert_eq!(q.after, MessageCursor::start(Order::Asc));
        let q = HistoryQuery::parse(&pairs(&[("order", "desc")])).expect("ok");
        assert_eq!(q.after, MessageCursor::start(Order::Desc));
        let cursor = MessageCursor {
            order: Order::Desc,
            seq: 9,
        }
        .encode();
        let q = HistoryQuery::parse(&pairs(&[("cursor", &cursor)])).expect("ok");
        assert_eq!(
            q.after,
            MessageCursor {
                order: Order::Desc,
                seq: 9
            }
        );
        let err =
            HistoryQuery::parse(&pairs(&[("cursor", &cursor), ("order", "asc")])).unwrap_err();
        assert_eq!(field(err), (422, Some("order".into())));
        assert_eq!(
            field(HistoryQuery::parse(&pairs(&[("order", "up")])).unwrap_err())
                .1
                .as_deref(),
            Some("order")
        );
    }

    #[test]
    fn export_format_defaults_to_json() {
        assert_eq!(ExportFormat::parse(&[]).expect("ok"), ExportFormat::Json);
        assert_eq!(
            ExportFormat::parse(&pairs(&[("format", "Markdown")])).expect("ok"),
            ExportFormat::Markdown
        );
        assert_eq!(
            field(ExportFormat::parse(&pairs(&[("format", "pdf")])).unwrap_err())
                .1
                .as_deref(),
            Some("format")
        );
    }
}
