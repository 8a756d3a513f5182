//! The one pipeline every marketplace delivery takes:
//! authenticate → record → resolve → ingest (rules + one conditional
//! commit) → follow-ups → reply.
//!
//! The adapter ([`Adapter`]) supplies everything marketplace-specific; this
//! module supplies the order of the steps, their time bounds, and what a
//! failure at each step means for the marketplace's [`Durability`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::model::{
    Customer, CustomerKey, Disposition, EventKind, MarketEvent, Marketplace, SubscriptionKey,
};
use crate::store::{
    Deliveries, Delivery, DeliveryMark, DeliveryStatus, EventLedger, Recorded, StoreError, Token,
    Tokens, sha256_hex,
};
use crate::web::{ApiError, Response, json_response};

use super::adapter::{Adapter, Admission, Durability, FollowUpError, Resolution, ResolveFailure};
use super::apply::{DEDUPE_TTL, Ingested, ingest_marked};

/// The subscription id under which each marketplace's replays are logged.
pub const REPLAYS_LOG: &str = "_replays";

/// Default bound on recording a delivery.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on resolving and applying it (read, rules, conditional
/// commit, retries). With [`RECORD_TIMEOUT`] and a cold start this stays
/// well inside GitHub's 10 s.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the pending record of an authenticated delivery, raw body
/// included (so a replay can finish it) and its hash (to spot a redelivery
/// that differs).
pub fn pending_delivery(
    marketplace: Marketplace,
    id: &str,
    kind: &str,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Delivery {
    Delivery {
        marketplace,
        id: id.to_owned(),
        kind: kind.to_owned(),
        status: DeliveryStatus::Pending,
        body_sha256: sha256_hex(body),
        body: Some(body.to_vec()),
        received_at,
        expires_at: received_at + DEDUPE_TTL,
    }
}

/// What became of a processed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessedStatus {
    Applied,
    /// Older than the state already applied: logged, not applied.
    Stale,
    /// Logged and acknowledged, meaningless for the subscription.
    Ignored,
    /// Already processed: nothing changed.
    Duplicate,
}

impl ProcessedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessedStatus::Applied => "applied",
            ProcessedStatus::Stale => "stale",
            ProcessedStatus::Ignored => "ignored",
            ProcessedStatus::Duplicate => "duplicate",
        }
    }
}

/// What processing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The (last) event the delivery resolved to, and what became of it.
    pub event: MarketEvent,
    pub result: Ingested,
    /// The other subscriptions the same delivery touched, in order.
    pub also: Vec<(SubscriptionKey, ProcessedStatus)>,
}

impl Processed {
    pub fn status(&self) -> ProcessedStatus {
        match &self.result {
            Ingested::Duplicate => ProcessedStatus::Duplicate,
            Ingested::Committed(o) => match o.disposition() {
                Disposition::Applied => ProcessedStatus::Applied,
                Disposition::Stale => ProcessedStatus::Stale,
                Disposition::Ignored => ProcessedStatus::Ignored,
            },
        }
    }

    /// The rules' one-sentence explanation.
    pub fn note(&self) -> &str {
        match &self.result {
            Ingested::Duplicate => "already processed",
            Ingested::Committed(o) => &o.log.note,
        }
    }
}

/// Why an authenticated delivery was not (completely) processed.
#[derive(Debug, thiserror::Error)]
pub enum Failure<E: ResolveFailure> {
    /// The store failed or was too slow while recording it: nothing was
    /// stored or applied.
    #[error("the delivery could not be recorded: {0}")]
    NotRecorded(String),
    /// Authentic but not understood (yet): the adapter could not resolve it.
    #[error("{0}")]
    Resolve(E),
    /// The adapter resolved the delivery to no event at all.
    #[error("delivery {0} resolved to no event")]
    NothingResolved(String),
    /// A pending delivery without its body cannot be replayed.
    #[error("delivery {0} has no recorded body")]
    MissingBody(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store (or the marketplace's API) did not answer in time.
    #[error("processing took longer than {0:?}")]
    TimedOut(Duration),
    /// Applied and committed, but the follow-up at the marketplace failed.
    #[error("{error}")]
    FollowUp {
        processed: Box<Processed>,
        error: FollowUpError,
    },
}

impl<E: ResolveFailure> Failure<E> {
    /// Worth trying again unchanged.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::NotRecorded(_) | Failure::TimedOut(_) => true,
            Failure::Store(e) => e.is_transient(),
            Failure::Resolve(e) => e.is_transient(),
            Failure::FollowUp { error, .. } => error.transient,
            Failure::MissingBody(_) | Failure::NothingResolved(_) => false,
        }
    }
}

