//! Describing a JSON error about outside input (a webhook body, a
//! marketplace's reply, a secrets document, an API request) without quoting
//! the input.
//!
//! serde_json's own messages quote the offending value (`invalid type:
//! string "gho_…", expected u64`, `unknown variant `…``), and the input may
//! be a token, a secret or a customer's address. [`describe`] keeps what
//! comes from *our* types — the kind of problem, what was expected, a field
//! name — and the position, and drops every value.

use serde_json::error::Category;

/// Longest field name kept (longer ones are not ours or a sender's key).
const MAX_FIELD: usize = 64;
/// Longest expectation or message of our own kept.
const MAX_TEXT: usize = 160;

/// What went wrong and where, never a value from the document: e.g.
/// `invalid type: string, expected u64 at line 1 column 9`, `` `login` is
/// missing at line 3 column 1 ``, `unknown variant, expected one of
/// `github`, `gcp`, `q2` at line 1 column 20`, `invalid JSON (expected value)
/// at line 1 column 1`.
pub fn describe(e: &serde_json::Error) -> String {
    let full = e.to_string();
    // serde_json's `Display` appends the position; it is rendered from the
    // numbers below instead.
    // (Line 0: no position known, as for some errors raised after a value
    // was read.)
    let suffix = if e.line() == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", e.line(), e.column())
    };
    let message = full.strip_suffix(suffix.as_str()).unwrap_or(&full);
    let what = match e.classify() {
        // Syntax messages are serde_json's fixed texts ("expected value",
        // "trailing characters"): they never carry input.
        Category::Syntax | Category::Eof => match safe_text(message) {
            Some(detail) => format!("invalid JSON ({detail})"),
            None => "invalid JSON".to_owned(),
        },
        Category::Data => data_error(message),
        Category::Io => "unreadable input".to_owned(),
    };
    format!("{what}{suffix}")
}

/// A data error in serde's standard wording, rebuilt without the value.
fn data_error(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field ") {
        return match quoted_field(rest) {
            Some(field) => format!("`{field}` is missing"),
            None => "a field is missing".to_owned(),
        };
    }
    for (prefix, name) in [
        ("unknown field ", "unknown field"),
        ("duplicate field ", "duplicate field"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // The sender's key: kept only when it is a plain identifier.
            let shown = match quoted_field(rest) {
                Some(field) => format!("{name} `{field}`"),
                None => name.to_owned(),
            };
            return with_expectation(shown, rest);
        }
    }
    // `unknown variant `<value>`, expected one of ...`: the variant is the
    // sender's value, the list is ours.
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return with_expectation("unknown variant".to_owned(), rest);
    }
    for (prefix, name) in [
        ("invalid type: ", "invalid type"),
        ("invalid value: ", "invalid value"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let shown = match unexpected_kind(rest) {
                Some(kind) => format!("{name}: {kind}"),
                None => name.to_owned(),
            };
            return with_expectation(shown, rest);
        }
    }
    // `invalid length <n>, expected ...`.
    if let Some(rest) = message.strip_prefix("invalid length ") {
        return with_expectation("invalid length".to_owned(), rest);
    }
    // Anything else is a `de::Error::custom` message: ours (the check API's
    // `try_from` rules name fields, never values) or a library's. Kept only
    // when it looks like ours — short, printable, nothing quoted with `"`
    // or `'`, every backquoted word a plain identifier — else dropped.
    match safe_text(message) {
        Some(text) if backquoted_are_identifiers(text) => text.to_owned(),
        _ => "invalid data".to_owned(),
    }
}

/// `shown` plus `, expected <what>` when `rest` ends with an expectation
/// worth keeping. The expectation is the text after the *last* `, expected `:
/// a value before it may itself contain those words; the expectation (from
/// our types' `Deserialize`) does not.
fn with_expectation(shown: String, rest: &str) -> String {
    match rest
        .rsplit_once(", expected ")
        .and_then(|(_, expected)| safe_text(expected))
    {
        Some(expected) => format!("{shown}, expected {expected}"),
        None => shown,
    }
}

/// The first `` `name` `` of `rest`, when it is a plain identifier of at
/// most [`MAX_FIELD`] characters (dots allowed: `api_key.ci`).
fn quoted_field(rest: &str) -> Option<&str> {
    let (field, _) = rest.strip_prefix('`')?.split_once('`')?;
    is_identifier(field).then_some(field)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '$'))
}

/// The kind of an unexpected value (serde's `Unexpected`), without the
/// value: `string "…"` → `string`, `integer `7`` → `integer`.
fn unexpected_kind(rest: &str) -> Option<&'static str> {
    const KINDS: [&str; 18] = [
        "boolean",
        "integer",
        "floating point",
        "character",
        "string",
        "byte array",
        "unit value",
        "unit variant",
        "newtype struct",
        "newtype variant",
        "tuple variant",
        "struct variant",
        "Option value",
        "sequence",
        "map",
        "enum",
        "unit",
        "null",
    ];
    KINDS.into_iter().find(|kind| {
        rest.strip_prefix(kind)
            .is_some_and(|after| after.is_empty() || after.starts_with([' ', ',']))
    })
}

