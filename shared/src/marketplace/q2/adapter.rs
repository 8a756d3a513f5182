//! Q2's marketplace on the ingest pipeline: signed subscription events
//! relayed by the vendor's marketplace extension, answered synchronously.
//!
//! Order of checks before anything is stored: signature and its time
//! window (401), content type (415), then the event itself: one that cannot
//! be read is answered `INVALID_RESPONSE` and an AppDirect `STATELESS` ping
//! is answered success, neither recorded (both answers follow from the
//! bytes alone). Body size (413) is the HTTP layer's.
//!
//! Every other event is recorded, then decided: refusals
//! (`CONFIGURATION_ERROR`, `USER_ALREADY_EXISTS`, `MAX_USERS_REACHED`,
//! `USER_NOT_FOUND`, `ACCOUNT_NOT_FOUND`, `DO_NOT_CANCEL`) are committed
//! like any event, as a log entry that changes nothing, so the delivery is
//! done and a redelivery is answered from the log exactly as the first
//! time. Q2 acts on each answer ([`Durability::Synchronous`]): nothing is
//! replayed later, and only a failure of Tollgate's own (`UNKNOWN_ERROR`)
//! leaves the delivery open to a retry.
//!
//! The per-institution user cap is a place in a capped group
//! ([`Enrollments`]), taken before the order is committed and given back
//! when the user cancels. A place left behind by a failure (taken, then
//! the commit failed; or given back, then the release failed) is
//! reclaimed when it is needed: a place whose subscription has ended, or
//! was never committed and is older than [`decide::IN_FLIGHT_GRACE`], does
//! not count.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};

use crate::config::Catalog;
use crate::ingest::pipeline::{Failure, Handled, Processed};
use crate::ingest::{
    Adapter, Admission, Durability, FollowUpError, Ingested, Resolution, ResolveFailure,
};
use crate::marketplace::signing::RotatingSecrets;
use crate::model::{Disposition, EventKind, Marketplace, Status, SubscriptionKey};
use crate::secret::Secrets;
use crate::settings::SetupError;
use crate::store::{Delivery, Enrolled, Enrollments, GroupKey, StoreError, Subscriptions};
use crate::web::{ApiError, MediaType, Response, header_str, media_type};

use super::answer::{Answer, ErrorCode};
use super::decide::{self, Refusal, Sold};
use super::event::{self, EventError, EventType, Q2Event};
use super::signature::{self, SignatureError};

/// Name of the signing secret shared with the relay, in the secrets source.
pub const SECRET_NAME: &str = "q2_signing_secret";
/// During a rotation, the secret being retired; both verify until it is removed.
pub const PREVIOUS_SECRET_NAME: &str = "q2_signing_secret_previous";

/// Longest content type echoed back in a 415.
const MAX_ECHO: usize = 100;

tokio::task_local! {
    /// The request id of the request being handled, for `UNKNOWN_ERROR`
    /// answers and the log line that goes with them.
    static REQUEST_ID: String;
}

/// Runs `f` (the Q2 pipeline handling one request) with `request_id`
/// available to the answers it builds.
pub async fn with_request_id<F: std::future::Future>(request_id: String, f: F) -> F::Output {
    REQUEST_ID.scope(request_id, f).await
}

fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The secrets a request may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct SigningSecrets(RotatingSecrets);

impl SigningSecrets {
    /// Reads [`SECRET_NAME`] (and [`PREVIOUS_SECRET_NAME`] if set). `None`
    /// when no secret is configured; an empty secret is refused, since it
    /// would let anyone sign.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<Self>, SetupError> {
        Ok(RotatingSecrets::from_secrets(secrets, SECRET_NAME, PREVIOUS_SECRET_NAME)?.map(Self))
    }

    pub fn verify(
        &self,
        body: &[u8],
        header: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        signature::verify_any(self.0.keys(), body, header, now)
    }
}

