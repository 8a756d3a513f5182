//! `Tollgate-Signature`. The check itself is pure and lives in the core
//! ([`tollgate_core::marketplace::q2::signature`], re-exported here so this
//! path keeps working); what stays here is its HTTP answer.

pub use tollgate_core::marketplace::q2::signature::*;

/// Every signature failure is a 401 with a code that says which.
impl From<SignatureError> for crate::web::ApiError {
    fn from(e: SignatureError) -> Self {
        let code = match e {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::OutsideWindow { .. } => "signature_expired",
            SignatureError::Mismatch => "signature_mismatch",
        };
        crate::web::ApiError::unauthorized(code, e.to_string())
    }
}