/// One marketplace's pipeline, built once at cold start. It holds only the
/// store roles it uses: the event ledger (state + commits) and deliveries.
pub struct Pipeline<A: Adapter> {
    adapter: A,
    ledger: Arc<dyn EventLedger>,
    deliveries: Arc<dyn Deliveries>,
    /// Which content was delivered already, under which id: a signature
    /// covers the body, not the delivery id, so the same signed body sent
    /// again under a fresh id must not apply again.
    contents: Arc<dyn Tokens>,
    clock: Arc<dyn Clock>,
    record_timeout: Duration,
    process_timeout: Duration,
}

impl<A: Adapter> Pipeline<A> {
    pub fn new(
        adapter: A,
        ledger: Arc<dyn EventLedger>,
        deliveries: Arc<dyn Deliveries>,
        contents: Arc<dyn Tokens>,
    ) -> Self {
        Self {
            adapter,
            ledger,
            deliveries,
            contents,
            clock: Arc::new(SystemClock),
            record_timeout: RECORD_TIMEOUT,
            process_timeout: PROCESS_TIMEOUT,
        }
    }

    /// Uses `clock` for receive times and rule decisions (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Overrides [`RECORD_TIMEOUT`] and [`PROCESS_TIMEOUT`].
    pub fn with_timeouts(mut self, record: Duration, process: Duration) -> Self {
        self.record_timeout = record;
        self.process_timeout = process;
        self
    }

    pub fn adapter(&self) -> &A {
        &self.adapter
    }

