//! The API's methods (`providers.accounts.*`, `providers.entitlements.*`),
//! each one [`Call`] under the client's retry policy. Account and
//! entitlement arguments take a bare id or a full resource name.

use reqwest::Method;
use serde::Serialize;

use super::transport::{Call, decode};
use super::types::{
    Account, ApproveAccountRequest, ApproveEntitlementRequest, ApprovePlanChangeRequest,
    Entitlement, ListAccountsResponse, ListEntitlementsResponse, RejectAccountRequest,
    RejectEntitlementRequest, RejectPlanChangeRequest,
};
use super::{ProcurementClient, ProcurementError};

/// `accounts.list` allows at most 200 per page (default 25).
const ACCOUNTS_PAGE_SIZE: u32 = 200;

impl ProcurementClient {
    /// `GET v1/providers/{p}/accounts/{id}`.
    pub async fn get_account(&self, account: &str) -> Result<Account, ProcurementError> {
        const ENDPOINT: &str = "accounts.get";
        let name = self.account_name(account)?;
        let body = self
            .execute(&self.read(ENDPOINT, self.url(&name, None), vec![]))
            .await?;
        decode(ENDPOINT, &body)
    }

    /// One page of `GET v1/providers/{p}/accounts`.
    pub async fn list_accounts_page(
        &self,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<ListAccountsResponse, ProcurementError> {
        const ENDPOINT: &str = "accounts.list";
        let url = self.url(&format!("providers/{}/accounts", self.provider), None);
        let body = self
            .execute(&self.read(ENDPOINT, url, page_query(page_size, page_token)))
            .await?;
        decode(ENDPOINT, &body)
    }

    /// Every account, following `nextPageToken` (at most the page cap).
    pub async fn list_accounts(&self) -> Result<Vec<Account>, ProcurementError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..self.max_pages {
            let page = self
                .list_accounts_page(Some(ACCOUNTS_PAGE_SIZE), token.as_deref())
                .await?;
            items.extend(page.accounts);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
        Err(ProcurementError::TooManyPages {
            endpoint: "accounts.list",
            max: self.max_pages,
        })
    }

    /// `POST v1/providers/{p}/accounts/{id}:approve` — at sign-up, with
    /// [`ApproveAccountRequest::signup`].
    pub async fn approve_account(
        &self,
        account: &str,
        request: ApproveAccountRequest,
    ) -> Result<(), ProcurementError> {
        let name = self.account_name(account)?;
        self.act("accounts.approve", &name, "approve", &request)
            .await
    }

    /// `POST v1/providers/{p}/accounts/{id}:reject`.
    pub async fn reject_account(
        &self,
        account: &str,
        request: RejectAccountRequest,
    ) -> Result<(), ProcurementError> {
        let name = self.account_name(account)?;
        self.act("accounts.reject", &name, "reject", &request).await
    }

    /// `POST v1/providers/{p}/accounts/{id}:reset` — back to pending
    /// approval and every entitlement cancelled; for the provider's own
    /// test accounts. Google sends no notification for it.
    pub async fn reset_account(&self, account: &str) -> Result<(), ProcurementError> {
        let name = self.account_name(account)?;
        self.act("accounts.reset", &name, "reset", &serde_json::json!({}))
            .await
    }

    /// `GET v1/providers/{p}/entitlements/{id}`.
    pub async fn get_entitlement(
        &self,
        entitlement: &str,
    ) -> Result<Entitlement, ProcurementError> {
        const ENDPOINT: &str = "entitlements.get";
        let name = self.entitlement_name(entitlement)?;
        let body = self
            .execute(&self.read(ENDPOINT, self.url(&name, None), vec![]))
            .await?;
        decode(ENDPOINT, &body)
    }

    /// One page of `GET v1/providers/{p}/entitlements`. `filter` is
    /// Google's filter expression, e.g. `account=A state=activation_requested`.
    pub async fn list_entitlements_page(
        &self,
        filter: Option<&str>,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<ListEntitlementsResponse, ProcurementError> {
        const ENDPOINT: &str = "entitlements.list";
        let url = self.url(&format!("providers/{}/entitlements", self.provider), None);
        let mut query = page_query(page_size, page_token);
        if let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) {
            query.push(("filter", filter.to_owned()));
        }
        let body = self.execute(&self.read(ENDPOINT, url, query)).await?;
        decode(ENDPOINT, &body)
    }

    /// Every entitlement matching `filter`, following `nextPageToken` (at
    /// most the page cap; each page is one call under the deadline).
    pub async fn list_entitlements(
        &self,
        filter: Option<&str>,
    ) -> Result<Vec<Entitlement>, ProcurementError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..self.max_pages {
            let page = self
                .list_entitlements_page(filter, None, token.as_deref())
                .await?;
            items.extend(page.entitlements);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
        Err(ProcurementError::TooManyPages {
            endpoint: "entitlements.list",
            max: self.max_pages,
        })
    }

    /// `POST v1/providers/{p}/entitlements/{id}:approve`. Google refuses
    /// (400 `FAILED_PRECONDITION`) until the account's `signup` approval is
    /// granted, and once the entitlement is no longer awaiting approval.
    pub async fn approve_entitlement(
        &self,
        entitlement: &str,
        request: ApproveEntitlementRequest,
    ) -> Result<(), ProcurementError> {
        let name = self.entitlement_name(entitlement)?;
        self.act("entitlements.approve", &name, "approve", &request)
            .await
    }

    /// `POST v1/providers/{p}/entitlements/{id}:reject` with `reason`
    /// (shown to the customer; at most 256 bytes, Google truncates; empty:
    /// none).
    pub async fn reject_entitlement(
        &self,
        entitlement: &str,
        reason: &str,
    ) -> Result<(), ProcurementError> {
        let name = self.entitlement_name(entitlement)?;
        let request = RejectEntitlementRequest {
            reason: optional(reason),
        };
        self.act("entitlements.reject", &name, "reject", &request)
            .await
    }

    /// `POST v1/providers/{p}/entitlements/{id}:approvePlanChange`.
    /// `pending_plan_name` must be the entitlement's current
    /// `newPendingPlan` (read it fresh; the notification's is a hint).
    pub async fn approve_plan_change(
        &self,
        entitlement: &str,
        pending_plan_name: &str,
    ) -> Result<(), ProcurementError> {
        let name = self.entitlement_name(entitlement)?;
        let request = ApprovePlanChangeRequest {
            pending_plan_name: plan_name(pending_plan_name)?,
        };
        self.act(
            "entitlements.approvePlanChange",
            &name,
            "approvePlanChange",
            &request,
        )
        .await
    }

    /// `POST v1/providers/{p}/entitlements/{id}:rejectPlanChange`.
    pub async fn reject_plan_change(
        &self,
        entitlement: &str,
        pending_plan_name: &str,
        reason: &str,
    ) -> Result<(), ProcurementError> {
        let name = self.entitlement_name(entitlement)?;
        let request = RejectPlanChangeRequest {
            pending_plan_name: plan_name(pending_plan_name)?,
            reason: optional(reason),
        };
        self.act(
            "entitlements.rejectPlanChange",
            &name,
            "rejectPlanChange",
            &request,
        )
        .await
    }

    /// `PATCH v1/providers/{p}/entitlements/{id}?updateMask=...` with the
    /// fields named by `update_mask` (comma-separated field names; in
    /// practice only `messageToUser` is writable, and only while the
    /// entitlement awaits the provider). Returns the updated entitlement.
    pub async fn patch_entitlement(
        &self,
        entitlement: &str,
        update_mask: &str,
        patch: &Entitlement,
    ) -> Result<Entitlement, ProcurementError> {
        const ENDPOINT: &str = "entitlements.patch";
        let name = self.entitlement_name(entitlement)?;
        let mask = update_mask.trim();
        let plain = !mask.is_empty()
            && mask.split(',').all(|f| {
                !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            });
        if !plain {
            return Err(ProcurementError::InvalidInput {
                what: "update mask",
            });
        }
        let call = Call {
            endpoint: ENDPOINT,
            method: Method::PATCH,
            url: self.url(&name, None),
            query: vec![("updateMask", mask.to_owned())],
            body: Some(json(patch)?),
            // Setting the same fields twice is the same as once.
            action: false,
            wants_body: true,
        };
        let body = self.execute(&call).await?;
        decode(ENDPOINT, &body)
    }

    /// Sets `messageToUser` (shown to the customer while the entitlement
    /// awaits us, cleared by Google on the next state change).
    pub async fn set_message_to_user(
        &self,
        entitlement: &str,
        message: &str,
    ) -> Result<Entitlement, ProcurementError> {
        let patch = Entitlement {
            message_to_user: Some(message.to_owned()),
            ..Entitlement::default()
        };
        self.patch_entitlement(entitlement, "messageToUser", &patch)
            .await
    }

    fn read(
        &self,
        endpoint: &'static str,
        url: String,
        query: Vec<(&'static str, String)>,
    ) -> Call {
        Call {
            endpoint,
            method: Method::GET,
            url,
            query,
            body: None,
            action: false,
            wants_body: true,
        }
    }

    /// A `POST {name}:{verb}` state change answering `{}`.
    async fn act<B: Serialize>(
        &self,
        endpoint: &'static str,
        name: &str,
        verb: &str,
        request: &B,
    ) -> Result<(), ProcurementError> {
        let call = Call {
            endpoint,
            method: Method::POST,
            url: self.url(name, Some(verb)),
            query: vec![],
            body: Some(json(request)?),
            action: true,
            wants_body: false,
        };
        self.execute(&call).await.map(|_| ())
    }
}

fn page_query(page_size: Option<u32>, page_token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(size) = page_size {
        query.push(("pageSize", size.to_string()));
    }
    if let Some(token) = page_token.filter(|t| !t.is_empty()) {
        query.push(("pageToken", token.to_owned()));
    }
    query
}

fn optional(reason: &str) -> Option<String> {
    let reason = reason.trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

fn plan_name(raw: &str) -> Result<String, ProcurementError> {
    let plan = raw.trim();
    if plan.is_empty() {
        return Err(ProcurementError::InvalidInput {
            what: "pending plan name",
        });
    }
    Ok(plan.to_owned())
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ProcurementError> {
    // Serializing these plain structs cannot fail; reported, not unwrapped.
    serde_json::to_vec(value).map_err(|_| ProcurementError::InvalidInput {
        what: "request body",
    })
}
