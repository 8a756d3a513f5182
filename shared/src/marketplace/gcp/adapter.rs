//! Google Cloud Marketplace on the ingest pipeline.
//!
//! A push is authenticated ([`super::push_auth`]), named by its `eventId`
//! (else `messageId`, else the body's hash) and recorded. Resolving it
//! fetches the entitlement (or, for an account event, looks at the account)
//! from the Procurement API — messages carry ids only — and turns Google's
//! answer into an [`Observation`], which the rules converge the stored state
//! to; the entitlement's `updateTime` orders observations, so an older
//! snapshot never overwrites a newer one. Follow-ups are decided from that
//! same fresh answer: approve an order once the account has signed up and
//! its plan is configured (reject an unconfigured plan), approve or reject a
//! requested plan change — never approve an account from a message; that
//! happens on the sign-up page.
//!
//! Pub/Sub redelivers until it gets a 2xx ([`Durability::Redelivered`]):
//! transient failures (Procurement 429/5xx, timeouts, the store) answer
//! 503; unreadable messages and permanent Procurement refusals are
//! recorded, logged and acknowledged.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::HeaderMap;

use super::notification::{self, Envelope, Notification, NotificationError, Resource};
use super::push_auth::{PushAuthError, PushVerifier};
use crate::config::{ApprovalPolicy, Catalog};
use crate::ingest::{
    Adapter, Admission, Durability, FollowUpError, Processed, Resolution, ResolveFailure,
};
use crate::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Observation,
    ObservedState, Plan, PlanTerms, Status, SubscriptionKey,
};
use crate::store::{Delivery, StoreError, Subscriptions, sha256_hex};

/// The Procurement API as the adapter and the sign-up page use it. The
/// client in [`super::procurement`] implements it; tests may script it.
#[async_trait]
pub trait Procurement: Send + Sync {
    /// `None`: Google answers 404 (deleted).
    async fn entitlement(&self, id: &str) -> Result<Option<EntitlementView>, ProcurementFailure>;
    async fn account(&self, id: &str) -> Result<Option<AccountView>, ProcurementFailure>;
    /// Every entitlement of an account (all states).
    async fn account_entitlements(
        &self,
        account_id: &str,
    ) -> Result<Vec<EntitlementView>, ProcurementFailure>;
    async fn approve_entitlement(&self, id: &str) -> Result<(), ProcurementFailure>;
    async fn reject_entitlement(&self, id: &str, reason: &str) -> Result<(), ProcurementFailure>;
    async fn approve_plan_change(
        &self,
        id: &str,
        pending_plan: &str,
    ) -> Result<(), ProcurementFailure>;
    async fn reject_plan_change(
        &self,
        id: &str,
        pending_plan: &str,
        reason: &str,
    ) -> Result<(), ProcurementFailure>;
    /// Approves the account's `signup` approval.
    async fn approve_signup(&self, account_id: &str) -> Result<(), ProcurementFailure>;
    /// One page of `entitlements.list` (`filter` in Google's syntax, `None`
    /// for every entitlement), from the previous page's token; what
    /// reconciliation walks. A port that cannot list says so.
    async fn entitlements_page(
        &self,
        _filter: Option<&str>,
        _page_token: Option<&str>,
    ) -> Result<EntitlementPage, ProcurementFailure> {
        Err(ProcurementFailure {
            message: "this Procurement port cannot list entitlements".into(),
            transient: false,
            precondition: false,
        })
    }
}

/// A page of [`Procurement::entitlements_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntitlementPage {
    pub entitlements: Vec<EntitlementView>,
    /// `None` (or Google's empty string) on the last page.
    pub next_page_token: Option<String>,
}

/// A Procurement call that failed, as the adapter needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcurementFailure {
    pub message: String,
    /// Worth retrying (429, 5xx, timeouts, credentials endpoint down).
    pub transient: bool,
    /// Google refused because of the resource's state (400
    /// `FAILED_PRECONDITION`, e.g. approving before sign-up).
    pub precondition: bool,
}

