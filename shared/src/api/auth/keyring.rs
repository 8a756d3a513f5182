//! The API key list, re-read while the function stays warm, so that deleting
//! an `api_key.<name>` entry revokes the key without a redeploy.
//!
//! The list is read at cold start and then kept by age (`now` always comes
//! from the function's [`Clock`](crate::clock::Clock), so tests move time
//! instead of sleeping):
//!
//! - younger than the TTL (`TOLLGATE_API_KEYS_TTL`, default 60 s): used as is;
//! - between the TTL and the maximum age (`TOLLGATE_API_KEYS_MAX_AGE`,
//!   default 300 s): still used, and the request starts one refresh in the
//!   background (stale-while-revalidate), so no request waits on the
//!   secrets source while the list is usable;
//! - older than the maximum age: never used. The request waits for a
//!   refresh; if that fails it is answered 503 `api_keys_unavailable`
//!   (fail closed) rather than trusting a list that may still hold revoked
//!   keys.
//!
//! A failed refresh keeps the last good list (up to the maximum age) and is
//! not retried for [`RETRY_AFTER_FAILURE`], so a secrets outage costs one
//! attempt per few seconds, not one per request. A refresh that finds a
//! malformed entry fails as a whole, as the cold start would: the last good
//! list stays in use until the maximum age.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{ApiKeyEntry, parse_duration};
use crate::settings::SetupError;
use crate::web::ApiError;

/// Seconds (or `90s`, `2m`, ...) after which the list is refreshed.
pub const TTL_ENV: &str = "TOLLGATE_API_KEYS_TTL";
/// Age past which the list is no longer trusted at all.
pub const MAX_AGE_ENV: &str = "TOLLGATE_API_KEYS_MAX_AGE";
pub const DEFAULT_TTL: Duration = Duration::seconds(60);
pub const DEFAULT_MAX_AGE: Duration = Duration::seconds(300);
/// How long a failed refresh is not retried.
pub const RETRY_AFTER_FAILURE: Duration = Duration::seconds(5);

/// Where the list comes from when it is read again: in Lambda, the secrets
/// named by `TOLLGATE_SECRETS` (through the Parameters and Secrets
/// extension); in tests, anything.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// Every configured entry, read now.
    async fn load(&self) -> Result<Vec<ApiKeyEntry>, SetupError>;
}

/// When the list is refreshed and when it stops being trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub ttl: Duration,
    pub max_age: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl RefreshPolicy {
    /// A TTL of at least one second and a maximum age no shorter than it.
    pub fn new(ttl: Duration, max_age: Duration) -> Result<Self, SetupError> {
        if ttl < Duration::seconds(1) {
            return Err(SetupError::Invalid(format!("{TTL_ENV}: at least 1 second")));
        }
        if max_age < ttl {
            return Err(SetupError::Invalid(format!(
                "{MAX_AGE_ENV} ({} s) must not be shorter than {TTL_ENV} ({} s)",
                max_age.num_seconds(),
                ttl.num_seconds()
            )));
        }
        Ok(Self { ttl, max_age })
    }

    /// From the two settings (unset: the defaults).
    pub fn from_settings(ttl: Option<&str>, max_age: Option<&str>) -> Result<Self, SetupError> {
        let read = |name: &str, value: Option<&str>, default: Duration| match value {
            None => Ok(default),
            Some(text) => parse_duration(text)
                .map_err(|e| SetupError::Invalid(format!("{name} `{text}`: {e}"))),
        };
        Self::new(
            read(TTL_ENV, ttl, DEFAULT_TTL)?,
            read(MAX_AGE_ENV, max_age, DEFAULT_MAX_AGE)?,
        )
    }
}

/// The list is too old to trust and could not be read again (503).
#[derive(Debug, thiserror::Error)]
#[error(
    "the API key list was read at {loaded_at} (over {} s ago) and cannot be read again",
    max_age.num_seconds()
)]
pub struct KeysUnavailable {
    pub loaded_at: DateTime<Utc>,
    pub max_age: Duration,
    /// The last refresh's failure, if one was attempted.
    #[source]
    pub source: Option<Arc<SetupError>>,
}

/// 503: the caller may retry; the log gets the refresh's failure.
impl From<KeysUnavailable> for ApiError {
    fn from(e: KeysUnavailable) -> Self {
        let cause = match &e.source {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "api_keys_unavailable",
            "API keys cannot be checked right now; retry later",
        )
        .caused_by(cause)
    }
}

struct State {
    keys: Arc<[ApiKeyEntry]>,
    loaded_at: DateTime<Utc>,
    failed_at: Option<DateTime<Utc>>,
    last_error: Option<Arc<SetupError>>,
}

