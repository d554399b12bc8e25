//! Pipeline limits.
use crate::config::source::{parse_number, ConfigSource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    pub max_steps: usize,
}

impl PipelineSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> PipelineSettings {
        PipelineSettings {
            max_steps: parse_number(src, "PIPELINE_MAX_STEPS", 20, 1, 100, warnings),
        }
    }
}
