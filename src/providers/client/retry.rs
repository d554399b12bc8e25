//! Retry decisions, pure: what to do after a failed attempt and how long to wait first.

use crate::providers::client::failure::Failure;

use crate::providers::settings::RetryPolicy;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try the same model again after this many milliseconds.
    RetryAfterMs(u64),
    /// Give up on this model; try the next fallback.
    NextModel,
    /// The failure is not transient: retrying or falling back cannot help the requested
    /// model (a bad request, a rejected key).
    GiveUp,
}

/// Capped exponential backoff with "equal jitter": half of the delay is fixed, half is
/// random (`jitter` in `[0, 1)`), so isolates retrying together spread out.
pub fn backoff_ms(policy: &RetryPolicy, retries_done: u32, jitter: f64) -> u64 {
    let exponential = policy
        .base_delay_ms
        .saturating_mul(1u64 << retries_done.min(30));
    let capped = exponential.min(policy.max_delay_ms);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    capped / 2 + ((capped / 2) as f64 * jitter) as u64
}

/// Decides what follows a failure, given how many retries of this model were already made.
pub fn next_step(
    policy: &RetryPolicy,
    retries_done: u32,
    failure: &Failure,
    jitter: f64,
) -> NextStep {
    let retry_after = match failure {
        Failure::Unreachable(_) => None,
        Failure::TimedOut(_) => return NextStep::NextModel,
        Failure::Provider(e) if e.is_retryable() => e.retry_after_secs,
        Failure::Provider(_) => return NextStep::GiveUp,
    };
    if retries_done >= policy.max_retries {
        return NextStep::NextModel;
    }
    let backoff = backoff_ms(policy, retries_done, jitter);
    match retry_after {
        Some(secs) if secs > policy.max_retry_after_secs => NextStep::NextModel,
        Some(secs) => NextStep::RetryAfterMs(backoff.max(secs.saturating_mul(1000))),
        None => NextStep::RetryAfterMs(backoff),
    }
}
