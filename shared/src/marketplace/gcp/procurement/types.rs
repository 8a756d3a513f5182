//! The Procurement API's resources and request bodies, after its discovery
//! document (revision 20250914,
//! <https://cloudcommerceprocurement.googleapis.com/$discovery/rest?version=v1>).
//!
//! Read tolerantly: every field is optional (Google omits empty ones),
//! unknown fields are ignored, an enum value this build does not know is
//! kept as `Other(value)` rather than failing the reply, and a timestamp
//! that does not parse reads as absent.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string enum of the API with a catch-all for values added later.
macro_rules! google_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this build does not know, as Google sent it.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(raw) => raw,
                }
            }

            pub fn parse(raw: &str) -> Self {
                match raw {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
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
                String::deserialize(d).map(|raw| Self::parse(&raw))
            }
        }
    };
}

google_enum! {
    /// `Account.state`.
    AccountState {
        Unspecified = "ACCOUNT_STATE_UNSPECIFIED",
        /// Sign-up requested; the provider has not approved it yet.
        ActivationRequested = "ACCOUNT_ACTIVATION_REQUESTED",
        Active = "ACCOUNT_ACTIVE",
    }
}

google_enum! {
    /// `Approval.state`.
    ApprovalState {
        Unspecified = "STATE_UNSPECIFIED",
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
    }
}

google_enum! {
    /// `Entitlement.state`.
    EntitlementState {
        Unspecified = "ENTITLEMENT_STATE_UNSPECIFIED",
        /// Bought; waits for the provider's approval.
        ActivationRequested = "ENTITLEMENT_ACTIVATION_REQUESTED",
        Active = "ENTITLEMENT_ACTIVE",
        /// Cancelled by the customer; active until the end of the term.
        PendingCancellation = "ENTITLEMENT_PENDING_CANCELLATION",
        Cancelled = "ENTITLEMENT_CANCELLED",
        /// A plan change is approved and waits for the start of the next term.
        PendingPlanChange = "ENTITLEMENT_PENDING_PLAN_CHANGE",
        /// A plan change waits for the provider's approval.
        PendingPlanChangeApproval = "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
        Suspended = "ENTITLEMENT_SUSPENDED",
    }
}

/// The last segment of a resource name (`providers/p/entitlements/ID` →
/// `ID`): Google documents account names in two forms, so ids are read
/// from the end, never by stripping a fixed prefix.
pub fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// One `field=value` term of an `entitlements.list` filter. Google's
/// filter syntax wants values with characters other than letters, digits
/// and `_` double-quoted (an account id is a UUID, with `-`), so the value
/// is quoted when needed, `"` and `\` escaped. Terms combine with ` AND `
/// (or a space).
pub fn filter_term(field: &str, value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        return format!("{field}={value}");
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{field}=\"{escaped}\"")
}

/// A customer's account at the provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Account {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<AccountState>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub update_time: Option<DateTime<Utc>>,
    /// Deprecated by Google.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_properties: Option<serde_json::Map<String, serde_json::Value>>,
    /// `billingAccounts/{id}`; only in the full view of a reseller's
    /// sub-account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseller_parent_billing_account: Option<String>,
    /// Not in the published discovery document; read when present.
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub reset_time: Option<DateTime<Utc>>,
}

impl Account {
    /// The account id: the last segment of `name`.
    pub fn id(&self) -> Option<&str> {
        self.name.as_deref().map(last_segment)
    }

    pub fn approval(&self, name: &str) -> Option<&Approval> {
        self.approvals
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// The `signup` approval is granted: entitlements may now be approved.
    pub fn signup_approved(&self) -> bool {
        self.approval(SIGNUP_APPROVAL)
            .is_some_and(|a| a.state == Some(ApprovalState::Approved))
    }
}

/// The approval Google asks of a provider at sign-up.
pub const SIGNUP_APPROVAL: &str = "signup";

/// An approval for some action on an account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Approval {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ApprovalState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub update_time: Option<DateTime<Utc>>,
}

/// A procured product of a customer. Everything but `messageToUser` is
/// output only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Entitlement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account's resource name (seen as `providers/{p}/accounts/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Deprecated by Google: use `product_external_name`, `offer`, `plan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_external_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote_external_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The plan being switched to during a pending change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_pending_plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_pending_offer: Option<String>,
    /// ISO 8601 duration of the current offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_pending_offer_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<EntitlementState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_reporting_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<Consumer>,
    /// The one field a provider writes (see `patch_entitlement`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_to_user: Option<String>,
    /// Deprecated by Google.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_properties: Option<serde_json::Map<String, serde_json::Value>>,
    /// Without the `orders/` prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entitlement_benefit_ids: Vec<String>,
    /// Free text such as `user-cancelled`; Google warns the values change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub offer_end_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_offer_start_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_offer_end_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_end_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(
        deserialize_with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub update_time: Option<DateTime<Utc>>,
}

impl Entitlement {
    /// The entitlement id: the last segment of `name`.
    pub fn id(&self) -> Option<&str> {
        self.name.as_deref().map(last_segment)
    }