/// The current API key entries and, when they come from a source, how
/// they are kept fresh.
pub struct KeyRing {
    source: Option<Arc<dyn KeySource>>,
    policy: RefreshPolicy,
    state: Mutex<State>,
    /// Held by the one refresh in flight (background or not).
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.peek().len())
            .field("refreshing", &self.source.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A list that never changes (tests, benches, examples).
    pub fn fixed(keys: Vec<ApiKeyEntry>) -> Self {
        Self::build(
            keys,
            DateTime::<Utc>::MIN_UTC,
            None,
            RefreshPolicy::default(),
        )
    }

    /// `keys`, read at `loaded_at`, read again from `source` per `policy`.
    pub fn refreshing(
        keys: Vec<ApiKeyEntry>,
        loaded_at: DateTime<Utc>,
        source: Arc<dyn KeySource>,
        policy: RefreshPolicy,
    ) -> Self {
        Self::build(keys, loaded_at, Some(source), policy)
    }

    fn build(
        keys: Vec<ApiKeyEntry>,
        loaded_at: DateTime<Utc>,
        source: Option<Arc<dyn KeySource>>,
        policy: RefreshPolicy,
    ) -> Self {
        Self {
            source,
            policy,
            state: Mutex::new(State {
                keys: keys.into(),
                loaded_at,
                failed_at: None,
                last_error: None,
            }),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn policy(&self) -> RefreshPolicy {
        self.policy
    }

    /// The entries as they are, without refreshing (for messages and logs).
    pub fn peek(&self) -> Arc<[ApiKeyEntry]> {
        Arc::clone(&self.lock().keys)
    }

    /// The entries to check a key against at `now`, refreshing as the
    /// module documentation says.
    pub async fn current(
        self: &Arc<Self>,
        now: DateTime<Utc>,
    ) -> Result<Arc<[ApiKeyEntry]>, KeysUnavailable> {
        let Some(source) = &self.source else {
            return Ok(self.peek());
        };
        let (keys, age, may_retry) = self.age(now);
        if age < self.policy.ttl {
            return Ok(keys);
        }
        if age < self.policy.max_age {
            if may_retry {
                self.refresh_in_background(now);
            }
            return Ok(keys);
        }
        if !may_retry {
            return Err(self.unavailable());
        }
        let _gate = self.gate.lock().await;
        // Another request may have refreshed (or failed to) while this one
        // waited for the gate.
        let (keys, age, may_retry) = self.age(now);
        if age < self.policy.max_age {
            return Ok(keys);
        }
        if !may_retry {
            return Err(self.unavailable());
        }
        if self.refresh(source.as_ref(), now).await {
            Ok(self.peek())
        } else {
            Err(self.unavailable())
        }
    }

    /// Waits until no refresh is in flight (tests use it instead of sleeping).
    pub async fn settled(&self) {
        drop(self.gate.lock().await);
    }

    /// The list, its age at `now`, and whether a refresh may be tried.
    fn age(&self, now: DateTime<Utc>) -> (Arc<[ApiKeyEntry]>, Duration, bool) {
        let state = self.lock();
        let may_retry = state
            .failed_at
            .is_none_or(|failed| now.signed_duration_since(failed) >= RETRY_AFTER_FAILURE);
        (
            Arc::clone(&state.keys),
            now.signed_duration_since(state.loaded_at),
            may_retry,
        )
    }

    fn unavailable(&self) -> KeysUnavailable {
        let state = self.lock();
        KeysUnavailable {
            loaded_at: state.loaded_at,
            max_age: self.policy.max_age,
            source: state.last_error.clone(),
        }
    }

    /// Starts one refresh unless one is in flight. The gate is taken here,
    /// before the task is spawned, so [`KeyRing::settled`] always sees it.
    fn refresh_in_background(self: &Arc<Self>, now: DateTime<Utc>) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let Ok(gate) = Arc::clone(&self.gate).try_lock_owned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not on tokio: no background refresh; the maximum age still
            // forces one in the request path.
            return;
        };
        let ring = Arc::clone(self);
        runtime.spawn(async move {
            let _gate = gate;
            let (_, age, may_retry) = ring.age(now);
            if age >= ring.policy.ttl && may_retry {
                ring.refresh(source.as_ref(), now).await;
            }
        });
    }

    /// Reads the list again; true when it was replaced. Called with the
    /// gate held. `now` is when the read started, so the list's age never
    /// understates how old its content may be.
    async fn refresh(&self, source: &dyn KeySource, now: DateTime<Utc>) -> bool {
        match source.load().await {
            Ok(keys) => {
                let mut state = self.lock();
                let (before, after) = (state.keys.len(), keys.len());
                state.keys = keys.into();
                state.loaded_at = now;
                state.failed_at = None;
                state.last_error = None;
                drop(state);
                tracing::debug!(keys_before = before, keys = after, "API key list refreshed");
                true
            }
            Err(e) => {
                let mut state = self.lock();
                let usable_until = state.loaded_at + self.policy.max_age;
                state.failed_at = Some(now);
                // Secrets errors name the source and the entry, never a value.
                tracing::warn!(
                    error = %e,
                    loaded_at = %state.loaded_at,
                    %usable_until,
                    "API key list refresh failed; the last list stays in use until it is too old"
                );
                state.last_error = Some(Arc::new(e));
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced whole under the lock, so a panic elsewhere
        // cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
