//! The retry, fallback, timeout and streaming logic against a scripted fake transport.

use crate::providers::client::ProviderClient;
use crate::providers::resolve::plan;
use crate::providers::resolve::resolve;
use crate::providers::settings::Upstream;
use std::collections::BTreeMap;
use std::future::Future;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::future::LocalBoxFuture;
use futures::StreamExt;

use crate::config::Config;
use crate::http::error::ApiError;
use crate::platform::clock::Clock;
use crate::platform::random::{RandomSource, RandomUnavailable};
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::echo::ECHO_DELTA_DELAY_MS;
use crate::providers::client::engine::list_models_with;
use crate::providers::client::failure::failure_error;
use crate::providers::client::failure::provider_error;
use crate::providers::client::failure::Failure;
use crate::providers::client::retry::backoff_ms;
use crate::providers::client::retry::next_step;
use crate::providers::client::retry::NextStep;
use crate::providers::client::stream::ModelStream;
use crate::providers::client::transport::Body;
use crate::providers::client::transport::Reply;
use crate::providers::client::transport::Transport;
use crate::providers::resolve::Target;
use crate::providers::settings::RetryPolicy;
use crate::providers::wire::ProviderErrorKind;
use crate::providers::wire::{ChatMessage, Role};
use crate::providers::wire::{
    ChatRequest, FinishReason, OutboundRequest, ProviderError, ProviderEvent, Usage,
};

/// The fake transport's clock.
struct StoppedClock(u64);

impl Clock for StoppedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

const AT_1_700_000_000: StoppedClock = StoppedClock(1_700_000_000_000);

/// Randomness that always draws zeros.
struct LowestRandom;

impl RandomSource for LowestRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        buf.fill(0);
        Ok(())
    }
}

// ---- a scripted transport ------------------------------------------------------------------

enum Script {
    /// No response at all.
    Refused,
    /// Never answers.
    Hang,
    /// A response whose body is `chunks`, then (when `hang_after`) silence.
    Reply {
        status: u16,
        retry_after: Option<&'static str>,
        chunks: Vec<Vec<u8>>,
        hang_after: bool,
    },
}

fn reply(status: u16, body: &str) -> Script {
    Script::Reply {
        status,
        retry_after: None,
        chunks: vec![body.as_bytes().to_vec()],
        hang_after: false,
    }
}

fn reply_retry_after(status: u16, retry_after: &'static str, body: &str) -> Script {
    Script::Reply {
        status,
        retry_after: Some(retry_after),
        chunks: vec![body.as_bytes().to_vec()],
        hang_after: false,
    }
}

fn stream_reply(chunks: &[&str], hang_after: bool) -> Script {
    Script::Reply {
        status: 200,
        retry_after: None,
        chunks: chunks.iter().map(|c| c.as_bytes().to_vec()).collect(),
        hang_after,
    }
}

#[derive(Default)]
struct FakeState {
    script: RefCell<VecDeque<Script>>,
    sent: RefCell<Vec<OutboundRequest>>,
    /// Sleeps that actually elapsed (a timer that lost its race is never polled).
    slept: RefCell<Vec<u64>>,
    gone: Cell<bool>,
}

#[derive(Default, Clone)]
struct Fake(Rc<FakeState>);

impl Fake {
    fn new(script: Vec<Script>) -> Fake {
        let fake = Fake::default();
        *fake.0.script.borrow_mut() = script.into();
        fake
    }

    fn sent(&self) -> Vec<OutboundRequest> {
        self.0.sent.borrow().clone()
    }

    fn slept(&self) -> Vec<u64> {
        self.0.slept.borrow().clone()
    }

    fn transport(&self) -> Rc<dyn Transport> {
        Rc::new(self.clone())
    }
}

