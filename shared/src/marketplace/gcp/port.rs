//! The Procurement API client seen through the adapter's [`Procurement`]
//! port: Google's resources reduced to what Tollgate acts on, Google's
//! errors reduced to "retry?" and "refused because of the state?".

use std::sync::Arc;

use async_trait::async_trait;

use super::adapter::{
    AccountView, EntitlementPage, EntitlementState, EntitlementView, Procurement,
    ProcurementFailure,
};
use super::procurement::{self as api, ProcurementClient, ProcurementError};

impl From<ProcurementError> for ProcurementFailure {
    fn from(e: ProcurementError) -> Self {
        ProcurementFailure {
            transient: e.is_transient(),
            precondition: matches!(e, ProcurementError::FailedPrecondition { .. }),
            message: e.to_string(),
        }
    }
}

fn entitlement_view(e: api::Entitlement) -> EntitlementView {
    use api::EntitlementState as S;
    let state = match &e.state {
        Some(S::ActivationRequested) => EntitlementState::ActivationRequested,
        Some(S::Active) => EntitlementState::Active,
        Some(S::PendingCancellation) => EntitlementState::PendingCancellation,
        Some(S::Cancelled) => EntitlementState::Cancelled,
        Some(S::PendingPlanChange) => EntitlementState::PendingPlanChange,
        Some(S::PendingPlanChangeApproval) => EntitlementState::PendingPlanChangeApproval,
        Some(S::Suspended) => EntitlementState::Suspended,
        Some(other) => EntitlementState::Other(other.as_str().to_owned()),
        None => EntitlementState::Other("ENTITLEMENT_STATE_UNSPECIFIED".to_owned()),
    };
    EntitlementView {
        id: e.id().unwrap_or_default().to_owned(),
        account_id: e.account_id().unwrap_or_default().to_owned(),
        product: e
            .product_external_name
            .clone()
            .or_else(|| e.product.clone())
            .unwrap_or_default(),
        plan: e.plan.clone().unwrap_or_default(),
        new_pending_plan: e.new_pending_plan.clone(),
        state,
        update_time: e.update_time,
        term_ends_at: e.subscription_end_time.or(e.offer_end_time),
    }
}

fn account_view(a: api::Account) -> AccountView {
    AccountView {
        id: a.id().unwrap_or_default().to_owned(),
        signup: a
            .approval("signup")
            .and_then(|s| s.state.as_ref())
            .map(|s| s.as_str().to_owned()),
    }
}

/// 404 is an answer ("gone"), not a failure.
fn found<T>(r: Result<T, ProcurementError>) -> Result<Option<T>, ProcurementFailure> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ProcurementError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Procurement for ProcurementClient {
    async fn entitlement(&self, id: &str) -> Result<Option<EntitlementView>, ProcurementFailure> {
        Ok(found(self.get_entitlement(id).await)?.map(entitlement_view))
    }

    async fn account(&self, id: &str) -> Result<Option<AccountView>, ProcurementFailure> {
        Ok(found(self.get_account(id).await)?.map(account_view))
    }

    async fn account_entitlements(
        &self,
        account_id: &str,
    ) -> Result<Vec<EntitlementView>, ProcurementFailure> {
        let filter = api::filter_term("account", account_id);
        Ok(self
            .list_entitlements(Some(&filter))
            .await?
            .into_iter()
            .map(entitlement_view)
            .collect())
    }

    async fn approve_entitlement(&self, id: &str) -> Result<(), ProcurementFailure> {
        Ok(self.approve_entitlement(id, Default::default()).await?)
    }

    async fn reject_entitlement(&self, id: &str, reason: &str) -> Result<(), ProcurementFailure> {
        Ok(self.reject_entitlement(id, reason).await?)
    }

    async fn approve_plan_change(
        &self,
        id: &str,
        pending_plan: &str,
    ) -> Result<(), ProcurementFailure> {
        Ok(self.approve_plan_change(id, pending_plan).await?)
    }

    async fn reject_plan_change(
        &self,
        id: &str,
        pending_plan: &str,
        reason: &str,
    ) -> Result<(), ProcurementFailure> {
        Ok(self.reject_plan_change(id, pending_plan, reason).await?)
    }

    async fn approve_signup(&self, account_id: &str) -> Result<(), ProcurementFailure> {
        Ok(self
            .approve_account(account_id, api::ApproveAccountRequest::signup())
            .await?)
    }

    async fn entitlements_page(
        &self,
        filter: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EntitlementPage, ProcurementFailure> {
        let page = self
            .list_entitlements_page(filter, None, page_token)
            .await?;
        Ok(EntitlementPage {
            entitlements: page
                .entitlements
                .into_iter()
                .map(entitlement_view)
                .collect(),
            next_page_token: page.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}

/// A Procurement API that is not configured: every call fails as
/// transient, with `why`.
pub fn unconfigured(why: &'static str) -> Arc<dyn Procurement> {
    Arc::new(Unconfigured(why))
}

struct Unconfigured(&'static str);

impl Unconfigured {
    fn fail<T>(&self) -> Result<T, ProcurementFailure> {
        Err(ProcurementFailure {
            message: self.0.to_owned(),
            transient: true,
            precondition: false,
        })
    }
}

#[async_trait]
impl Procurement for Unconfigured {
    async fn entitlement(&self, _: &str) -> Result<Option<EntitlementView>, ProcurementFailure> {
        self.fail()
    }
    async fn account(&self, _: &str) -> Result<Option<AccountView>, ProcurementFailure> {
        self.fail()
    }
    async fn account_entitlements(
        &self,
        _: &str,
    ) -> Result<Vec<EntitlementView>, ProcurementFailure> {
        self.fail()
    }
    async fn approve_entitlement(&self, _: &str) -> Result<(), ProcurementFailure> {
        self.fail()
    }
    async fn reject_entitlement(&self, _: &str, _: &str) -> Result<(), ProcurementFailure> {
        self.fail()
    }
    async fn approve_plan_change(&self, _: &str, _: &str) -> Result<(), ProcurementFailure> {
        self.fail()
    }
    async fn reject_plan_change(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<(), ProcurementFailure> {
        self.fail()
    }
    async fn approve_signup(&self, _: &str) -> Result<(), ProcurementFailure> {
        self.fail()
    }
    async fn entitlements_page(
        &self,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<EntitlementPage, ProcurementFailure> {
        self.fail()
    }
}