    /// Handles one request: authenticate, record, process, reply.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
        let marketplace = A::MARKETPLACE.as_str();
        let now = self.clock.now();
        let admission = match self.adapter.authenticate(headers, body, now).await {
            Ok(admission) => admission,
            Err(refusal) => {
                tracing::warn!(marketplace, reason = %refusal, "delivery refused");
                return Err(refusal.into());
            }
        };
        let (id, kind) = match admission {
            Admission::Answer(response) => return Ok(response),
            Admission::Deliver { id, kind } => (id, kind),
        };
        let mut delivery = pending_delivery(A::MARKETPLACE, &id, &kind, body, now);
        delivery.body_sha256 = self.adapter.content_digest(body);
        let recorded = match self.record(&delivery).await {
            Ok(recorded) => recorded,
            Err(failure) => {
                tracing::error!(marketplace, delivery = %id, kind, error = %failure, "delivery not recorded");
                return self.adapter.reply(&id, Handled::Failed(&failure));
            }
        };
        // The content is claimed in `process`, not here: a delivery found
        // pending (a concurrent or later copy of this id, or replay) must
        // claim it too, or the same body under another id applies again.
        if recorded != Recorded::New && self.content_differs(&delivery, now).await {
            tracing::warn!(marketplace, delivery = %id, kind, "delivery id reused with different content");
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "delivery_id_reused",
                "this delivery id was already used for different content; nothing was applied",
            ));
        }
        if recorded == Recorded::Done {
            tracing::info!(marketplace, delivery = %id, kind, "redelivery of a processed delivery");
            if A::DURABILITY == Durability::Redelivered
                && let Err(failure) = self.follow_up_again(&delivery).await
            {
                tracing::error!(marketplace, delivery = %id, kind, error = %failure, "follow-up failed again");
                return self.adapter.reply(&id, Handled::Failed(&failure));
            }
            return self.adapter.reply_to_redelivery(&delivery).await;
        }
        let result = self.process(&delivery, now).await;
        match &result {
            Ok(done) => tracing::info!(
                marketplace,
                delivery = %id,
                kind,
                event = done.event.kind.name(),
                subscription = %done.event.subscription,
                status = done.status().as_str(),
                "delivery processed"
            ),
            Err(failure) => {
                tracing::error!(
                    marketplace,
                    delivery = %id,
                    kind,
                    error = %failure,
                    transient = failure.is_transient(),
                    "delivery not processed"
                );
                if A::DURABILITY.replayable() {
                    self.report_pending(now).await;
                }
            }
        }
        match &result {
            Ok(done) => self.adapter.reply(&id, Handled::Processed(done)),
            Err(failure) => self.adapter.reply(&id, Handled::Failed(failure)),
        }
    }

    /// Claims the delivery's content for its id, or finds who holds it.
    ///
    /// The claim is what makes "one content, one apply" hold: it is
    /// written once (a conditional put) and never moves while live, and
    /// only a delivery whose id holds it may apply the content; copies of
    /// that one id are then deduped by the commit's delivery mark. So every
    /// path to an apply claims first — the first copy of an id, a copy
    /// found pending, `tollgate replay` — and a claim already held by the
    /// same id (an earlier copy, or a put whose answer was lost) is its own.
    async fn claim_content(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Claim, Failure<A::ResolveError>> {
        let claim = Token {
            kind: format!("content_{}", A::MARKETPLACE.as_str()),
            id: delivery.body_sha256.clone(),
            payload: delivery.id.clone(),
            expires_at: now + DEDUPE_TTL,
        };
        // The delivery is recorded (pending) by now: a failed claim leaves
        // it for a redelivery or `tollgate replay`, like any store failure.
        let bounded = Failure::Store;
        let late = || Failure::TimedOut(self.record_timeout);
        // A claim that expires between the refused put and the read is
        // free again: take it on the second round.
        for _ in 0..2 {
            let put =
                tokio::time::timeout(self.record_timeout, self.contents.put_token(&claim, now))
                    .await
                    .map_err(|_| late())?;
            match put {
                Ok(()) => return Ok(Claim::Ours),
                Err(StoreError::Duplicate(_)) => {}
                Err(e) => return Err(bounded(e)),
            }
            let holder = tokio::time::timeout(
                self.record_timeout,
                self.contents.peek_token(&claim.kind, &claim.id, now),
            )
            .await
            .map_err(|_| late())?
            .map_err(bounded)?;
            match holder {
                Some(holder) if holder == delivery.id => return Ok(Claim::Ours),
                Some(_) => return Ok(Claim::Theirs),
                None => {}
            }
        }
        Err(Failure::Store(StoreError::Transient(format!(
            "the content claim of delivery {} was neither free nor held",
            delivery.id
        ))))
    }

    /// Whether the delivery recorded under this id carried other content.
    /// A store that does not answer here is not a reason to refuse: the
    /// normal path dedupes the id anyway.
    async fn content_differs(&self, delivery: &Delivery, now: DateTime<Utc>) -> bool {
        let read = tokio::time::timeout(
            self.record_timeout,
            self.deliveries.delivery(A::MARKETPLACE, &delivery.id, now),
        )
        .await;
        matches!(
            read,
            Ok(Ok(Some(recorded)))
                if !recorded.body_sha256.is_empty() && recorded.body_sha256 != delivery.body_sha256
        )
    }

    /// The same content under a new id: logged as a replay (on the
    /// marketplace's `_replays` log), the new id marked done, nothing
    /// applied and no follow-up.
    async fn replay_of_known_content(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Processed, Failure<A::ResolveError>> {
        let marketplace = A::MARKETPLACE.as_str();
        tracing::warn!(
            marketplace,
            delivery = %delivery.id,
            kind = %delivery.kind,
            "replay: this content was already delivered under another id; nothing applied"
        );
        let replays = SubscriptionKey::new(A::MARKETPLACE, REPLAYS_LOG);
        let event = MarketEvent {
            id: delivery.id.clone(),
            subscription: replays.clone(),
            customer: Customer::new(CustomerKey::new(A::MARKETPLACE, REPLAYS_LOG)),
            product: String::new(),
            effective_at: now,
            kind: EventKind::Informational {
                name: "replay of content already delivered under another id".to_owned(),
            },
        };
        let mark = DeliveryMark {
            marketplace: A::MARKETPLACE,
            id: delivery.id.clone(),
            expires_at: now + DEDUPE_TTL,
        };
        let result = tokio::time::timeout(
            self.process_timeout,
            ingest_marked(&*self.ledger, &event, Some(&mark), now),
        )
        .await
        .map_err(|_| Failure::TimedOut(self.process_timeout))??;
        Ok(Processed {
            event,
            result,
            also: Vec::new(),
        })
    }

    /// Logs how many deliveries wait for `tollgate replay` and how old the
    /// oldest is, as the metric the deployment's alarms read
    /// (`metric = "pending_deliveries"`, turned into CloudWatch metrics by
    /// log filters). Emitted whenever a delivery is left pending; best
    /// effort, bounded like the record.
    async fn report_pending(&self, now: DateTime<Utc>) {
        let listed = tokio::time::timeout(
            self.record_timeout,
            self.deliveries.pending_deliveries(A::MARKETPLACE, now),
        )
        .await;
        if let Ok(Ok(pending)) = listed {
            let oldest_age_s = pending
                .iter()
                .map(|d| (now - d.received_at).num_seconds().max(0))
                .max()
                .unwrap_or(0);
            tracing::info!(
                metric = "pending_deliveries",
                marketplace = A::MARKETPLACE.as_str(),
                pending = pending.len(),
                oldest_age_s,
                "pending deliveries"
            );
        }
    }

    async fn record(&self, delivery: &Delivery) -> Result<Recorded, Failure<A::ResolveError>> {
        tokio::time::timeout(
            self.record_timeout,
            self.deliveries.record_delivery(delivery),
        )
        .await
        .map_err(|_| Failure::NotRecorded(format!("no answer within {:?}", self.record_timeout)))?
        .map_err(|e| Failure::NotRecorded(e.to_string()))
    }

    /// Resolves and applies a recorded delivery at `now`, then runs the
    /// follow-ups: what the function does after recording, and what
    /// `tollgate replay` does for a delivery left pending. The delivery is
    /// marked done in the same atomic commit that applies its (last) event.
    /// Its content is claimed first: content another delivery id holds is
    /// only logged as a replay.
    pub async fn process(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Processed, Failure<A::ResolveError>> {
        if delivery.body.is_none() {
            return Err(Failure::MissingBody(delivery.id.clone()));
        }
        if A::CONTENT_CLAIMS && self.claim_content(delivery, now).await? == Claim::Theirs {
            return self.replay_of_known_content(delivery, now).await;
        }
        let mark = DeliveryMark {
            marketplace: A::MARKETPLACE,
            id: delivery.id.clone(),
            expires_at: now + DEDUPE_TTL,
        };
        // One deadline for the whole delivery, follow-ups included: a
        // marketplace API or store that hangs in a follow-up must not hold
        // the request past the bound the marketplace is answered within.
        let deadline = tokio::time::Instant::now() + self.process_timeout;
        let work = async {
            let Resolution { events, context } = self
                .adapter
                .resolve(delivery)
                .await
                .map_err(Failure::Resolve)?;
            let last = events.len().saturating_sub(1);
            let mut also = Vec::new();
            let mut applied = None;
            for (i, mut event) in events.into_iter().enumerate() {
                // Every event of the delivery is logged under its id.
                event.id.clone_from(&delivery.id);
                let mark = (i == last).then_some(&mark);
                let result = ingest_marked(&*self.ledger, &event, mark, now).await?;
                if let Some(earlier) = applied.replace(Processed {
                    event,
                    result,
                    also: Vec::new(),
                }) {
                    also.push((earlier.event.subscription.clone(), earlier.status()));
                }
            }
            let mut processed =
                applied.ok_or_else(|| Failure::NothingResolved(delivery.id.clone()))?;
            processed.also = also;
            Ok::<_, Failure<A::ResolveError>>((processed, context))
        };
        let (processed, context) = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| Failure::TimedOut(self.process_timeout))??;
        if processed.result == Ingested::Duplicate {
            return Ok(processed);
        }
        let followed =
            tokio::time::timeout_at(deadline, self.adapter.follow_up(&context, &processed))
                .await
                .unwrap_or_else(|_| {
                    Err(FollowUpError {
                        message: format!(
                            "the follow-up did not finish within {:?} of the delivery",
                            self.process_timeout
                        ),
                        transient: true,
                    })
                });
        match followed {
            Ok(()) => Ok(processed),
            Err(error) => Err(Failure::FollowUp {
                processed: Box::new(processed),
                error,
            }),
        }
    }

    /// A redelivery of a delivery already applied, for a marketplace that
    /// redelivers until acknowledged: the state is not touched again, but
    /// the follow-ups run once more from a fresh resolution — a follow-up
    /// that failed after the commit is retried this way.
    async fn follow_up_again(&self, delivery: &Delivery) -> Result<(), Failure<A::ResolveError>> {
        let work = async {
            let Resolution { events, context } = self
                .adapter
                .resolve(delivery)
                .await
                .map_err(Failure::Resolve)?;
            let Some(mut event) = events.into_iter().last() else {
                return Ok(());
            };
            event.id.clone_from(&delivery.id);
            let processed = Processed {
                event,
                result: Ingested::Duplicate,
                also: Vec::new(),
            };
            self.adapter
                .follow_up(&context, &processed)
                .await
                .map_err(|error| Failure::FollowUp {
                    processed: Box::new(processed),
                    error,
                })
        };
        tokio::time::timeout(self.process_timeout, work)
            .await
            .map_err(|_| Failure::TimedOut(self.process_timeout))?
    }
}

/// Who may apply a delivery's content (see `Pipeline::claim_content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// This delivery's id holds the claim: apply it.
    Ours,
    /// Another delivery id holds it: this one is a replay of its content.
    Theirs,
}