impl Transport for Fake {
    fn send(&self, request: OutboundRequest) -> LocalBoxFuture<'static, Result<Reply, String>> {
        self.0.sent.borrow_mut().push(request);
        let next = self
            .0
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or(Script::Refused);
        match next {
            Script::Refused => Box::pin(async { Err("connection refused".to_string()) }),
            Script::Hang => Box::pin(futures::future::pending()),
            Script::Reply {
                status,
                retry_after,
                chunks,
                hang_after,
            } => {
                let chunks = futures::stream::iter(chunks.into_iter().map(Ok));
                let body: Body = if hang_after {
                    Box::pin(chunks.chain(futures::stream::pending()))
                } else {
                    Box::pin(chunks)
                };
                Box::pin(async move {
                    Ok(Reply {
                        status,
                        retry_after_ms: None,
                        retry_after: retry_after.map(str::to_string),
                        body,
                    })
                })
            }
        }
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        let state = self.0.clone();
        Box::pin(async move { state.slept.borrow_mut().push(ms) })
    }

    fn clock(&self) -> &dyn Clock {
        &AT_1_700_000_000
    }

    fn random(&self) -> &dyn RandomSource {
        // No jitter: every retry waits half its backoff, the least it may.
        &LowestRandom
    }

    fn client_gone(&self) -> bool {
        self.0.gone.get()
    }
}

/// Runs a future that never waits on anything real (every fake future is ready or never).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future never completed");
}

fn collect(stream: ModelStream) -> Vec<ProviderEvent> {
    block_on(stream.collect::<Vec<_>>())
}

// ---- configuration -------------------------------------------------------------------------

const KEY: &str = "sk-test-key-0123456789";

fn config_with(pairs: &[(&str, &str)]) -> Rc<Config> {
    let src: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Rc::new(Config::from_source(&src, || Ok(vec![7; 32])))
}

fn config() -> Rc<Config> {
    config_with(&[
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", "http://stand-in/v1"),
        ("ANTHROPIC_API_KEY", "ak-test"),
        ("ANTHROPIC_BASE_URL", "http://stand-in"),
        ("OPENAI_TIMEOUT_SECS", "7"),
        ("MODEL_ALIASES", r#"{"fast":"openai/gpt-4o-mini"}"#),
        (
            "MODEL_FALLBACKS",
            r#"{"openai/gpt-4o":["gemini/gemini-2.0-flash","anthropic/claude-3-5-haiku-latest"]}"#,
        ),
    ])
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Say hello"),
        ],
        ..ChatRequest::default()
    }
}

fn client(fake: &Fake) -> ProviderClient {
    ProviderClient::with_transport(config(), fake.transport())
}

const OPENAI_OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
const ANTHROPIC_OK: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi from Claude"}],"model":"claude-3-5-haiku-20241022","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4}}"#;
const OPENAI_503: &str = r#"{"error":{"message":"That model is currently overloaded","type":"server_error","param":null,"code":null}}"#;
const OPENAI_429: &str = r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

fn delta(text: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n")
}
const FINISH: &str =
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
const MID_STREAM_OVERLOAD: &str =
    "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":503}}\n\n";

fn headers_of(err: &ApiError) -> BTreeMap<String, String> {
    err.headers.iter().cloned().collect()
}

// ---- resolution ----------------------------------------------------------------------------

#[test]
fn a_catalogued_id_resolves_to_its_configured_provider() {
    let cfg = config();
    let model = resolve(&cfg.providers, "openai/gpt-4o").expect("resolves");
    assert_eq!(model.provider, "openai");
    assert_eq!(model.upstream_model, "gpt-4o");
    match model.target {
        Target::Upstream(u) => assert_eq!(u.endpoint.base_url, "http://stand-in/v1"),
        Target::Echo => panic!("not echo"),
    }
}

#[test]
fn an_alias_resolves_to_its_target() {
    let cfg = config();
    let model = resolve(&cfg.providers, "fast").expect("resolves");
    assert_eq!(model.id, "openai/gpt-4o-mini");
    assert_eq!(model.upstream_model, "gpt-4o-mini");
}

#[test]
fn an_uncatalogued_model_of_a_configured_provider_passes_through() {
    let cfg = config();
    let model = resolve(&cfg.providers, "openai/gpt-4.1-nano").expect("resolves");
    assert_eq!(model.upstream_model, "gpt-4.1-nano");
}

#[test]
fn a_bare_openai_sdk_model_name_resolves_to_its_provider() {
    let cfg = config();
    let model = resolve(&cfg.providers, "gpt-4o").expect("resolves");
    assert_eq!(model.id, "openai/gpt-4o");
    assert_eq!(model.upstream_model, "gpt-4o");
}

