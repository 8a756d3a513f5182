//! The entitlement-check API's request and answer types, shared by the
//! handler and `tollgate-client`.