/// Why a request was refused before it was recorded. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `q2_signing_secret`: nothing can be verified.
    #[error("Q2 events are not configured (no `{SECRET_NAME}` secret)")]
    NotConfigured,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("unsupported content type `{0}`; Q2 events must be sent as application/json")]
    UnsupportedMediaType(String),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let message = e.to_string();
        match e {
            RequestError::Signature(s) => s.into(),
            RequestError::NotConfigured => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", message)
            }
            RequestError::UnsupportedMediaType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            ),
        }
    }
}

/// Why a recorded delivery could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The recorded body no longer reads as an event (it did when it was
    /// admitted; only a change of this code could do that).
    #[error("{0}")]
    Unreadable(#[from] EventError),
    /// The store failed while the event was being decided.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResolveFailure for ResolveError {
    fn is_transient(&self) -> bool {
        match self {
            ResolveError::Unreadable(_) => false,
            ResolveError::Store(e) => e.is_transient(),
        }
    }
}

/// A user's place to give back once the event is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub group: GroupKey,
    pub member: String,
    pub subscription: String,
    /// Give it back only if the order did not apply (an order's place);
    /// otherwise give it back once the cancellation applied.
    pub unless_applied: bool,
}

/// The Q2 adapter, built once at cold start. It reads subscriptions (to
/// decide, and to answer redeliveries from the log) and holds the places
/// of the per-institution user cap.
pub struct Q2Adapter {
    /// `None` when no signing secret is configured: every request is
    /// refused as not configured.
    secrets: Option<SigningSecrets>,
    catalog: Arc<Catalog>,
    subscriptions: Arc<dyn Subscriptions>,
    enrollments: Arc<dyn Enrollments>,
}

impl Q2Adapter {
    pub fn new(
        secrets: Option<SigningSecrets>,
        catalog: Arc<Catalog>,
        subscriptions: Arc<dyn Subscriptions>,
        enrollments: Arc<dyn Enrollments>,
    ) -> Self {
        Self {
            secrets,
            catalog,
            subscriptions,
            enrollments,
        }
    }

    /// What the event means at `now`: the event to commit (a refusal is
    /// one too) and the place to give back afterwards, if any.
    async fn decide(
        &self,
        event: &Q2Event,
        now: DateTime<Utc>,
    ) -> Result<(EventKind, String, Option<Release>), StoreError> {
        let sold = match decide::sold(&self.catalog, event) {
            Ok(sold) => sold,
            Err(refusal) => {
                return Ok((
                    decide::refused(refusal),
                    event.product_identifier.clone(),
                    None,
                ));
            }
        };
        let product = sold.product.to_owned();
        let current = self
            .subscriptions
            .get(&decide::subscription_key(event))
            .await?;
        let group = decide::group(sold.product, event);
        let release = |unless_applied| Release {
            group: group.clone(),
            member: event.user_id.clone(),
            subscription: event.subscription_id.clone(),
            unless_applied,
        };
        let decided = match event.event_type {
            EventType::Order => {
                match decide::check_order(&self.catalog, sold, event, current.as_ref()) {
                    Err(refusal) => Err(refusal),
                    Ok(terms) => match self.take_place(sold, event, now).await? {
                        Err(refusal) => Err(refusal),
                        Ok(taken) => Ok((
                            EventKind::Purchased {
                                terms,
                                awaiting: None,
                            },
                            taken.then(|| release(true)),
                        )),
                    },
                }
            }
            EventType::Change => match &current {
                None => {
                    let place = self.enrollments.enrollment(&group, &event.user_id).await?;
                    Err(decide::unknown_subscription(event, place.as_ref()))
                }
                Some(cur) => decide::check_change(&self.catalog, sold, event, cur)
                    .map(|terms| (EventKind::Changed { terms }, None)),
            },
            EventType::Cancel => {
                decide::check_cancel(sold, event, current.as_ref(), now).map(|access_until| {
                    (
                        EventKind::Cancelled {
                            plan: None,
                            access_until,
                        },
                        Some(release(false)),
                    )
                })
            }
        };
        Ok(match decided {
            Ok((kind, release)) => (kind, product, release),
            Err(refusal) => (decide::refused(refusal), product, None),
        })
    }