/// The parts of an `Entitlement` Tollgate acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementView {
    /// The entitlement id (last segment of `providers/{p}/entitlements/{id}`).
    pub id: String,
    pub account_id: String,
    /// Google's product id (the listing's service name).
    pub product: String,
    pub plan: String,
    pub new_pending_plan: Option<String>,
    pub state: EntitlementState,
    pub update_time: Option<DateTime<Utc>>,
    /// When the current term ends (`subscriptionEndTime`, else `offerEndTime`).
    pub term_ends_at: Option<DateTime<Utc>>,
}

/// `EntitlementState`, as far as Tollgate distinguishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntitlementState {
    ActivationRequested,
    Active,
    PendingCancellation,
    Cancelled,
    PendingPlanChange,
    PendingPlanChangeApproval,
    Suspended,
    /// A state this build does not know: not entitled.
    Other(String),
}

/// The parts of an `Account` Tollgate acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: String,
    /// The state of the `signup` approval (`PENDING`, `APPROVED`, `REJECTED`), if any.
    pub signup: Option<String>,
}

impl AccountView {
    pub fn signed_up(&self) -> bool {
        self.signup.as_deref() == Some("APPROVED")
    }
}

/// Why a recorded push could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Authentic but unreadable: recorded and acknowledged.
    #[error(transparent)]
    Unreadable(#[from] NotificationError),
    #[error("Procurement API: {0}")]
    Procurement(ProcurementFailure),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ResolveFailure for ResolveError {
    fn is_transient(&self) -> bool {
        match self {
            ResolveError::Unreadable(_) => false,
            ResolveError::Procurement(p) => p.transient,
            ResolveError::Store(s) => s.is_transient(),
        }
    }
}

/// What resolving learned, for the follow-ups.
#[derive(Debug, Clone, Default)]
pub struct GcpContext {
    pub entitlement: Option<EntitlementView>,
    pub account: Option<AccountView>,
    /// Tollgate's product for the entitlement, when configured.
    pub product: Option<String>,
}

/// The Google Cloud Marketplace adapter, built once at cold start.
pub struct GcpAdapter {
    /// `None` when push authentication is not configured: every push is
    /// refused (503) rather than trusted.
    verifier: Option<PushVerifier>,
    procurement: Arc<dyn Procurement>,
    catalog: Arc<Catalog>,
    /// Read-only: the customer of an entitlement Google no longer knows,
    /// and the subscriptions of a deleted account.
    subscriptions: Arc<dyn Subscriptions>,
}

impl GcpAdapter {
    pub fn new(
        verifier: Option<PushVerifier>,
        procurement: Arc<dyn Procurement>,
        catalog: Arc<Catalog>,
        subscriptions: Arc<dyn Subscriptions>,
    ) -> Self {
        Self {
            verifier,
            procurement,
            catalog,
            subscriptions,
        }
    }

    fn procurement_error(e: ProcurementFailure) -> ResolveError {
        ResolveError::Procurement(e)
    }

    async fn resolve_entitlement(
        &self,
        id: &str,
        event_type: &str,
        delivery: &Delivery,
    ) -> Result<Resolution<GcpContext>, ResolveError> {
        let key = SubscriptionKey::new(Marketplace::Gcp, id);
        let Some(ent) = self
            .procurement
            .entitlement(id)
            .await
            .map_err(Self::procurement_error)?
        else {
            // Gone at Google: revoke what we hold (or log it, never seen).
            let stored = self.subscriptions.get(&key).await?;
            let event = deleted_event(&key, stored.as_ref(), delivery);
            return Ok(Resolution::one(event, GcpContext::default()));
        };
        let product = self
            .catalog
            .product_for(Marketplace::Gcp, Some(&ent.product))
            .map(str::to_owned);
        // The account's sign-up decides whether an order awaits sign-up or
        // approval; only fetched when it matters.
        let account = if ent.state == EntitlementState::ActivationRequested {
            self.procurement
                .account(&ent.account_id)
                .await
                .map_err(Self::procurement_error)?
        } else {
            None
        };
        let awaiting = account.as_ref().map_or(Awaiting::Signup, |a| {
            if a.signed_up() {
                Awaiting::Approval
            } else {
                Awaiting::Signup
            }
        });
        let observation = observe(&ent, awaiting);
        let event = MarketEvent {
            id: delivery.id.clone(),
            subscription: key,
            customer: Customer::new(CustomerKey::new(Marketplace::Gcp, &ent.account_id)),
            product: product.clone().unwrap_or_else(|| ent.product.clone()),
            effective_at: ent.update_time.unwrap_or(delivery.received_at),
            kind: EventKind::Observed(observation),
        };
        tracing::info!(
            entitlement = %ent.id,
            event_type,
            state = ?ent.state,
            "entitlement fetched"
        );
        Ok(Resolution::one(
            event,
            GcpContext {
                entitlement: Some(ent),
                account,
                product,
            },
        ))
    }

    async fn resolve_account(
        &self,
        id: &str,
        event_type: &str,
        delivery: &Delivery,
    ) -> Result<Resolution<GcpContext>, ResolveError> {
        let customer = CustomerKey::new(Marketplace::Gcp, id);
        if event_type == "ACCOUNT_DELETED" {
            // Everything of the account goes; what Google still lists is
            // deleted with it, what we hold is revoked.
            let held = self.subscriptions.customer_subscriptions(&customer).await?;
            let events: Vec<MarketEvent> = held
                .iter()
                .filter(|s| s.status != Status::Cancelled)
                .map(|s| deleted_event(&s.key, Some(s), delivery))
                .collect();
            if !events.is_empty() {
                return Ok(Resolution {
                    events,
                    context: GcpContext::default(),
                });
            }
        }
        // Accounts are not subscriptions: the event is logged on the
        // account's own log and acknowledged. Approval is the sign-up page's.
        let event = MarketEvent {
            id: delivery.id.clone(),
            subscription: SubscriptionKey::new(Marketplace::Gcp, format!("_account:{id}")),
            customer: Customer::new(customer),
            product: String::new(),
            effective_at: delivery.received_at,
            kind: EventKind::Informational {
                name: event_type.to_ascii_lowercase(),
            },
        };
        Ok(Resolution::one(event, GcpContext::default()))
    }

    /// Approves or rejects what Google waits for, from its fresh answer.
    async fn decide(&self, context: &GcpContext) -> Result<FollowUpDone, ProcurementFailure> {
        match FollowUp::decide(&self.catalog, context) {
            Some(follow_up) => follow_up.execute(&*self.procurement).await,
            None => Ok(FollowUpDone::Nothing),
        }
    }
}

/// What Google waits for the provider to do about one entitlement, decided
/// from Google's fresh answer ([`FollowUp::decide`]). One decision for
/// every path that learns an entitlement's state: the push pipeline's
/// follow-up and reconciliation (which finds what a lost push would have
/// asked for). Never an account's sign-up: that is approved only on the
/// sign-up page, which the customer reaches with Google's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// `entitlements.approve`: the account signed up, the plan is offered.
    ApproveOrder { entitlement: String },
    /// `entitlements.reject`: the ordered plan is not configured.
    RejectOrder { entitlement: String, reason: String },
    /// `entitlements.approvePlanChange` to `plan`.
    ApprovePlanChange { entitlement: String, plan: String },
    /// `entitlements.rejectPlanChange`: `plan` is not configured.
    RejectPlanChange {
        entitlement: String,
        plan: String,
        reason: String,
    },
}

