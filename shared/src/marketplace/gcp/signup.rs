//! The Google sign-up page: what happens when Google sends the customer to
//! the product's sign-up URL with an `x-gcp-marketplace-token`.
//!
//! 1. Verify the token ([`super::signup_token`]) and use it up: it is
//!    stored as a single-use record until it expires, so a replay (or a
//!    reload) is refused.
//! 2. Get the account from the Procurement API.
//! 3. Link the signing-up Google user to the account (when the token names
//!    one), so apps can check entitlements by that user, for the link TTL.
//!    This adds (or renews) one link and leaves the user's others alone:
//!    a sign-up token names one procurement account, and a Google user can
//!    belong to several billing accounts, each with its own procurement
//!    account, signed up one at a time. A link to an account the user no
//!    longer belongs to is not renewed, so it expires.
//! 4. Approve the account's `signup` approval if it is pending — the only
//!    place Tollgate ever approves an account.
//! 5. Approve every order that was waiting for sign-up (configured plans;
//!    unconfigured ones are rejected), per the approval policy.
//!
//! Every step is idempotent, so a second sign-up (a new token) duplicates
//! nothing. The entitlements' states then arrive as Pub/Sub messages.
//!
//! Binding to the browser. Unlike GitHub's OAuth `state`, nothing of
//! Tollgate's starts this flow: Google's page posts the token to the sign-up
//! URL cross-site, and browsers do not send `SameSite=Lax` cookies on a
//! cross-site POST, so a `__Host-` cookie could neither be set beforehand nor
//! be checked here — it would refuse every real sign-up. The binding is
//! Google's token itself: issued to the Google user in that browser, signed,
//! for our audience, alive at most five minutes, usable once. Sign-up opens
//! no session in Tollgate either (the page only reports), so a sign-up
//! forced on someone else's browser completes only the forger's own
//! account. Cost to anonymous callers: the single-use record is written only
//! after the token verified (step 1), so an unverifiable token writes
//! nothing; Google's certificates are refetched at most once a minute.

use std::sync::Arc;

use http::StatusCode;

use super::adapter::{
    AccountView, EntitlementState, EntitlementView, Procurement, ProcurementFailure,
};
use super::signup_token::{SignupTokenError, SignupVerifier};
use crate::clock::Clock;
use crate::config::{ApprovalPolicy, Catalog, SeatPolicy};
use crate::model::{AppUser, CustomerKey, Marketplace};
use crate::store::{StoreError, Token, Tokens, UserLink, UserLinks, sha256_hex};
use crate::web::ApiError;
use crate::web::pages::{Brand, Page, day, escape, render};

/// Sign-up page path (the URL given to Google in Producer Portal).
pub const SIGNUP_PATH: &str = "/gcp/signup";
/// Token kind of a used sign-up token (id: SHA-256 of the token).
pub const USED_TOKEN_KIND: &str = "gcp_signup";

/// Why a sign-up did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignupError {
    #[error(transparent)]
    Token(#[from] SignupTokenError),
    #[error("Google does not know this account")]
    AccountNotFound,
    #[error("Google Cloud Marketplace did not answer: {0}")]
    Procurement(ProcurementFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SignupError> for ApiError {
    fn from(e: SignupError) -> Self {
        let message = e.to_string();
        match e {
            SignupError::Token(t) => t.into(),
            SignupError::AccountNotFound => ApiError::not_found(message),
            SignupError::Procurement(p) if p.transient => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "google_unavailable",
                "Google Cloud Marketplace is not answering; try again in a minute",
            ),
            SignupError::Procurement(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "google_refused", message)
            }
            SignupError::Store(s) => s.into(),
        }
    }
}

