//! `X-Hub-Signature-256`. The check itself is pure and lives in the core
//! ([`tollgate_core::marketplace::github::signature`], re-exported here so
//! this path keeps working); what stays here is its HTTP answer.

pub use tollgate_core::marketplace::github::signature::*;

/// Every signature failure is a 401 with a code that says which.
impl From<SignatureError> for crate::web::ApiError {
    fn from(e: SignatureError) -> Self {
        let code = match e {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::UnsupportedAlgorithm => "signature_unsupported",
            SignatureError::Mismatch => "signature_mismatch",
        };
        crate::web::ApiError::unauthorized(code, e.to_string())
    }
}
