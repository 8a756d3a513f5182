//! Sending change notifications: drains the store's outbox (written by the
//! commit of every applied change, so nothing committed is lost) to the
//! endpoints of `[notifications]`, signed per Standard Webhooks
//! (`tollgate_core::notify`), at least once.
//!
//! Per endpoint: 2xx delivers; 408, 429, 5xx, a redirect or no answer is
//! tried again after an exponential backoff with full jitter, up to
//! `retry.max_attempts`; any other 4xx, or the last failed attempt, writes a
//! dead letter (`tollgate notify replay` sends those again). Every attempt
//! of a change carries the same `webhook-id` and the same body; the
//! timestamp and the signature are the attempt's.
//!
//! Who drains: in AWS, purchase-webhook on the table's stream (new outbox
//! items) and on its schedule (retries that are due); locally,
//! `tollgate notify run` or a test calling [`Sender::drain`]. Two senders
//! may look at one entry at once: each first takes a short lease (a write
//! conditional on the entry's version), so only one sends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::Catalog;
use crate::store::{DeadLetter, Outbox, OutboxEntry, StoreError};
use tollgate_core::notify::{
    Endpoint, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, KeyError, Notification,
    PREVIOUS_SUFFIX, RetryPolicy, SigningKey, Verdict, sign, verdict,
};
use tollgate_core::secret::Secrets;

/// The pure half, from the core: signing, verification, payload, policy.
pub use tollgate_core::notify as spec;

/// How long a sender holds an entry it is sending (other senders skip it).
pub const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Per-attempt bound on one POST.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries taken per pass of [`Sender::drain`].
pub const BATCH: usize = 100;

/// Why notifications cannot be sent or drained.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An endpoint's secret is missing from the secrets source.
    #[error("notification endpoint `{endpoint}`: secret `{secret}` is missing from the secrets")]
    MissingSecret { endpoint: String, secret: String },
    /// An endpoint's secret is not `whsec_<base64>` (the value is never shown).
    #[error("notification endpoint `{endpoint}`: secret `{secret}`: {error}")]
    BadSecret {
        endpoint: String,
        secret: String,
        error: KeyError,
    },
    #[error("notification endpoint `{0}` is named twice")]
    DuplicateEndpoint(String),
    /// Notifications carry customer data: https only, but for a loopback
    /// receiver.
    #[error(
        "notification endpoint `{0}`: the URL must be https:// (http:// only to localhost, 127.0.0.1 or [::1])"
    )]
    InsecureUrl(String),
    #[error("cannot build the notification HTTP client: {0}")]
    Client(String),
    #[error("cannot encode a notification: {0}")]
    Encode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NotifyError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, NotifyError::Store(e) if e.is_transient())
    }
}

/// A notification failure met on an HTTP path is the store's or the
/// configuration's: 503 when it may pass, 500 otherwise.
impl From<NotifyError> for crate::web::ApiError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::Store(store) => store.into(),
            other => {
                crate::web::ApiError::internal("notifications are misconfigured").caused_by(other)
            }
        }
    }
}

/// One configured endpoint, its keys read from the secrets.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    /// Current key first, then the `_previous` one during a rotation.
    keys: Vec<SigningKey>,
    /// As configured (its event filter: [`Endpoint::wants`]).
    endpoint: Endpoint,
}

/// The endpoints of `[notifications]` with their keys.
pub fn targets(catalog: &Catalog, secrets: &Secrets) -> Result<Vec<Target>, NotifyError> {
    let mut out: Vec<Target> = Vec::new();
    for endpoint in &catalog.notifications().endpoints {
        let name = endpoint.name();
        if out.iter().any(|t| t.name == name) {
            return Err(NotifyError::DuplicateEndpoint(name));
        }
        if !endpoint.secure_url() {
            return Err(NotifyError::InsecureUrl(name));
        }
        let key = |secret: &str| {
            secrets.get(secret).map(|value| {
                SigningKey::parse(value.expose()).map_err(|error| NotifyError::BadSecret {
                    endpoint: name.clone(),
                    secret: secret.to_owned(),
                    error,
                })
            })
        };
        let current = key(&endpoint.secret).ok_or_else(|| NotifyError::MissingSecret {
            endpoint: name.clone(),
            secret: endpoint.secret.clone(),
        })??;
        let mut keys = vec![current];
        if let Some(previous) = key(&format!("{}{PREVIOUS_SUFFIX}", endpoint.secret)) {
            keys.push(previous?);
        }
        out.push(Target {
            name,
            url: endpoint.url.clone(),
            keys,
            endpoint: endpoint.clone(),
        });
    }
    Ok(out)
}

