//! The normalized subscription model every marketplace is translated into.
//!
//! GitHub, Google and Q2 describe the same thing (someone bought a plan of a
//! product, maybe with a trial, maybe with seats, maybe changing or ending at a
//! later date) in three different vocabularies. Parsers turn their payloads into
//! a [`MarketEvent`]; [`crate::rules::apply`] folds events into a
//! [`Subscription`]; [`crate::entitlement::decide`] answers apps from it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a subscription was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Marketplace {
    Github,
    Gcp,
    Q2,
}

impl Marketplace {
    pub const ALL: [Marketplace; 3] = [Marketplace::Github, Marketplace::Gcp, Marketplace::Q2];

    pub fn as_str(self) -> &'static str {
        match self {
            Marketplace::Github => "github",
            Marketplace::Gcp => "gcp",
            Marketplace::Q2 => "q2",
        }
    }
}

impl fmt::Display for Marketplace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown marketplace `{0}` (expected github, gcp or q2)")]
pub struct UnknownMarketplace(pub String);

impl FromStr for Marketplace {
    type Err = UnknownMarketplace;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Marketplace::Github),
            "gcp" => Ok(Marketplace::Gcp),
            "q2" => Ok(Marketplace::Q2),
            other => Err(UnknownMarketplace(other.to_owned())),
        }
    }
}

/// Identifies a subscription: the marketplace plus the marketplace's own id for
/// the contract (GitHub account id per listing, Google entitlement id, Q2
/// subscription id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubscriptionKey {
    pub marketplace: Marketplace,
    pub id: String,
}

impl SubscriptionKey {
    pub fn new(marketplace: Marketplace, id: impl Into<String>) -> Self {
        Self {
            marketplace,
            id: id.into(),
        }
    }
}

impl fmt::Display for SubscriptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.marketplace, self.id)
    }
}

/// Identifies who pays: a GitHub account, a Google procurement account, a Q2
/// financial institution user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CustomerKey {
    pub marketplace: Marketplace,
    pub id: String,
}

impl CustomerKey {
    pub fn new(marketplace: Marketplace, id: impl Into<String>) -> Self {
        Self {
            marketplace,
            id: id.into(),
        }
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.marketplace, self.id)
    }
}

/// GitHub distinguishes personal and organization accounts; other marketplaces
/// leave this empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountKind {
    User,
    Organization,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub key: CustomerKey,
    /// Human-readable handle (GitHub login, Q2 institution name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AccountKind>,
    /// Billing email; GitHub leaves it null for personal accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_email: Option<String>,
}

impl Customer {
    pub fn new(key: CustomerKey) -> Self {
        Self {
            key,
            name: None,
            kind: None,
            billing_email: None,
        }
    }
}

/// How a plan is priced. Per-unit plans have a seat limit equal to the
/// purchased unit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceModel {
    Free,
    FlatRate,
    PerUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingCycle {
    Monthly,
    Yearly,
}

/// A plan as the marketplace names it. The tier and features come from the
/// configuration at decision time, so re-mapping a plan in `tollgate.toml`
/// takes effect without rewriting stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The marketplace's plan id (GitHub plan id, Google plan name, Q2 edition).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_model: Option<PriceModel>,
}

impl Plan {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            price_model: None,
        }
    }
}

/// Lifecycle status of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Bought, but waiting for the customer's sign-up or the vendor's approval.
    Pending,
    Trial,
    Active,
    /// Cancelled, still entitled until `access_until`.
    PendingCancellation,
    Suspended,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Trial => "trial",
            Status::Active => "active",
            Status::PendingCancellation => "pending_cancellation",
            Status::Suspended => "suspended",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What a `pending` subscription waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    /// The customer has not finished the vendor's sign-up page yet.
    Signup,
    /// The vendor (or its policy) has not approved the order yet.
    Approval,
}

/// A change the marketplace has announced for a later date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingChange {
    /// Move to another plan and/or seat count at `effective_at`.
    Plan {
        plan: Plan,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seats: Option<u32>,
        effective_at: DateTime<Utc>,
    },
    /// The subscription ends at `effective_at`.
    Cancellation { effective_at: DateTime<Utc> },
}