/// One order of the account and what sign-up did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderOutcome {
    pub entitlement: String,
    pub plan: String,
    /// Tollgate's tier for the plan, when configured.
    pub tier: Option<String>,
    /// The tier's seat policy, when configured.
    pub seats: Option<SeatPolicy>,
    /// When the current term ends, if Google says.
    pub term_ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub state: EntitlementState,
    pub action: OrderAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    Approved,
    Rejected,
    /// Left for the vendor to approve (manual policy).
    WaitingForVendor,
    /// Nothing to do (already active, cancelled…).
    None,
}

/// What a completed sign-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUp {
    pub account_id: String,
    /// The account's `signup` approval was approved now (not earlier).
    pub approved_now: bool,
    pub orders: Vec<OrderOutcome>,
}

/// The sign-up flow, built once at cold start.
pub struct GcpSignup {
    verifier: Option<SignupVerifier>,
    procurement: Arc<dyn Procurement>,
    catalog: Arc<Catalog>,
    tokens: Arc<dyn Tokens>,
    links: Arc<dyn UserLinks>,
    /// How long a link lives unless a later sign-up renews it.
    link_ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
}

impl GcpSignup {
    pub fn new(
        verifier: Option<SignupVerifier>,
        procurement: Arc<dyn Procurement>,
        catalog: Arc<Catalog>,
        tokens: Arc<dyn Tokens>,
        links: Arc<dyn UserLinks>,
        link_ttl: chrono::Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            verifier,
            procurement,
            catalog,
            tokens,
            links,
            link_ttl,
            clock,
        }
    }

    /// `POST /gcp/signup` with the form's token.
    pub async fn finish(&self, token: &str) -> Result<SignedUp, SignupError> {
        let verifier = self
            .verifier
            .as_ref()
            .ok_or(SignupTokenError::NotConfigured)?;
        let now = self.clock.now();
        let verified = verifier.verify(token, now).await?;
        // Used up before anything else happens, so a replay finds it — and
        // only now, after the signature verified: an anonymous POST of a
        // forged token never costs a write.
        let used = Token {
            kind: USED_TOKEN_KIND.to_owned(),
            id: sha256_hex(token.trim().as_bytes()),
            payload: verified.account_id.clone(),
            expires_at: verified.expires_at + chrono::Duration::minutes(5),
        };
        match self.tokens.put_token(&used, now).await {
            Err(StoreError::Duplicate(_)) => return Err(SignupTokenError::Replayed.into()),
            other => other?,
        }
        let failure = SignupError::Procurement;
        let account = self
            .procurement
            .account(&verified.account_id)
            .await
            .map_err(failure)?
            .ok_or(SignupError::AccountNotFound)?;
        let customer = CustomerKey::new(Marketplace::Gcp, &account.id);
        if let Some(user) = &verified.user_identity {
            let link = UserLink::new(customer.clone(), now, self.link_ttl);
            self.links
                .link_user(&AppUser(format!("google:{user}")), &link)
                .await?;
        }
        let approved_now = self.approve_signup(&account).await?;
        let mut orders = Vec::new();
        for ent in self
            .procurement
            .account_entitlements(&account.id)
            .await
            .map_err(failure)?
        {
            orders.push(self.settle_order(ent).await?);
        }
        tracing::info!(
            account = %account.id,
            approved_now,
            orders = orders.len(),
            "Google sign-up completed"
        );
        Ok(SignedUp {
            account_id: account.id,
            approved_now,
            orders,
        })
    }

    async fn approve_signup(&self, account: &AccountView) -> Result<bool, SignupError> {
        if account.signed_up() {
            return Ok(false);
        }
        match self.procurement.approve_signup(&account.id).await {
            Ok(()) => Ok(true),
            // Approved in the meantime (a second tab): nothing to do.
            Err(e) if e.precondition => Ok(false),
            Err(e) => Err(SignupError::Procurement(e)),
        }
    }

    /// Approves (or rejects) an order that waited for sign-up.
    async fn settle_order(&self, ent: EntitlementView) -> Result<OrderOutcome, SignupError> {
        let resolved = self
            .catalog
            .product_for(Marketplace::Gcp, Some(&ent.product))
            .and_then(|p| self.catalog.tier_for(Marketplace::Gcp, p, &ent.plan));
        let tier = resolved.map(|t| t.name.to_owned());
        let seats = resolved.map(|t| t.tier.seats);
        let action = if ent.state != EntitlementState::ActivationRequested {
            OrderAction::None
        } else if tier.is_none() {
            let reason = format!("plan {} is not offered by this product", ent.plan);
            self.tolerate_precondition(
                self.procurement.reject_entitlement(&ent.id, &reason).await,
            )?;
            OrderAction::Rejected
        } else if self.catalog.approval(Marketplace::Gcp) == ApprovalPolicy::Manual {
            OrderAction::WaitingForVendor
        } else {
            self.tolerate_precondition(self.procurement.approve_entitlement(&ent.id).await)?;
            OrderAction::Approved
        };
        Ok(OrderOutcome {
            entitlement: ent.id,
            plan: ent.plan,
            tier,
            seats,
            term_ends_at: ent.term_ends_at,
            state: ent.state,
            action,
        })
    }

    fn tolerate_precondition(&self, r: Result<(), ProcurementFailure>) -> Result<(), SignupError> {
        match r {
            Err(e) if e.precondition => {
                tracing::info!(error = %e, "order already settled");
                Ok(())
            }
            other => other.map_err(SignupError::Procurement),
        }
    }
}