/// `text` when it is short, printable ASCII and quotes nothing with `"` or
/// `'` (serde quotes string values with `"`).
fn safe_text(text: &str) -> Option<&str> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.len() <= MAX_TEXT
        && text.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !text.contains(['"', '\'', '\\']);
    ok.then_some(text)
}

/// Every `` `…` `` span of `text` is a plain identifier.
fn backquoted_are_identifiers(text: &str) -> bool {
    text.split('`').skip(1).step_by(2).all(is_identifier)
        && text.matches('`').count().is_multiple_of(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    /// A value planted in every document; it must never come back.
    const MARK: &str = "hunter2-leak";

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        id: u32,
        name: String,
        kind: Option<Kind>,
        pair: Option<(u8, u8)>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Github,
        Gcp,
    }

    #[derive(Debug, Deserialize)]
    #[serde(try_from = "String")]
    #[allow(dead_code)]
    struct Checked(String);

    impl TryFrom<String> for Checked {
        type Error = String;
        fn try_from(raw: String) -> Result<Self, String> {
            if raw.len() < 3 {
                return Err("`checked` is too short".into());
            }
            // A careless message quoting the value: must be dropped.
            Err(format!("bad value \"{raw}\""))
        }
    }

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        let e = serde_json::from_str::<T>(json).unwrap_err();
        let shown = describe(&e);
        assert!(!shown.contains(MARK), "{json}: {shown}");
        assert!(!shown.contains("4242"), "{json}: {shown}");
        shown
    }

    #[test]
    fn values_never_appear_whatever_the_error() {
        let m = MARK;
        let cases: Vec<(String, &str)> = vec![
            (
                format!(r#"{{"id":"{m}","name":"x"}}"#),
                "invalid type: string, expected u32 at line 1 column 20",
            ),
            (
                r#"{"id":-4242,"name":"x"}"#.to_owned(),
                "invalid value: integer, expected u32 at line 1 column 11",
            ),
            (
                format!(r#"{{"id":1,"name":"x","kind":"{m}"}}"#),
                "unknown variant, expected `github` or `gcp` at line 1 column 40",
            ),
            (
                format!(r#"{{"id":1,"name":"x","kind":"a, expected {m}"}}"#),
                "unknown variant, expected `github` or `gcp` at line 1 column 52",
            ),
            (
                format!(r#"{{"id":1,"name":"{m}","pair":[42]}}"#),
                "invalid length, expected a tuple of size 2 at line 1 column 41",
            ),
            (
                format!(r#"{{"id":1,"extra_key":"{m}"}}"#),
                "unknown field `extra_key`, expected one of `id`, `name`, `kind`, `pair` at line 1 column 19",
            ),
            (
                format!(r#"{{"id":1,"name x {m}":2}}"#),
                "unknown field, expected one of `id`, `name`, `kind`, `pair` at line 1 column 29",
            ),
            (
                format!(r#"{{"name":"{m}"}}"#),
                "`id` is missing at line 1 column 23",
            ),
            (
                format!(r#"{{"id":1,"id":2,"name":"{m}"}}"#),
                "duplicate field `id` at line 1 column 12",
            ),
            (
                format!("<html>{m}</html>"),
                "invalid JSON (expected value) at line 1 column 1",
            ),
            (
                format!(r#"{{"id":1,"name":"{m}"#),
                "invalid JSON (EOF while parsing a string) at line 1 column 28",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(json, want)| {
                let got = err::<Doc>(json);
                (got != *want).then(|| format!("{json}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn custom_messages_are_kept_only_when_they_quote_nothing() {
        assert_eq!(err::<Checked>(r#""ab""#), "`checked` is too short");
        assert_eq!(err::<Checked>(&format!(r#""{MARK}""#)), "invalid data");
    }

    #[test]
    fn a_secrets_map_with_a_wrong_type_names_no_value() {
        let shown =
            err::<BTreeMap<String, String>>(&format!(r#"{{"a":"b","api_key.ci":["{MARK}"]}}"#));
        assert_eq!(
            shown,
            "invalid type: sequence, expected a string at line 1 column 22"
        );
        let shown = err::<BTreeMap<String, String>>(r#"{"k": 4242}"#);
        assert_eq!(
            shown,
            "invalid type: integer, expected a string at line 1 column 10"
        );
    }

    #[test]
    fn long_or_odd_field_names_are_dropped() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            #[serde(rename = "a b")]
            spaced: u8,
        }
        assert_eq!(
            describe(&serde_json::from_str::<Strict>("{}").unwrap_err()),
            "a field is missing at line 1 column 2"
        );
        assert!(is_identifier("api_key.ci"));
        assert!(!is_identifier(&"x".repeat(MAX_FIELD + 1)));
        assert!(!is_identifier("a\"b"));
    }
}