#[test]
fn unknown_models_are_404_model_not_found_naming_the_param() {
    let cfg = config();
    for name in ["nope/model", "llama3.2", "", "openai/"] {
        let err = ApiError::from(resolve(&cfg.providers, name).expect_err(name));
        assert_eq!((err.status, err.code), (404, "model_not_found"), "{name}");
        assert_eq!(err.field.as_deref(), Some("model"));
    }
}

#[test]
fn a_known_model_whose_provider_is_not_configured_is_503_provider_unavailable() {
    let cfg = config();
    let err = ApiError::from(
        resolve(&cfg.providers, "gemini/gemini-2.0-flash").expect_err("unconfigured"),
    );
    assert_eq!((err.status, err.code), (503, "provider_unavailable"));
    assert!(err.message.contains("gemini"), "{}", err.message);
    assert!(err.message.contains("GEMINI_API_KEY"), "{}", err.message);
    assert_eq!(headers_of(&err)["x-should-retry"], "false");
    let ollama =
        ApiError::from(resolve(&cfg.providers, "ollama/llama3.2").expect_err("unconfigured"));
    assert_eq!(ollama.status, 503);
    assert!(ollama.message.contains("OLLAMA_BASE_URL"));
}

#[test]
fn dev_echo_resolves_only_where_it_is_offered() {
    let dev = config_with(&[("ENVIRONMENT", "development")]);
    assert_eq!(
        resolve(&dev.providers, "dev/echo").map(|m| m.target),
        Ok(Target::Echo)
    );
    let prod = config_with(&[]);
    assert_eq!(
        resolve(&prod.providers, "dev/echo").map_err(|e| ApiError::from(e).status),
        Err(404)
    );
    let dev_with_provider = config_with(&[("ENVIRONMENT", "development"), ("OPENAI_API_KEY", "k")]);
    assert_eq!(
        resolve(&dev_with_provider.providers, "dev/echo").map_err(|e| ApiError::from(e).status),
        Err(404)
    );
}

#[test]
fn the_plan_is_the_model_then_its_configured_fallbacks() {
    let cfg = config();
    let ids: Vec<String> = plan(&cfg.providers, "openai/gpt-4o")
        .expect("plan")
        .into_iter()
        .map(|m| m.id)
        .collect();
    // Gemini is not configured, so it is skipped.
    assert_eq!(ids, ["openai/gpt-4o", "anthropic/claude-3-5-haiku-latest"]);
}

// ---- retry decisions -----------------------------------------------------------------------

