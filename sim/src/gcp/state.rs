//! The procurement records the stand-in keeps (accounts and entitlements)
//! and how they move. Each change returns the notifications Marketplace
//! would publish for it; the routes and the scenario methods share these
//! transitions, so an entitlement moves the same way whichever side acts.
//!
//! The transitions follow the `AccountState`, `Approval.State` and
//! `EntitlementState` descriptions of the Procurement API's discovery
//! document (`fixtures/gcp/`) and Marketplace's notification table
//! (<https://cloud.google.com/marketplace/docs/partners/integrated-saas/manage-entitlements>).
//! Where Google documents no outcome, the stand-in picks a strict one and
//! says so on the method.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ids::{rfc3339, uuid};

/// The name of the one approval Marketplace puts on a SaaS account.
pub const SIGNUP_APPROVAL: &str = "signup";

/// What the vendor sells on Marketplace: the identifiers Google would
/// assign, the audience of sign-up tokens, and how billing terms behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// `providers/{provider_id}`: usually the vendor's Marketplace project id.
    pub provider_id: String,
    /// `Entitlement.productExternalName`: the listing's service name.
    pub product_external_name: String,
    /// `aud` of the sign-up JWT: the product's domain as set on the listing.
    pub signup_audience: String,
    /// Length of a billing term: what [`super::GcpSim::end_term`] ends.
    pub term: Duration,
    /// When an approved plan change takes effect.
    pub plan_change: PlanChangeTiming,
}

impl Listing {
    pub fn new(
        provider_id: impl Into<String>,
        product_external_name: impl Into<String>,
        signup_audience: impl Into<String>,
    ) -> Self {
        Self {
            provider_id: provider_id.into(),
            product_external_name: product_external_name.into(),
            signup_audience: signup_audience.into(),
            term: Duration::days(30),
            plan_change: PlanChangeTiming::Immediate,
        }
    }

    /// The listing of `tollgate.example.toml`: provider `acme-public`,
    /// product `acme-ci.endpoints.acme-public.cloud.goog`, sign-up audience
    /// `acme-ci.example.com`, monthly terms.
    pub fn demo() -> Self {
        Self::new(
            "acme-public",
            "acme-ci.endpoints.acme-public.cloud.goog",
            "acme-ci.example.com",
        )
    }

    pub fn with_plan_change(mut self, timing: PlanChangeTiming) -> Self {
        self.plan_change = timing;
        self
    }

    pub fn with_term(mut self, term: Duration) -> Self {
        self.term = term;
        self
    }

    pub(crate) fn account_name(&self, id: &str) -> String {
        format!("providers/{}/accounts/{id}", self.provider_id)
    }

    pub(crate) fn entitlement_name(&self, id: &str) -> String {
        format!("providers/{}/entitlements/{id}", self.provider_id)
    }
}

/// What approving a plan change does (Google: "either ... ACTIVE or ...
/// PENDING_PLAN_CHANGE depending on whether current plan requires that the
/// billing cycle completes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChangeTiming {
    /// `ENTITLEMENT_ACTIVE` on the new plan at once (`ENTITLEMENT_PLAN_CHANGED`).
    Immediate,
    /// `ENTITLEMENT_PENDING_PLAN_CHANGE` until [`super::GcpSim::end_term`].
    AtTermEnd,
}

/// `Approval.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "PENDING",
            ApprovalState::Approved => "APPROVED",
            ApprovalState::Rejected => "REJECTED",
        }
    }
}

/// `Entitlement.state` (`ENTITLEMENT_STATE_UNSPECIFIED` is never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntitlementState {
    ActivationRequested,
    Active,
    PendingCancellation,
    Cancelled,
    PendingPlanChange,
    PendingPlanChangeApproval,
    Suspended,
}

impl EntitlementState {
    pub const ALL: [EntitlementState; 7] = [
        EntitlementState::ActivationRequested,
        EntitlementState::Active,
        EntitlementState::PendingCancellation,
        EntitlementState::Cancelled,
        EntitlementState::PendingPlanChange,
        EntitlementState::PendingPlanChangeApproval,
        EntitlementState::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementState::ActivationRequested => "ENTITLEMENT_ACTIVATION_REQUESTED",
            EntitlementState::Active => "ENTITLEMENT_ACTIVE",
            EntitlementState::PendingCancellation => "ENTITLEMENT_PENDING_CANCELLATION",
            EntitlementState::Cancelled => "ENTITLEMENT_CANCELLED",
            EntitlementState::PendingPlanChange => "ENTITLEMENT_PENDING_PLAN_CHANGE",
            EntitlementState::PendingPlanChangeApproval => {
                "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
            }
            EntitlementState::Suspended => "ENTITLEMENT_SUSPENDED",
        }
    }
}

