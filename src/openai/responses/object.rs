//! `POST /v1/responses`, the answer side: the `response` object and the Server-Sent Events
//! of a streamed one, in the shapes the OpenAI SDKs parse. Pure bytes-out, so the wire
//! format is tested natively.
//!
//! A text answer is one `message` output item holding one `output_text` part. Its stream is
//! `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per piece of text, then
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`
//! and `response.completed` (or `response.incomplete` when the token limit or a content
//! filter cut the answer). Every event is `event: <type>` and `data: {"type",
//! "sequence_number",…}`, numbered from 0; there is no `[DONE]`. A provider failure after
//! output began is an `error` event (the API's envelope fields, flat and under `error`)
//! followed by `response.failed`.

use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::platform::ids::hex;
use crate::platform::random::{random_bytes, RandomUnavailable};
use crate::providers::wire::{FinishReason, Usage};

/// `resp_` and 48 hex digits, like OpenAI's ids.
pub(crate) fn response_id() -> Result<String, RandomUnavailable> {
    Ok(format!("resp_{}", hex(&random_bytes::<24>()?)))
}

/// `msg_` and 48 hex digits.
pub(crate) fn message_id() -> Result<String, RandomUnavailable> {
    Ok(format!("msg_{}", hex(&random_bytes::<24>()?)))
}

/// Whether `id` has the shape of a response id Threadline issues (guards queries from junk).
pub(crate) fn is_response_id(id: &str) -> bool {
    id.strip_prefix("resp_")
        .is_some_and(|h| h.len() == 48 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// What a response object says about its request, fixed for the whole response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponseMeta {
    pub(crate) id: String,
    pub(crate) message_id: String,
    pub(crate) created_at: u64,
    /// The model that answers (after a fallback, the fallback).
    pub(crate) model: String,
    pub(crate) instructions: Option<String>,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) previous_response_id: Option<String>,
    pub(crate) store: bool,
    pub(crate) temperature: Option<f64>,
    pub(crate) top_p: Option<f64>,
    pub(crate) metadata: Value,
    pub(crate) parallel_tool_calls: bool,
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Still being written (the stream's opening events).
    InProgress,
    Finished(FinishReason),
    /// A provider failure after output began.
    Failed(ApiError),
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Finished(reason) if incomplete_reason(reason).is_some() => "incomplete",
            Outcome::Finished(_) => "completed",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// OpenAI's two reasons for an answer cut short; any other finish counts as complete.
fn incomplete_reason(reason: &FinishReason) -> Option<&'static str> {
    match reason {
        FinishReason::Length => Some("max_output_tokens"),
        FinishReason::ContentFilter => Some("content_filter"),
        _ => None,
    }
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": usage.total_tokens,
    })
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "annotations": [], "logprobs": [], "text": text })
}

