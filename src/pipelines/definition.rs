//! What a pipeline is: its declared inputs and its steps, and the checks a definition passes
//! before it is stored — so a mistake is a 422 naming the step and field at creation, never a
//! run that fails later.
//!
//! Step kinds: `prompt` (a template, a model, generation settings, optionally a mode and a
//! JSON output schema). `file_analysis` and `tool` are reserved for the features that bring
//! files and tools: they are refused with 422 `step_kind_unavailable` until then, and slot in
//! as new [`Step`] variants. Any step may carry a `when` condition on an earlier step's
//! output (the branch: a step whose condition is false is skipped; an if/else is two steps
//! with opposite conditions).
//!
//! Pure: the deployment's models and modes arrive as [`Choices`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::budget::estimate_tokens;
use crate::http::error::{ApiError, ApiResult};
use crate::modes::catalogue::ModeCatalogue;
use crate::pipelines::settings::PipelineSettings;
use crate::pipelines::template::{as_text, Template, Var};
use crate::providers::catalogue::DEFAULT_CONTEXT_WINDOW;
use crate::providers::resolve::{resolve, ResolveError};
use crate::providers::settings::ProviderSettings;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_INPUTS: usize = 32;
pub const MAX_TEMPLATE_CHARS: usize = 32_000;

/// A condition on an earlier step's output (or one field of its JSON output). Exactly one
/// of the comparisons; text is compared trimmed, `contains` without regard to case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_contains: Option<String>,
}

impl Condition {
    /// Whether it holds for the step's output (`None`: the step was skipped — never holds).
    pub fn holds(&self, output: Option<&Value>) -> bool {
        let Some(output) = output else {
            return false;
        };
        let value = match &self.field {
            Some(f) => output.get(f).cloned().unwrap_or(Value::Null),
            None => output.clone(),
        };
        let text = as_text(&value);
        let text = text.trim();
        let lower = text.to_lowercase();
        if let Some(want) = &self.equals {
            return text == want.trim();
        }
        if let Some(want) = &self.not_equals {
            return text != want.trim();
        }
        if let Some(want) = &self.contains {
            return lower.contains(&want.to_lowercase());
        }
        if let Some(want) = &self.not_contains {
            return !lower.contains(&want.to_lowercase());
        }
        false
    }

    fn comparisons(&self) -> usize {
        [
            &self.equals,
            &self.not_equals,
            &self.contains,
            &self.not_contains,
        ]
        .iter()
        .filter(|c| c.is_some())
        .count()
    }
}

/// A prompt step: `prompt` (and `system`) are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptStep {
    pub id: String,
    pub model: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The output is asked for, and parsed, as a JSON object of this (JSON Schema) shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// One step. New kinds (file analysis, tools) become new variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Prompt(PromptStep),
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Prompt(p) => &p.id,
        }
    }

    pub fn when(&self) -> Option<&Condition> {
        match self {
            Step::Prompt(p) => p.when.as_ref(),
        }
    }

    fn has_json_output(&self) -> bool {
        match self {
            Step::Prompt(p) => p.output_schema.is_some(),
        }
    }
}

/// What is stored as a pipeline's `definition` and copied onto each execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    #[serde(default)]
    pub inputs: Vec<String>,
    pub steps: Vec<Step>,
}

/// A validated pipeline body.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPipeline {
    pub name: String,
    pub description: Option<String>,
    pub definition: Definition,
}

/// What a definition may name: the deployment's models and modes, and the limits.
pub struct Choices<'a> {
    pub providers: &'a ProviderSettings,
    pub modes: &'a ModeCatalogue,
    pub settings: &'a PipelineSettings,
}

/// A pipeline body as sent. Steps are read in the same pass, with every field optional, so
/// that a step of a kind not available yet is refused for its kind (below) rather than for
/// the fields that kind would have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<String>>,
    steps: Vec<StepBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    output_schema: Option<Value>,
    #[serde(default)]
    when: Option<Condition>,
}

