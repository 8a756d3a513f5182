//! Calls made as the app (app JWT, see [`AppJwtSigner`]): the
//! `/marketplace_listing/...` endpoints
//! (<https://docs.github.com/rest/apps/marketplace>) that tell which
//! accounts hold which plan of the listing.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::super::app_jwt::AppJwtSigner;
use super::super::webhook::{account_kind, price_model};
use super::transport::{Auth, PER_PAGE, Page, check, lenient_time, read_json};
use super::{GithubClient, GithubError};
use crate::model::{AccountKind, PriceModel};

/// `marketplace-listing-plan`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListingPlan {
    pub id: u64,
    #[serde(default)]
    pub number: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub monthly_price_in_cents: Option<u64>,
    #[serde(default)]
    pub yearly_price_in_cents: Option<u64>,
    /// As GitHub spells it (`FLAT_RATE`, `flat-rate`, ...); see [`Self::price_model`].
    #[serde(default)]
    pub price_model: Option<String>,
    #[serde(default)]
    pub has_free_trial: Option<bool>,
    #[serde(default)]
    pub unit_name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub bullets: Option<Vec<Option<String>>>,
}

impl ListingPlan {
    /// The price model in any casing/separator GitHub has used.
    pub fn price_model(&self) -> Option<PriceModel> {
        price_model(self.price_model.as_deref()?)
    }
}

/// `marketplace-purchase` (`/marketplace_listing/accounts/{id}` and
/// `/marketplace_listing/plans/{id}/accounts`): the account at the top
/// level, its purchase and any pending change nested.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountPurchase {
    pub id: u64,
    pub login: String,
    /// As GitHub spells it (`Organization`, `User`); see [`Self::account_kind`].
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub organization_billing_email: Option<String>,
    #[serde(default)]
    pub marketplace_pending_change: Option<PendingChange>,
    pub marketplace_purchase: PurchaseTerms,
}

impl AccountPurchase {
    /// The account type in any casing.
    pub fn account_kind(&self) -> Option<AccountKind> {
        account_kind(&self.kind)
    }
}

/// The `marketplace_purchase` object of an [`AccountPurchase`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PurchaseTerms {
    #[serde(default)]
    pub billing_cycle: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub next_billing_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_installed: Option<bool>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub on_free_trial: Option<bool>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub free_trial_ends_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub plan: Option<ListingPlan>,
}

/// `marketplace_pending_change`: a downgrade or cancellation announced for
/// `effective_date`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingChange {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub effective_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub is_installed: Option<bool>,
    #[serde(default)]
    pub plan: Option<ListingPlan>,
}

impl GithubClient {
    /// `GET /marketplace_listing/accounts/{account_id}` as the app: the
    /// account's plan, or `None` (404) if it has not bought the listing.
    pub async fn listing_account(
        &self,
        app: &AppJwtSigner,
        account_id: u64,
    ) -> Result<Option<AccountPurchase>, GithubError> {
        const ENDPOINT: &str = "GET /marketplace_listing/accounts/{account_id}";
        let url = format!("{}/marketplace_listing/accounts/{account_id}", self.api);
        let res = self.get(ENDPOINT, &url, &Auth::App(app)).await?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read_json(ENDPOINT, check(ENDPOINT, res)?).await.map(Some)
    }

    /// `GET /marketplace_listing/plans` as the app, every page.
    pub async fn listing_plans(&self, app: &AppJwtSigner) -> Result<Vec<ListingPlan>, GithubError> {
        let url = format!("{}/marketplace_listing/plans?per_page={PER_PAGE}", self.api);
        self.get_all("GET /marketplace_listing/plans", url, &Auth::App(app))
            .await
    }

    /// One page of `GET /marketplace_listing/plans/{plan_id}/accounts` as
    /// the app: the first (100 accounts, oldest first) when `next` is `None`,
    /// else the page at `next`, a URL a previous page named (checked to be
    /// on the API's origin before any credential is sent there).
    pub async fn plan_accounts_page(
        &self,
        app: &AppJwtSigner,
        plan_id: u64,
        next: Option<&str>,
    ) -> Result<Page<AccountPurchase>, GithubError> {
        const ENDPOINT: &str = "GET /marketplace_listing/plans/{plan_id}/accounts";
        let url = match next {
            Some(next) => {
                let on_api = url::Url::parse(next).is_ok_and(|u| u.origin() == self.api_origin);
                if !on_api {
                    return Err(GithubError::ForeignLink { endpoint: ENDPOINT });
                }
                next.to_owned()
            }
            None => format!(
                "{}/marketplace_listing/plans/{plan_id}/accounts?per_page={PER_PAGE}",
                self.api
            ),
        };
        self.get_page(ENDPOINT, &url, &Auth::App(app)).await
    }

    /// `GET /marketplace_listing/plans/{plan_id}/accounts` as the app, every
    /// page (free plans included; per-unit plans carry their unit count).
    pub async fn plan_accounts(
        &self,
        app: &AppJwtSigner,
        plan_id: u64,
    ) -> Result<Vec<AccountPurchase>, GithubError> {
        let url = format!(
            "{}/marketplace_listing/plans/{plan_id}/accounts?per_page={PER_PAGE}",
            self.api
        );
        self.get_all(
            "GET /marketplace_listing/plans/{plan_id}/accounts",
            url,
            &Auth::App(app),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(price_model: &str) -> ListingPlan {
        serde_json::from_value(serde_json::json!({
            "id": 9, "name": "Team", "price_model": price_model
        }))
        .unwrap()
    }

    /// Moved from the client's own `parse_price_model`, which is now the
    /// webhook's reader: the spellings both copies read...
    #[test]
    fn price_models_in_every_spelling() {
        for (raw, want) in [
            ("FLAT_RATE", PriceModel::FlatRate),
            ("flat-rate", PriceModel::FlatRate),
            ("Per_Unit", PriceModel::PerUnit),
            ("free", PriceModel::Free),
        ] {
            assert_eq!(plan(raw).price_model(), Some(want), "{raw}");
        }
        assert_eq!(plan("bogus").price_model(), None);
    }

    /// ...and those only the webhook's copy read (the client's refused
    /// spaces and missing separators).
    #[test]
    fn price_models_without_separators_or_with_spaces_read_as_in_webhooks() {
        for (raw, want) in [
            ("perunit", PriceModel::PerUnit),
            (" per unit ", PriceModel::PerUnit),
            ("Flat Rate", PriceModel::FlatRate),
            ("FLATRATE", PriceModel::FlatRate),
        ] {
            assert_eq!(plan(raw).price_model(), Some(want), "{raw}");
            assert_eq!(super::super::parse_price_model(raw), Some(want), "{raw}");
        }
    }

    #[test]
    fn an_account_purchase_reads_its_type_in_any_casing() {
        let a: AccountPurchase = serde_json::from_value(serde_json::json!({
            "id": 4, "login": "github", "type": "organization",
            "marketplace_purchase": {"unit_count": null, "plan": null}
        }))
        .unwrap();
        assert_eq!(a.account_kind(), Some(AccountKind::Organization));
    }
}