/// What one POST got back: a status, or a failure kind (never a body).
pub type Answer = Result<u16, String>;

/// How a notification is POSTed (HTTP in production; a fake in tests).
#[async_trait]
pub trait Transport: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &[u8]) -> Answer;
}

/// [`Transport`] over the shared HTTPS stack: no redirects followed (the
/// signed request goes only where it was configured to), [`ATTEMPT_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct HttpTransport(reqwest::Client);

impl HttpTransport {
    pub fn new() -> Result<Self, NotifyError> {
        let client = crate::https::client_builder()
            .map_err(|e| NotifyError::Client(e.to_string()))?
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("tollgate-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        Ok(Self(client))
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &[u8]) -> Answer {
        let mut request = self
            .0
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(res) => Ok(res.status().as_u16()),
            // The kind only: a reqwest error may quote the URL's query.
            Err(e) if e.is_timeout() => Err("timeout".into()),
            Err(e) if e.is_connect() => Err("connection failed".into()),
            Err(_) => Err("request failed".into()),
        }
    }
}

/// Random numbers for the jitter (injected so tests can fix them).
pub type Random = Arc<dyn Fn() -> u64 + Send + Sync>;

fn os_random() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

/// What one [`Sender::drain`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Entries looked at (due, and not leased by another sender).
    pub entries: usize,
    /// Successful POSTs.
    pub delivered: usize,
    /// Failed POSTs that will be tried again.
    pub retrying: usize,
    /// Dead letters written.
    pub dead: usize,
}

/// What [`Sender::replay`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub total: usize,
    pub delivered: usize,
    /// `(message id, endpoint, why)` of each letter still dead.
    pub failed: Vec<(String, String, String)>,
}

/// Drains the outbox and replays dead letters.
#[derive(Clone)]
pub struct Sender {
    outbox: Arc<dyn Outbox>,
    catalog: Arc<Catalog>,
    targets: Arc<Vec<Target>>,
    policy: RetryPolicy,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    random: Random,
}

impl Sender {
    /// A sender for `catalog`'s `[notifications]`, keys from `secrets`.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        catalog: Arc<Catalog>,
        secrets: &Secrets,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NotifyError> {
        let targets = targets(&catalog, secrets)?;
        let policy = catalog.notifications().retry;
        Ok(Self {
            outbox,
            catalog,
            targets: Arc::new(targets),
            policy,
            transport,
            clock,
            random: Arc::new(os_random),
        })
    }

