//! The operator's settings for pipelines (`PIPELINE_MAX_STEPS`,
//! `PIPELINE_MAX_DEFINITION_BYTES`, `PIPELINE_MAX_ATTEMPTS`, `PIPELINE_RETRY_DELAY_SECS`,
//! `PIPELINE_SWEEP_GRACE_SECS`).

use crate::config::source::{parse_number, ConfigSource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    /// `PIPELINE_MAX_STEPS` — the most steps a pipeline may have (20).
    pub max_steps: usize,
    /// `PIPELINE_MAX_DEFINITION_BYTES` — the largest pipeline body (64 KiB); 413 above.
    pub max_definition_bytes: usize,
    /// `PIPELINE_MAX_ATTEMPTS` — how often a step is tried when its provider fails with
    /// something worth retrying (3); after the last, the execution is `failed`.
    pub max_attempts: u32,
    /// `PIPELINE_RETRY_DELAY_SECS` — the first retry's delay (5 s), doubled for each further
    /// one, at most 300 s.
    pub retry_delay_secs: u32,
    /// `PIPELINE_SWEEP_GRACE_SECS` — how long an unfinished execution may go without a
    /// consumer's lease before the scheduled sweeper sends its message again (60 s).
    pub sweep_grace_secs: u64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_steps: 20,
            max_definition_bytes: 64 * 1024,
            max_attempts: 3,
            retry_delay_secs: 5,
            sweep_grace_secs: 60,
        }
    }
}

impl PipelineSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> PipelineSettings {
        let d = PipelineSettings::default();
        PipelineSettings {
            max_steps: parse_number(src, "PIPELINE_MAX_STEPS", d.max_steps, 1, 100, warnings),
            max_definition_bytes: parse_number(
                src,
                "PIPELINE_MAX_DEFINITION_BYTES",
                d.max_definition_bytes,
                1024,
                1024 * 1024,
                warnings,
            ),
            max_attempts: parse_number(
                src,
                "PIPELINE_MAX_ATTEMPTS",
                d.max_attempts,
                1,
                10,
                warnings,
            ),
            retry_delay_secs: parse_number(
                src,
                "PIPELINE_RETRY_DELAY_SECS",
                d.retry_delay_secs,
                0,
                3600,
                warnings,
            ),
            sweep_grace_secs: parse_number(
                src,
                "PIPELINE_SWEEP_GRACE_SECS",
                d.sweep_grace_secs,
                1,
                86_400,
                warnings,
            ),
        }
    }

    /// The delay before try `attempt + 1` (after `attempt` failed tries).
    pub fn retry_delay(&self, failed_tries: u32) -> u32 {
        let doubled = u64::from(self.retry_delay_secs) << failed_tries.saturating_sub(1).min(16);
        doubled.min(300) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_to_a_cap() {
        let s = PipelineSettings::default();
        assert_eq!(
            (1..=8).map(|n| s.retry_delay(n)).collect::<Vec<_>>(),
            vec![5, 10, 20, 40, 80, 160, 300, 300]
        );
        let zero = PipelineSettings {
            retry_delay_secs: 0,
            ..s
        };
        assert_eq!(zero.retry_delay(3), 0);
    }
}