/// What carrying out a [`FollowUp`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpDone {
    /// Nothing was waiting for the provider.
    Nothing,
    /// Google accepted the call.
    Done,
    /// Google refused because of the resource's state (already approved,
    /// approved before sign-up…): nothing left to do now; the next message
    /// (or run) brings the new state.
    Settled,
}

impl FollowUp {
    /// What Google waits for, if anything: approve an order once the
    /// account has signed up and its plan is configured (reject an
    /// unconfigured plan), approve or reject a requested plan change; with
    /// the manual approval policy only the rejections.
    pub fn decide(catalog: &Catalog, context: &GcpContext) -> Option<FollowUp> {
        let ent = context.entitlement.as_ref()?;
        let automatic = catalog.approval(Marketplace::Gcp) == ApprovalPolicy::Automatic;
        let configured = |plan: &str| {
            context
                .product
                .as_deref()
                .and_then(|p| catalog.tier_for(Marketplace::Gcp, p, plan))
                .is_some()
        };
        let entitlement = ent.id.clone();
        match ent.state {
            EntitlementState::ActivationRequested => {
                if !context.account.as_ref().is_some_and(AccountView::signed_up) {
                    tracing::info!(entitlement = %ent.id, "order waits for sign-up");
                    return None;
                }
                if !configured(&ent.plan) {
                    let reason = format!("plan {} is not offered by this product", ent.plan);
                    return Some(FollowUp::RejectOrder {
                        entitlement,
                        reason,
                    });
                }
                automatic.then_some(FollowUp::ApproveOrder { entitlement })
            }
            EntitlementState::PendingPlanChangeApproval => {
                let plan = ent.new_pending_plan.clone()?;
                if !configured(&plan) {
                    let reason = format!("plan {plan} is not offered by this product");
                    return Some(FollowUp::RejectPlanChange {
                        entitlement,
                        plan,
                        reason,
                    });
                }
                automatic.then_some(FollowUp::ApprovePlanChange { entitlement, plan })
            }
            _ => None,
        }
    }