    /// Takes the user's place in the institution's group for this order:
    /// `Ok(true)` when taken now, `Ok(false)` when it already was (a
    /// repeated order), or the refusal. A place held for another
    /// subscription that no longer counts is handed over; a full group is
    /// checked once for places that no longer count.
    async fn take_place(
        &self,
        sold: Sold<'_>,
        event: &Q2Event,
        now: DateTime<Utc>,
    ) -> Result<Result<bool, Refusal>, StoreError> {
        let group = decide::group(sold.product, event);
        let cap = sold.rules.max_users_per_institution;
        let mut reclaimed = false;
        // Each turn either ends or follows a concurrent change of the
        // user's place or of the group; a few are plenty.
        for _ in 0..4 {
            match self
                .enrollments
                .enroll(&group, &event.user_id, &event.subscription_id, cap, now)
                .await?
            {
                Enrolled::New => return Ok(Ok(true)),
                Enrolled::Already => return Ok(Ok(false)),
                Enrolled::HeldBy(place) => {
                    let holder = self
                        .subscriptions
                        .get(&SubscriptionKey::new(Marketplace::Q2, &place.subscription))
                        .await?;
                    if decide::holder_blocks(holder.as_ref(), &place, now) {
                        return Ok(Err(decide::already_subscribed(&place)));
                    }
                    let moved = self
                        .enrollments
                        .transfer_enrollment(
                            &group,
                            &event.user_id,
                            &place.subscription,
                            &event.subscription_id,
                            now,
                        )
                        .await?;
                    if moved {
                        return Ok(Ok(true));
                    }
                }
                Enrolled::Full { cap } => {
                    if reclaimed || !self.reclaim(&group, now).await? {
                        return Ok(Err(decide::cap_reached(sold, event, cap)));
                    }
                    reclaimed = true;
                }
            }
        }
        Err(StoreError::Transient(format!(
            "the place of subscription {} kept changing",
            event.subscription_id
        )))
    }

    /// Gives back the places of `group` that no longer count; whether any
    /// was. One read per member: only when the group is full.
    async fn reclaim(&self, group: &GroupKey, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut freed = 0_usize;
        for place in self.enrollments.enrollments(group).await? {
            let holder = self
                .subscriptions
                .get(&SubscriptionKey::new(Marketplace::Q2, &place.subscription))
                .await?;
            if !decide::holder_blocks(holder.as_ref(), &place, now)
                && self
                    .enrollments
                    .unenroll(group, &place.member, &place.subscription)
                    .await?
            {
                freed += 1;
            }
        }
        if freed > 0 {
            tracing::warn!(group = %group, freed, "reclaimed places of ended or lost subscriptions");
        }
        Ok(freed > 0)
    }

    /// The answer for a processed event: from its log entry, so it is the
    /// one a redelivery gets too.
    fn answer(processed: &Processed) -> Answer {
        match &processed.result {
            Ingested::Committed(outcome) => Answer::from_log(&outcome.log),
            // A concurrent request with the same bytes committed first;
            // this one decided the same way, so its own event tells.
            Ingested::Duplicate => match &processed.event.kind {
                EventKind::Refused { code, reason } => Answer::failure(
                    ErrorCode::parse(code).unwrap_or(ErrorCode::UnknownError),
                    reason.clone(),
                ),
                _ => Answer::success("already processed", &processed.event.subscription.id),
            },
        }
    }
}

/// Bound on the log read that names an unstamped delivery (the same as the
/// pipeline's bound on recording a delivery).
const LOG_READ_TIMEOUT: std::time::Duration = crate::ingest::pipeline::RECORD_TIMEOUT;

