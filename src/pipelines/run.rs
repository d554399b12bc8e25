//! Running an execution, one queue message at a time.
//!
//! The consumer claims the execution (a lease, so a second delivery of the same message
//! waits rather than running a step twice), reads the checkpoints already written, and runs
//! the steps from the first one without a checkpoint. Each finished step is checkpointed in
//! D1 before the next starts, so a message that is delivered again — after a provider
//! failure, an exception, or the worker being restarted — resumes where it stopped and never
//! runs (or bills) a finished step twice.
//!
//! A provider failure worth retrying (429, 5xx, timeouts) retries the message with backoff
//! (`PIPELINE_RETRY_DELAY_SECS`, doubling) until `PIPELINE_MAX_ATTEMPTS`; then, or at once
//! for a failure retrying cannot fix, the execution is `failed` with the step and error
//! recorded. A cancel is honoured between steps.

use serde_json::Value;
use worker::D1Database;

use crate::chat::budget::estimate_tokens;
use crate::config::Config;
use crate::http::error::{ApiError, ApiResult};
use crate::pipelines::definition::{context_window, Definition, PromptStep, Step};
use crate::pipelines::store::{self, StepRunRow};
use crate::pipelines::template::{as_text, Template};
use crate::platform::clock::{Clock, SystemClock};
use crate::providers::client::ProviderClient;
use crate::providers::wire::{ChatMessage, ChatRequest, Role};

/// How long a consumer owns an execution without finishing a step: the longest a step's
/// model call can take (the slowest provider's timeout, for each of its in-call tries) and a
/// margin. A delivery that finds the lease held waits for it to end; one that arrives after a
/// consumer died mid-step (the worker restarted) finds it expired and resumes.
pub fn lease_ms(config: &Config) -> u64 {
    let providers = &config.providers;
    let slowest = providers
        .upstreams
        .iter()
        .map(|u| u.timeout_secs)
        .max()
        .unwrap_or(0);
    (slowest * (u64::from(providers.retry.max_retries) + 1) + LEASE_MARGIN_SECS) * 1000
}

const LEASE_MARGIN_SECS: u64 = 5;

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it (finished, failed, cancelled, or nothing to do).
    Ack,
    /// Deliver it again after this many seconds.
    RetryAfter(u32),
}

/// Whether trying the same call again may succeed.
pub fn is_retryable(err: &ApiError) -> bool {
    matches!(err.status, 408 | 429)
        || (err.status >= 500
            && err.code != "provider_unavailable"
            && err.code != "context_exceeded")
}

fn step_error(code: &str, message: &str) -> String {
    format!("{code}: {message}")
}

/// Runs (or resumes) the execution `id`.
pub async fn run(
    db: &D1Database,
    config: &Config,
    client: &ProviderClient,
    id: &str,
) -> ApiResult<Outcome> {
    let now = SystemClock.now_ms();
    let Some(execution) = store::find_execution(db, None, id).await? else {
        return Ok(Outcome::Ack);
    };
    if !matches!(execution.status.as_str(), "queued" | "running") {
        return Ok(Outcome::Ack);
    }
    let lease = lease_ms(config);
    if !store::claim(db, id, now, now + lease).await? {
        // Another delivery is running it; look again when its lease ends.
        let left = execution.lease_until.unwrap_or(now).saturating_sub(now);
        return Ok(Outcome::RetryAfter((left / 1000 + 1).min(300) as u32));
    }
    let definition: Definition = serde_json::from_str(&execution.definition)
        .map_err(|e| ApiError::internal(format!("stored definition of {id}: {e}")))?;
    let input: Value = serde_json::from_str(&execution.input).unwrap_or(Value::Null);
    let runs = store::step_runs(db, id).await?;
    let mut outputs: Vec<Option<Value>> = vec![None; definition.steps.len()];
    for run in &runs {
        if let (Some(slot), "succeeded") = (
            outputs.get_mut(run.step_index as usize),
            run.status.as_str(),
        ) {
            *slot = run.output.as_deref().map(stored_output);
        }
    }
    let settings = &config.pipelines;
    // Failed tries of the first unfinished step so far (reset once a step finishes).
    let mut failed_tries = execution.attempts;
    for (index, step) in definition.steps.iter().enumerate() {
        if runs.iter().any(|r| r.step_index as usize == index) {
            continue;
        }
        if store::cancel_requested(db, id).await? {
            store::finish(db, id, None, "cancelled", None, None, SystemClock.now_ms()).await?;
            return Ok(Outcome::Ack);
        }
        let output_of = |step_id: &str| {
            definition
                .steps
                .iter()
                .position(|s| s.id() == step_id)
                .and_then(|j| outputs[j].as_ref())
        };
        let started = SystemClock.now_ms();
        let mut run = StepRunRow {
            step_index: index as u32,
            step_id: step.id().to_string(),
            status: "skipped".into(),
            output: None,
            model: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0,
            attempts: failed_tries + 1,
            error: None,
            started_at: started,
            finished_at: started,
        };
        if let Some(when) = step.when() {
            if !when.holds(output_of(&when.step)) {
                run.attempts = 0;
                store::finish_step(db, id, &run, started + lease).await?;
                continue;
            }
        }
        let Step::Prompt(prompt) = step;
        run.model = Some(prompt.model.clone());
        match call_model(config, client, prompt, &input, &output_of).await {
            Ok((output, usage)) => {
                let finished = SystemClock.now_ms();
                run.status = "succeeded".into();
                run.output = Some(output.to_string());
                run.prompt_tokens = u64::from(usage.prompt_tokens);
                run.completion_tokens = u64::from(usage.completion_tokens);
                run.latency_ms = finished.saturating_sub(started);
                run.finished_at = finished;
                store::finish_step(db, id, &run, finished + lease).await?;
                outputs[index] = Some(output);
                failed_tries = 0;
            }
            Err(err) => {
                let finished = SystemClock.now_ms();
                let message = step_error(err.code, &err.message);
                if is_retryable(&err) && run.attempts < settings.max_attempts {
                    let delay = settings.retry_delay(run.attempts);
                    store::failed_try(
                        db,
                        id,
                        &message,
                        finished,
                        finished + u64::from(delay) * 1000,
                    )
                    .await?;
                    return Ok(Outcome::RetryAfter(delay));
                }
                run.status = "failed".into();
                run.error = Some(message.clone());
                run.latency_ms = finished.saturating_sub(started);
                run.finished_at = finished;
                store::finish(
                    db,
                    id,
                    Some(&run),
                    "failed",
                    None,
                    Some((step.id(), &message)),
                    finished,
                )
                .await?;
                return Ok(Outcome::Ack);
            }
        }
    }
    // The pipeline's output is that of its last step that ran.
    let output = outputs.iter().rev().flatten().next().map(Value::to_string);
    store::finish(
        db,
        id,
        None,
        "succeeded",
        output.as_deref(),
        None,
        SystemClock.now_ms(),
    )
    .await?;
    Ok(Outcome::Ack)
}

