//! Chat modes: named presets of a system prompt and generation settings (LLM_MODES' "modes").
//!
//! A conversation may name a mode; its system prompt is then the mode's, unless the
//! conversation sets its own. Three modes are built in; operators add or replace modes with the
//! `CHAT_MODES` variable, a JSON array such as
//!
//! ```json
//! [{"id": "tutor", "name": "Patient tutor", "system_prompt": "Explain step by step.",
//!   "settings": {"temperature": 0.3}}]
//! ```
//!
//! A mode whose id is built in replaces the built-in one, so operators can reword prompts
//! without a release.

use serde::{Deserialize, Serialize};

use crate::config::source::ConfigSource;

/// The mode a conversation without one uses for its system prompt.
pub const DEFAULT_MODE: &str = "general";

/// Generation settings a mode (or a conversation) can set. Absent fields are left to the
/// provider's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl GenerationSettings {
    /// The first problem with these settings, as (field, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Some(("temperature", "must be between 0 and 2".into()));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Some(("top_p", "must be between 0 and 1".into()));
            }
        }
        if let Some(m) = self.max_tokens {
            if !(1..=MAX_TOKENS_LIMIT).contains(&m) {
                return Some((
                    "max_tokens",
                    format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
                ));
            }
        }
        None
    }

    /// `self`, with each field that `overrides` sets taken from it.
    pub fn overridden_by(self, overrides: GenerationSettings) -> GenerationSettings {
        GenerationSettings {
            temperature: overrides.temperature.or(self.temperature),
            top_p: overrides.top_p.or(self.top_p),
            max_tokens: overrides.max_tokens.or(self.max_tokens),
        }
    }
}

/// The largest `max_tokens` accepted anywhere; no current model writes more in one reply.
pub const MAX_TOKENS_LIMIT: u32 = 200_000;

/// One chat mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mode {
    /// Stable identifier stored on conversations (`[a-z0-9_-]`, at most 40 characters).
    pub id: String,
    pub name: String,
    pub description: String,
    pub system_prompt: String,
    pub settings: GenerationSettings,
    /// The model this mode prefers when the conversation names none.
    pub model: Option<String>,
    /// Whether the mode is meant for models that can see images.
    pub requires_vision: bool,
}

/// One entry of `CHAT_MODES`. Unknown keys are refused so a typo fails loudly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorMode {
    id: String,
    name: Option<String>,
    description: Option<String>,
    system_prompt: String,
    #[serde(default)]
    settings: GenerationSettings,
    model: Option<String>,
    #[serde(default)]
    requires_vision: bool,
}

/// Whether `id` is acceptable as a mode id.
pub fn is_valid_mode_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn builtin(
    id: &str,
    name: &str,
    description: &str,
    system_prompt: &str,
    settings: GenerationSettings,
    requires_vision: bool,
) -> Mode {
    Mode {
        id: id.into(),
        name: name.into(),
        description: description.into(),
        system_prompt: system_prompt.into(),
        settings,
        model: None,
        requires_vision,
    }
}

/// Other names of built-in modes, as the replaced services' clients know them: LLM_MODES
/// calls its picture mode "Image Processing".
pub const MODE_ALIASES: &[(&str, &str)] = &[("image_processing", "image_description")];

/// The modes every deployment has.
pub fn builtin_modes() -> Vec<Mode> {
    vec![
        builtin(
            "general",
            "General assistant",
            "A helpful assistant for everyday questions, writing and code.",
            "You are a helpful, accurate assistant. Answer clearly and concisely, use Markdown \
             where it helps, and say so when you are not sure of something.",
            GenerationSettings::default(),
            false,
        ),
        builtin(
            "similar_questions",
            "Similar questions",
            "Suggests questions similar to the one asked, for study, FAQs and search.",
            "You generate similar questions. For the user's question, write five questions \
             that ask about the same topic or the same idea in different words or from a \
             different angle, as a numbered list. Do not answer any of them, and add nothing \
             before or after the list.",
            GenerationSettings {
                temperature: Some(0.8),
                ..GenerationSettings::default()
            },
            false,
        ),
        builtin(
            "image_description",
            "Image description",
            "Describes an image: subject, setting, details and any visible text.",
            "You describe images. Describe the image the user provides accurately and \
             objectively: the main subject, the setting, notable details, colours and \
             composition, and transcribe any visible text verbatim. Do not guess who real \
             people are. If no image was provided, ask for one.",
            GenerationSettings {
                temperature: Some(0.2),
                ..GenerationSettings::default()
            },
            true,
        ),
    ]
}

