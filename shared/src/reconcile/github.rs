//! GitHub's side of a reconciliation: the listing's plans, each plan's
//! accounts page by page (`GET /marketplace_listing/plans/{id}/accounts`,
//! `Link: rel="next"`), as the app (app JWT); then every stored account the
//! listing did not name, confirmed with `GET /marketplace_listing/accounts/{id}`.

use std::collections::HashSet;

use tollgate_core::reconcile::{GithubPurchase, Snapshot};

use super::Run;
use crate::marketplace::github::app_jwt::AppJwtSigner;
use crate::marketplace::github::client::{
    AccountPurchase, GithubClient, ListingPlan, PendingChange as ListedChange, parse_price_model,
};
use crate::marketplace::github::webhook::{billing_cycle, subscription_key};
use crate::model::{
    Customer, CustomerKey, Marketplace, PendingChange, Plan, PlanTerms, PriceModel,
};

/// The GitHub listing, read as the app.
pub struct GithubSource {
    client: GithubClient,
    app: AppJwtSigner,
    /// Tollgate's product for the listing (`[marketplaces.github] product`).
    product: String,
}

impl GithubSource {
    pub fn new(client: GithubClient, app: AppJwtSigner, product: impl Into<String>) -> Self {
        Self {
            client,
            app,
            product: product.into(),
        }
    }

    pub(super) async fn reconcile(&self, run: &mut Run<'_>) {
        let plans = match self.client.listing_plans(&self.app).await {
            Ok(plans) => plans,
            Err(e) => return run.fail(format!("github: {e}")),
        };
        let mut listed = HashSet::new();
        let mut complete = true;
        for plan in &plans {
            complete &= self.reconcile_plan(run, plan, &mut listed).await;
        }
        if !complete {
            run.fail(
                "github: the listing was not read in full, so no account is taken as gone this run"
                    .into(),
            );
            return;
        }
        for sub in run
            .unlisted(Marketplace::Github, &listed, super::MAX_INVENTORY_PAGES)
            .await
        {
            let Ok(account_id) = sub.key.id.parse::<u64>() else {
                continue;
            };
            // Missing from every plan's pages; only GitHub's own 404 for the
            // account says it is gone (pages can shift while being read).
            let snapshot = match self.client.listing_account(&self.app, account_id).await {
                Ok(None) => Snapshot::Gone,
                Ok(Some(purchase)) => match snapshot(&purchase, None) {
                    Some(s) => s,
                    None => {
                        run.fail(format!("{}: GitHub names no plan for it", sub.key));
                        continue;
                    }
                },
                Err(e) => {
                    run.fail(format!("{}: {e}", sub.key));
                    continue;
                }
            };
            run.check(&sub.key, &self.product, &snapshot).await;
        }
    }

    /// Compares every account of `plan`; `false` if a page could not be read.
    async fn reconcile_plan(
        &self,
        run: &mut Run<'_>,
        plan: &ListingPlan,
        listed: &mut HashSet<String>,
    ) -> bool {
        let mut next: Option<String> = None;
        for _ in 0..self.client.max_pages() {
            let page = match self
                .client
                .plan_accounts_page(&self.app, plan.id, next.as_deref())
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    run.fail(format!("github plan {}: {e}", plan.id));
                    return false;
                }
            };
            for purchase in &page.items {
                let key = subscription_key(purchase.id);
                listed.insert(key.id.clone());
                match snapshot(purchase, Some(plan)) {
                    Some(s) => {
                        run.check(&key, &self.product, &s).await;
                    }
                    None => run.fail(format!("{key}: GitHub names no plan for it")),
                }
            }
            match page.next {
                Some(url) => next = Some(url),
                None => return true,
            }
        }
        run.fail(format!(
            "github plan {}: more than {} pages; stopped",
            plan.id,
            self.client.max_pages()
        ));
        false
    }
}