    /// The account id: the last segment of `account`.
    pub fn account_id(&self) -> Option<&str> {
        self.account.as_deref().map(last_segment)
    }
}

/// A resource using an entitlement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Consumer {
    /// `projects/{number}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListAccountsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListEntitlementsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<Entitlement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `accounts.approve`. Google grants the only possible approval when
/// `approvalName` is absent but fails (400) when several are possible, so
/// [`ApproveAccountRequest::signup`] names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApproveAccountRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_name: Option<String>,
    /// At most 256 bytes; Google truncates longer ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}

impl ApproveAccountRequest {
    /// Approves the `signup` approval.
    pub fn signup() -> Self {
        Self {
            approval_name: Some(SIGNUP_APPROVAL.to_owned()),
            ..Self::default()
        }
    }
}

/// `accounts.reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectAccountRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `entitlements.approve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApproveEntitlementRequest {
    /// Deprecated by Google.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
    /// `providers/{p}/entitlements/{id}` of an entitlement whose resources
    /// moved to this one; only in that case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement_migrated: Option<String>,
}

/// `entitlements.reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectEntitlementRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `entitlements.approvePlanChange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApprovePlanChangeRequest {
    /// Must equal the entitlement's current `newPendingPlan`.
    pub pending_plan_name: String,
}

/// `entitlements.rejectPlanChange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectPlanChangeRequest {
    pub pending_plan_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A timestamp read leniently: anything unreadable is absent.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entitlement_as_google_returns_it_is_read() {
        let e: Entitlement = serde_json::from_str(
            r#"{"name":"providers/demo-provider/entitlements/b8273d26-21f1-4402-bedb-28f351ea9822",
                "account":"providers/demo-provider/accounts/eda2a6ce-2e2d-44ff-985f-37e6c51af7d1",
                "provider":"demo-provider","product":"saas.endpoints.demo-provider.cloud.goog",
                "productExternalName":"saas.endpoints.demo-provider.cloud.goog","plan":"standard",
                "usageReportingId":"project_number:123456789012","state":"ENTITLEMENT_ACTIVE",
                "consumers":[{"project":"projects/1"}],"entitlementBenefitIds":["b1"],
                "createTime":"2022-07-18T09:39:24.803455Z","updateTime":"not a time",
                "someFieldAddedLater":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.id(), Some("b8273d26-21f1-4402-bedb-28f351ea9822"));
        assert_eq!(e.account_id(), Some("eda2a6ce-2e2d-44ff-985f-37e6c51af7d1"));
        assert_eq!(e.state, Some(EntitlementState::Active));
        assert!(e.create_time.is_some());
        assert_eq!(e.update_time, None, "unreadable time reads as absent");
        assert_eq!(e.consumers[0].project.as_deref(), Some("projects/1"));
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let e: Entitlement =
            serde_json::from_str(r#"{"state":"ENTITLEMENT_SOMETHING_NEW"}"#).unwrap();
        assert_eq!(
            e.state,
            Some(EntitlementState::Other("ENTITLEMENT_SOMETHING_NEW".into()))
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"state":"ENTITLEMENT_SOMETHING_NEW"}"#
        );
        let a: Account = serde_json::from_str(
            r#"{"name":"accounts/A1","state":"ACCOUNT_ACTIVE",
                "approvals":[{"name":"signup","state":"APPROVED"},{"name":"x","state":"LATER"}]}"#,
        )
        .unwrap();
        assert!(a.signup_approved());
        assert_eq!(a.id(), Some("A1"));
        assert_eq!(
            a.approvals[1].state,
            Some(ApprovalState::Other("LATER".into()))
        );
    }

    #[test]
    fn filter_values_are_quoted_when_google_requires_it() {
        assert_eq!(filter_term("state", "active"), "state=active");
        assert_eq!(
            filter_term("account", "eda2a6ce-2e2d-44ff"),
            r#"account="eda2a6ce-2e2d-44ff""#
        );
        assert_eq!(filter_term("plan", r#"a"b\c"#), r#"plan="a\"b\\c""#);
        assert_eq!(filter_term("plan", ""), r#"plan="""#);
    }

    #[test]
    fn request_bodies_use_googles_names_and_omit_absent_fields() {
        assert_eq!(
            serde_json::to_string(&ApproveAccountRequest::signup()).unwrap(),
            r#"{"approvalName":"signup"}"#
        );
        assert_eq!(
            serde_json::to_string(&ApprovePlanChangeRequest {
                pending_plan_name: "pro".into()
            })
            .unwrap(),
            r#"{"pendingPlanName":"pro"}"#
        );
        assert_eq!(
            serde_json::to_string(&ApproveEntitlementRequest::default()).unwrap(),
            "{}"
        );
        let patch = Entitlement {
            message_to_user: Some("Provisioning".into()),
            ..Entitlement::default()
        };
        assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            r#"{"messageToUser":"Provisioning"}"#
        );
    }
}