/// How a delivery ended, for the adapter's reply.
#[derive(Debug)]
pub enum Handled<'a, E: ResolveFailure> {
    /// Already processed when it came again: nothing was done.
    AlreadyDone,
    Processed(&'a Processed),
    Failed(&'a Failure<E>),
}

/// The default answer: `200` with what happened, or the failure as an API
/// error whose status tells the marketplace what to do next.
pub fn default_reply<E: ResolveFailure>(
    durability: Durability,
    delivery_id: &str,
    handled: Handled<'_, E>,
) -> Result<Response, ApiError> {
    match handled {
        Handled::AlreadyDone => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "status": "duplicate", "delivery": delivery_id }),
        )),
        Handled::Processed(done) => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "status": done.status(),
                "delivery": delivery_id,
                "event": done.event.kind.name(),
                "subscription": done.event.subscription.to_string(),
                "note": done.note(),
            }),
        )),
        // A marketplace that redelivers until acknowledged would send a
        // message that can never be processed forever: acknowledge it. It
        // stays recorded (pending, with its body) for an operator.
        Handled::Failed(failure)
            if durability == Durability::Redelivered && !failure.is_transient() =>
        {
            tracing::warn!(delivery = delivery_id, error = %failure, "acknowledged without processing");
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "unprocessable",
                    "delivery": delivery_id,
                    "note": failure.to_string(),
                }),
            ))
        }
        Handled::Failed(failure) => Err(failure_to_api_error(durability, failure)),
    }
}