impl PendingChange {
    pub fn effective_at(&self) -> DateTime<Utc> {
        match self {
            PendingChange::Plan { effective_at, .. }
            | PendingChange::Cancellation { effective_at } => *effective_at,
        }
    }
}

/// Seats of a per-unit plan. `limit: None` means the plan does not count seats.
///
/// Who holds a seat is not part of the state: the store keeps one record
/// per holder beside it (`SeatClaims`), so a subscription's state stays
/// small however many users hold seats, and the state carries only their
/// number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// How many users hold a seat, as the store counted them when the state
    /// was read. Maintained only by the store's seat operations (never by
    /// the rules, never written by a commit), so seat claims don't race
    /// state commits. It may exceed `limit` after a downgrade: holders keep
    /// their seats, new claims are refused.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub used: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The position of the newest event applied to a subscription; events that
/// sort before it are stale. See [`crate::rules`] for the tie-break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMark {
    pub effective_at: DateTime<Utc>,
    pub event_id: String,
}

/// The current, normalized state of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub key: SubscriptionKey,
    pub customer: Customer,
    /// Product id as configured in `tollgate.toml`.
    pub product: String,
    pub plan: Plan,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
    #[serde(default)]
    pub seats: Seats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_cycle: Option<BillingCycle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_billing_at: Option<DateTime<Utc>>,
    /// End of the paid period after a cancellation; entitled until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<AppliedMark>,
    /// Optimistic-concurrency version: 0 = never stored, bumped by every commit.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plan/seat/trial snapshot carried by purchase and change events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTerms {
    pub plan: Plan,
    /// Purchased units for per-unit plans; `None` when the plan has no seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_cycle: Option<BillingCycle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_billing_at: Option<DateTime<Utc>>,
}

impl PlanTerms {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            seats: None,
            billing_cycle: None,
            trial_ends_at: None,
            next_billing_at: None,
        }
    }
}

/// What happened, in marketplace-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A new purchase. With `trial_ends_at` in the terms it starts a trial;
    /// with `awaiting` it waits for sign-up or approval before it is active.
    Purchased {
        terms: PlanTerms,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        awaiting: Option<Awaiting>,
    },
    /// A change that takes effect now: upgrade, effective downgrade, trial
    /// conversion, seat change, revert of a failed upgrade.
    Changed {
        terms: PlanTerms,
    },
    /// A downgrade or seat change announced for `effective_at`.
    ChangePending {
        plan: Plan,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seats: Option<u32>,
        effective_at: DateTime<Utc>,
    },
    /// A cancellation announced for `effective_at`; entitled until then.
    CancellationPending {
        effective_at: DateTime<Utc>,
    },
    /// The customer withdrew a pending change or cancellation.
    PendingChangeWithdrawn,
    /// The subscription ends. Trials and free plans end at once; a paid plan
    /// stays entitled until `access_until` when the marketplace gives one.
    Cancelled {
        /// The plan being cancelled, when the marketplace says (GitHub does).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Plan>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_until: Option<DateTime<Utc>>,
    },
    Suspended,
    Reinstated,
    /// The sign-up or approval a pending subscription waited for happened.
    Approved,
    /// The marketplace's whole current view of the subscription, fetched
    /// fresh rather than described as a change (Google: `entitlements.get`
    /// after a notification that carries ids only). The rules converge the
    /// stored state to it, so the same observation twice changes nothing and
    /// the message that prompted it does not matter.
    Observed(Observation),
    /// A marketplace that acts on Tollgate's answer (Q2) was refused the
    /// event: `code` is the marketplace's error code. Logged with its
    /// reason ([`crate::rules::refusal_note`]), so a redelivery is answered
    /// the same; changes nothing.
    Refused {
        code: String,
        reason: String,
    },
    /// An event Tollgate knows but that changes no subscription (Google's
    /// account events). Logged and acknowledged.
    Informational {
        name: String,
    },
    /// An event type Tollgate does not know. Logged and acknowledged.
    Unknown {
        name: String,
    },
}