/// The page after a sign-up: the product, each order's plan and what
/// happens next, and the way into the app.
pub fn signed_up_page(done: &SignedUp, brand: &Brand) -> Page {
    let product = if brand.name.is_empty() {
        "the app"
    } else {
        brand.name.as_str()
    };
    let mut body = format!("<h1>You're signed up for {}</h1>\n", escape(product));
    if done.orders.is_empty() {
        body.push_str("<p>Your account is ready. Your order will appear here once Google Cloud Marketplace sends it.</p>\n");
    } else {
        body.push_str(&format!(
            "<p>Your Google Cloud Marketplace account is connected to {}.</p>\n",
            escape(product)
        ));
    }
    for order in &done.orders {
        let waiting = format!(
            "Waiting for approval by the {product} team. Your plan becomes active once they \
             approve it."
        );
        let next = match order.action {
            OrderAction::Approved => "Approved. It becomes active within a few minutes.",
            OrderAction::Rejected => {
                "This plan is not offered; the order was declined and you will not be charged."
            }
            OrderAction::WaitingForVendor => waiting.as_str(),
            OrderAction::None => match order.state {
                EntitlementState::Active
                | EntitlementState::PendingPlanChange
                | EntitlementState::PendingPlanChangeApproval => "Active.",
                EntitlementState::PendingCancellation => {
                    "Active until the end of the current term."
                }
                EntitlementState::Cancelled => "Cancelled.",
                _ => "Being processed.",
            },
        };
        body.push_str(&format!(
            "<section class=\"card\">\n<h2>Plan: {}</h2>\n<p role=\"status\">{}</p>\n",
            escape(&order.plan),
            escape(next)
        ));
        let seats = match order.seats {
            Some(SeatPolicy::Unlimited) => Some("Unlimited".to_owned()),
            Some(SeatPolicy::Fixed(1)) => Some("1 seat".to_owned()),
            Some(SeatPolicy::Fixed(n)) => Some(format!("{n} seats")),
            Some(SeatPolicy::Purchased) | None => None,
        };
        let ends = order
            .term_ends_at
            .filter(|_| order.action != OrderAction::Rejected);
        if seats.is_some() || ends.is_some() {
            body.push_str("<dl>\n");
            if let Some(seats) = seats {
                body.push_str(&format!("<dt>Seats</dt><dd>{}</dd>\n", escape(&seats)));
            }
            if let Some(ends) = ends {
                body.push_str(&format!(
                    "<dt>Current term ends</dt><dd>{}</dd>\n",
                    day(ends)
                ));
            }
            body.push_str("</dl>\n");
        }
        body.push_str("</section>\n");
    }
    let usable = done
        .orders
        .iter()
        .any(|o| o.action != OrderAction::Rejected);
    if usable && let Some(link) = brand.continue_link() {
        body.push_str(&link);
    }
    render(brand, "You're signed up", &body)
}

