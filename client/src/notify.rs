//! Verifying Tollgate's change notifications in the vendor's app: Standard
//! Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), checked with the very code Tollgate signs with
//! (`tollgate-core`), then the body read as a typed [`Notification`].
//!
//! ```
//! use tollgate_client::notify::{verify_notification, EventType};
//! # fn handle(headers: &http::HeaderMap, body: &[u8]) -> Result<(), tollgate_client::notify::NotificationError> {
//! // The endpoint's secret and, during a rotation, the previous one.
//! let secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
//! let notification = verify_notification(headers, body, &secrets, std::time::SystemTime::now())?;
//! if notification.event_type == EventType::Cancelled {
//!     // revoke access; `notification.data.entitlement` is what /v1/check says now
//! }
//! # Ok(()) }
//! ```

use std::time::SystemTime;

use http::HeaderMap;

pub use tollgate_core::notify::{
    EventType, EventView, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, KeyError, Notification,
    NotificationData, SECRET_PREFIX, SigningKey, TOLERANCE_SECONDS, VerifyError,
};

/// Why a notification was refused. Answer 400 (or 401) and do not act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// A configured secret is not `whsec_<base64>`.
    #[error("bad webhook secret: {0}")]
    Secret(KeyError),
    #[error("notification refused: {0}")]
    Signature(#[from] VerifyError),
    /// Signed by Tollgate, but not a notification this library reads
    /// (a newer Tollgate?). Described without quoting the body.
    #[error("unreadable notification body: {0}")]
    Body(String),
}

impl NotificationError {
    /// The HTTP status a receiver answers with: 401 for a bad signature or
    /// timestamp, 400 for an unreadable body, 500 for its own bad secret.
    pub fn status(&self) -> http::StatusCode {
        match self {
            NotificationError::Secret(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            NotificationError::Signature(_) => http::StatusCode::UNAUTHORIZED,
            NotificationError::Body(_) => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks the signature (any of `secrets`, each `whsec_<base64>`; any of the
/// header's `v1` signatures; constant-time) and that `webhook-timestamp` is
/// within five minutes of `now`, then reads the body. Pass the body's
/// exact bytes, before any JSON parsing.
pub fn verify_notification<S: AsRef<str>>(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[S],
    now: SystemTime,
) -> Result<Notification, NotificationError> {
    verify_signature(headers, body, secrets, now)?;
    serde_json::from_slice(body)
        .map_err(|e| NotificationError::Body(tollgate_core::json_error::describe(&e)))
}

/// [`verify_notification`] without reading the body.
pub fn verify_signature<S: AsRef<str>>(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[S],
    now: SystemTime,
) -> Result<(), NotificationError> {
    let keys = secrets
        .iter()
        .map(|s| SigningKey::parse(s.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(NotificationError::Secret)?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    tollgate_core::notify::verify(
        &keys,
        header(HEADER_ID),
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
        body,
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, id.parse().unwrap());
        h.insert(HEADER_TIMESTAMP, ts.to_string().parse().unwrap());
        h.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        h
    }

    #[test]
    fn accepts_the_specification_example_and_refuses_tampering() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let at = UNIX_EPOCH + Duration::from_secs(1614265330);
        let h = headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, sig);
        assert_eq!(verify_signature(&h, body, &[secret], at), Ok(()));
        // A rotated-out secret beside the right one: still accepted.
        let both = ["whsec_c2VjcmV0", secret];
        assert_eq!(verify_signature(&h, body, &both, at), Ok(()));
        assert_eq!(
            verify_signature(&h, br#"{"test": 2432232315}"#, &[secret], at),
            Err(NotificationError::Signature(VerifyError::NoMatch))
        );
        assert_eq!(
            verify_signature(&h, body, &[secret], at + Duration::from_secs(301)),
            Err(NotificationError::Signature(VerifyError::TooOld))
        );
        let err = verify_signature(&h, body, &["whsec_%%"], at).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        // Signed, but not a notification.
        let err = verify_notification(&h, body, &[secret], at).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        let err = verify_signature(&HeaderMap::new(), body, &[secret], at).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
    }
}