#[test]
fn backoff_doubles_from_the_base_and_is_capped() {
    let policy = RetryPolicy::default();
    let full: Vec<u64> = (0..7).map(|n| backoff_ms(&policy, n, 1.0)).collect();
    assert_eq!(full, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    let least: Vec<u64> = (0..3).map(|n| backoff_ms(&policy, n, 0.0)).collect();
    assert_eq!(least, [125, 250, 500], "equal jitter keeps half the delay");
    assert_eq!(backoff_ms(&policy, 1000, 1.0), 4000, "no overflow");
}

fn overloaded(retry_after: Option<u64>) -> Failure {
    Failure::Provider(
        ProviderError::new(ProviderErrorKind::Overloaded, "busy").with_retry_after(retry_after),
    )
}

#[test]
fn retryable_failures_are_retried_until_the_budget_is_spent() {
    let policy = RetryPolicy::default();
    assert_eq!(
        next_step(&policy, 0, &overloaded(None), 1.0),
        NextStep::RetryAfterMs(250)
    );
    assert_eq!(
        next_step(&policy, 1, &Failure::Unreachable("reset".into()), 1.0),
        NextStep::RetryAfterMs(500)
    );
    assert_eq!(
        next_step(&policy, 2, &overloaded(None), 1.0),
        NextStep::NextModel
    );
}

#[test]
fn a_small_retry_after_is_honoured_and_a_large_one_skips_to_the_next_model() {
    let policy = RetryPolicy::default();
    assert_eq!(
        next_step(&policy, 0, &overloaded(Some(3)), 1.0),
        NextStep::RetryAfterMs(3000)
    );
    assert_eq!(
        next_step(&policy, 0, &overloaded(Some(0)), 1.0),
        NextStep::RetryAfterMs(250)
    );
    assert_eq!(
        next_step(&policy, 0, &overloaded(Some(30)), 1.0),
        NextStep::NextModel
    );
}

#[test]
fn permanent_failures_give_up_and_our_timeout_goes_straight_to_the_next_model() {
    let policy = RetryPolicy::default();
    for kind in [
        ProviderErrorKind::Auth,
        ProviderErrorKind::QuotaExceeded,
        ProviderErrorKind::InvalidRequest,
        ProviderErrorKind::NotFound,
        ProviderErrorKind::Malformed,
    ] {
        let failure = Failure::Provider(ProviderError::new(kind, "x"));
        assert_eq!(
            next_step(&policy, 0, &failure, 0.5),
            NextStep::GiveUp,
            "{kind:?}"
        );
    }
    assert_eq!(
        next_step(&policy, 0, &Failure::TimedOut(30), 0.5),
        NextStep::NextModel
    );
}

#[test]
fn no_retries_when_the_budget_is_zero() {
    let policy = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    assert_eq!(
        next_step(&policy, 0, &overloaded(None), 0.5),
        NextStep::NextModel
    );
}

// ---- error mapping -------------------------------------------------------------------------

fn mapped(kind: ProviderErrorKind) -> ApiError {
    provider_error("openai", &ProviderError::new(kind, "detail"))
}

#[test]
fn provider_errors_map_to_the_statuses_the_issue_names() {
    use ProviderErrorKind::*;
    let table = [
        (Auth, 502, "provider_auth_failed"),
        (RateLimited, 429, "provider_rate_limited"),
        (QuotaExceeded, 502, "provider_quota_exceeded"),
        (InvalidRequest, 400, "provider_rejected_request"),
        (NotFound, 404, "model_not_found"),
        (Overloaded, 503, "provider_overloaded"),
        (Server, 502, "provider_error"),
        (Timeout, 504, "provider_timeout"),
        (Malformed, 502, "provider_bad_response"),
    ];
    for (kind, status, code) in table {
        let err = mapped(kind);
        assert_eq!((err.status, err.code), (status, code), "{kind:?}");
        assert!(
            err.message.contains("openai"),
            "{kind:?} names the provider"
        );
    }
    assert_eq!(
        failure_error("anthropic", &Failure::TimedOut(9)).status,
        504
    );
    let unreachable = failure_error("gemini", &Failure::Unreachable("dns: no such host".into()));
    assert_eq!(
        (unreachable.status, unreachable.code),
        (502, "provider_unreachable")
    );
    assert!(
        !unreachable.message.contains("dns"),
        "detail stays in the log"
    );
}

#[test]
fn a_provider_429_passes_its_retry_after_on() {
    let err = provider_error(
        "anthropic",
        &ProviderError::new(ProviderErrorKind::RateLimited, "slow down").with_retry_after(Some(17)),
    );
    assert_eq!(err.status, 429);
    assert_eq!(headers_of(&err)["retry-after"], "17");
    assert_eq!(err.openai_type(), "rate_limit_error");
}

#[test]
fn auth_failures_tell_the_sdk_not_to_retry_and_name_the_setting() {
    let err = mapped(ProviderErrorKind::Auth);
    assert_eq!(headers_of(&err)["x-should-retry"], "false");
    assert!(err.message.contains("OPENAI_API_KEY"));
}

// ---- non-stream ----------------------------------------------------------------------------

#[test]
fn a_completion_is_returned_with_the_model_that_served_it() {
    let fake = Fake::new(vec![reply(200, OPENAI_OK)]);
    let answer = block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(answer.model.id, "openai/gpt-4o");
    assert_eq!(answer.completion.text, "Hello!");
    assert_eq!(answer.completion.usage, Some(Usage::from_counts(5, 2)));
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "http://stand-in/v1/chat/completions");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body: serde_json::Value = serde_json::from_str(&sent[0].body).expect("json");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["stream"], false);
}

#[test]
fn an_alias_is_sent_upstream_as_the_providers_model_name() {
    let fake = Fake::new(vec![reply(200, OPENAI_OK)]);
    block_on(client(&fake).complete("fast", request())).expect("ok");
    let body: serde_json::Value = serde_json::from_str(&fake.sent()[0].body).expect("json");
    assert_eq!(body["model"], "gpt-4o-mini");
}