impl Q2Adapter {
    /// The delivery id of an event without Q2's `created`/`processed`
    /// stamps (a bare AppDirect event). Its content digest alone cannot
    /// tell the relay retrying a request from the same request made again
    /// later (standard → premium → standard → premium: the fourth is the
    /// second, byte for byte). The subscription's log decides: a repeat of
    /// the request its log ends with is a retry (same id, same answer); a
    /// repeat of an older one, after other events, is a new request and
    /// gets the next occurrence id (`<digest>#2`, `#3`, ...).
    async fn unstamped_delivery_id(
        &self,
        event: &Q2Event,
        digest: String,
    ) -> Result<String, StoreError> {
        let key = SubscriptionKey::new(Marketplace::Q2, event.subscription_id.clone());
        // Bounded like the pipeline's own record step: this read happens
        // before the delivery is recorded, outside the pipeline's bounds.
        let log = tokio::time::timeout(LOG_READ_TIMEOUT, self.subscriptions.log(&key))
            .await
            .map_err(|_| {
                StoreError::Transient(format!(
                    "reading the log of {key} took longer than {LOG_READ_TIMEOUT:?}"
                ))
            })??;
        let occurrence = |id: &str| {
            id == digest
                || id
                    .strip_prefix(digest.as_str())
                    .and_then(|rest| rest.strip_prefix('#'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        };
        let Some(latest) = log.iter().max_by_key(|e| e.recorded_at) else {
            return Ok(digest);
        };
        if occurrence(&latest.event_id) {
            return Ok(latest.event_id.clone());
        }
        let seen = log
            .iter()
            .filter(|e| occurrence(&e.event_id))
            .map(|e| e.event_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        Ok(match seen {
            0 => digest,
            n => format!("{digest}#{}", n + 1),
        })
    }
}

#[async_trait]
impl Adapter for Q2Adapter {
    const MARKETPLACE: Marketplace = Marketplace::Q2;
    const DURABILITY: Durability = Durability::Synchronous;
    // Q2's delivery id is already a digest of the content (and its
    // stamps); an unstamped repeat gets a new id only when it is a new
    // request (`unstamped_delivery_id`), which a content claim would
    // wrongly turn into a replay.
    const CONTENT_CLAIMS: bool = false;
    type Refusal = RequestError;
    type ResolveError = ResolveError;
    type Context = Option<Release>;

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Admission, RequestError> {
        let secrets = self.secrets.as_ref().ok_or(RequestError::NotConfigured)?;
        secrets.verify(body, header_str(headers, signature::HEADER), now)?;
        match media_type(headers) {
            MediaType::Missing | MediaType::Json => {}
            MediaType::Form => {
                return Err(RequestError::UnsupportedMediaType(
                    "application/x-www-form-urlencoded".into(),
                ));
            }
            MediaType::Other(essence) => {
                return Err(RequestError::UnsupportedMediaType(
                    essence.chars().take(MAX_ECHO).collect(),
                ));
            }
        }
        let event = match event::parse(body) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(reason = %e, "Q2 event not understood");
                return Ok(Admission::Answer(
                    Answer::failure(ErrorCode::InvalidResponse, e.to_string()).into_response(),
                ));
            }
        };
        if event.stateless {
            return Ok(Admission::Answer(
                Answer::success(
                    "STATELESS event acknowledged; nothing was changed",
                    &event.subscription_id,
                )
                .into_response(),
            ));
        }
        let digest = event::delivery_id(&event, body);
        let id = if event.sent_time.is_some() {
            digest
        } else {
            match self.unstamped_delivery_id(&event, digest).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "Q2: the subscription's log could not be read");
                    return Ok(Admission::Answer(
                        Answer::failure(
                            ErrorCode::UnknownError,
                            "storage is busy; nothing was changed, send the event again",
                        )
                        .into_response(),
                    ));
                }
            }
        };
        Ok(Admission::Deliver {
            id,
            kind: event.event_type.as_str().to_owned(),
        })
    }

    async fn resolve(
        &self,
        delivery: &Delivery,
    ) -> Result<Resolution<Option<Release>>, ResolveError> {
        let body = delivery.body.as_deref().unwrap_or_default();
        let event = event::parse(body)?;
        let now = delivery.received_at;
        let (kind, product, release) = self.decide(&event, now).await?;
        if let EventKind::Refused { code, .. } = &kind {
            tracing::info!(
                delivery = %delivery.id,
                subscription = %decide::subscription_key(&event),
                code = %code,
                "Q2 event refused"
            );
        }
        Ok(Resolution::one(
            decide::market_event(&event, &product, kind, now),
            release,
        ))
    }

    /// Gives a place back: the cancelling user's, or the place an order
    /// took but did not use (it did not apply).
    async fn follow_up(
        &self,
        release: &Option<Release>,
        processed: &Processed,
    ) -> Result<(), FollowUpError> {
        let Some(release) = release else {
            return Ok(());
        };
        let Ingested::Committed(outcome) = &processed.result else {
            return Ok(());
        };
        let applied = outcome.disposition() == Disposition::Applied;
        let ended = outcome
            .next
            .as_ref()
            .is_some_and(|s| matches!(s.status, Status::Cancelled | Status::PendingCancellation));
        let give_back = if release.unless_applied {
            !applied
        } else {
            applied && ended
        };
        if !give_back {
            return Ok(());
        }
        self.enrollments
            .unenroll(&release.group, &release.member, &release.subscription)
            .await
            .map(|_| ())
            .map_err(|e| FollowUpError {
                transient: e.is_transient(),
                message: format!("giving back the user's place: {e}"),
            })
    }

    fn reply(
        &self,
        delivery_id: &str,
        handled: Handled<'_, ResolveError>,
    ) -> Result<Response, ApiError> {
        let answer = match handled {
            Handled::Processed(done) => Self::answer(done),
            // The place is given back lazily if this failed (see the
            // module docs); the event itself stands, and so does its answer.
            Handled::Failed(Failure::FollowUp { processed, error }) => {
                tracing::error!(request_id = %request_id(), delivery = delivery_id, error = %error, "Q2 follow-up failed");
                Self::answer(processed)
            }
            Handled::Failed(Failure::Resolve(ResolveError::Unreadable(e))) => {
                Answer::failure(ErrorCode::InvalidResponse, e.to_string())
            }
            Handled::Failed(failure) => unknown_error(delivery_id, failure),
            Handled::AlreadyDone => {
                // Redeliveries are answered by `reply_to_redelivery`; this
                // is only reached if that is bypassed.
                let id = request_id();
                tracing::error!(request_id = %id, delivery = delivery_id, "Q2 redelivery answered without its log");
                Answer::failure(
                    ErrorCode::UnknownError,
                    format!(
                        "the event was already processed, but its answer could not be read back (request id {id})"
                    ),
                )
            }
        };
        Ok(answer.into_response())
    }

    /// A redelivery is answered from the log entry its first delivery
    /// left, so Q2 hears the same answer again.
    async fn reply_to_redelivery(&self, delivery: &Delivery) -> Result<Response, ApiError> {
        let body = delivery.body.as_deref().unwrap_or_default();
        let answer = match event::parse(body) {
            Err(e) => Answer::failure(ErrorCode::InvalidResponse, e.to_string()),
            Ok(event) => {
                let key = decide::subscription_key(&event);
                match self.subscriptions.log(&key).await {
                    Ok(log) => match log.iter().rev().find(|e| e.event_id == delivery.id) {
                        Some(entry) => Answer::from_log(entry),
                        None => unknown(
                            delivery,
                            "the delivery is marked processed but its log entry is missing",
                        ),
                    },
                    Err(e) => unknown(delivery, &e.to_string()),
                }
            }
        };
        Ok(answer.into_response())
    }
}

/// `UNKNOWN_ERROR` for a failure of Tollgate's own: logged with the
/// request id, which the answer names so the two can be matched.
fn unknown_error(delivery_id: &str, failure: &Failure<ResolveError>) -> Answer {
    let id = request_id();
    tracing::error!(
        request_id = %id,
        delivery = delivery_id,
        error = %failure,
        transient = failure.is_transient(),
        "Q2 event not processed"
    );
    Answer::failure(
        ErrorCode::UnknownError,
        format!("Tollgate could not process the event (request id {id}); send it again"),
    )
}

fn unknown(delivery: &Delivery, detail: &str) -> Answer {
    let id = request_id();
    tracing::error!(request_id = %id, delivery = %delivery.id, error = detail, "Q2 redelivery not answered");
    Answer::failure(
        ErrorCode::UnknownError,
        format!(
            "the event was already processed, but its answer could not be read back (request id {id})"
        ),
    )
}
