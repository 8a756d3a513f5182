//! The API's JSON, as documented in `openapi/entitlement-check.json`.
//!
//! Enums that the server may extend (reasons, statuses) keep values this
//! version does not know in an `Other` variant instead of failing, so an app
//! keeps working when Tollgate adds a reason; an unknown reason is still a
//! denial because `allowed` says so.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string enum with stable wire names and an `Other` catch-all.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client version does not know yet.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(s) => s,
                }
            }

            pub(crate) fn from_wire(s: &str) -> Self {
                match s {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from_wire(&s))
            }
        }
    };
}

wire_enum!(
    /// Why access is (not) granted. Stable strings.
    Reason {
        /// Allowed.
        Ok = "ok",
        /// No subscription to the product.
        NoSubscription = "no_subscription",
        /// Bought; the customer has not finished sign-up.
        PendingSignup = "pending_signup",
        /// Bought; waiting for the vendor's approval.
        PendingApproval = "pending_approval",
        /// The trial ended without conversion.
        TrialExpired = "trial_expired",
        /// The subscription ended.
        Cancelled = "cancelled",
        /// Suspended by the marketplace.
        Suspended = "suspended",
        /// The tier lacks the requested feature.
        FeatureNotInPlan = "feature_not_in_plan",
        /// Every seat is taken by other users.
        SeatLimitReached = "seat_limit_reached",
        /// The plan is not mapped to a tier in Tollgate's configuration.
        UnknownPlan = "unknown_plan",
    }
);

wire_enum!(
    /// Lifecycle status of a subscription.
    Status {
        Pending = "pending",
        Trial = "trial",
        Active = "active",
        PendingCancellation = "pending_cancellation",
        Suspended = "suspended",
        Cancelled = "cancelled",
    }
);

wire_enum!(
    /// What a `pending` subscription waits for.
    Awaiting {
        Signup = "signup",
        Approval = "approval",
    }
);

/// Where a subscription was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Marketplace {
    Github,
    Gcp,
    Q2,
}

impl Marketplace {
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

impl std::str::FromStr for Marketplace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "github" => Ok(Marketplace::Github),
            "gcp" => Ok(Marketplace::Gcp),
            "q2" => Ok(Marketplace::Q2),
            other => Err(format!(
                "unknown marketplace `{other}` (expected github, gcp or q2)"
            )),
        }
    }
}

/// Identifies a subscription: the marketplace and its id for the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubscriptionKey {
    pub marketplace: Marketplace,
    pub id: String,
}

/// Identifies who pays: the marketplace and its customer/account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomerKey {
    pub marketplace: Marketplace,
    pub id: String,
}

/// Seat usage; `limit: None` means the tier does not count seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    pub limit: Option<u32>,
    pub used: u32,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub subscription: Option<SubscriptionKey>,
    pub status: Option<Status>,
    pub plan: Option<String>,
    pub tier: Option<String>,
    pub features: Vec<String>,
    pub trial_days_left: Option<u32>,
    pub access_until: Option<DateTime<Utc>>,
    pub seats: Option<Seats>,
}

impl Decision {
    pub fn has_feature(&self, feature: &str) -> bool {
        self.allowed && self.features.iter().any(|f| f == feature)
    }
}

/// Whose entitlement to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRef {
    /// A paying marketplace customer.
    Customer {
        marketplace: Marketplace,
        id: String,
    },
    /// An app user linked to customers at OAuth/sign-up.
    AppUser(String),
}

impl CustomerRef {
    pub fn customer(marketplace: Marketplace, id: impl Into<String>) -> Self {
        CustomerRef::Customer {
            marketplace,
            id: id.into(),
        }
    }

    pub fn app_user(user: impl Into<String>) -> Self {
        CustomerRef::AppUser(user.into())
    }
}

/// `POST /v1/check`. Build with [`CheckRequest::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    marketplace: Option<Marketplace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_user: Option<String>,
    product: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    feature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    claim_seat: bool,
}

impl CheckRequest {
    pub fn new(customer: CustomerRef, product: impl Into<String>) -> Self {
        let (marketplace, customer_id, app_user) = match customer {
            CustomerRef::Customer { marketplace, id } => (Some(marketplace), Some(id), None),
            CustomerRef::AppUser(user) => (None, None, Some(user)),
        };
        Self {
            marketplace,
            customer_id,
            app_user,
            product: product.into(),
            feature: None,
            user: None,
            claim_seat: false,
        }
    }

    /// Also require this feature of the tier.
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// The app user acting (seat-counted tiers check that they hold or can get a seat).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Claim a seat for [`user`](Self::user) in the same call (needs the `seats` scope).
    pub fn claim_seat(mut self) -> Self {
        self.claim_seat = true;
        self
    }
}

/// A change the marketplace announced for later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// `plan` or `cancellation`.
    pub kind: String,
    pub plan: Option<String>,
    pub seats: Option<u32>,
    pub effective_at: DateTime<Utc>,
}

/// A subscription as apps see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub subscription: SubscriptionKey,
    pub product: String,
    pub plan: String,
    pub plan_name: Option<String>,
    pub tier: Option<String>,
    pub status: Status,
    pub awaiting: Option<Awaiting>,
    pub allowed: bool,
    pub reason: Reason,
    pub features: Vec<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub trial_days_left: Option<u32>,
    pub access_until: Option<DateTime<Utc>>,
    pub next_billing_at: Option<DateTime<Utc>>,
    /// `monthly` or `yearly`.
    pub billing_cycle: Option<String>,
    pub pending_change: Option<PendingChange>,
    pub seats: Option<Seats>,
}

/// `GET /v1/customers/{marketplace}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    pub customer: CustomerKey,
    pub subscriptions: Vec<SubscriptionView>,
}

/// A held seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatClaimed {
    pub subscription: SubscriptionKey,
    pub user: String,
    pub already_held: bool,
    pub seats: Seats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatReleased {
    pub subscription: SubscriptionKey,
    pub user: String,
    pub released: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatList {
    pub subscription: SubscriptionKey,
    pub product: String,
    pub seats: Seats,
    pub holders: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_are_kept_not_rejected() {
        let r: Reason = serde_json::from_str(r#""over_quota""#).unwrap();
        assert_eq!(r, Reason::Other("over_quota".into()));
        let r: Reason = serde_json::from_str(r#""seat_limit_reached""#).unwrap();
        assert_eq!(r, Reason::SeatLimitReached);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#""seat_limit_reached""#
        );
    }

    #[test]
    fn check_requests_serialize_only_what_is_set() {
        let q = CheckRequest::new(CustomerRef::customer(Marketplace::Gcp, "acct"), "ci");
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            serde_json::json!({"marketplace":"gcp","customer_id":"acct","product":"ci"})
        );
        let q = CheckRequest::new(CustomerRef::app_user("u"), "ci")
            .feature("sso")
            .user("alice")
            .claim_seat();
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            serde_json::json!({"app_user":"u","product":"ci","feature":"sso","user":"alice","claim_seat":true})
        );
    }
}
