//! Step templates: text with `{{ variable }}` slots over the pipeline's input and earlier
//! steps' outputs. Parsed once, when a pipeline is created, so a mistake is a 422 then and
//! never a failed run later.
//!
//! Variables: `input` (the whole input: a string as it is, anything else as JSON),
//! `input.<name>` (a declared input), `steps.<id>.output` (an earlier step's output) and
//! `steps.<id>.output.<field>` (a field of the JSON output of a step with an `output_schema`).
//! `{{{{` writes a literal `{{`.
//!
//! Pure.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Input,
    InputField(String),
    StepOutput { step: String, field: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_var(raw: &str) -> Result<Var, String> {
    let parts: Vec<&str> = raw.trim().split('.').collect();
    match parts.as_slice() {
        ["input"] => Ok(Var::Input),
        ["input", name] if is_name(name) => Ok(Var::InputField(name.to_string())),
        ["steps", step, "output"] if is_name(step) => Ok(Var::StepOutput {
            step: step.to_string(),
            field: None,
        }),
        ["steps", step, "output", field] if is_name(step) && is_name(field) => {
            Ok(Var::StepOutput {
                step: step.to_string(),
                field: Some(field.to_string()),
            })
        }
        _ => Err(format!(
            "unknown variable {{{{{}}}}}: use input, input.<name>, steps.<id>.output or steps.<id>.output.<field>",
            raw.trim()
        )),
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("{{") {
            literal.push_str(&rest[..at]);
            rest = &rest[at + 2..];
            if let Some(after) = rest.strip_prefix("{{") {
                literal.push_str("{{");
                rest = after;
                continue;
            }
            let end = rest
                .find("}}")
                .ok_or_else(|| "a `{{` is never closed by `}}`".to_string())?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(parse_var(&rest[..end])?));
            rest = &rest[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            Piece::Text(_) => None,
        })
    }

    /// The text without its variables (what every expansion at least holds).
    pub fn fixed_text(&self) -> String {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                Piece::Var(_) => None,
            })
            .collect()
    }

    /// Expands the template; `output(step)` is a finished step's output (`None` for a step
    /// that was skipped, which expands to nothing).
    pub fn render<'a>(&self, input: &Value, output: impl Fn(&str) -> Option<&'a Value>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::Input) => out.push_str(&as_text(input)),
                Piece::Var(Var::InputField(name)) => {
                    out.push_str(&input.get(name).map(as_text).unwrap_or_default())
                }
                Piece::Var(Var::StepOutput { step, field }) => {
                    let value = output(step);
                    let value = match field {
                        Some(f) => value.and_then(|v| v.get(f)),
                        None => value,
                    };
                    out.push_str(&value.map(as_text).unwrap_or_default());
                }
            }
        }
        out
    }
}

/// A string as it is; anything else as compact JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_parse_into_text_and_variables() {
        let t =
            Template::parse("Sum up {{ input.text }} after {{steps.a.output}} {{{{x}}").unwrap();
        assert_eq!(
            t.vars().cloned().collect::<Vec<_>>(),
            vec![
                Var::InputField("text".into()),
                Var::StepOutput {
                    step: "a".into(),
                    field: None
                }
            ]
        );
        assert_eq!(t.fixed_text(), "Sum up  after  {{x}}");
    }

    #[test]
    fn mistakes_are_named() {
        assert!(Template::parse("{{ input")
            .unwrap_err()
            .contains("never closed"));
        assert!(Template::parse("{{ secret }}")
            .unwrap_err()
            .contains("unknown variable {{secret}}"));
        assert!(Template::parse("{{steps.a}}").is_err());
        assert!(Template::parse("{{steps.a.output.x.y}}").is_err());
        assert!(Template::parse("{{}}").is_err());
    }

    #[test]
    fn rendering_fills_inputs_outputs_and_fields() {
        let t = Template::parse("{{input.q}}|{{steps.a.output}}|{{steps.b.output.label}}|{{steps.gone.output}}|{{input}}").unwrap();
        let a = json!("first");
        let b = json!({"label": "urgent", "n": 2});
        let input = json!({"q": "why?", "n": 1});
        let out = t.render(&input, |s| match s {
            "a" => Some(&a),
            "b" => Some(&b),
            _ => None,
        });
        assert_eq!(out, r#"why?|first|urgent||{"n":1,"q":"why?"}"#);
    }
}