impl std::fmt::Display for EntitlementState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer's procurement account (`Account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    /// The `signup` approval: `Pending` until the vendor approves it.
    pub signup: ApprovalState,
    pub signup_reason: Option<String>,
    pub signup_updated: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A customer's order of a plan (`Entitlement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub id: String,
    pub account_id: String,
    pub plan: String,
    /// The plan a pending change moves to (`newPendingPlan`).
    pub new_pending_plan: Option<String>,
    pub state: EntitlementState,
    /// The private offer it was bought through, if any.
    pub offer: Option<String>,
    pub order_id: String,
    pub message_to_user: Option<String>,
    pub cancellation_reason: Option<String>,
    /// The end of the current term (`offerEndTime` once approved).
    pub term_end: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The notification types of Marketplace's table, as `eventType` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Deprecated by Google (accounts are now created active); never
    /// published by the stand-in, listed for completeness.
    AccountCreationRequested,
    AccountActive,
    AccountDeleted,
    EntitlementCreationRequested,
    EntitlementOfferAccepted,
    EntitlementActive,
    EntitlementPlanChangeRequested,
    EntitlementPlanChanged,
    EntitlementPlanChangeCancelled,
    EntitlementPendingCancellation,
    EntitlementCancellationReverted,
    EntitlementCancelling,
    EntitlementCancelled,
    EntitlementDeleted,
    EntitlementRenewed,
    EntitlementOfferEnded,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::AccountCreationRequested,
        EventType::AccountActive,
        EventType::AccountDeleted,
        EventType::EntitlementCreationRequested,
        EventType::EntitlementOfferAccepted,
        EventType::EntitlementActive,
        EventType::EntitlementPlanChangeRequested,
        EventType::EntitlementPlanChanged,
        EventType::EntitlementPlanChangeCancelled,
        EventType::EntitlementPendingCancellation,
        EventType::EntitlementCancellationReverted,
        EventType::EntitlementCancelling,
        EventType::EntitlementCancelled,
        EventType::EntitlementDeleted,
        EventType::EntitlementRenewed,
        EventType::EntitlementOfferEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AccountCreationRequested => "ACCOUNT_CREATION_REQUESTED",
            EventType::AccountActive => "ACCOUNT_ACTIVE",
            EventType::AccountDeleted => "ACCOUNT_DELETED",
            EventType::EntitlementCreationRequested => "ENTITLEMENT_CREATION_REQUESTED",
            EventType::EntitlementOfferAccepted => "ENTITLEMENT_OFFER_ACCEPTED",
            EventType::EntitlementActive => "ENTITLEMENT_ACTIVE",
            EventType::EntitlementPlanChangeRequested => "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
            EventType::EntitlementPlanChanged => "ENTITLEMENT_PLAN_CHANGED",
            EventType::EntitlementPlanChangeCancelled => "ENTITLEMENT_PLAN_CHANGE_CANCELLED",
            EventType::EntitlementPendingCancellation => "ENTITLEMENT_PENDING_CANCELLATION",
            EventType::EntitlementCancellationReverted => "ENTITLEMENT_CANCELLATION_REVERTED",
            EventType::EntitlementCancelling => "ENTITLEMENT_CANCELLING",
            EventType::EntitlementCancelled => "ENTITLEMENT_CANCELLED",
            EventType::EntitlementDeleted => "ENTITLEMENT_DELETED",
            EventType::EntitlementRenewed => "ENTITLEMENT_RENEWED",
            EventType::EntitlementOfferEnded => "ENTITLEMENT_OFFER_ENDED",
        }
    }

    pub fn is_account(self) -> bool {
        matches!(
            self,
            EventType::AccountCreationRequested
                | EventType::AccountActive
                | EventType::AccountDeleted
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a Marketplace Pub/Sub message carries in `message.data` (base64 of
/// this JSON): ids, never state — the receiver reads the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event_id: String,
    /// A [`EventType`] name, or anything else to test unknown types.
    pub event_type: String,
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<EntitlementRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    pub id: String,
    pub update_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementRef {
    pub id: String,
    pub update_time: String,
    /// Plan-change requests and offer acceptances name the new plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_offer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Notification {
    /// `eventId`s observed from Marketplace embed the event type before a UUID.
    pub fn account(provider_id: &str, event: EventType, account: &Account) -> Self {
        Self {
            event_id: format!("{}-{}", event.as_str(), uuid()),
            event_type: event.as_str().to_owned(),
            provider_id: provider_id.to_owned(),
            account: Some(AccountRef {
                id: account.id.clone(),
                update_time: rfc3339(account.updated),
            }),
            entitlement: None,
        }
    }

    pub fn entitlement(provider_id: &str, event: EventType, entitlement: &Entitlement) -> Self {
        Self {
            event_id: format!("{}-{}", event.as_str(), uuid()),
            event_type: event.as_str().to_owned(),
            provider_id: provider_id.to_owned(),
            account: None,
            entitlement: Some(EntitlementRef {
                id: entitlement.id.clone(),
                update_time: rfc3339(entitlement.updated),
                ..EntitlementRef::default()
            }),
        }
    }

    fn with_new_plan(mut self, plan: &str) -> Self {
        if let Some(e) = &mut self.entitlement {
            e.new_plan = Some(plan.to_owned());
        }
        self
    }
}

/// Why a change was refused, before it is turned into Google's error (API)
/// or a [`super::ScenarioError`] (scenario methods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 404 `NOT_FOUND`.
    NotFound,
    /// 400 `FAILED_PRECONDITION` "Precondition check failed." — the state
    /// does not allow it (`detail` says why, for scenario errors and logs).
    Precondition(String),
    /// 400 `INVALID_ARGUMENT` with this message.
    Invalid(String),
}

fn precondition(e: &Entitlement, action: &str) -> Refusal {
    Refusal::Precondition(format!(
        "cannot {action} entitlement {} in state {}",
        e.id, e.state
    ))
}

/// Accounts and entitlements, in creation order (the order lists use).
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub accounts: Vec<Account>,
    pub entitlements: Vec<Entitlement>,
}

type Changed = Result<Vec<Notification>, Refusal>;

impl Records {
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn entitlement(&self, id: &str) -> Option<&Entitlement> {
        self.entitlements.iter().find(|e| e.id == id)
    }

    fn account_mut(&mut self, id: &str) -> Result<&mut Account, Refusal> {
        self.accounts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(Refusal::NotFound)
    }

    fn entitlement_mut(&mut self, id: &str) -> Result<&mut Entitlement, Refusal> {
        self.entitlements
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(Refusal::NotFound)
    }

    // ---------------------------------------------------------- customer --

    /// The customer orders `plan` (through a private offer when
    /// `private_offer`): a new account first if `account_id` has none
    /// (`ACCOUNT_ACTIVE`, sign-up pending), then an entitlement awaiting
    /// the vendor's approval (`ENTITLEMENT_CREATION_REQUESTED`, or
    /// `ENTITLEMENT_OFFER_ACCEPTED` with `newPlan`/`newOffer`/`orderId`).
    pub fn order(
        &mut self,
        listing: &Listing,
        account_id: &str,
        plan: &str,
        private_offer: bool,
        now: DateTime<Utc>,
    ) -> Result<(String, Vec<Notification>), Refusal> {
        if account_id.is_empty() || account_id.contains('/') || plan.is_empty() {
            return Err(Refusal::Invalid(
                "account id and plan must be non-empty (and the id has no `/`)".into(),
            ));
        }
        let mut out = Vec::new();
        if self.account(account_id).is_none() {
            let account = Account {
                id: account_id.to_owned(),
                signup: ApprovalState::Pending,
                signup_reason: None,
                signup_updated: now,
                created: now,
                updated: now,
            };
            out.push(Notification::account(
                &listing.provider_id,
                EventType::AccountActive,
                &account,
            ));
            self.accounts.push(account);
        }
        let id = uuid();
        let offer = private_offer.then(|| {
            format!(
                "projects/{}/services/{}/privateOffers/{}",
                listing.provider_id,
                listing.product_external_name,
                uuid()
            )
        });
        let entitlement = Entitlement {
            // Observed on Marketplace: the order id equals the entitlement id.
            order_id: id.clone(),
            id,
            account_id: account_id.to_owned(),
            plan: plan.to_owned(),
            new_pending_plan: None,
            state: EntitlementState::ActivationRequested,
            offer: offer.clone(),
            message_to_user: None,
            cancellation_reason: None,
            term_end: now + listing.term,
            created: now,
            updated: now,
        };
        let notification = if let Some(offer) = offer {
            let mut n = Notification::entitlement(
                &listing.provider_id,
                EventType::EntitlementOfferAccepted,
                &entitlement,
            )
            .with_new_plan(plan);
            if let Some(r) = &mut n.entitlement {
                r.new_product = Some(offer.clone());
                r.new_offer = Some(offer);
                r.order_id = Some(entitlement.order_id.clone());
            }
            n
        } else {
            Notification::entitlement(
                &listing.provider_id,
                EventType::EntitlementCreationRequested,
                &entitlement,
            )
        };
        out.push(notification);
        let id = entitlement.id.clone();
        self.entitlements.push(entitlement);
        Ok((id, out))
    }

    /// The customer asks for another plan: `ENTITLEMENT_PLAN_CHANGE_REQUESTED`
    /// with `newPlan`; the entitlement waits in
    /// `ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL` with `newPendingPlan`.
    pub fn request_plan_change(
        &mut self,
        listing: &Listing,
        id: &str,
        plan: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if e.state != EntitlementState::Active {
            return Err(precondition(e, "request a plan change on"));
        }
        if plan.is_empty() || plan == e.plan {
            return Err(Refusal::Invalid(format!(
                "the new plan must differ from `{}`",
                e.plan
            )));
        }
        set_state(e, EntitlementState::PendingPlanChangeApproval, now);
        e.new_pending_plan = Some(plan.to_owned());
        Ok(vec![
            Notification::entitlement(
                &listing.provider_id,
                EventType::EntitlementPlanChangeRequested,
                e,
            )
            .with_new_plan(plan),
        ])
    }

    /// The customer withdraws a pending plan change:
    /// `ENTITLEMENT_PLAN_CHANGE_CANCELLED`, active on the old plan.
    pub fn cancel_plan_change(
        &mut self,
        listing: &Listing,
        id: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if !matches!(
            e.state,
            EntitlementState::PendingPlanChangeApproval | EntitlementState::PendingPlanChange
        ) {
            return Err(precondition(e, "cancel the plan change of"));
        }
        set_state(e, EntitlementState::Active, now);
        e.new_pending_plan = None;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementPlanChangeCancelled,
            e,
        )])
    }

    /// The customer cancels at the end of the term:
    /// `ENTITLEMENT_PENDING_CANCELLATION` (a pending plan change is dropped).
    pub fn cancel(&mut self, listing: &Listing, id: &str, now: DateTime<Utc>) -> Changed {
        let e = self.entitlement_mut(id)?;
        if !matches!(
            e.state,
            EntitlementState::Active
                | EntitlementState::PendingPlanChange
                | EntitlementState::PendingPlanChangeApproval
        ) {
            return Err(precondition(e, "cancel"));
        }
        set_state(e, EntitlementState::PendingCancellation, now);
        e.new_pending_plan = None;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementPendingCancellation,
            e,
        )])
    }

    /// The customer takes the cancellation back before the term ends:
    /// `ENTITLEMENT_CANCELLATION_REVERTED`, active again.
    pub fn revert_cancellation(
        &mut self,
        listing: &Listing,
        id: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if e.state != EntitlementState::PendingCancellation {
            return Err(precondition(e, "revert the cancellation of"));
        }
        set_state(e, EntitlementState::Active, now);
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementCancellationReverted,
            e,
        )])
    }

    /// The current term ends. Pending cancellation → `ENTITLEMENT_CANCELLING`
    /// then `ENTITLEMENT_CANCELLED` (`cancellationReason` `user-cancelled`);
    /// pending plan change → the new plan applies (`ENTITLEMENT_PLAN_CHANGED`)
    /// for a new term; active (or awaiting a plan-change approval) → renewed
    /// for another term (`ENTITLEMENT_RENEWED`).
    pub fn end_term(&mut self, listing: &Listing, id: &str, now: DateTime<Utc>) -> Changed {
        let provider = &listing.provider_id;
        let e = self.entitlement_mut(id)?;
        match e.state {
            EntitlementState::PendingCancellation => {
                let cancelling =
                    Notification::entitlement(provider, EventType::EntitlementCancelling, e);
                set_state(e, EntitlementState::Cancelled, now);
                e.cancellation_reason = Some("user-cancelled".into());
                e.term_end = now;
                Ok(vec![
                    cancelling,
                    Notification::entitlement(provider, EventType::EntitlementCancelled, e),
                ])
            }
            EntitlementState::PendingPlanChange => {
                set_state(e, EntitlementState::Active, now);
                if let Some(plan) = e.new_pending_plan.take() {
                    e.plan = plan;
                }
                e.term_end = now + listing.term;
                Ok(vec![Notification::entitlement(
                    provider,
                    EventType::EntitlementPlanChanged,
                    e,
                )])
            }
            EntitlementState::Active | EntitlementState::PendingPlanChangeApproval => {
                touch(e, now);
                e.term_end = e.term_end.max(now) + listing.term;
                Ok(vec![Notification::entitlement(
                    provider,
                    EventType::EntitlementRenewed,
                    e,
                )])
            }
            _ => Err(precondition(e, "end the term of")),
        }
    }

    /// A private offer's term ends and the entitlement goes on at list
    /// price: `ENTITLEMENT_OFFER_ENDED`, state unchanged.
    pub fn end_offer(&mut self, listing: &Listing, id: &str, now: DateTime<Utc>) -> Changed {
        let e = self.entitlement_mut(id)?;
        if matches!(
            e.state,
            EntitlementState::ActivationRequested | EntitlementState::Cancelled
        ) {
            return Err(precondition(e, "end the offer of"));
        }
        touch(e, now);
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementOfferEnded,
            e,
        )])
    }

    /// Cancelled at once (billing disabled, account closed...):
    /// `ENTITLEMENT_CANCELLED` with `reason` as `cancellationReason`.
    pub fn cancel_now(
        &mut self,
        listing: &Listing,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if e.state == EntitlementState::Cancelled {
            return Err(precondition(e, "cancel"));
        }
        set_state(e, EntitlementState::Cancelled, now);
        e.new_pending_plan = None;
        e.cancellation_reason = Some(reason.to_owned());
        e.term_end = now;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementCancelled,
            e,
        )])
    }

    /// Marketplace deletes a cancelled entitlement: `ENTITLEMENT_DELETED`,
    /// and `GET` answers 404 from then on.
    pub fn delete_entitlement(
        &mut self,
        listing: &Listing,
        id: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if e.state != EntitlementState::Cancelled {
            return Err(precondition(e, "delete"));
        }
        touch(e, now);
        let n = Notification::entitlement(&listing.provider_id, EventType::EntitlementDeleted, e);
        self.entitlements.retain(|e| e.id != id);
        Ok(vec![n])
    }

    /// The account is deleted "from another API": `ACCOUNT_DELETED`, 404
    /// afterwards. Its entitlements must all be cancelled (or deleted) first.
    pub fn delete_account(&mut self, listing: &Listing, id: &str, now: DateTime<Utc>) -> Changed {
        self.account(id).ok_or(Refusal::NotFound)?;
        if let Some(live) = self
            .entitlements
            .iter()
            .find(|e| e.account_id == id && e.state != EntitlementState::Cancelled)
        {
            return Err(Refusal::Precondition(format!(
                "account {id} still has entitlement {} in state {}",
                live.id, live.state
            )));
        }
        let account = self.account_mut(id)?;
        account.updated = now;
        let n = Notification::account(&listing.provider_id, EventType::AccountDeleted, account);
        self.accounts.retain(|a| a.id != id);
        Ok(vec![n])
    }

    // ---------------------------------------------------------- provider --

    /// `accounts.approve`. `approvalName` absent means the only approval,
    /// `signup`. Approving an approved account is refused as a failed
    /// precondition (Google documents no outcome; the strict one makes the
    /// caller check state first).
    pub fn approve_account(
        &mut self,
        id: &str,
        approval: Option<&str>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Changed {
        let account = self.account_mut(id)?;
        check_approval_name(approval)?;
        if account.signup == ApprovalState::Approved {
            return Err(Refusal::Precondition(format!(
                "account {id}'s signup approval is already APPROVED"
            )));
        }
        account.signup = ApprovalState::Approved;
        account.signup_reason = reason.map(|r| truncate(r, 256));
        account.signup_updated = now;
        account.updated = now;
        Ok(Vec::new())
    }

    /// `accounts.reject`: a pending sign-up is rejected (a rejected one may
    /// still be approved later, as Google documents).
    pub fn reject_account(
        &mut self,
        id: &str,
        approval: Option<&str>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Changed {
        let account = self.account_mut(id)?;
        check_approval_name(approval)?;
        if account.signup != ApprovalState::Pending {
            return Err(Refusal::Precondition(format!(
                "account {id}'s signup approval is {}",
                account.signup.as_str()
            )));
        }
        account.signup = ApprovalState::Rejected;
        account.signup_reason = reason.map(|r| truncate(r, 256));
        account.signup_updated = now;
        account.updated = now;
        Ok(Vec::new())
    }

    /// `accounts.reset`: the sign-up is pending again and every entitlement
    /// of the account is cancelled, silently (no notification, as Google's
    /// own reset tool expects).
    pub fn reset_account(&mut self, id: &str, now: DateTime<Utc>) -> Changed {
        let account = self.account_mut(id)?;
        account.signup = ApprovalState::Pending;
        account.signup_reason = None;
        account.signup_updated = now;
        account.updated = now;
        for e in self.entitlements.iter_mut().filter(|e| e.account_id == id) {
            if e.state != EntitlementState::Cancelled {
                set_state(e, EntitlementState::Cancelled, now);
                e.new_pending_plan = None;
                e.cancellation_reason = Some("unknown".into());
                e.term_end = now;
            }
        }
        Ok(Vec::new())
    }

    /// `entitlements.approve`: only from `ENTITLEMENT_ACTIVATION_REQUESTED`
    /// and only once the account's `signup` approval is `APPROVED`
    /// (otherwise 400 FAILED_PRECONDITION, as Google answers). Active at
    /// once, for a first term: `ENTITLEMENT_ACTIVE`.
    pub fn approve_entitlement(
        &mut self,
        listing: &Listing,
        id: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement(id).ok_or(Refusal::NotFound)?;
        if e.state != EntitlementState::ActivationRequested {
            return Err(precondition(e, "approve"));
        }
        let signup = self.account(&e.account_id).map(|a| a.signup);
        if signup != Some(ApprovalState::Approved) {
            return Err(Refusal::Precondition(format!(
                "account {}'s signup approval is not APPROVED",
                e.account_id
            )));
        }
        let e = self.entitlement_mut(id)?;
        set_state(e, EntitlementState::Active, now);
        e.term_end = now + listing.term;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementActive,
            e,
        )])
    }

    /// `entitlements.reject`: "If the provider does not approve, the
    /// entitlement is removed" — here it is cancelled (`ENTITLEMENT_CANCELLED`)
    /// and may then be deleted.
    pub fn reject_entitlement(
        &mut self,
        listing: &Listing,
        id: &str,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.entitlement_mut(id)?;
        if e.state != EntitlementState::ActivationRequested {
            return Err(precondition(e, "reject"));
        }
        set_state(e, EntitlementState::Cancelled, now);
        e.cancellation_reason = Some("unknown".into());
        e.term_end = now;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementCancelled,
            e,
        )])
    }

    fn pending_change<'a>(
        &'a mut self,
        id: &str,
        pending_plan_name: Option<&str>,
        action: &str,
    ) -> Result<&'a mut Entitlement, Refusal> {
        let Some(name) = pending_plan_name.filter(|n| !n.is_empty()) else {
            return Err(Refusal::Invalid("pendingPlanName is required.".into()));
        };
        let e = self.entitlement_mut(id)?;
        if e.state != EntitlementState::PendingPlanChangeApproval {
            return Err(precondition(e, action));
        }
        if e.new_pending_plan.as_deref() != Some(name) {
            return Err(Refusal::Precondition(format!(
                "pendingPlanName `{name}` is not the pending plan of entitlement {id}"
            )));
        }
        Ok(e)
    }

    /// `entitlements.approvePlanChange` with the right `pendingPlanName`:
    /// the new plan applies now (`ENTITLEMENT_PLAN_CHANGED`) or at the end of
    /// the term (`ENTITLEMENT_PENDING_PLAN_CHANGE`), per [`PlanChangeTiming`].
    pub fn approve_plan_change(
        &mut self,
        listing: &Listing,
        id: &str,
        pending_plan_name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.pending_change(id, pending_plan_name, "approve the plan change of")?;
        match listing.plan_change {
            PlanChangeTiming::Immediate => {
                set_state(e, EntitlementState::Active, now);
                if let Some(plan) = e.new_pending_plan.take() {
                    e.plan = plan;
                }
                Ok(vec![Notification::entitlement(
                    &listing.provider_id,
                    EventType::EntitlementPlanChanged,
                    e,
                )])
            }
            PlanChangeTiming::AtTermEnd => {
                set_state(e, EntitlementState::PendingPlanChange, now);
                Ok(Vec::new())
            }
        }
    }

    /// `entitlements.rejectPlanChange`: active on the old plan,
    /// `ENTITLEMENT_PLAN_CHANGE_CANCELLED`.
    pub fn reject_plan_change(
        &mut self,
        listing: &Listing,
        id: &str,
        pending_plan_name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Changed {
        let e = self.pending_change(id, pending_plan_name, "reject the plan change of")?;
        set_state(e, EntitlementState::Active, now);
        e.new_pending_plan = None;
        Ok(vec![Notification::entitlement(
            &listing.provider_id,
            EventType::EntitlementPlanChangeCancelled,
            e,
        )])
    }

    /// `entitlements.patch`: `messageToUser` is the only field a provider
    /// writes, and only while the customer waits for the provider.
    pub fn patch_entitlement(
        &mut self,
        id: &str,
        update_mask: &[String],
        body: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let e = self.entitlement_mut(id)?;
        if update_mask.is_empty() {
            return Err(Refusal::Invalid("updateMask is required.".into()));
        }
        for path in update_mask {
            if path != "messageToUser" && path != "message_to_user" {
                return Err(Refusal::Invalid(format!(
                    "Invalid update mask path: `{path}` cannot be updated."
                )));
            }
        }
        if !matches!(
            e.state,
            EntitlementState::ActivationRequested | EntitlementState::PendingPlanChangeApproval
        ) {
            return Err(precondition(e, "set messageToUser on"));
        }
        let message = match body.get("messageToUser") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
            Some(_) => {
                return Err(Refusal::Invalid(
                    "Invalid value at 'entitlement.message_to_user': expected a string.".into(),
                ));
            }
        };
        e.message_to_user = message;
        e.updated = now;
        Ok(())
    }
}