    /// The entitlement it is about.
    pub fn entitlement(&self) -> &str {
        match self {
            FollowUp::ApproveOrder { entitlement }
            | FollowUp::RejectOrder { entitlement, .. }
            | FollowUp::ApprovePlanChange { entitlement, .. }
            | FollowUp::RejectPlanChange { entitlement, .. } => entitlement,
        }
    }

    /// Carries it out through the Procurement API. A refusal because of
    /// the resource's state is [`FollowUpDone::Settled`], not an error, so
    /// doing it twice is harmless.
    pub async fn execute(
        &self,
        procurement: &dyn Procurement,
    ) -> Result<FollowUpDone, ProcurementFailure> {
        let id = self.entitlement();
        let result = match self {
            FollowUp::ApproveOrder { .. } => {
                tracing::info!(entitlement = %id, "approving the order");
                procurement.approve_entitlement(id).await
            }
            FollowUp::RejectOrder { reason, .. } => {
                tracing::warn!(entitlement = %id, "rejecting an order for an unconfigured plan");
                procurement.reject_entitlement(id, reason).await
            }
            FollowUp::ApprovePlanChange { plan, .. } => {
                tracing::info!(entitlement = %id, plan = %plan, "approving the plan change");
                procurement.approve_plan_change(id, plan).await
            }
            FollowUp::RejectPlanChange { plan, reason, .. } => {
                tracing::warn!(entitlement = %id, plan = %plan, "rejecting a plan change to an unconfigured plan");
                procurement.reject_plan_change(id, plan, reason).await
            }
        };
        match result {
            Ok(()) => Ok(FollowUpDone::Done),
            Err(e) if e.precondition => {
                tracing::warn!(entitlement = %id, error = %e, "Procurement refused a follow-up (precondition)");
                Ok(FollowUpDone::Settled)
            }
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Display for FollowUp {
    /// What is (or would be) done, for reports: `approve the order`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FollowUp::ApproveOrder { .. } => f.write_str("approve the order"),
            FollowUp::RejectOrder { reason, .. } => write!(f, "reject the order ({reason})"),
            FollowUp::ApprovePlanChange { plan, .. } => {
                write!(f, "approve the plan change to {plan}")
            }
            FollowUp::RejectPlanChange { plan, reason, .. } => {
                write!(f, "reject the plan change to {plan} ({reason})")
            }
        }
    }
}

/// Google's answer as an observation for the rules.
pub(crate) fn observe(ent: &EntitlementView, awaiting: Awaiting) -> Observation {
    let state = match &ent.state {
        EntitlementState::ActivationRequested => ObservedState::Requested,
        EntitlementState::Active
        | EntitlementState::PendingPlanChange
        | EntitlementState::PendingPlanChangeApproval => ObservedState::Active,
        EntitlementState::PendingCancellation => ObservedState::PendingCancellation,
        EntitlementState::Cancelled => ObservedState::Cancelled,
        EntitlementState::Suspended => ObservedState::Suspended,
        // Unknown states are not entitled, and not a reason to delete.
        EntitlementState::Other(_) => ObservedState::Suspended,
    };
    let pending_plan = match ent.state {
        EntitlementState::PendingPlanChange | EntitlementState::PendingPlanChangeApproval => {
            ent.new_pending_plan.as_deref().map(Plan::new)
        }
        _ => None,
    };
    Observation {
        state,
        terms: PlanTerms::new(Plan::new(&ent.plan)),
        awaiting: (state == ObservedState::Requested).then_some(awaiting),
        pending_plan,
        term_ends_at: ent.term_ends_at,
    }
}

/// A deletion of `key`, on the customer and plan we hold (if any).
fn deleted_event(
    key: &SubscriptionKey,
    stored: Option<&crate::model::Subscription>,
    delivery: &Delivery,
) -> MarketEvent {
    let (customer, product, plan) = match stored {
        Some(s) => (s.customer.clone(), s.product.clone(), s.plan.clone()),
        None => (
            Customer::new(CustomerKey::new(Marketplace::Gcp, "")),
            String::new(),
            Plan::new(""),
        ),
    };
    // Deletion is final: it orders after anything already applied.
    let effective_at = stored
        .and_then(|s| s.last_applied.as_ref())
        .map_or(delivery.received_at, |m| {
            m.effective_at.max(delivery.received_at)
        });
    MarketEvent {
        id: delivery.id.clone(),
        subscription: key.clone(),
        customer,
        product,
        effective_at,
        kind: EventKind::Observed(Observation {
            state: ObservedState::Deleted,
            terms: PlanTerms::new(plan),
            awaiting: None,
            pending_plan: None,
            term_ends_at: None,
        }),
    }
}

#[async_trait]
impl Adapter for GcpAdapter {
    const MARKETPLACE: Marketplace = Marketplace::Gcp;
    const DURABILITY: Durability = Durability::Redelivered;
    type Refusal = PushAuthError;
    type ResolveError = ResolveError;
    type Context = GcpContext;

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Admission, PushAuthError> {
        let verifier = self.verifier.as_ref().ok_or(PushAuthError::NotConfigured)?;
        verifier.verify(headers, now).await?;
        // Authentic from here on: even an unreadable body is recorded (under
        // its hash) and acknowledged, never refused.
        let (id, kind) = match Envelope::parse(body) {
            Ok(envelope) => {
                let kind = Notification::parse(&envelope.data)
                    .map(|n| n.event_type)
                    .ok()
                    .filter(|t| {
                        !t.is_empty() && t.len() <= 100 && t.bytes().all(|b| b.is_ascii_graphic())
                    })
                    .unwrap_or_else(|| "unreadable".to_owned());
                let id = notification::delivery_id(&envelope)
                    .unwrap_or_else(|| format!("sha256:{}", sha256_hex(body)));
                (id, kind)
            }
            Err(_) => (
                format!("sha256:{}", sha256_hex(body)),
                "unreadable".to_owned(),
            ),
        };
        Ok(Admission::Deliver { id, kind })
    }