/// The kind of each step of a pipeline body that is a JSON object, read before the typed
/// pass: a step of a kind that is not available yet (`file_analysis`, `tool`) has fields the
/// typed pass would refuse first, and its kind is the clearer error.
pub fn refuse_unavailable_kinds(body: &Value) -> ApiResult<()> {
    let steps = body.get("steps").and_then(Value::as_array);
    for (i, step) in steps.into_iter().flatten().enumerate() {
        if let Some(kind @ ("file_analysis" | "tool")) = step.get("kind").and_then(Value::as_str) {
            return Err(ApiError::new(
                422,
                "step_kind_unavailable",
                format!("Step kind `{kind}` is not available on this deployment yet; only `prompt` steps run today."),
            )
            .with_field(format!("steps[{i}].kind")));
        }
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::validation(field, message)
}

/// The context window of `model` as the catalogue knows it.
pub fn context_window(providers: &ProviderSettings, model: &str) -> u32 {
    let id = providers.catalogue.canonical_id(model);
    providers
        .catalogue
        .resolve(id)
        .map(|m| m.context_window)
        .unwrap_or(DEFAULT_CONTEXT_WINDOW)
}

/// Checks a pipeline body (`POST /api/pipelines`, `PUT /api/pipelines/{id}`).
pub fn validate(body: PipelineBody, choices: &Choices<'_>) -> ApiResult<ValidPipeline> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("`name` must be 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    let description = body.description.map(|d| d.trim().to_string());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(invalid(
            "description",
            format!("`description` must be at most {MAX_DESCRIPTION_CHARS} characters."),
        ));
    }
    let inputs = body.inputs.unwrap_or_default();
    if inputs.len() > MAX_INPUTS {
        return Err(invalid("inputs", format!("At most {MAX_INPUTS} inputs.")));
    }
    for (i, input) in inputs.iter().enumerate() {
        if !is_name(input) || inputs[..i].contains(input) {
            return Err(invalid(
                format!("inputs[{i}]"),
                "Each input is a unique name of letters, digits, `_` and `-`.",
            ));
        }
    }
    let max = choices.settings.max_steps;
    if body.steps.is_empty() || body.steps.len() > max {
        return Err(ApiError::new(
            422,
            "too_many_steps",
            format!("A pipeline has 1 to {max} steps (PIPELINE_MAX_STEPS)."),
        )
        .with_field("steps"));
    }
    let mut steps: Vec<Step> = Vec::with_capacity(body.steps.len());
    let ids: Vec<Option<String>> = body.steps.iter().map(|s| s.id.clone()).collect();
    for (i, raw) in body.steps.into_iter().enumerate() {
        let step = parse_step(i, raw)?;
        check_step(i, &step, &steps, &ids, &inputs, choices)?;
        steps.push(step);
    }
    Ok(ValidPipeline {
        name,
        description: description.filter(|d| !d.is_empty()),
        definition: Definition { inputs, steps },
    })
}

fn parse_step(i: usize, raw: StepBody) -> ApiResult<Step> {
    let at = |field: &str| format!("steps[{i}].{field}");
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| invalid(at(field), format!("`{}` is required.", at(field))))
    };
    match raw.kind.as_deref().unwrap_or("prompt") {
        "prompt" => Ok(Step::Prompt(PromptStep {
            id: required(raw.id, "id")?,
            model: required(raw.model, "model")?,
            prompt: required(raw.prompt, "prompt")?,
            system: raw.system,
            mode: raw.mode,
            temperature: raw.temperature,
            top_p: raw.top_p,
            max_tokens: raw.max_tokens,
            output_schema: raw.output_schema,
            when: raw.when,
        })),
        other => Err(invalid(
            at("kind"),
            format!(
                "Unknown step kind {other:?}: use prompt (file_analysis and tool are planned)."
            ),
        )),
    }
}

/// The index of the step `id` names, checked to be earlier than step `i`.
fn earlier(
    i: usize,
    field: &str,
    target: &str,
    ids: &[Option<String>],
    what: &str,
) -> ApiResult<usize> {
    let me = ids[i].as_deref().unwrap_or("?");
    match ids.iter().position(|id| id.as_deref() == Some(target)) {
        None => Err(invalid(
            field,
            format!("Step `{me}`: {what} names the step `{target}`, which does not exist."),
        )),
        Some(j) if j == i => Err(invalid(
            field,
            format!("Step `{me}`: {what} names the step itself, a cycle; a step can use only earlier steps."),
        )),
        Some(j) if j > i => Err(invalid(
            field,
            format!("Step `{me}`: {what} names the later step `{target}`; a step can use only earlier steps (no cycles)."),
        )),
        Some(j) => Ok(j),
    }
}

fn check_template(
    i: usize,
    field: &str,
    text: &str,
    ids: &[Option<String>],
    steps: &[Step],
    inputs: &[String],
) -> ApiResult<Template> {
    let me = ids[i].as_deref().unwrap_or("?");
    if text.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(invalid(
            field,
            format!("Step `{me}`: the template is over {MAX_TEMPLATE_CHARS} characters."),
        ));
    }
    let template =
        Template::parse(text).map_err(|m| invalid(field, format!("Step `{me}`: {m}.")))?;
    for var in template.vars() {
        match var {
            Var::Input => {}
            Var::InputField(name) if inputs.contains(name) => {}
            Var::InputField(name) => {
                return Err(invalid(
                    field,
                    format!("Step `{me}`: unknown variable {{{{input.{name}}}}}; declare `{name}` in `inputs`."),
                ))
            }
            Var::StepOutput { step, field: f } => {
                let j = earlier(i, field, step, ids, "a template")?;
                if f.is_some() && !steps[j].has_json_output() {
                    return Err(invalid(
                        field,
                        format!("Step `{me}`: `steps.{step}.output.<field>` needs step `{step}` to have an `output_schema`."),
                    ));
                }
            }
        }
    }
    Ok(template)
}