/// The modes on offer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeCatalogue {
    modes: Vec<Mode>,
}

impl Default for ModeCatalogue {
    fn default() -> Self {
        ModeCatalogue {
            modes: builtin_modes(),
        }
    }
}

impl ModeCatalogue {
    /// The built-in modes plus `CHAT_MODES`. An invalid `CHAT_MODES` is ignored as a whole,
    /// with a warning naming the problem: the built-in modes still work.
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> ModeCatalogue {
        let mut catalogue = ModeCatalogue::default();
        if let Some(raw) = src.get("CHAT_MODES") {
            match parse_operator_modes(&raw) {
                Ok(extra) => catalogue = catalogue.with(extra),
                Err(problem) => warnings.push(format!(
                    "CHAT_MODES is ignored: {problem}; only the built-in modes are offered"
                )),
            }
        }
        catalogue
    }

    /// Adds `extra`; a mode with an existing id replaces it in place.
    pub fn with(mut self, extra: Vec<Mode>) -> ModeCatalogue {
        for mode in extra {
            match self.modes.iter_mut().find(|m| m.id == mode.id) {
                Some(existing) => *existing = mode,
                None => self.modes.push(mode),
            }
        }
        self
    }

    pub fn all(&self) -> &[Mode] {
        &self.modes
    }

    /// The mode `id`, or the one it is another name of (see [`MODE_ALIASES`]; a mode of the
    /// operator's with that very id wins).
    pub fn get(&self, id: &str) -> Option<&Mode> {
        self.modes.iter().find(|m| m.id == id).or_else(|| {
            let (_, target) = MODE_ALIASES.iter().find(|(alias, _)| *alias == id)?;
            self.modes.iter().find(|m| m.id == *target)
        })
    }

    /// The system prompt for a conversation: its own when it has one, otherwise its mode's,
    /// otherwise the default mode's. `None` only if an operator replaced the default mode
    /// with an empty prompt.
    pub fn system_prompt_for<'a>(
        &'a self,
        conversation_prompt: Option<&'a str>,
        mode: Option<&str>,
    ) -> Option<&'a str> {
        if let Some(prompt) = conversation_prompt.filter(|p| !p.trim().is_empty()) {
            return Some(prompt);
        }
        mode.and_then(|id| self.get(id))
            .or_else(|| self.get(DEFAULT_MODE))
            .map(|m| m.system_prompt.as_str())
            .filter(|p| !p.trim().is_empty())
    }
}