impl ResponseMeta {
    /// The `message` output item; `text` is `None` before any part was added.
    fn message(&self, status: &str, text: Option<&str>) -> Value {
        let content: Vec<Value> = text.map(text_part).into_iter().collect();
        json!({
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    /// The `response` object. `text` is the answer so far (`None`: no output item yet).
    pub(crate) fn object(
        &self,
        outcome: &Outcome,
        text: Option<&str>,
        usage: Option<&Usage>,
    ) -> Value {
        let output: Vec<Value> = match (outcome, text) {
            (_, None) => Vec::new(),
            (Outcome::Finished(_), Some(text)) => vec![self.message(outcome.status(), Some(text))],
            (_, Some(text)) => vec![self.message("incomplete", Some(text))],
        };
        let (error, incomplete_details) = match outcome {
            Outcome::Failed(err) => (
                json!({ "code": err.code, "message": err.message }),
                Value::Null,
            ),
            Outcome::Finished(reason) => (
                Value::Null,
                incomplete_reason(reason).map_or(Value::Null, |r| json!({ "reason": r })),
            ),
            Outcome::InProgress => (Value::Null, Value::Null),
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": outcome.status(),
            "background": false,
            "error": error,
            "incomplete_details": incomplete_details,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "max_tool_calls": null,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": { "effort": null, "summary": null },
            "service_tier": "default",
            "store": self.store,
            "temperature": self.temperature,
            "text": { "format": { "type": "text" } },
            "tool_choice": "auto",
            "tools": [],
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": usage.map_or(Value::Null, usage_json),
            "metadata": self.metadata,
        })
    }
}

/// Writes one response's events, numbering them.
#[derive(Debug)]
pub(crate) struct EventWriter {
    meta: ResponseMeta,
    request_id: String,
    next_sequence: u64,
}

impl EventWriter {
    pub(crate) fn new(meta: ResponseMeta, request_id: String) -> EventWriter {
        EventWriter {
            meta,
            request_id,
            next_sequence: 0,
        }
    }

    pub(crate) fn meta(&self) -> &ResponseMeta {
        &self.meta
    }

    fn event(&mut self, kind: &str, mut data: Value) -> Vec<u8> {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.next_sequence);
        self.next_sequence += 1;
        format!("event: {kind}\ndata: {data}\n\n").into_bytes()
    }

    fn ids(&self) -> Value {
        json!({ "item_id": self.meta.message_id, "output_index": 0, "content_index": 0 })
    }

    /// `response.created` to `response.content_part.added`: written as soon as output began.
    pub(crate) fn opening(&mut self) -> Vec<u8> {
        let response = self.meta.object(&Outcome::InProgress, None, None);
        let mut out = self.event("response.created", json!({ "response": response }));
        out.extend(self.event("response.in_progress", json!({ "response": response })));
        let item = self.meta.message("in_progress", None);
        out.extend(self.event(
            "response.output_item.added",
            json!({ "output_index": 0, "item": item }),
        ));
        let mut part = self.ids();
        part["part"] = text_part("");
        out.extend(self.event("response.content_part.added", part));
        out
    }

    pub(crate) fn delta(&mut self, text: &str) -> Vec<u8> {
        let mut data = self.ids();
        data["delta"] = json!(text);
        data["logprobs"] = json!([]);
        self.event("response.output_text.delta", data)
    }

    /// The closing events of a finished answer, ending with `response.completed` or
    /// `response.incomplete`; also returns the final object (what a store keeps).
    pub(crate) fn finish(
        &mut self,
        reason: FinishReason,
        text: &str,
        usage: Option<&Usage>,
    ) -> (Vec<u8>, Value) {
        let outcome = Outcome::Finished(reason);
        let mut done = self.ids();
        done["text"] = json!(text);
        done["logprobs"] = json!([]);
        let mut out = self.event("response.output_text.done", done);
        let mut part = self.ids();
        part["part"] = text_part(text);
        out.extend(self.event("response.content_part.done", part));
        let item = self.meta.message(outcome.status(), Some(text));
        out.extend(self.event(
            "response.output_item.done",
            json!({ "output_index": 0, "item": item }),
        ));
        let response = self.meta.object(&outcome, Some(text), usage);
        let last = if outcome.status() == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.extend(self.event(last, json!({ "response": response })));
        (out, response)
    }

    /// A failure after output began: `error`, then `response.failed` with the text so far.
    pub(crate) fn fail(&mut self, error: &ApiError, text: &str) -> Vec<u8> {
        let mut inner = error.envelope(&self.request_id)["error"].clone();
        inner["status"] = json!(error.status);
        let mut out = self.event(
            "error",
            json!({
                "code": error.code,
                "message": error.message,
                "param": error.field,
                "error": inner,
            }),
        );
        let response = self
            .meta
            .object(&Outcome::Failed(error.clone()), Some(text), None);
        out.extend(self.event("response.failed", json!({ "response": response })));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ResponseMeta {
        ResponseMeta {
            id: "resp_1".into(),
            message_id: "msg_1".into(),
            created_at: 7,
            model: "openai/gpt-4o".into(),
            instructions: Some("Be terse.".into()),
            max_output_tokens: Some(64),
            previous_response_id: None,
            store: true,
            temperature: None,
            top_p: None,
            metadata: json!({"k":"v"}),
            parallel_tool_calls: true,
        }
    }

    /// `(event line, data)` of every event, checking the framing on the way.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        String::from_utf8(bytes.to_vec())
            .expect("utf8")
            .split_terminator("\n\n")
            .map(|block| {
                let (event, data) = block.split_once('\n').expect("two lines");
                let name = event
                    .strip_prefix("event: ")
                    .expect("event line")
                    .to_string();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").expect("data line"))
                        .expect("json");
                assert_eq!(data["type"], name.as_str(), "type is the event name");
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_finished_response_object_has_openais_shape() {
        let usage = Usage::from_counts(3, 2);
        let body = meta().object(
            &Outcome::Finished(FinishReason::Stop),
            Some("Hi"),
            Some(&usage),
        );
        assert_eq!(body["object"], "response");
        assert_eq!(body["status"], "completed");
        assert_eq!(body["output"][0]["type"], "message");
        assert_eq!(body["output"][0]["role"], "assistant");
        assert_eq!(body["output"][0]["content"][0], text_part("Hi"));
        assert_eq!(body["usage"]["input_tokens"], 3);
        assert_eq!(body["usage"]["output_tokens"], 2);
        assert_eq!(body["usage"]["total_tokens"], 5);
        assert_eq!(body["instructions"], "Be terse.");
        assert_eq!(body["metadata"]["k"], "v");
        assert!(body["error"].is_null() && body["incomplete_details"].is_null());
    }

    #[test]
    fn a_cut_answer_is_incomplete_with_openais_reason() {
        let body = meta().object(&Outcome::Finished(FinishReason::Length), Some("Hi"), None);
        assert_eq!(body["status"], "incomplete");
        assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(body["output"][0]["status"], "incomplete");
        assert!(body["usage"].is_null());
    }

    #[test]
    fn a_stream_numbers_every_event_in_openais_order() {
        let mut w = EventWriter::new(meta(), "req-1".into());
        let mut bytes = w.opening();
        bytes.extend(w.delta("He"));
        bytes.extend(w.delta("llo"));
        let (end, last) = w.finish(FinishReason::Stop, "Hello", Some(&Usage::from_counts(1, 1)));
        bytes.extend(end);
        let all = events(&bytes);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, data)) in all.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "numbered from 0 without gaps");
        }
        assert_eq!(all[0].1["response"]["status"], "in_progress");
        assert_eq!(all[0].1["response"]["output"], json!([]));
        assert_eq!(all[2].1["item"]["id"], "msg_1");
        assert_eq!(all[3].1["part"]["text"], "");
        assert_eq!(all[4].1["delta"], "He");
        assert_eq!(all[4].1["item_id"], "msg_1");
        assert_eq!(all[6].1["text"], "Hello");
        assert_eq!(all[8].1["item"]["content"][0]["text"], "Hello");
        assert_eq!(all[9].1["response"], last);
        assert_eq!(last["usage"]["total_tokens"], 2);
    }