fn check_step(
    i: usize,
    step: &Step,
    before: &[Step],
    ids: &[Option<String>],
    inputs: &[String],
    choices: &Choices<'_>,
) -> ApiResult<()> {
    let at = |field: &str| format!("steps[{i}].{field}");
    let id = step.id();
    if !is_name(id) {
        return Err(invalid(
            at("id"),
            "A step `id` is 1 to 64 letters, digits, `_` and `-`.",
        ));
    }
    if before.iter().any(|s| s.id() == id) {
        return Err(invalid(at("id"), format!("Two steps are called `{id}`.")));
    }
    if let Some(when) = step.when() {
        let j = earlier(i, &at("when.step"), &when.step, ids, "`when`")?;
        if when.comparisons() != 1 {
            return Err(invalid(
                at("when"),
                format!("Step `{id}`: `when` needs exactly one of equals, not_equals, contains, not_contains."),
            ));
        }
        if when.field.is_some() && !before[j].has_json_output() {
            return Err(invalid(
                at("when.field"),
                format!(
                    "Step `{id}`: `when.field` needs step `{}` to have an `output_schema`.",
                    when.step
                ),
            ));
        }
    }
    let Step::Prompt(p) = step;
    let prompt = check_template(i, &at("prompt"), &p.prompt, ids, before, inputs)?;
    let system = match &p.system {
        Some(s) => Some(check_template(i, &at("system"), s, ids, before, inputs)?),
        None => None,
    };
    match resolve(choices.providers, p.model.trim()) {
        Err(err @ ResolveError::UnknownModel { .. }) => {
            return Err(invalid(
                at("model"),
                format!("Step `{id}`: {}", err.message()),
            ))
        }
        _ if p.model.trim().is_empty() => {
            return Err(invalid(
                at("model"),
                format!("Step `{id}`: `model` is required."),
            ))
        }
        _ => {}
    }
    let mode_prompt = match &p.mode {
        Some(mode) => match choices.modes.get(mode) {
            Some(m) => m.system_prompt.clone(),
            None => {
                return Err(invalid(
                    at("mode"),
                    format!("Step `{id}`: unknown mode {mode:?}; GET /api/modes lists them."),
                ))
            }
        },
        None => String::new(),
    };
    if p.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(invalid(at("temperature"), "`temperature` is from 0 to 2."));
    }
    if p.top_p.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(invalid(at("top_p"), "`top_p` is from 0 to 1."));
    }
    if p.max_tokens.is_some_and(|t| t == 0 || t > 200_000) {
        return Err(invalid(
            at("max_tokens"),
            "`max_tokens` is from 1 to 200000.",
        ));
    }
    if let Some(schema) = &p.output_schema {
        if !schema.is_object() {
            return Err(invalid(
                at("output_schema"),
                "`output_schema` is a JSON Schema object.",
            ));
        }
    }
    let fixed = estimate_tokens(&prompt.fixed_text())
        + system.map_or(0, |s| estimate_tokens(&s.fixed_text()))
        + estimate_tokens(&mode_prompt)
        + p.max_tokens.unwrap_or(0);
    let window = context_window(choices.providers, p.model.trim());
    if fixed > window {
        return Err(ApiError::new(
            422,
            "context_exceeded",
            format!("Step `{id}`: its prompt (about {fixed} tokens with max_tokens) is larger than the context window of {} ({window} tokens).", p.model.trim()),
        )
        .with_field(at("prompt")));
    }
    Ok(())
}

/// The declared inputs of an execution's `input`: an object holding every declared name
/// (any JSON value) when inputs are declared; anything when none are.
pub fn check_input(definition: &Definition, input: &Value) -> ApiResult<()> {
    if definition.inputs.is_empty() {
        return Ok(());
    }
    let Some(map) = input.as_object() else {
        return Err(invalid(
            "input",
            "`input` must be an object holding the pipeline's declared inputs.",
        ));
    };
    let missing: Vec<&String> = definition
        .inputs
        .iter()
        .filter(|name| !map.contains_key(*name))
        .collect();
    if let Some(name) = missing.first() {
        return Err(invalid(
            format!("input.{name}"),
            format!("`input.{name}` is required by this pipeline."),
        ));
    }
    Ok(())
}