    /// The message, not the envelope: a redelivery of the same message
    /// carries another `deliveryAttempt`.
    fn content_digest(&self, body: &[u8]) -> String {
        match Envelope::parse(body) {
            Ok(envelope) if !envelope.data.is_empty() => sha256_hex(&envelope.data),
            _ => sha256_hex(body),
        }
    }

    async fn resolve(&self, delivery: &Delivery) -> Result<Resolution<GcpContext>, ResolveError> {
        let body = delivery.body.as_deref().unwrap_or_default();
        let envelope = Envelope::parse(body)?;
        let notification = Notification::parse(&envelope.data)?;
        match &notification.resource {
            Resource::Entitlement(id) => {
                self.resolve_entitlement(id, &notification.event_type, delivery)
                    .await
            }
            Resource::Account(id) => {
                self.resolve_account(id, &notification.event_type, delivery)
                    .await
            }
        }
    }

    async fn follow_up(
        &self,
        context: &GcpContext,
        _processed: &Processed,
    ) -> Result<(), FollowUpError> {
        // A refusal because of the resource's state comes back as
        // `Settled`: recorded, logged, acknowledged; the next message
        // brings the new state.
        match self.decide(context).await {
            Ok(_) => Ok(()),
            Err(e) => Err(FollowUpError {
                transient: e.transient,
                message: e.message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The follow-up decisions against a scripted Procurement API; the
    //! whole flow against the Google stand-in is in
    //! `tests/tests/gcp_marketplace.rs`.
    use std::sync::Mutex;

    use super::*;
    use crate::ingest::Ingested;
    use crate::store::sqlite::SqliteStore;

    #[derive(Default)]
    struct Scripted {
        calls: Mutex<Vec<String>>,
        answer: Mutex<Option<ProcurementFailure>>,
    }

    impl Scripted {
        fn record(&self, call: String) -> Result<(), ProcurementFailure> {
            self.calls.lock().unwrap().push(call);
            match self.answer.lock().unwrap().clone() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    #[async_trait]
    impl Procurement for Scripted {
        async fn entitlement(
            &self,
            _: &str,
        ) -> Result<Option<EntitlementView>, ProcurementFailure> {
            Ok(None)
        }
        async fn account(&self, _: &str) -> Result<Option<AccountView>, ProcurementFailure> {
            Ok(None)
        }
        async fn account_entitlements(
            &self,
            _: &str,
        ) -> Result<Vec<EntitlementView>, ProcurementFailure> {
            Ok(vec![])
        }
        async fn approve_entitlement(&self, id: &str) -> Result<(), ProcurementFailure> {
            self.record(format!("approve {id}"))
        }
        async fn reject_entitlement(&self, id: &str, _: &str) -> Result<(), ProcurementFailure> {
            self.record(format!("reject {id}"))
        }
        async fn approve_plan_change(
            &self,
            id: &str,
            plan: &str,
        ) -> Result<(), ProcurementFailure> {
            self.record(format!("approvePlanChange {id} {plan}"))
        }
        async fn reject_plan_change(
            &self,
            id: &str,
            plan: &str,
            _: &str,
        ) -> Result<(), ProcurementFailure> {
            self.record(format!("rejectPlanChange {id} {plan}"))
        }
        async fn approve_signup(&self, id: &str) -> Result<(), ProcurementFailure> {
            self.record(format!("approveSignup {id}"))
        }
    }

    const CONFIG: &str = r#"
[products.ci.tiers.team]
[products.ci.plans.gcp]
"team-monthly" = "team"
[marketplaces.gcp.products]
"ci.example" = "ci"
"#;

    fn adapter(procurement: Arc<Scripted>, config: &str) -> GcpAdapter {
        let catalog = Catalog::parse(config, std::path::Path::new("tollgate.toml")).unwrap();
        GcpAdapter::new(
            None,
            procurement,
            Arc::new(catalog),
            Arc::new(SqliteStore::open_in_memory().unwrap()),
        )
    }

    fn context(state: EntitlementState, plan: &str, signed_up: bool) -> GcpContext {
        GcpContext {
            entitlement: Some(EntitlementView {
                id: "e1".into(),
                account_id: "a1".into(),
                product: "ci.example".into(),
                plan: plan.into(),
                new_pending_plan: Some("team-monthly".into()),
                state,
                update_time: None,
                term_ends_at: None,
            }),
            account: Some(AccountView {
                id: "a1".into(),
                signup: Some(if signed_up { "APPROVED" } else { "PENDING" }.into()),
            }),
            product: Some("ci".into()),
        }
    }

    fn processed() -> Processed {
        Processed {
            event: MarketEvent {
                id: "m".into(),
                subscription: SubscriptionKey::new(Marketplace::Gcp, "e1"),
                customer: Customer::new(CustomerKey::new(Marketplace::Gcp, "a1")),
                product: "ci".into(),
                effective_at: DateTime::UNIX_EPOCH,
                kind: EventKind::Approved,
            },
            result: Ingested::Duplicate,
            also: vec![],
        }
    }

    async fn follow_up(
        p: &Arc<Scripted>,
        config: &str,
        ctx: GcpContext,
    ) -> Result<(), FollowUpError> {
        adapter(Arc::clone(p), config)
            .follow_up(&ctx, &processed())
            .await
    }

    #[tokio::test]
    async fn an_order_is_approved_only_after_sign_up() {
        let p = Arc::new(Scripted::default());
        follow_up(
            &p,
            CONFIG,
            context(EntitlementState::ActivationRequested, "team-monthly", false),
        )
        .await
        .unwrap();
        assert!(p.calls.lock().unwrap().is_empty(), "never before sign-up");
        follow_up(
            &p,
            CONFIG,
            context(EntitlementState::ActivationRequested, "team-monthly", true),
        )
        .await
        .unwrap();
        assert_eq!(*p.calls.lock().unwrap(), ["approve e1"]);
    }

    #[tokio::test]
    async fn manual_approval_leaves_orders_to_the_vendor_but_still_rejects_unknown_plans() {
        let manual = CONFIG.replace(
            "[marketplaces.gcp.products]",
            "[marketplaces.gcp]\napproval = \"manual\"\n[marketplaces.gcp.products]",
        );
        let p = Arc::new(Scripted::default());
        follow_up(
            &p,
            &manual,
            context(EntitlementState::ActivationRequested, "team-monthly", true),
        )
        .await
        .unwrap();
        assert!(p.calls.lock().unwrap().is_empty());
        follow_up(
            &p,
            &manual,
            context(EntitlementState::ActivationRequested, "gold", true),
        )
        .await
        .unwrap();
        assert_eq!(*p.calls.lock().unwrap(), ["reject e1"]);
    }

    #[tokio::test]
    async fn a_requested_plan_change_is_approved_with_the_pending_plan() {
        let p = Arc::new(Scripted::default());
        follow_up(
            &p,
            CONFIG,
            context(
                EntitlementState::PendingPlanChangeApproval,
                "team-monthly",
                true,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            *p.calls.lock().unwrap(),
            ["approvePlanChange e1 team-monthly"]
        );
    }

    #[tokio::test]
    async fn a_failed_precondition_is_acknowledged_a_transient_failure_is_not() {
        let p = Arc::new(Scripted::default());
        *p.answer.lock().unwrap() = Some(ProcurementFailure {
            message: "Precondition check failed.".into(),
            transient: false,
            precondition: true,
        });
        let ctx = || context(EntitlementState::ActivationRequested, "team-monthly", true);
        assert_eq!(follow_up(&p, CONFIG, ctx()).await, Ok(()));
        *p.answer.lock().unwrap() = Some(ProcurementFailure {
            message: "503".into(),
            transient: true,
            precondition: false,
        });
        let err = follow_up(&p, CONFIG, ctx()).await.unwrap_err();
        assert!(err.transient);
    }
}