    #[test]
    fn a_cut_stream_ends_with_response_incomplete() {
        let mut w = EventWriter::new(meta(), "req-1".into());
        let (end, last) = w.finish(FinishReason::ContentFilter, "x", None);
        let all = events(&end);
        assert_eq!(
            all.last().map(|(n, _)| n.as_str()),
            Some("response.incomplete")
        );
        assert_eq!(last["incomplete_details"]["reason"], "content_filter");
    }

    #[test]
    fn a_failure_is_an_error_event_then_response_failed() {
        let mut w = EventWriter::new(meta(), "req-1".into());
        let _ = w.opening();
        let api = ApiError::new(503, "provider_overloaded", "Provider openai is overloaded");
        let all = events(&w.fail(&api, "par"));
        assert_eq!(all[0].0, "error");
        assert_eq!(all[0].1["sequence_number"], 4);
        assert_eq!(all[0].1["code"], "provider_overloaded");
        assert_eq!(all[0].1["error"]["type"], "service_unavailable");
        assert_eq!(all[0].1["error"]["request_id"], "req-1");
        assert_eq!(all[0].1["error"]["status"], 503);
        assert_eq!(all[1].0, "response.failed");
        let failed = &all[1].1["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "provider_overloaded");
        assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    }

    #[test]
    fn response_ids_have_openais_shape() {
        let id = response_id().expect("random");
        assert!(is_response_id(&id), "{id}");
        assert!(message_id().expect("random").starts_with("msg_"));
        for junk in ["resp_", "resp_XYZ", "chatcmpl-1", &format!("{id}0")] {
            assert!(!is_response_id(junk), "{junk}");
        }
    }
}