/// A definition as clients see it: each step with its `kind`.
pub fn steps_json(definition: &Definition) -> Vec<Value> {
    definition
        .steps
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Object(Map::new())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn check(body: Value) -> ApiResult<ValidPipeline> {
        let src: BTreeMap<String, String> =
            [("OPENAI_API_KEY".to_string(), "k".to_string())].into();
        let providers = ProviderSettings::from_source(&src, false, &mut Vec::new());
        let modes = ModeCatalogue::default();
        let settings = PipelineSettings {
            max_steps: 3,
            ..PipelineSettings::default()
        };
        let body: PipelineBody = serde_json::from_value(body).expect("body shape");
        validate(
            body,
            &Choices {
                providers: &providers,
                modes: &modes,
                settings: &settings,
            },
        )
    }

    fn step(id: &str, prompt: &str) -> Value {
        json!({"id": id, "model": "openai/gpt-4o", "prompt": prompt})
    }

    fn param(body: Value) -> (u16, &'static str, String) {
        let e = check(body).expect_err("refused");
        (e.status, e.code, e.field.unwrap_or_default())
    }

    #[test]
    fn a_good_definition_keeps_its_steps_in_order() {
        let v = check(json!({"name": " p ", "inputs": ["q"], "steps": [
            step("a", "{{input.q}}"),
            step("b", "{{steps.a.output}} {{input}}"),
        ]}))
        .unwrap();
        assert_eq!(v.name, "p");
        let ids: Vec<&str> = v.definition.steps.iter().map(Step::id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn references_must_be_to_earlier_steps_and_declared_inputs() {
        let later =
            json!({"name": "p", "steps": [step("a", "{{steps.b.output}}"), step("b", "x")]});
        assert_eq!(
            param(later),
            (422, "validation_failed", "steps[0].prompt".into())
        );
        let cycle = json!({"name": "p", "steps": [step("a", "{{steps.a.output}}")]});
        assert_eq!(param(cycle).2, "steps[0].prompt");
        let undeclared = json!({"name": "p", "steps": [step("a", "{{input.q}}")]});
        assert_eq!(param(undeclared).2, "steps[0].prompt");
        let when_later = json!({"name": "p", "steps": [
            {"id": "a", "model": "openai/gpt-4o", "prompt": "x", "when": {"step": "b", "contains": "y"}},
            step("b", "x"),
        ]});
        assert_eq!(param(when_later).2, "steps[0].when.step");
    }

    #[test]
    fn limits_models_and_context_are_checked() {
        let many = json!({"name": "p", "steps": [step("a", "x"), step("b", "x"), step("c", "x"), step("d", "x")]});
        assert_eq!(param(many), (422, "too_many_steps", "steps".into()));
        let model = json!({"name": "p", "steps": [{"id": "a", "model": "acme/x", "prompt": "x"}]});
        assert_eq!(param(model).2, "steps[0].model");
        let huge = json!({"name": "p", "steps": [{"id": "a", "model": "openai/gpt-4o", "prompt": "x", "max_tokens": 199_000}]});
        assert_eq!(
            param(huge),
            (422, "context_exceeded", "steps[0].prompt".into())
        );
        let unnamed = json!({"name": "", "steps": [step("a", "x")]});
        assert_eq!(param(unnamed).2, "name");
    }

    #[test]
    fn kinds_not_available_yet_are_refused_for_their_kind() {
        let body = json!({"name": "p", "steps": [step("a", "x"), {"id": "f", "kind": "file_analysis", "file_id": "1"}]});
        let e = refuse_unavailable_kinds(&body).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("step_kind_unavailable", Some("steps[1].kind"))
        );
        assert!(refuse_unavailable_kinds(&json!({"steps": [step("a", "x")]})).is_ok());
    }

    #[test]
    fn conditions_compare_trimmed_text_or_a_json_field() {
        let c = |v: Value| -> Condition { serde_json::from_value(v).unwrap() };
        let out = json!({"label": " Urgent "});
        assert!(c(json!({"step": "a", "field": "label", "equals": "Urgent"})).holds(Some(&out)));
        assert!(c(json!({"step": "a", "field": "label", "contains": "urg"})).holds(Some(&out)));
        assert!(
            !c(json!({"step": "a", "field": "label", "not_contains": "URG"})).holds(Some(&out))
        );
        assert!(c(json!({"step": "a", "not_equals": "no"})).holds(Some(&json!("yes"))));
        assert!(
            !c(json!({"step": "a", "equals": "yes"})).holds(None),
            "a skipped step never matches"
        );
    }
}
