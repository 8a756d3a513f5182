//! The JSON bodies of the entitlement-check API.
//!
//! The types are [`tollgate_core::wire`]'s, re-exported here: the handler
//! reads and writes exactly what `tollgate-client` writes and reads. What
//! stays here is the server's side of reading a body: turning a wrong
//! content type or bad JSON into the API's [`Rejection`]s.

use serde::de::DeserializeOwned;

pub use tollgate_core::wire::*;

use super::Rejection;
use crate::web::MediaType;

/// Parses a JSON request body: a non-JSON content type is 415, broken JSON
/// is `invalid_json`, well-formed JSON of the wrong shape is `invalid_request`.
pub fn parse_body<T: DeserializeOwned>(
    media_type: MediaType<'_>,
    body: &[u8],
) -> Result<T, Rejection> {
    if media_type != MediaType::Json {
        return Err(Rejection::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Rejection::InvalidRequest(describe(&e)),
        _ => Rejection::InvalidJson(describe(&e)),
    })
}

/// What is wrong with the body and where, never a value from it (see
/// [`tollgate_core::json_error::describe`]): the answer may be logged or
/// shown, and the body is the caller's (a 5 kB value found by
/// `tests/tests/robustness.rs` once came back whole).
fn describe(e: &serde_json::Error) -> String {
    tollgate_core::json_error::describe(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<CheckRequest, Rejection> {
        parse_body(MediaType::Json, json.as_bytes())
    }

    #[test]
    fn a_check_names_a_customer_or_an_app_user() {
        let q = check(r#"{"marketplace":"github","customer_id":"42","product":"ci"}"#).unwrap();
        assert_eq!(
            q.subject,
            Subject::Customer(CustomerKey::new(Marketplace::Github, "42"))
        );
        let q = check(r#"{"app_user":"u-1","product":"ci","feature":"sso"}"#).unwrap();
        assert_eq!(q.subject, Subject::AppUser(AppUser("u-1".into())));
        assert_eq!(q.question().feature, Some("sso"));
    }

    #[test]
    fn ambiguous_or_incomplete_subjects_are_invalid_requests() {
        for body in [
            r#"{"product":"ci"}"#,
            r#"{"marketplace":"github","product":"ci"}"#,
            r#"{"customer_id":"1","product":"ci"}"#,
            r#"{"marketplace":"github","customer_id":"1","app_user":"u","product":"ci"}"#,
            r#"{"marketplace":"aws","customer_id":"1","product":"ci"}"#,
            r#"{"app_user":"u","product":""}"#,
            r#"{"app_user":"u","product":"ci","claim_seat":true}"#,
            r#"{"app_user":"u","product":"ci","feautre":"sso"}"#,
        ] {
            match check(body) {
                Err(Rejection::InvalidRequest(msg)) => assert!(!msg.is_empty(), "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_long_offending_value_is_not_echoed_whole() {
        let body = format!(
            r#"{{"marketplace":"{}","customer_id":"1","product":"ci"}}"#,
            "a".repeat(5000)
        );
        let Err(Rejection::InvalidRequest(msg)) = check(&body) else {
            panic!("must be refused");
        };
        assert_eq!(
            msg,
            "unknown variant, expected one of `github`, `gcp`, `q2` at line 1 column 5017"
        );
    }

    #[test]
    fn no_offending_value_is_echoed_at_all() {
        const MARK: &str = "hunter2-leak";
        for body in [
            format!(r#"{{"marketplace":"{MARK}","customer_id":"1","product":"ci"}}"#),
            format!(r#"{{"app_user":"u","product":["{MARK}"]}}"#),
            format!(r#"{{"app_user":"u","product":"ci","claim_seat":"{MARK}"}}"#),
            format!(r#"{{"app_user":"u","product":"{MARK}"#),
        ] {
            let msg = match check(&body) {
                Err(Rejection::InvalidRequest(m) | Rejection::InvalidJson(m)) => m,
                other => panic!("{body}: {other:?}"),
            };
            assert!(!msg.contains(MARK), "{body}: {msg}");
            assert!(msg.contains("at line 1 column"), "{body}: {msg}");
        }
        // Our own rules' messages, which name fields, are kept.
        let Err(Rejection::InvalidRequest(msg)) =
            check(r#"{"app_user":"u","product":"ci","claim_seat":true}"#)
        else {
            panic!("must be refused");
        };
        assert!(msg.starts_with("`claim_seat` needs `user`"), "{msg}");
    }

    #[test]
    fn broken_json_and_wrong_content_types_are_told_apart() {
        assert!(matches!(check("{"), Err(Rejection::InvalidJson(_))));
        assert!(matches!(check("nope"), Err(Rejection::InvalidJson(_))));
        let form = parse_body::<CheckRequest>(MediaType::Form, b"a=1");
        assert_eq!(form.unwrap_err(), Rejection::UnsupportedMediaType);
        assert_eq!(
            parse_body::<CheckRequest>(MediaType::Missing, b"{}").unwrap_err(),
            Rejection::UnsupportedMediaType
        );
    }

    #[test]
    fn ids_are_bounded() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let body = format!(r#"{{"app_user":"{long}","product":"ci"}}"#);
        assert!(
            matches!(check(&body), Err(Rejection::InvalidRequest(m)) if m.contains("app_user"))
        );
        assert!(valid_id("user", "a\u{0}b".into()).is_err());
    }
}