/// Parses `CHAT_MODES`.
pub fn parse_operator_modes(json: &str) -> Result<Vec<Mode>, String> {
    let entries: Vec<OperatorMode> =
        serde_json::from_str(json).map_err(|e| format!("it must be a JSON array of modes: {e}"))?;
    let mut modes: Vec<Mode> = Vec::with_capacity(entries.len());
    for entry in entries {
        if !is_valid_mode_id(&entry.id) {
            return Err(format!(
                "mode id {:?} must be 1-40 characters of a-z, 0-9, _ and -",
                entry.id
            ));
        }
        if modes.iter().any(|m| m.id == entry.id) {
            return Err(format!("mode id {:?} appears twice", entry.id));
        }
        if let Some((field, problem)) = entry.settings.problem() {
            return Err(format!("mode {:?}: settings.{field} {problem}", entry.id));
        }
        modes.push(Mode {
            name: entry.name.unwrap_or_else(|| entry.id.clone()),
            description: entry.description.unwrap_or_default(),
            system_prompt: entry.system_prompt,
            settings: entry.settings,
            model: entry.model,
            requires_vision: entry.requires_vision,
            id: entry.id,
        });
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn source(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn image_processing_is_another_name_of_image_description_unless_the_operator_defines_it() {
        let catalogue = ModeCatalogue::default();
        assert_eq!(
            catalogue.get("image_processing").map(|m| m.id.as_str()),
            Some("image_description")
        );
        assert!(catalogue.get("image_processing").unwrap().requires_vision);
        let own = parse_operator_modes(r#"[{"id": "image_processing", "system_prompt": "Edit."}]"#)
            .expect("valid");
        let catalogue = catalogue.with(own);
        assert_eq!(
            catalogue
                .get("image_processing")
                .map(|m| m.system_prompt.as_str()),
            Some("Edit.")
        );
    }

    #[test]
    fn built_in_modes_include_general_similar_questions_and_image_description() {
        let catalogue = ModeCatalogue::default();
        let ids: Vec<&str> = catalogue.all().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["general", "similar_questions", "image_description"]);
        assert!(catalogue.get(DEFAULT_MODE).is_some());
        assert!(
            catalogue
                .get("image_description")
                .expect("mode")
                .requires_vision
        );
        for mode in catalogue.all() {
            assert!(is_valid_mode_id(&mode.id));
            assert!(mode.settings.problem().is_none());
            assert!(!mode.system_prompt.is_empty());
        }
    }

    #[test]
    fn operator_modes_are_added_and_replace_built_ins_with_the_same_id() {
        let mut warnings = Vec::new();
        let catalogue = ModeCatalogue::from_source(
            &source(&[(
                "CHAT_MODES",
                r#"[{"id":"tutor","name":"Tutor","system_prompt":"Teach.","settings":{"temperature":0.3}},
                    {"id":"general","system_prompt":"Be brief."}]"#,
            )]),
            &mut warnings,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(catalogue.all().len(), 4);
        assert_eq!(catalogue.all()[0].system_prompt, "Be brief.");
        assert_eq!(catalogue.all()[0].name, "general");
        let tutor = catalogue.get("tutor").expect("tutor");
        assert_eq!(tutor.settings.temperature, Some(0.3));
    }

    #[test]
    fn invalid_chat_modes_are_ignored_with_a_warning() {
        for bad in [
            "not json",
            r#"[{"id":"Bad Id","system_prompt":"x"}]"#,
            r#"[{"id":"a","system_prompt":"x","temprature":1}]"#,
            r#"[{"id":"a","system_prompt":"x","settings":{"temperature":5}}]"#,
            r#"[{"id":"a","system_prompt":"x"},{"id":"a","system_prompt":"y"}]"#,
        ] {
            let mut warnings = Vec::new();
            let catalogue =
                ModeCatalogue::from_source(&source(&[("CHAT_MODES", bad)]), &mut warnings);
            assert_eq!(warnings.len(), 1, "{bad}");
            assert!(warnings[0].contains("CHAT_MODES"));
            assert_eq!(catalogue, ModeCatalogue::default(), "{bad}");
        }
    }

    #[test]
    fn the_conversation_prompt_wins_over_its_mode_and_the_default_mode_fills_in() {
        let catalogue = ModeCatalogue::default();
        assert_eq!(
            catalogue.system_prompt_for(Some("Own prompt"), Some("similar_questions")),
            Some("Own prompt")
        );
        let similar = catalogue.get("similar_questions").expect("mode");
        assert_eq!(
            catalogue.system_prompt_for(None, Some("similar_questions")),
            Some(similar.system_prompt.as_str())
        );
        let general = catalogue.get(DEFAULT_MODE).expect("mode");
        assert_eq!(
            catalogue.system_prompt_for(Some("  "), None),
            Some(general.system_prompt.as_str())
        );
    }

    #[test]
    fn settings_out_of_range_name_the_field() {
        let s = GenerationSettings {
            top_p: Some(1.5),
            ..Default::default()
        };
        assert_eq!(s.problem().map(|p| p.0), Some("top_p"));
        let s = GenerationSettings {
            max_tokens: Some(0),
            ..Default::default()
        };
        assert_eq!(s.problem().map(|p| p.0), Some("max_tokens"));
    }

    #[test]
    fn conversation_settings_override_mode_settings_field_by_field() {
        let mode = GenerationSettings {
            temperature: Some(0.8),
            max_tokens: Some(100),
            ..Default::default()
        };
        let conv = GenerationSettings {
            temperature: Some(0.1),
            ..Default::default()
        };
        let merged = mode.overridden_by(conv);
        assert_eq!(merged.temperature, Some(0.1));
        assert_eq!(merged.max_tokens, Some(100));
        assert_eq!(merged.top_p, None);
    }
}