/// A checkpointed output: JSON as it was stored.
pub fn stored_output(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

async fn call_model<'a>(
    config: &Config,
    client: &ProviderClient,
    step: &PromptStep,
    input: &Value,
    output_of: &dyn Fn(&str) -> Option<&'a Value>,
) -> ApiResult<(Value, crate::providers::wire::Usage)> {
    let render = |text: &str| {
        Template::parse(text)
            .map(|t| t.render(input, output_of))
            .map_err(|m| ApiError::internal(format!("stored template: {m}")))
    };
    let prompt = render(&step.prompt)?;
    let mut system = String::new();
    let mut settings = crate::modes::catalogue::GenerationSettings::default();
    if let Some(mode) = step.mode.as_deref().and_then(|m| config.chat.modes.get(m)) {
        system.push_str(&mode.system_prompt);
        settings = mode.settings;
    }
    if let Some(s) = &step.system {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&render(s)?);
    }
    if let Some(schema) = &step.output_schema {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&format!(
            "Answer with one JSON object and nothing else, matching this JSON Schema: {schema}"
        ));
    }
    let max_tokens = step.max_tokens.or(settings.max_tokens);
    let window = context_window(&config.providers, &step.model);
    let needed = estimate_tokens(&prompt) + estimate_tokens(&system) + max_tokens.unwrap_or(0);
    if needed > window {
        return Err(ApiError::new(
            422,
            "context_exceeded",
            format!("The expanded prompt (about {needed} tokens) is larger than the context window of {} ({window} tokens).", step.model),
        ));
    }
    let mut messages = Vec::new();
    if !system.is_empty() {
        messages.push(ChatMessage::new(Role::System, system));
    }
    messages.push(ChatMessage::new(Role::User, prompt));
    let request = ChatRequest {
        messages,
        temperature: step.temperature.or(settings.temperature),
        top_p: step.top_p.or(settings.top_p),
        max_tokens,
        ..ChatRequest::default()
    };
    let answer = client.complete(step.model.trim(), request).await?;
    let usage = answer.completion.usage.unwrap_or_default();
    let text = answer.completion.text;
    let output = match &step.output_schema {
        None => Value::String(text),
        Some(_) => parse_json_output(&text).ok_or_else(|| {
            ApiError::new(
                502,
                "output_not_json",
                "The model's answer was not the JSON object the step's output_schema asks for.",
            )
        })?,
    };
    Ok((output, usage))
}

/// The JSON object in a model's answer, also when wrapped in a Markdown code fence.
pub fn parse_json_output(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    serde_json::from_str::<Value>(inner)
        .ok()
        .filter(Value::is_object)
}

/// An output for clients: text as it is, JSON as JSON.
pub fn output_text(value: &Value) -> String {
    as_text(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_outputs_are_read_plain_or_fenced() {
        assert_eq!(
            parse_json_output(r#" {"a":1} "#),
            Some(serde_json::json!({"a":1}))
        );
        assert_eq!(
            parse_json_output("```json\n{\"a\":1}\n```"),
            Some(serde_json::json!({"a":1}))
        );
        assert_eq!(parse_json_output("[1]"), None);
        assert_eq!(parse_json_output("Sure! {\"a\":1}"), None);
    }

    #[test]
    fn only_failures_that_may_pass_are_retried() {
        assert!(is_retryable(&ApiError::new(
            429,
            "provider_rate_limited",
            ""
        )));
        assert!(is_retryable(&ApiError::new(502, "provider_error", "")));
        assert!(is_retryable(&ApiError::new(504, "provider_timeout", "")));
        assert!(!is_retryable(&ApiError::new(
            503,
            "provider_unavailable",
            ""
        )));
        assert!(!is_retryable(&ApiError::new(
            400,
            "provider_invalid_request",
            ""
        )));
        assert!(!is_retryable(&ApiError::new(422, "context_exceeded", "")));
    }
}