fn check_approval_name(name: Option<&str>) -> Result<(), Refusal> {
    match name {
        None | Some("") | Some(SIGNUP_APPROVAL) => Ok(()),
        Some(other) => Err(Refusal::Invalid(format!(
            "Approval `{other}` does not exist on this account."
        ))),
    }
}

/// A state change: `updateTime` moves and `messageToUser` is cleared ("This
/// field is cleared automatically when the entitlement state changes").
fn set_state(e: &mut Entitlement, state: EntitlementState, now: DateTime<Utc>) {
    if e.state != state {
        e.message_to_user = None;
    }
    e.state = state;
    e.updated = now;
}

fn touch(e: &mut Entitlement, now: DateTime<Utc>) {
    e.updated = now;
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

// ------------------------------------------------------------- rendering --

/// The `Account` resource.
pub(crate) fn account_json(listing: &Listing, a: &Account) -> Value {
    let mut approval = Map::new();
    approval.insert("name".into(), json!(SIGNUP_APPROVAL));
    approval.insert("state".into(), json!(a.signup.as_str()));
    if let Some(reason) = &a.signup_reason {
        approval.insert("reason".into(), json!(reason));
    }
    approval.insert("updateTime".into(), json!(rfc3339(a.signup_updated)));
    json!({
        "name": listing.account_name(&a.id),
        "provider": listing.provider_id,
        "state": "ACCOUNT_ACTIVE",
        "approvals": [approval],
        "createTime": rfc3339(a.created),
        "updateTime": rfc3339(a.updated),
    })
}

/// The `Entitlement` resource. Which of the offer and pending-change fields
/// appear in which state follows their descriptions in the discovery
/// document.
pub(crate) fn entitlement_json(listing: &Listing, e: &Entitlement) -> Value {
    use EntitlementState as S;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("name", json!(listing.entitlement_name(&e.id)));
    put("account", json!(listing.account_name(&e.account_id)));
    put("provider", json!(listing.provider_id));
    // Deprecated, still sent by Google; same value as productExternalName.
    put("product", json!(listing.product_external_name));
    put("productExternalName", json!(listing.product_external_name));
    put("plan", json!(e.plan));
    put("state", json!(e.state.as_str()));
    put("orderId", json!(e.order_id));
    if let Some(offer) = &e.offer {
        put("offer", json!(offer));
    }
    let in_term = matches!(
        e.state,
        S::Active | S::PendingCancellation | S::PendingPlanChange | S::PendingPlanChangeApproval
    );
    if in_term || (e.state == S::Cancelled && e.offer.is_some()) {
        put("offerEndTime", json!(rfc3339(e.term_end)));
    }
    if matches!(e.state, S::PendingPlanChange | S::PendingPlanChangeApproval)
        && let Some(plan) = &e.new_pending_plan
    {
        put("newPendingPlan", json!(plan));
    }
    if e.state == S::PendingPlanChange {
        put("newOfferStartTime", json!(rfc3339(e.term_end)));
    }
    if let Some(message) = &e.message_to_user {
        put("messageToUser", json!(message));
    }
    if e.state == S::Cancelled
        && let Some(reason) = &e.cancellation_reason
    {
        put("cancellationReason", json!(reason));
    }
    put("createTime", json!(rfc3339(e.created)));
    put("updateTime", json!(rfc3339(e.updated)));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Listing, Records, String) {
        let listing = Listing::demo();
        let mut r = Records::default();
        let (id, n) = r
            .order(&listing, "acct-1", "team-monthly", false, Utc::now())
            .unwrap();
        let types: Vec<_> = n.iter().map(|n| n.event_type.as_str()).collect();
        assert_eq!(types, ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]);
        (listing, r, id)
    }

    #[test]
    fn approval_needs_the_signup_first() {
        let (l, mut r, id) = setup();
        let now = Utc::now();
        assert!(matches!(
            r.approve_entitlement(&l, &id, now),
            Err(Refusal::Precondition(_))
        ));
        r.approve_account("acct-1", Some("signup"), None, now)
            .unwrap();
        let n = r.approve_entitlement(&l, &id, now).unwrap();
        assert_eq!(n[0].event_type, "ENTITLEMENT_ACTIVE");
        assert_eq!(r.entitlement(&id).unwrap().state, EntitlementState::Active);
        // Twice is a failed precondition.
        assert!(matches!(
            r.approve_entitlement(&l, &id, now),
            Err(Refusal::Precondition(_))
        ));
        // A second order on the same account publishes no ACCOUNT_ACTIVE.
        let (_, n) = r.order(&l, "acct-1", "free", false, now).unwrap();
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn plan_change_needs_the_pending_plan_name() {
        let (l, mut r, id) = setup();
        let now = Utc::now();
        r.approve_account("acct-1", None, None, now).unwrap();
        r.approve_entitlement(&l, &id, now).unwrap();
        let n = r
            .request_plan_change(&l, &id, "business-yearly", now)
            .unwrap();
        assert_eq!(
            n[0].entitlement.as_ref().unwrap().new_plan.as_deref(),
            Some("business-yearly")
        );
        assert!(matches!(
            r.approve_plan_change(&l, &id, Some("free"), now),
            Err(Refusal::Precondition(_))
        ));
        assert!(matches!(
            r.approve_plan_change(&l, &id, None, now),
            Err(Refusal::Invalid(_))
        ));
        r.approve_plan_change(&l, &id, Some("business-yearly"), now)
            .unwrap();
        let e = r.entitlement(&id).unwrap();
        assert_eq!(
            (e.state, e.plan.as_str()),
            (EntitlementState::Active, "business-yearly")
        );
        assert_eq!(e.new_pending_plan, None);
    }
}
