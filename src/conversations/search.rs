//! Turning what a user typed into a full-text query.
//!
//! FTS5's `MATCH` has its own syntax (`AND`, `NEAR`, `"`, `*`, `:`, parentheses…) in which
//! plenty of ordinary text is an error — and an error there would be a 500. So the user's
//! text is never passed through: each whitespace-separated word becomes a quoted FTS5 string
//! (with `"` doubled, the only escape inside one) followed by `*`, making it a prefix match.
//! Words are ANDed, so `deploy work` finds conversations containing words starting with
//! "deploy" and with "work", in the title or any message, in any order. Words with no letter
//! or digit (`*`, `--`, `"`) can match nothing and are left out. Control characters (a NUL
//! above all, which ends an FTS5 string early) separate words like whitespace does.

use crate::http::error::{ApiError, ApiResult};

/// The longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Words beyond this many are ignored; every extra word narrows the result anyway.
pub const MAX_SEARCH_TERMS: usize = 12;

/// A validated search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The FTS5 expression, or `None` when the text has no searchable word (nothing matches).
    pub fts_query: Option<String>,
}

impl Search {
    /// Parses the `q` parameter: 422 when it is too long; `None` when it is blank.
    pub fn parse(q: &str) -> ApiResult<Option<Search>> {
        if q.chars().count() > MAX_SEARCH_CHARS {
            return Err(ApiError::validation(
                "q",
                format!("`q` is longer than {MAX_SEARCH_CHARS} characters."),
            ));
        }
        if q.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(Search {
            fts_query: fts_query(q),
        }))
    }
}

/// The FTS5 expression for `input`, or `None` when it has no searchable word.
pub fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .take(MAX_SEARCH_TERMS)
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_separate_words_and_never_reach_the_query() {
        let query = fts_query("a\u{0}b\u{7}c\u{1b}").expect("query");
        assert_eq!(query, "\"a\"* \"b\"* \"c\"*");
        assert!(!query.chars().any(char::is_control));
    }

    #[test]
    fn words_become_quoted_prefix_terms() {
        assert_eq!(
            fts_query("deploy  worker").as_deref(),
            Some("\"deploy\"* \"worker\"*")
        );
    }

    #[test]
    fn fts_syntax_in_user_text_is_quoted_never_interpreted() {
        assert_eq!(
            fts_query(r#"say "hi" OR NEAR(a* b) col:x"#).as_deref(),
            Some(r#""say"* """hi"""* "OR"* "NEAR(a*"* "b)"* "col:x"*"#)
        );
    }

    #[test]
    fn words_without_letters_or_digits_are_left_out() {
        assert_eq!(fts_query("* \" -- ()"), None);
        assert_eq!(fts_query("* rust").as_deref(), Some("\"rust\"*"));
    }

    #[test]
    fn non_latin_words_are_searchable() {
        assert_eq!(
            fts_query("日本語 ünïcödé").as_deref(),
            Some("\"日本語\"* \"ünïcödé\"*")
        );
    }

    #[test]
    fn only_the_first_words_are_used() {
        let many = (0..30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let q = fts_query(&many).expect("query");
        assert_eq!(q.matches('*').count(), MAX_SEARCH_TERMS);
    }

    #[test]
    fn blank_search_is_no_search_and_overlong_is_422() {
        assert_eq!(Search::parse("   ").expect("ok"), None);
        let err = Search::parse(&"x".repeat(MAX_SEARCH_CHARS + 1)).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (422, Some("q")));
        assert_eq!(
            Search::parse("\"").expect("ok"),
            Some(Search { fts_query: None })
        );
    }
}
