//! What a model can take: an image or document sent to a model that cannot read it is a 422
//! naming the model and the capability, decided before any provider call. Pure.
//!
//! - **Images** need vision: a catalogued model's `supports_vision` (operators declare it for
//!   the models they add). A model that is not in the catalogue is passed through to its
//!   provider as it is, which then decides.
//! - **Documents** (PDF) need vision and a provider that reads documents: OpenAI (`file`
//!   parts), Anthropic (`document` blocks) or Gemini (`inlineData`/`fileData`); an
//!   OpenAI-compatible server (Ollama, vLLM) has no document input. OpenAI's Chat Completions
//!   has no document-by-URL form, so a document URL needs Anthropic or Gemini.
//! - **Sizes**: Anthropic refuses an image whose base64 is over 5 MB, so a larger one is a 413
//!   here rather than its 400.
//!
//! `dev/echo` takes everything (it only describes what it was sent). Fallbacks that cannot
//! take the request are left out of the plan; the requested model decides the error.

use crate::http::error::{ApiError, ApiResult};
use crate::providers::resolve::{ResolvedModel, Target};
use crate::providers::settings::ProviderSettings;
use crate::providers::wire::{ChatMessage, Media, MediaKind, MediaSource, ProviderKind};

/// The largest base64 image Anthropic accepts.
pub const ANTHROPIC_MAX_IMAGE_BASE64: usize = 5 * 1024 * 1024;

