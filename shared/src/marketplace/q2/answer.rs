//! What Tollgate answers Q2: HTTP 200 with
//! `{"success": true|false, "errorCode"?, "message", "accountIdentifier"?}`
//! for every authenticated request, successes and failures alike (the shape
//! of AppDirect's event results, which Q2's `SubscriptionSuccess` and
//! `SubscriptionFailure` carry); the extension turns it into one of those.
//!
//! An answer is rebuilt from the log entry its event left, so a redelivery
//! is answered exactly as the first delivery was.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

use crate::model::LogEntry;
use crate::rules::parse_refusal_note;
use crate::web::{Response, json_response};

/// Q2's `ErrorCode` members (AppDirect's event error codes plus Q2's
/// `DO_NOT_CANCEL`), spelt as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    UserAlreadyExists,
    UserNotFound,
    AccountNotFound,
    MaxUsersReached,
    Unauthorized,
    OperationCancelled,
    ConfigurationError,
    InvalidResponse,
    Pending,
    Forbidden,
    BindingNotFound,
    TransportError,
    UnknownError,
    DoNotCancel,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::UserAlreadyExists,
        ErrorCode::UserNotFound,
        ErrorCode::AccountNotFound,
        ErrorCode::MaxUsersReached,
        ErrorCode::Unauthorized,
        ErrorCode::OperationCancelled,
        ErrorCode::ConfigurationError,
        ErrorCode::InvalidResponse,
        ErrorCode::Pending,
        ErrorCode::Forbidden,
        ErrorCode::BindingNotFound,
        ErrorCode::TransportError,
        ErrorCode::UnknownError,
        ErrorCode::DoNotCancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UserAlreadyExists => "USER_ALREADY_EXISTS",
            ErrorCode::UserNotFound => "USER_NOT_FOUND",
            ErrorCode::AccountNotFound => "ACCOUNT_NOT_FOUND",
            ErrorCode::MaxUsersReached => "MAX_USERS_REACHED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::OperationCancelled => "OPERATION_CANCELLED",
            ErrorCode::ConfigurationError => "CONFIGURATION_ERROR",
            ErrorCode::InvalidResponse => "INVALID_RESPONSE",
            ErrorCode::Pending => "PENDING",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::BindingNotFound => "BINDING_NOT_FOUND",
            ErrorCode::TransportError => "TRANSPORT_ERROR",
            ErrorCode::UnknownError => "UNKNOWN_ERROR",
            ErrorCode::DoNotCancel => "DO_NOT_CANCEL",
        }
    }

    /// The code named `s`; AppDirect's older `OPERATION_CANCELED` spelling
    /// reads as `OPERATION_CANCELLED`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "OPERATION_CANCELED" {
            return Some(ErrorCode::OperationCancelled);
        }
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One answer to Q2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub success: bool,
    #[serde(rename = "errorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    pub message: String,
    /// The subscription the answer is about, on successes: what AppDirect
    /// sends back as `payload.account.accountIdentifier`.
    #[serde(rename = "accountIdentifier", skip_serializing_if = "Option::is_none")]
    pub account_identifier: Option<String>,
}

impl Answer {
    pub fn success(message: impl Into<String>, account_identifier: &str) -> Self {
        Self {
            success: true,
            error_code: None,
            message: message.into(),
            account_identifier: Some(account_identifier.to_owned()),
        }
    }

    pub fn failure(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            success: false,
            error_code: Some(code.as_str()),
            message: message.into(),
            account_identifier: None,
        }
    }

    /// The answer an event's log entry stands for: a refusal with its code
    /// and reason, else a success with what the rules did.
    pub fn from_log(entry: &LogEntry) -> Self {
        let refusal = (entry.event == "refused")
            .then(|| parse_refusal_note(&entry.note))
            .flatten();
        match refusal {
            Some((code, reason)) => Self {
                success: false,
                // A code this build wrote is always known; an unknown one
                // (a newer build's log) still fails rather than succeeds.
                error_code: Some(
                    ErrorCode::parse(code)
                        .unwrap_or(ErrorCode::UnknownError)
                        .as_str(),
                ),
                message: reason.to_owned(),
                account_identifier: None,
            },
            None => Self::success(entry.note.clone(), &entry.subscription.id),
        }
    }

    /// Always 200: Q2 reads the outcome from the body.
    pub fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Disposition, Marketplace, SubscriptionKey};
    use crate::rules::refusal_note;
    use chrono::DateTime;

    fn entry(event: &str, note: &str) -> LogEntry {
        let t = DateTime::from_timestamp(1_714_572_191, 0).unwrap();
        LogEntry {
            subscription: SubscriptionKey::new(Marketplace::Q2, "sub-1"),
            event_id: "d".into(),
            event: event.into(),
            effective_at: t,
            recorded_at: t,
            disposition: Disposition::Applied,
            note: note.into(),
            status_before: None,
            status_after: None,
        }
    }

    #[test]
    fn every_code_round_trips_and_the_old_spelling_is_read() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(
            ErrorCode::parse("OPERATION_CANCELED"),
            Some(ErrorCode::OperationCancelled)
        );
        assert_eq!(ErrorCode::parse("max_users_reached"), None);
    }

    #[test]
    fn answers_have_the_appdirect_shape() {
        let ok = serde_json::to_value(Answer::success("purchased plan PREMIUM", "sub-1")).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"success": true, "message": "purchased plan PREMIUM", "accountIdentifier": "sub-1"})
        );
        let no = serde_json::to_value(Answer::failure(ErrorCode::MaxUsersReached, "full")).unwrap();
        assert_eq!(
            no,
            serde_json::json!({"success": false, "errorCode": "MAX_USERS_REACHED", "message": "full"})
        );
        let res = Answer::failure(ErrorCode::UnknownError, "x").into_response();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn a_logged_refusal_reads_back_as_the_same_failure_and_anything_else_as_success() {
        let refused = entry(
            "refused",
            &refusal_note("DO_NOT_CANCEL", "minimum term: 30 days"),
        );
        assert_eq!(
            Answer::from_log(&refused),
            Answer::failure(ErrorCode::DoNotCancel, "minimum term: 30 days")
        );
        let applied = entry("purchased", "purchased plan PREMIUM");
        assert_eq!(
            Answer::from_log(&applied),
            Answer::success("purchased plan PREMIUM", "sub-1")
        );
        // A note that only looks like a refusal on another event is a success.
        let odd = entry("cancelled", &refusal_note("DO_NOT_CANCEL", "x"));
        assert!(Answer::from_log(&odd).success);
    }
}