/// A listed purchase as the core compares it, read the way the webhook
/// reads a purchase (`tollgate_core::marketplace::github::webhook`): seats
/// only for per-unit plans, the trial's end when GitHub names it. `plan`:
/// the plan being listed, for a purchase that does not repeat it. `None`
/// when no plan is known at all.
pub fn snapshot(purchase: &AccountPurchase, plan: Option<&ListingPlan>) -> Option<Snapshot> {
    let terms_of = &purchase.marketplace_purchase;
    let listed_plan = terms_of.plan.as_ref().or(plan)?;
    let plan = plan_of(listed_plan);
    let seats = seats_of(plan.price_model, terms_of.unit_count);
    let on_free_trial = terms_of.on_free_trial == Some(true);
    let terms = PlanTerms {
        seats,
        billing_cycle: terms_of.billing_cycle.as_deref().and_then(billing_cycle),
        trial_ends_at: terms_of.free_trial_ends_on.filter(|_| on_free_trial),
        next_billing_at: terms_of.next_billing_date,
        ..PlanTerms::new(plan.clone())
    };
    let pending = purchase
        .marketplace_pending_change
        .as_ref()
        .and_then(|change| pending_of(change, &plan, seats));
    Some(Snapshot::Github(GithubPurchase {
        customer: Customer {
            key: CustomerKey::new(Marketplace::Github, purchase.id.to_string()),
            name: Some(purchase.login.clone()),
            kind: purchase.account_kind(),
            billing_email: purchase.organization_billing_email.clone(),
        },
        terms,
        on_free_trial,
        pending,
    }))
}

fn plan_of(p: &ListingPlan) -> Plan {
    Plan {
        id: p.id.to_string(),
        name: Some(p.name.clone()),
        price_model: p.price_model.as_deref().and_then(parse_price_model),
    }
}

fn seats_of(model: Option<PriceModel>, units: Option<u64>) -> Option<u32> {
    match model {
        Some(PriceModel::PerUnit) => units.and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}

/// `marketplace_pending_change` as a plan change, or a cancellation when
/// it names no plan or exactly the current plan and seats — the webhook's
/// reading of a `pending_change` to the same purchase [inference: GitHub
/// publishes no example of a listed pending cancellation]. No date: ignored.
fn pending_of(change: &ListedChange, current: &Plan, seats: Option<u32>) -> Option<PendingChange> {
    let effective_at = change.effective_date?;
    let Some(target) = change.plan.as_ref().map(plan_of) else {
        return Some(PendingChange::Cancellation { effective_at });
    };
    let target_seats = seats_of(target.price_model, change.unit_count);
    if target.id == current.id && target_seats == seats {
        return Some(PendingChange::Cancellation { effective_at });
    }
    Some(PendingChange::Plan {
        plan: target,
        seats: target_seats,
        effective_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn purchase(v: serde_json::Value) -> AccountPurchase {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_listed_per_unit_purchase_reads_like_the_webhook_reads_it() {
        let p = purchase(serde_json::json!({
            "id": 2001, "login": "acme", "type": "Organization",
            "organization_billing_email": "billing@acme.test",
            "marketplace_purchase": {
                "billing_cycle": "MONTHLY", "unit_count": 5, "on_free_trial": true,
                "free_trial_ends_on": "2026-03-15T00:00:00Z",
                "plan": {"id": 1002, "name": "Team", "price_model": "PER_UNIT"}
            },
            "marketplace_pending_change": {
                "effective_date": "2026-04-01T00:00:00Z", "unit_count": 2,
                "plan": {"id": 1002, "name": "Team", "price_model": "PER_UNIT"}
            }
        }));
        let Some(Snapshot::Github(s)) = snapshot(&p, None) else {
            panic!("no snapshot")
        };
        assert_eq!(s.terms.plan.id, "1002");
        assert_eq!(s.terms.seats, Some(5));
        assert_eq!(
            s.terms.billing_cycle,
            Some(crate::model::BillingCycle::Monthly)
        );
        assert!(s.on_free_trial);
        assert_eq!(
            s.terms.trial_ends_at,
            Some(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap())
        );
        assert!(matches!(
            s.pending,
            Some(PendingChange::Plan { seats: Some(2), .. })
        ));
    }

    #[test]
    fn a_pending_change_to_the_same_plan_and_seats_is_a_cancellation() {
        let p = purchase(serde_json::json!({
            "id": 7, "login": "u", "type": "User",
            "marketplace_purchase": {"unit_count": 1,
                "plan": {"id": 9, "name": "Flat", "price_model": "FLAT_RATE"}},
            "marketplace_pending_change": {"effective_date": "2026-04-01T00:00:00Z",
                "unit_count": 1, "plan": {"id": 9, "name": "Flat", "price_model": "flat-rate"}}
        }));
        let Some(Snapshot::Github(s)) = snapshot(&p, None) else {
            panic!("no snapshot")
        };
        assert_eq!(s.terms.seats, None, "flat-rate plans have no seats");
        assert!(matches!(
            s.pending,
            Some(PendingChange::Cancellation { .. })
        ));
    }
}