/// The page for a sign-up that did not complete.
pub fn signup_error_page(e: &SignupError, brand: &Brand) -> Page {
    let text = match e {
        SignupError::Token(SignupTokenError::Replayed | SignupTokenError::Expired) => {
            "This sign-up link was already used or has expired. Go back to Google Cloud Marketplace and choose \"Sign up with provider\" again."
        }
        SignupError::Token(_) => {
            "This sign-up link could not be verified. Start again from Google Cloud Marketplace."
        }
        SignupError::AccountNotFound => {
            "Google Cloud Marketplace does not know this account. Start again from the Marketplace."
        }
        SignupError::Procurement(_) | SignupError::Store(_) => {
            "We could not finish your sign-up just now. Please start again from Google Cloud Marketplace in a minute."
        }
    };
    render(
        brand,
        "Sign-up not completed",
        &format!(
            "<h1>Sign-up not completed</h1>\n<section class=\"card error\"><p>{}</p></section>\n",
            escape(text)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppUrl, Branding};

    fn order(plan: &str, action: OrderAction) -> OrderOutcome {
        OrderOutcome {
            entitlement: "e1".into(),
            plan: plan.into(),
            tier: Some("team".into()),
            seats: Some(SeatPolicy::Fixed(5)),
            term_ends_at: chrono::DateTime::from_timestamp(1_800_000_000, 0),
            state: EntitlementState::ActivationRequested,
            action,
        }
    }

    fn brand() -> Brand {
        Brand {
            name: "Acme <CI>".into(),
            branding: Branding {
                app_url: Some(AppUrl::parse("https://ci.acme.example/").unwrap()),
                ..Branding::default()
            },
        }
    }

    #[test]
    fn the_sign_up_page_shows_plan_next_step_seats_term_and_the_way_in() {
        let done = SignedUp {
            account_id: "a".into(),
            approved_now: true,
            orders: vec![order("<b>team</b>", OrderAction::WaitingForVendor)],
        };
        let html = signed_up_page(&done, &brand()).html;
        assert!(
            html.contains("<h1>You're signed up for Acme &lt;CI&gt;</h1>"),
            "{html}"
        );
        assert!(
            html.contains("<h2>Plan: &lt;b&gt;team&lt;/b&gt;</h2>"),
            "{html}"
        );
        assert!(
            html.contains("Waiting for approval by the Acme &lt;CI&gt; team."),
            "{html}"
        );
        assert!(html.contains("<dt>Seats</dt><dd>5 seats</dd>"), "{html}");
        assert!(
            html.contains(
                "<dt>Current term ends</dt><dd><time datetime=\"2027-01-15\">2027-01-15</time></dd>"
            ),
            "{html}"
        );
        assert!(html.contains("href=\"https://ci.acme.example/\">Continue to Acme &lt;CI&gt;</a>"));
    }

    #[test]
    fn a_declined_order_offers_no_way_into_the_app() {
        let done = SignedUp {
            account_id: "a".into(),
            approved_now: false,
            orders: vec![order("gold", OrderAction::Rejected)],
        };
        let html = signed_up_page(&done, &brand()).html;
        assert!(html.contains("the order was declined and you will not be charged"));
        assert!(
            !html.contains("Continue to") && !html.contains("Current term ends"),
            "{html}"
        );
        let error = signup_error_page(&SignupError::Token(SignupTokenError::Replayed), &brand());
        assert!(
            error.html.contains("already used or has expired")
                && !error.html.contains("Continue to")
        );
    }
}
