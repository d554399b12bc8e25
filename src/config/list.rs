//! A setting that holds a list.

/// `CORS_ORIGINS` accepts a comma-separated list or a JSON array (as ChronoChat's setting did).
pub fn parse_origin_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    let items: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str::<Vec<String>>(raw).unwrap_or_default()
    } else {
        raw.split(',').map(|s| s.to_string()).collect()
    };
    items
        .into_iter()
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