/// What a marketplace says a subscription is, right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub state: ObservedState,
    /// The plan in force (not a pending one).
    pub terms: PlanTerms,
    /// What an order still waits for (`Requested` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
    /// A plan change requested or approved but not yet in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_plan: Option<Plan>,
    /// When the current term ends: the end of access for a pending
    /// cancellation, the moment a pending plan change takes effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_ends_at: Option<DateTime<Utc>>,
}

/// The marketplace-side states an observation can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedState {
    /// Ordered, not yet approved (Google `ENTITLEMENT_ACTIVATION_REQUESTED`).
    Requested,
    /// In force and renewing (`ENTITLEMENT_ACTIVE`, and the two pending
    /// plan-change states, which are active on the current plan).
    Active,
    /// Ends at `term_ends_at` and will not renew; usable until then.
    PendingCancellation,
    Suspended,
    /// Ended (`ENTITLEMENT_CANCELLED`): access is revoked.
    Cancelled,
    /// Gone from the marketplace (entitlement or account deleted).
    Deleted,
}

impl ObservedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservedState::Requested => "requested",
            ObservedState::Active => "active",
            ObservedState::PendingCancellation => "pending_cancellation",
            ObservedState::Suspended => "suspended",
            ObservedState::Cancelled => "cancelled",
            ObservedState::Deleted => "deleted",
        }
    }
}

impl EventKind {
    pub fn name(&self) -> &str {
        match self {
            EventKind::Purchased { .. } => "purchased",
            EventKind::Changed { .. } => "changed",
            EventKind::ChangePending { .. } => "change_pending",
            EventKind::CancellationPending { .. } => "cancellation_pending",
            EventKind::PendingChangeWithdrawn => "pending_change_withdrawn",
            EventKind::Cancelled { .. } => "cancelled",
            EventKind::Suspended => "suspended",
            EventKind::Reinstated => "reinstated",
            EventKind::Approved => "approved",
            EventKind::Observed(o) => match o.state {
                ObservedState::Requested => "observed_requested",
                ObservedState::Active => "observed_active",
                ObservedState::PendingCancellation => "observed_pending_cancellation",
                ObservedState::Suspended => "observed_suspended",
                ObservedState::Cancelled => "observed_cancelled",
                ObservedState::Deleted => "observed_deleted",
            },
            EventKind::Refused { .. } => "refused",
            EventKind::Informational { name } | EventKind::Unknown { name } => name,
        }
    }
}

/// One normalized marketplace event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketEvent {
    /// The marketplace's delivery/event id; the dedupe key.
    pub id: String,
    pub subscription: SubscriptionKey,
    pub customer: Customer,
    pub product: String,
    /// When the event takes effect according to the marketplace (GitHub
    /// `effective_date`, Google `updateTime`); the ordering key.
    pub effective_at: DateTime<Utc>,
    pub kind: EventKind,
}

/// Whether an event changed the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Applied,
    /// Older than what is already applied: recorded, not applied.
    Stale,
    /// Recorded and acknowledged, but meaningless for the subscription
    /// (unknown event type, change for a subscription we never saw, ...).
    Ignored,
}

/// An entry of a subscription's append-only event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub subscription: SubscriptionKey,
    pub event_id: String,
    pub event: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub disposition: Disposition,
    /// Why, in a sentence, for operators reading the log.
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_before: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_after: Option<Status>,
}

/// A user of the vendor's app, as the app names it (e.g. a GitHub user id
/// linked at OAuth, or the app's own user id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppUser(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marketplace_round_trips_through_its_name() {
        for m in Marketplace::ALL {
            assert_eq!(m.as_str().parse::<Marketplace>(), Ok(m));
        }
        assert!("aws".parse::<Marketplace>().is_err());
    }

    #[test]
    fn subscription_state_serializes_with_stable_names() {
        let json = serde_json::to_value(Status::PendingCancellation).unwrap();
        assert_eq!(json, "pending_cancellation");
        let change = PendingChange::Cancellation {
            effective_at: DateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["kind"], "cancellation");
    }
}
