//! The queue consumer: each message names one execution (`{"execution_id": "…"}`), which
//! [`run`](crate::pipelines::run::run) runs or resumes. The messages of a batch run
//! concurrently; each is acked or retried on its own.
//!
//! An error of the platform itself (D1 unavailable) retries the message; the queue's
//! `max_retries` bounds that, and after it the message lands in the dead-letter queue
//! (`threadline-pipelines-dlq`), which keeps it for the operator. A message that is not an
//! execution id is logged and acked: retrying it could never help.
//!
//! A message can also be lost with the consumer that held it (locally, `wrangler dev`
//! restarted mid-step). The scheduled [`sweep`] (every minute, `[triggers]` in
//! wrangler.toml) sends the message of every unfinished execution whose lease ran out more
//! than `PIPELINE_SWEEP_GRACE_SECS` ago again; the run then resumes at its first unfinished
//! step.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use worker::{Env, Message, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::config::Config;
use crate::pipelines::run::{run, Outcome};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::{LogLevel, LogLine};
use crate::providers::client::ProviderClient;

/// The queue binding executions are sent to.
pub const QUEUE_BINDING: &str = "PIPELINE_QUEUE";

/// What a message carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub execution_id: String,
}

pub async fn consume(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    config: Rc<Config>,
) -> worker::Result<()> {
    let messages = batch.messages()?;
    let work = messages.iter().map(|message| one(message, &env, &config));
    futures::future::join_all(work).await;
    Ok(())
}

async fn one(
    message: &Message<serde_json::Value>,
    env: &Env,
    config: &std::rc::Rc<crate::config::Config>,
) {
    let log = |level: LogLevel, msg: &str| LogLine::new(level, SystemClock.now_ms(), msg);
    let job: Job = match serde_json::from_value(message.body().clone()) {
        Ok(job) => job,
        Err(e) => {
            log(LogLevel::Error, "pipeline message unreadable")
                .field("message_id", message.id())
                .field("problem", e.to_string())
                .emit(config.log_level);
            message.ack();
            return;
        }
    };
    let db = match env.d1("DB") {
        Ok(db) => db,
        Err(e) => {
            log(LogLevel::Error, "pipeline consumer: no D1")
                .field("problem", e.to_string())
                .emit(config.log_level);
            message.retry();
            return;
        }
    };
    let client = ProviderClient::background(config.clone(), job.execution_id.clone());
    match run(&db, config, &client, &job.execution_id).await {
        Ok(Outcome::Ack) => message.ack(),
        Ok(Outcome::RetryAfter(secs)) => {
            log(LogLevel::Info, "pipeline step retried")
                .field("execution_id", job.execution_id.as_str())
                .field("delay_secs", secs)
                .emit(config.log_level);
            message.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(secs)
                    .build(),
            );
        }
        Err(err) => {
            log(LogLevel::Error, "pipeline run failed")
                .field("execution_id", job.execution_id.as_str())
                .field("error_code", err.code)
                .field("error_detail", err.internal.unwrap_or(err.message))
                .emit(config.log_level);
            message.retry();
        }
    }
}

/// Executions sent again per sweep, at most.
const SWEEP_LIMIT: u32 = 100;

/// Sends the messages of executions that lost theirs again (the cron trigger).
pub async fn sweep(env: Env, config: Rc<Config>) -> worker::Result<()> {
    let db = env.d1("DB")?;
    let queue = env.queue(QUEUE_BINDING)?;
    let now = SystemClock.now_ms();
    let grace_ms = config.pipelines.sweep_grace_secs * 1000;
    let stale = crate::pipelines::store::take_stale(&db, now, grace_ms, SWEEP_LIMIT)
        .await
        .unwrap_or_default();
    for execution_id in stale {
        let sent = queue
            .send(&Job {
                execution_id: execution_id.clone(),
            })
            .await;
        LogLine::new(LogLevel::Warn, now, "pipeline execution requeued")
            .field("execution_id", execution_id.as_str())
            .field("sent", sent.is_ok())
            .emit(config.log_level);
    }
    Ok(())
}