/// What a failure means to the marketplace, by durability mode.
pub fn failure_to_api_error<E: ResolveFailure>(
    durability: Durability,
    failure: &Failure<E>,
) -> ApiError {
    // Record-first deliveries stay pending: say who finishes them.
    let pending = match durability {
        Durability::RecordFirst => {
            "; the delivery is recorded as pending and `tollgate replay` finishes it"
        }
        Durability::Redelivered | Durability::Synchronous => "",
    };
    let answer = match failure {
        Failure::NotRecorded(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_recorded",
            "the delivery could not be recorded (storage unavailable) and nothing was applied; send it again",
        ),
        Failure::Resolve(e) if e.is_transient() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "delivery_pending",
            format!("{e}{pending}"),
        ),
        Failure::Resolve(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_payload",
            format!("{e}{pending} once the payload can be read"),
        ),
        Failure::MissingBody(_) | Failure::NothingResolved(_) => {
            ApiError::internal(failure.to_string())
        }
        Failure::Store(StoreError::Backend(_)) => {
            ApiError::internal(format!("storage failure{pending}"))
        }
        Failure::Store(_) | Failure::TimedOut(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "delivery_pending",
            format!("storage is busy or slow{pending}"),
        ),
        Failure::FollowUp { error, .. } => ApiError::new(
            if error.transient {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            },
            "follow_up_failed",
            format!("the event was applied, but {error}"),
        ),
    };
    // The answer stays short; the operator's log gets the whole failure
    // (which store call, the backend's error chain).
    match failure {
        Failure::NotRecorded(_) | Failure::Store(_) | Failure::TimedOut(_) => {
            answer.caused_by(failure)
        }
        _ => answer,
    }
}