#[test]
fn a_503_is_retried_after_a_backoff_then_succeeds() {
    let fake = Fake::new(vec![reply(503, OPENAI_503), reply(200, OPENAI_OK)]);
    let answer = block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(answer.completion.text, "Hello!");
    assert_eq!(fake.sent().len(), 2);
    assert_eq!(fake.slept(), [125]);
}

#[test]
fn a_429_with_a_small_retry_after_waits_that_long() {
    let fake = Fake::new(vec![
        reply_retry_after(429, "2", OPENAI_429),
        reply(200, OPENAI_OK),
    ]);
    block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(fake.slept(), [2000]);
}

#[test]
fn retries_exhausted_fall_back_to_the_next_model() {
    let fake = Fake::new(vec![
        reply(503, OPENAI_503),
        reply(503, OPENAI_503),
        reply(503, OPENAI_503),
        reply(200, ANTHROPIC_OK),
    ]);
    let answer = block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(answer.model.id, "anthropic/claude-3-5-haiku-latest");
    assert_eq!(answer.completion.text, "Hi from Claude");
    let sent = fake.sent();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].url, "http://stand-in/v1/messages");
    let body: serde_json::Value = serde_json::from_str(&sent[3].body).expect("json");
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["system"], "Be brief.");
}

#[test]
fn a_large_retry_after_skips_straight_to_the_fallback() {
    let fake = Fake::new(vec![
        reply_retry_after(429, "60", OPENAI_429),
        reply(200, ANTHROPIC_OK),
    ]);
    let answer = block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(answer.model.provider, "anthropic");
    assert!(fake.slept().is_empty());
}

