//! Google's side of a reconciliation: every entitlement of the provider
//! (`providers.entitlements.list`, `pageToken` pagination), read as the
//! push pipeline reads one (`entitlements.get`, plus the account's sign-up
//! for an order awaiting activation); then every stored entitlement the
//! list did not name, confirmed with `entitlements.get` (404: deleted).
//!
//! An entitlement waiting for the provider — an order whose account has
//! signed up, a plan change awaiting approval — means its push was lost
//! (or its follow-up failed): the run makes the decision the push
//! pipeline's follow-up makes, with the same code ([`FollowUp::decide`],
//! [`FollowUp::execute`]), after committing the state. Google's answer to
//! the approval arrives as a push, or is read by the next run.

use std::collections::HashSet;
use std::sync::Arc;

use tollgate_core::reconcile::Snapshot;

use super::FollowUpResult;
use super::Run;
use crate::config::Catalog;
use crate::marketplace::gcp::adapter::{
    AccountView, EntitlementState, EntitlementView, FollowUp, FollowUpDone, GcpContext,
    Procurement, ProcurementFailure, observe,
};
use crate::model::{Awaiting, Customer, CustomerKey, Marketplace, SubscriptionKey};
use crate::reconcile::Outcome;

/// Pages of `entitlements.list` read at most (200 entitlements each).
pub const MAX_PAGES: usize = 1_000;

/// The provider's entitlements, through the Procurement port.
pub struct GcpSource {
    procurement: Arc<dyn Procurement>,
    catalog: Arc<Catalog>,
}

impl GcpSource {
    pub fn new(procurement: Arc<dyn Procurement>, catalog: Arc<Catalog>) -> Self {
        Self {
            procurement,
            catalog,
        }
    }

    pub(super) async fn reconcile(&self, run: &mut Run<'_>) {
        let mut listed = HashSet::new();
        let mut token: Option<String> = None;
        let mut complete = false;
        for _ in 0..MAX_PAGES {
            let page = match self
                .procurement
                .entitlements_page(None, token.as_deref())
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    run.fail(format!("gcp: entitlements.list: {e}"));
                    break;
                }
            };
            for ent in &page.entitlements {
                listed.insert(ent.id.clone());
                self.check(run, ent).await;
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        if !complete {
            run.fail(
                "gcp: the entitlement list was not read in full, so no entitlement is taken as gone this run"
                    .into(),
            );
            return;
        }
        for sub in run.unlisted(Marketplace::Gcp, &listed, MAX_PAGES).await {
            match self.procurement.entitlement(&sub.key.id).await {
                Ok(None) => {
                    run.check(&sub.key, &sub.product, &Snapshot::Gone).await;
                }
                Ok(Some(ent)) => self.check(run, &ent).await,
                Err(e) => run.fail(format!("{}: entitlements.get: {e}", sub.key)),
            }
        }
    }

    async fn check(&self, run: &mut Run<'_>, ent: &EntitlementView) {
        let key = SubscriptionKey::new(Marketplace::Gcp, &ent.id);
        let (snapshot, account) = match self.snapshot(ent).await {
            Ok(s) => s,
            Err(e) => return run.fail(format!("{key}: accounts.get: {e}")),
        };
        // The product as the push pipeline names it.
        let configured = self
            .catalog
            .product_for(Marketplace::Gcp, Some(&ent.product))
            .map(str::to_owned);
        let product = configured.clone().unwrap_or_else(|| ent.product.clone());
        let outcome = run.check(&key, &product, &snapshot).await;
        // As in the pipeline, the follow-up comes after the state is
        // committed; when that failed, the next run tries both again.
        if matches!(outcome, Outcome::Failed { .. }) {
            return;
        }
        let context = GcpContext {
            entitlement: Some(ent.clone()),
            account,
            product: configured,
        };
        if let Some(follow_up) = FollowUp::decide(&self.catalog, &context) {
            let procurement = &*self.procurement;
            let execute = async {
                match follow_up.execute(procurement).await {
                    Ok(FollowUpDone::Settled) => Ok(FollowUpResult::Settled),
                    Ok(FollowUpDone::Done | FollowUpDone::Nothing) => Ok(FollowUpResult::Done),
                    Err(e) => Err(e.to_string()),
                }
            };
            run.follow_up(&key, follow_up.to_string(), execute).await;
        }
    }

    /// The entitlement as the push pipeline observes it: an order awaiting
    /// activation waits for sign-up or for approval, as the account says
    /// (the account is returned for the follow-up's decision).
    async fn snapshot(
        &self,
        ent: &EntitlementView,
    ) -> Result<(Snapshot, Option<AccountView>), ProcurementFailure> {
        let account = if ent.state == EntitlementState::ActivationRequested {
            self.procurement.account(&ent.account_id).await?
        } else {
            None
        };
        let awaiting = if account.as_ref().is_some_and(AccountView::signed_up) {
            Awaiting::Approval
        } else {
            Awaiting::Signup
        };
        let snapshot = Snapshot::Gcp {
            customer: Customer::new(CustomerKey::new(Marketplace::Gcp, &ent.account_id)),
            observation: observe(ent, awaiting),
            updated_at: ent.update_time,
        };
        Ok((snapshot, account))
    }
}