    /// The same sender with `random` drawing the jitter.
    pub fn with_random(mut self, random: Random) -> Self {
        self.random = random;
        self
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The signed headers of one attempt.
    fn headers(
        target: &Target,
        id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let ts = at.timestamp();
        vec![
            (HEADER_ID, id.to_owned()),
            (HEADER_TIMESTAMP, ts.to_string()),
            (HEADER_SIGNATURE, sign(&target.keys, id, ts, body)),
        ]
    }

    /// One pass: every entry due now is leased, sent to each endpoint whose
    /// attempt is due, and settled (removed once every endpoint is done).
    pub async fn drain(&self) -> Result<DrainReport, NotifyError> {
        self.drain_before(None).await
    }

    /// [`Sender::drain`], taking no new entry once `deadline` (a Lambda
    /// invocation's) is near: what is left stays due for the next run.
    pub async fn drain_before(
        &self,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<DrainReport, NotifyError> {
        // Room for one entry's attempts, one endpoint after another.
        let room = ATTEMPT_TIMEOUT
            .saturating_mul(u32::try_from(self.targets.len()).unwrap_or(u32::MAX))
            .saturating_add(Duration::from_secs(2));
        let out_of_time = || {
            deadline.is_some_and(|d| {
                d.duration_since(std::time::SystemTime::now())
                    .map_or(true, |left| left < room)
            })
        };
        let mut report = DrainReport::default();
        loop {
            let now = self.clock.now();
            let due = self.outbox.due_notifications(now, BATCH).await?;
            let full = due.len() == BATCH;
            for entry in due {
                if out_of_time() {
                    return Ok(report);
                }
                match self.deliver(entry, &mut report).await {
                    Ok(()) => {}
                    // Another sender holds or settled it.
                    Err(NotifyError::Store(StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            if !full {
                return Ok(report);
            }
        }
    }

    async fn deliver(
        &self,
        entry: OutboxEntry,
        report: &mut DrainReport,
    ) -> Result<(), NotifyError> {
        let now = self.clock.now();
        // The lease: other senders skip the entry until it ends (or we settle).
        let mut next = entry.clone();
        next.version = entry.version.saturating_add(1);
        next.due_at = now + LEASE;
        self.outbox
            .settle_notification(&entry.id, entry.version, Some(&next), &[])
            .await?;
        report.entries += 1;
        let leased = next.version;

        let notification = Notification::new(&self.catalog, &next.log, &next.state);
        let body =
            serde_json::to_vec(&notification).map_err(|e| NotifyError::Encode(e.to_string()))?;
        let mut dead = Vec::new();
        let mut pending_at: Option<DateTime<Utc>> = None;
        for target in self
            .targets
            .iter()
            .filter(|t| t.endpoint.wants(notification.event_type))
        {
            let progress = next.endpoints.entry(target.name.clone()).or_default();
            if progress.finished {
                continue;
            }
            if let Some(at) = progress.next_at
                && at > now
            {
                pending_at = Some(pending_at.map_or(at, |p| p.min(at)));
                continue;
            }
            let headers = Self::headers(target, &next.id, now, &body);
            let answer = self.transport.post(&target.url, &headers, &body).await;
            progress.attempts = progress.attempts.saturating_add(1);
            let verdict = verdict(answer.as_ref().ok().copied());
            let failure = match answer {
                Ok(status) => format!("HTTP {status}"),
                Err(kind) => kind,
            };
            let give_up = match verdict {
                Verdict::Delivered => {
                    progress.finished = true;
                    progress.next_at = None;
                    progress.last_error = None;
                    report.delivered += 1;
                    tracing::info!(id = %next.id, endpoint = %target.name, attempts = progress.attempts, "notification delivered");
                    continue;
                }
                Verdict::Refused => true,
                Verdict::Retry => !self.policy.may_retry(progress.attempts),
            };
            progress.last_error = Some(failure.clone());
            if give_up {
                progress.finished = true;
                progress.next_at = None;
                report.dead += 1;
                tracing::warn!(id = %next.id, endpoint = %target.name, attempts = progress.attempts, failure = %failure, "notification dead-lettered");
                dead.push(DeadLetter {
                    id: next.id.clone(),
                    endpoint: target.name.clone(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    event_type: notification.event_type.as_str().to_owned(),
                    attempts: progress.attempts,
                    last_error: failure,
                    dead_at: now,
                });
            } else {
                let at = now + self.policy.backoff(progress.attempts, (self.random)());
                progress.next_at = Some(at);
                pending_at = Some(pending_at.map_or(at, |p| p.min(at)));
                report.retrying += 1;
                tracing::info!(id = %next.id, endpoint = %target.name, attempts = progress.attempts, failure = %failure, retry_at = %at, "notification failed; will retry");
            }
        }
        match pending_at {
            None => {
                self.outbox
                    .settle_notification(&next.id, leased, None, &dead)
                    .await?
            }
            Some(at) => {
                next.version = leased.saturating_add(1);
                next.due_at = at;
                self.outbox
                    .settle_notification(&next.id, leased, Some(&next), &dead)
                    .await?
            }
        }
        Ok(())
    }

    /// Sends every dead letter again (same id and body, a fresh timestamp
    /// and signature), once each; a delivered one is removed. `progress`
    /// is called after each letter with (done, total).
    pub async fn replay(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ReplayReport, NotifyError> {
        let letters = self.outbox.dead_letters().await?;
        let mut report = ReplayReport {
            total: letters.len(),
            ..ReplayReport::default()
        };
        for (done, letter) in letters.into_iter().enumerate() {
            let outcome = match self.targets.iter().find(|t| t.name == letter.endpoint) {
                None => Err("endpoint no longer configured".to_owned()),
                Some(target) => {
                    let body = letter.body.as_bytes();
                    let headers = Self::headers(target, &letter.id, self.clock.now(), body);
                    match self.transport.post(&target.url, &headers, body).await {
                        Ok(status) if verdict(Some(status)) == Verdict::Delivered => Ok(()),
                        Ok(status) => Err(format!("HTTP {status}")),
                        Err(kind) => Err(kind),
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    self.outbox
                        .remove_dead_letter(&letter.id, &letter.endpoint)
                        .await?;
                    report.delivered += 1;
                }
                Err(why) => report.failed.push((letter.id, letter.endpoint, why)),
            }
            progress(done + 1, report.total);
        }
        Ok(report)
    }

    /// Drains every `interval` until `stop` resolves (the local loop of
    /// `tollgate notify run`; a failed pass is logged and the next one
    /// tries again).
    pub async fn run(&self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.drain().await {
                Ok(r) if r.entries > 0 => tracing::info!(
                    entries = r.entries,
                    delivered = r.delivered,
                    retrying = r.retrying,
                    dead = r.dead,
                    "notifications drained"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "notification drain failed"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