#[test]
fn when_everything_fails_the_requested_models_error_is_returned() {
    let fake = Fake::new(vec![
        reply_retry_after(429, "60", OPENAI_429),
        reply(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        reply(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        reply(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ]);
    let err = block_on(client(&fake).complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (429, "provider_rate_limited"));
    assert_eq!(headers_of(&err)["retry-after"], "60");
    assert_eq!(fake.sent().len(), 4);
}

#[test]
fn a_permanent_failure_of_the_requested_model_is_not_retried_nor_falls_back() {
    let fake = Fake::new(vec![reply(
        400,
        r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":null}}"#,
    )]);
    let err = block_on(client(&fake).complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (400, "provider_rejected_request"));
    assert!(err.message.contains("max_tokens is too large"));
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn an_upstream_401_never_echoes_the_key() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let fake = Fake::new(vec![reply(401, &body)]);
    let err = block_on(client(&fake).complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (502, "provider_auth_failed"));
    let rendered = format!("{} {:?}", err.envelope("r"), err.internal);
    assert!(!rendered.contains(KEY), "{rendered}");
    assert!(!rendered.contains("0123456789"), "{rendered}");
}

#[test]
fn a_key_echoed_in_any_error_message_is_redacted() {
    let body =
        format!(r#"{{"error":{{"message":"upstream said {KEY} oops","type":"server_error"}}}}"#);
    let cfg = config_with(&[("OPENAI_API_KEY", KEY), ("PROVIDER_MAX_RETRIES", "0")]);
    let fake = Fake::new(vec![reply(500, &body)]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let err = block_on(client.complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!(err.status, 502);
    assert!(!err.message.contains(KEY), "{}", err.message);
}

#[test]
fn a_provider_that_never_answers_times_out_with_504_and_is_not_retried() {
    let cfg = config_with(&[("OPENAI_API_KEY", KEY), ("OPENAI_TIMEOUT_SECS", "3")]);
    let fake = Fake::new(vec![Script::Hang]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let err = block_on(client.complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (504, "provider_timeout"));
    assert!(err.message.contains("3 s"));
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.slept(), [3000]);
}

#[test]
fn a_timeout_moves_on_to_the_fallback() {
    let fake = Fake::new(vec![Script::Hang, reply(200, ANTHROPIC_OK)]);
    let answer = block_on(client(&fake).complete("openai/gpt-4o", request())).expect("ok");
    assert_eq!(answer.model.provider, "anthropic");
    assert_eq!(fake.slept(), [7000], "the OpenAI timeout elapsed once");
}

#[test]
fn connection_failures_are_retried_then_reported_as_unreachable() {
    let cfg = config_with(&[("OPENAI_API_KEY", KEY)]);
    let fake = Fake::new(vec![Script::Refused, Script::Refused, Script::Refused]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let err = block_on(client.complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (502, "provider_unreachable"));
    assert_eq!(fake.sent().len(), 3);
}

#[test]
fn a_malformed_reply_is_a_502() {
    let fake = Fake::new(vec![reply(200, "<html>proxy error</html>")]);
    let err = block_on(client(&fake).complete("openai/gpt-4o", request())).expect_err("fails");
    assert_eq!((err.status, err.code), (502, "provider_bad_response"));
}

#[test]
fn nothing_is_attempted_once_the_client_has_gone() {
    let fake = Fake::new(vec![reply(200, OPENAI_OK)]);
    fake.0.gone.set(true);
    let err = block_on(client(&fake).complete("openai/gpt-4o", request())).expect_err("gone");
    assert_eq!(err.status, 499);
    assert!(fake.sent().is_empty());
}

// ---- stream --------------------------------------------------------------------------------

#[test]
fn a_stream_relays_deltas_then_usage_then_finish() {
    let fake = Fake::new(vec![stream_reply(
        &[&delta("Hel"), &delta("lo"), FINISH],
        false,
    )]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    assert_eq!(stream.model().id, "openai/gpt-4o");
    assert_eq!(
        collect(stream),
        [
            ProviderEvent::TextDelta("Hel".into()),
            ProviderEvent::TextDelta("lo".into()),
            ProviderEvent::Usage(Usage::from_counts(3, 2)),
            ProviderEvent::Finish(FinishReason::Stop),
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&fake.sent()[0].body).expect("json");
    assert_eq!(body["stream"], true);
}

#[test]
fn a_stream_split_at_odd_bytes_is_reassembled() {
    let whole = format!("{}{}{FINISH}", delta("Grüße"), delta(" 👋"));
    let bytes = whole.as_bytes();
    let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
    let fake = Fake::new(vec![Script::Reply {
        status: 200,
        retry_after: None,
        chunks,
        hang_after: false,
    }]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    let text: String = collect(stream)
        .into_iter()
        .filter_map(|e| match e {
            ProviderEvent::TextDelta(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Grüße 👋");
}

#[test]
fn an_error_before_the_first_delta_is_retried() {
    let fake = Fake::new(vec![
        stream_reply(&[MID_STREAM_OVERLOAD], false),
        stream_reply(&[&delta("ok"), FINISH], false),
    ]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    assert_eq!(collect(stream)[0], ProviderEvent::TextDelta("ok".into()));
    assert_eq!(fake.sent().len(), 2);
}

#[test]
fn an_error_after_the_first_delta_ends_the_stream_without_a_retry() {
    let fake = Fake::new(vec![
        stream_reply(&[&delta("partial"), MID_STREAM_OVERLOAD], false),
        stream_reply(&[&delta("never"), FINISH], false),
    ]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    let events = collect(stream);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], ProviderEvent::TextDelta("partial".into()));
    match &events[1] {
        ProviderEvent::Error(e) => assert_eq!(e.kind, ProviderErrorKind::Overloaded),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn a_stream_status_error_is_retried_then_falls_back() {
    let anthropic_stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Claude here\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let fake = Fake::new(vec![
        reply(500, OPENAI_503),
        reply(500, OPENAI_503),
        reply(500, OPENAI_503),
        stream_reply(&[anthropic_stream], false),
    ]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    assert_eq!(stream.model().provider, "anthropic");
    assert_eq!(
        collect(stream)[0],
        ProviderEvent::TextDelta("Claude here".into())
    );
    assert_eq!(fake.slept(), [125, 250]);
}

#[test]
fn a_stream_that_goes_silent_ends_with_a_timeout_error() {
    let cfg = config_with(&[("OPENAI_API_KEY", KEY), ("OPENAI_TIMEOUT_SECS", "5")]);
    let fake = Fake::new(vec![stream_reply(&[&delta("a")], true)]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let stream = block_on(client.stream("openai/gpt-4o", request())).expect("ok");
    let events = collect(stream);
    match events.last() {
        Some(ProviderEvent::Error(e)) => {
            assert_eq!(e.kind, ProviderErrorKind::Timeout);
            assert!(e.message.contains("5 s"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_stream_that_ends_before_its_marker_reports_an_error() {
    let fake = Fake::new(vec![stream_reply(&[&delta("cut")], false)]);
    let stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    let events = collect(stream);
    assert!(matches!(
        events.last(),
        Some(ProviderEvent::Error(e)) if e.kind == ProviderErrorKind::Malformed
    ));
}

#[test]
fn a_stream_ended_by_a_client_disconnect_just_ends() {
    let fake = Fake::new(vec![stream_reply(&[&delta("a")], false)]);
    let mut stream = block_on(client(&fake).stream("openai/gpt-4o", request())).expect("ok");
    assert_eq!(
        block_on(stream.next()),
        Some(ProviderEvent::TextDelta("a".into()))
    );
    fake.0.gone.set(true);
    assert_eq!(block_on(stream.next()), None);
}

#[test]
fn a_stream_that_never_starts_times_out_before_output() {
    let cfg = config_with(&[("OPENAI_API_KEY", KEY), ("PROVIDER_MAX_RETRIES", "0")]);
    let fake = Fake::new(vec![stream_reply(&[": keep-alive\n\n"], true)]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let err = block_on(client.stream("openai/gpt-4o", request())).expect_err("times out");
    assert_eq!((err.status, err.code), (504, "provider_timeout"));
}

// ---- dev/echo ------------------------------------------------------------------------------

fn echo_client(fake: &Fake) -> ProviderClient {
    ProviderClient::with_transport(
        config_with(&[("ENVIRONMENT", "development")]),
        fake.transport(),
    )
}

#[test]
fn dev_echo_answers_deterministically_without_any_request() {
    let fake = Fake::default();
    let answer = block_on(echo_client(&fake).complete("dev/echo", request())).expect("ok");
    assert_eq!(answer.completion.text, "Echo: Say hello");
    assert_eq!(answer.completion.usage, Some(Usage::from_counts(4, 3)));
    assert!(fake.sent().is_empty());
}

#[test]
fn dev_echo_streams_word_by_word() {
    let fake = Fake::default();
    let stream = block_on(echo_client(&fake).stream("dev/echo", request())).expect("ok");
    let events = collect(stream);
    assert_eq!(
        events,
        [
            ProviderEvent::TextDelta("Echo: ".into()),
            ProviderEvent::TextDelta("Say ".into()),
            ProviderEvent::TextDelta("hello".into()),
            ProviderEvent::Usage(Usage::from_counts(4, 3)),
            ProviderEvent::Finish(FinishReason::Stop),
        ]
    );
    assert_eq!(fake.slept(), [ECHO_DELTA_DELAY_MS, ECHO_DELTA_DELAY_MS]);
}

// ---- model lists ---------------------------------------------------------------------------

fn openai_upstream() -> Upstream {
    config()
        .providers
        .upstream("openai")
        .cloned()
        .expect("openai")
}

#[test]
fn a_model_list_is_read_from_the_list_endpoint() {
    let fake = Fake::new(vec![reply(
        200,
        r#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"o3-mini","object":"model"}]}"#,
    )]);
    let models = block_on(list_models_with(&fake, &openai_upstream()));
    assert_eq!(
        models,
        Ok(vec!["gpt-4o".to_string(), "o3-mini".to_string()])
    );
    assert_eq!(fake.sent()[0].url, "http://stand-in/v1/models");
}

#[test]
fn a_failing_or_silent_list_endpoint_is_an_error_not_a_panic() {
    let fake = Fake::new(vec![reply(500, OPENAI_503), Script::Hang]);
    assert!(block_on(list_models_with(&fake, &openai_upstream())).is_err());
    let timed_out = block_on(list_models_with(&fake, &openai_upstream()));
    assert!(timed_out.is_err_and(|e| e.contains("timed out")));
}

// ---- client disconnect ---------------------------------------------------------------------

#[test]
fn the_disconnect_future_completes_when_the_client_goes() {
    let disconnect = ClientDisconnect::default();
    let mut gone = Box::pin(disconnect.gone());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(gone.as_mut().poll(&mut cx).is_pending());
    assert!(!disconnect.is_gone());
    disconnect.clone().mark_gone();
    assert!(disconnect.is_gone());
    assert!(gone.as_mut().poll(&mut cx).is_ready());
}

// ---- embeddings ----------------------------------------------------------------------------

fn embedding_client(fake: &Fake) -> ProviderClient {
    let cfg = config_with(&[
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", "http://stand-in/v1"),
        ("GEMINI_API_KEY", "g-key"),
        ("GEMINI_BASE_URL", "http://stand-in"),
    ]);
    ProviderClient::with_transport(cfg, fake.transport())
}

fn inputs(n: usize) -> crate::providers::wire::embeddings::EmbeddingRequest {
    crate::providers::wire::embeddings::EmbeddingRequest {
        inputs: (0..n).map(|i| format!("text {i}")).collect(),
        ..Default::default()
    }
}

fn gemini_vectors(range: std::ops::Range<usize>) -> String {
    let items: Vec<String> = range.map(|i| format!("{{\"values\":[{i}]}}")).collect();
    format!("{{\"embeddings\":[{}]}}", items.join(","))
}

#[test]
fn embeddings_are_split_into_the_providers_batches_and_rejoined_in_order() {
    let fake = Fake::new(vec![
        reply(200, &gemini_vectors(0..100)),
        reply(200, &gemini_vectors(100..150)),
    ]);
    let client = embedding_client(&fake);
    let model = client
        .embedding_model("gemini-embedding-001")
        .expect("model");
    let out = block_on(client.embed(&model, inputs(150))).expect("embedded");
    assert_eq!(out.vectors.len(), 150);
    assert_eq!(out.vectors[149], vec![149.0]);
    assert_eq!(out.prompt_tokens, None, "Gemini counts no tokens");
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert!(sent[0]
        .url
        .ends_with("/models/gemini-embedding-001:batchEmbedContents"));
    let second: serde_json::Value = serde_json::from_str(&sent[1].body).expect("json");
    assert_eq!(second["requests"].as_array().map(Vec::len), Some(50));
    assert_eq!(
        second["requests"][0]["content"]["parts"][0]["text"],
        "text 100"
    );
}

#[test]
fn an_embedding_call_is_retried_like_a_chat_call_and_usage_is_summed() {
    let ok =
        r#"{"data":[{"index":0,"embedding":[0.5]}],"usage":{"prompt_tokens":2,"total_tokens":2}}"#;
    let fake = Fake::new(vec![reply(503, OPENAI_503), reply(200, ok)]);
    let client = embedding_client(&fake);
    let model = client
        .embedding_model("openai/text-embedding-3-small")
        .expect("model");
    let out = block_on(client.embed(&model, inputs(1))).expect("embedded");
    assert_eq!(out.vectors, vec![vec![0.5]]);
    assert_eq!(out.prompt_tokens, Some(2));
    assert_eq!(fake.sent().len(), 2, "one retry after the 503");
    assert_eq!(
        fake.sent()[1].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[test]
fn a_failed_embedding_batch_is_the_providers_error() {
    let fake = Fake::new(vec![reply(
        404,
        r#"{"error":{"message":"The model `text-embedding-9` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
    )]);
    let client = embedding_client(&fake);
    let model = client
        .embedding_model("openai/text-embedding-9")
        .expect("passes through");
    let err = block_on(client.embed(&model, inputs(3))).expect_err("404");
    assert_eq!((err.status, err.code), (404, "model_not_found"));
}

#[test]
fn dev_embed_answers_offline_with_stable_vectors_of_the_asked_length() {
    let fake = Fake::new(vec![]);
    let cfg = config_with(&[("ENVIRONMENT", "development")]);
    let client = ProviderClient::with_transport(cfg, fake.transport());
    let model = client.embedding_model("dev/embed").expect("offline model");
    let mut request = inputs(2);
    let out = block_on(client.embed(&model, request.clone())).expect("embedded");
    assert_eq!(out.vectors.len(), 2);
    assert_eq!(out.vectors[0].len(), 16);
    assert_ne!(out.vectors[0], out.vectors[1]);
    assert!(out.vectors[0].iter().all(|v| (-1.0..1.0).contains(v)));
    request.dimensions = Some(4);
    let again = block_on(client.embed(&model, request)).expect("embedded");
    assert_eq!(again.vectors[0], out.vectors[0][..4]);
    assert!(fake.sent().is_empty(), "no network");
}