/// Why a model cannot take a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Neither vision nor document reading; the capability's name.
    Capability(&'static str),
    /// Over a provider's size limit: the limit in bytes and what it is of.
    TooLarge(usize, &'static str),
}

fn kind_of(model: &ResolvedModel) -> Option<ProviderKind> {
    match &model.target {
        Target::Upstream(upstream) => Some(upstream.endpoint.kind),
        Target::Echo => None,
    }
}

/// Whether `model` can take `media`, and if not, why.
pub fn takes(
    settings: &ProviderSettings,
    model: &ResolvedModel,
    media: &Media,
) -> Result<(), Missing> {
    let Some(kind) = kind_of(model) else {
        return Ok(());
    };
    let catalogued = settings.catalogue.resolve(&model.id);
    let vision = catalogued.is_none_or(|info| info.supports_vision);
    match media.kind {
        MediaKind::Image if !vision => return Err(Missing::Capability("images (vision)")),
        MediaKind::Document => {
            let reads_documents = vision && kind != ProviderKind::OpenAiCompatible;
            if !reads_documents {
                return Err(Missing::Capability("documents (PDF input)"));
            }
            let by_url = matches!(media.source, MediaSource::Url(_));
            if by_url && kind == ProviderKind::OpenAi {
                return Err(Missing::Capability("documents by URL"));
            }
        }
        MediaKind::Image => {}
    }
    if let (ProviderKind::Anthropic, MediaKind::Image, MediaSource::Base64(data)) =
        (kind, media.kind, &media.source)
    {
        if data.len() > ANTHROPIC_MAX_IMAGE_BASE64 {
            return Err(Missing::TooLarge(
                ANTHROPIC_MAX_IMAGE_BASE64,
                "base64 image",
            ));
        }
    }
    Ok(())
}

fn first_missing(
    settings: &ProviderSettings,
    model: &ResolvedModel,
    messages: &[ChatMessage],
) -> Option<Missing> {
    messages
        .iter()
        .flat_map(ChatMessage::media)
        .find_map(|media| takes(settings, model, media).err())
}

/// The 422 (or 413) for `model` lacking what the request needs.
pub fn missing_error(model: &str, missing: Missing) -> ApiError {
    match missing {
        Missing::Capability(what) => ApiError::new(
            422,
            "model_capability_missing",
            format!(
                "The model {model:?} cannot take {what}; choose a model that can (GET /api/models shows `supports_vision`)."
            ),
        )
        .with_field("model"),
        Missing::TooLarge(limit, what) => ApiError::new(
            413,
            "file_too_large",
            format!("The model {model:?} takes a {what} of at most {limit} bytes."),
        )
        .with_field("model"),
    }
}

/// 422 (or 413) when the model `name` stands for cannot take `messages`; no I/O.
pub fn check_model(
    settings: &ProviderSettings,
    name: &str,
    messages: &[ChatMessage],
) -> ApiResult<()> {
    let planned = crate::providers::resolve::plan(settings, name)?;
    capable_plan(settings, planned, messages).map(|_| ())
}

/// The plan with the models that cannot take `messages` left out, or the requested model's
/// error when it is one of them.
pub fn capable_plan(
    settings: &ProviderSettings,
    plan: Vec<ResolvedModel>,
    messages: &[ChatMessage],
) -> ApiResult<Vec<ResolvedModel>> {
    if messages.iter().all(ChatMessage::is_text_only) {
        return Ok(plan);
    }
    let mut kept = Vec::with_capacity(plan.len());
    for (i, model) in plan.into_iter().enumerate() {
        match first_missing(settings, &model, messages) {
            None => kept.push(model),
            Some(missing) if i == 0 => return Err(missing_error(&model.id, missing)),
            Some(_) => {}
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::resolve::plan;
    use crate::providers::wire::{Part, Role};
    use std::collections::BTreeMap;

    fn settings() -> ProviderSettings {
        let env: BTreeMap<String, String> = [
            ("OPENAI_API_KEY", "sk-test"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("GEMINI_API_KEY", "g"),
            ("OLLAMA_BASE_URL", "http://localhost:11434"),
            ("MODEL_FALLBACKS", r#"{"openai/gpt-4o":["anthropic/claude-3-5-haiku-latest","gemini/gemini-2.0-flash"]}"#),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut warnings = Vec::new();
        ProviderSettings::from_source(&env, false, &mut warnings)
    }

    fn with(kind: MediaKind, source: MediaSource) -> Vec<ChatMessage> {
        let media = Media {
            kind,
            media_type: if kind == MediaKind::Image {
                "image/png"
            } else {
                "application/pdf"
            }
            .into(),
            source,
            name: None,
        };
        vec![ChatMessage::with_parts(
            Role::User,
            vec![Part::Text("look".into()), Part::Media(media)],
        )]
    }

    fn check(model: &str, messages: &[ChatMessage]) -> ApiResult<Vec<String>> {
        let s = settings();
        let planned = plan(&s, model).expect("plan");
        capable_plan(&s, planned, messages).map(|p| p.into_iter().map(|m| m.id).collect())
    }

    #[test]
    fn an_image_to_a_model_without_vision_is_a_422_naming_both() {
        let image = with(MediaKind::Image, MediaSource::Base64("iVBOR".into()));
        let err = check("anthropic/claude-3-5-haiku-latest", &image).expect_err("no vision");
        assert_eq!((err.status, err.code), (422, "model_capability_missing"));
        assert!(err.message.contains("claude-3-5-haiku-latest") && err.message.contains("vision"));
        assert_eq!(err.field.as_deref(), Some("model"));
        for model in [
            "openai/gpt-4o",
            "gemini/gemini-2.0-flash",
            "anthropic/claude-3-5-sonnet-latest",
            "ollama/llava",
        ] {
            assert!(check(model, &image).is_ok(), "{model}");
        }
    }

    #[test]
    fn fallbacks_that_cannot_take_the_request_are_left_out() {
        let image = with(MediaKind::Image, MediaSource::Base64("iVBOR".into()));
        assert_eq!(
            check("openai/gpt-4o", &image).expect("plan"),
            ["openai/gpt-4o", "gemini/gemini-2.0-flash"]
        );
        let text = vec![ChatMessage::new(Role::User, "hi")];
        assert_eq!(check("openai/gpt-4o", &text).expect("plan").len(), 3);
    }

    #[test]
    fn documents_need_a_provider_that_reads_them() {
        let pdf = with(MediaKind::Document, MediaSource::Base64("JVBER".into()));
        assert!(check("openai/gpt-4o", &pdf).is_ok());
        assert!(check("anthropic/claude-3-5-sonnet-latest", &pdf).is_ok());
        let err = check("ollama/llava", &pdf).expect_err("ollama");
        assert!(err.message.contains("documents"), "{}", err.message);
        let by_url = with(
            MediaKind::Document,
            MediaSource::Url("https://x.test/a.pdf".into()),
        );
        assert_eq!(
            check("openai/gpt-4o", &by_url).expect_err("url").status,
            422
        );
        assert!(check("gemini/gemini-2.0-flash", &by_url).is_ok());
    }

    #[test]
    fn anthropic_images_over_five_megabytes_are_a_413() {
        let big = with(
            MediaKind::Image,
            MediaSource::Base64("A".repeat(ANTHROPIC_MAX_IMAGE_BASE64 + 4)),
        );
        let err = check("anthropic/claude-3-5-sonnet-latest", &big).expect_err("big");
        assert_eq!(err.status, 413);
        assert!(check("openai/gpt-4o", &big).is_ok());
    }
}
