//! Calls made as the signed-in user: the OAuth code exchange on github.com
//! (<https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>),
//! `GET /user` and `GET /user/marketplace_purchases` on api.github.com.

use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::header;
use serde::Deserialize;

use super::super::webhook::account_kind;
use super::listing::ListingPlan;
use super::transport::{Auth, PER_PAGE, check, lenient_time, read_json, transport};
use super::{GithubClient, GithubError, UserToken};
use crate::model::AccountKind;
use crate::secret::Secret;

/// The `error` of a refused code exchange (GitHub answers these with 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OauthErrorCode {
    /// The code is wrong, expired (10 minutes) or already used.
    BadVerificationCode,
    IncorrectClientCredentials,
    RedirectUriMismatch,
    UnverifiedUserEmail,
    /// Any other code, reduced to [`safe_code`] characters: it ends up in
    /// error messages.
    Other(String),
}

impl OauthErrorCode {
    pub fn parse(code: &str) -> Self {
        match code {
            "bad_verification_code" => Self::BadVerificationCode,
            "incorrect_client_credentials" => Self::IncorrectClientCredentials,
            "redirect_uri_mismatch" => Self::RedirectUriMismatch,
            "unverified_user_email" => Self::UnverifiedUserEmail,
            other => Self::Other(safe_code(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::BadVerificationCode => "bad_verification_code",
            Self::IncorrectClientCredentials => "incorrect_client_credentials",
            Self::RedirectUriMismatch => "redirect_uri_mismatch",
            Self::UnverifiedUserEmail => "unverified_user_email",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for OauthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth `error` code from outside (GitHub's reply, the callback's
/// query) fit for a message: GitHub's codes are short snake_case words, so
/// only ASCII letters, digits and `_` are kept, at most 64 of them.
pub(crate) fn safe_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// `GET /user` (the fields Tollgate uses of `private-user`/`public-user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `marketplace-account`: who bought.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketplaceAccount {
    pub id: u64,
    pub login: String,
    /// As GitHub spells it (`Organization`, `User`); see [`Self::account_kind`].
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub organization_billing_email: Option<String>,
}

impl MarketplaceAccount {
    /// The account type in any casing.
    pub fn account_kind(&self) -> Option<AccountKind> {
        account_kind(&self.kind)
    }
}

/// `user-marketplace-purchase`: one of the signed-in user's subscriptions
/// (their own account's or an organization's they can see).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserMarketplacePurchase {
    #[serde(default)]
    pub billing_cycle: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub next_billing_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub unit_count: Option<u64>,
    #[serde(default)]
    pub on_free_trial: Option<bool>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub free_trial_ends_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
    pub account: MarketplaceAccount,
    pub plan: ListingPlan,
}

impl UserMarketplacePurchase {
    /// Whole days left of a free trial, rounded up (a trial ending in an
    /// hour has 1 day left); `None` when not on a trial.
    pub fn trial_days_left(&self, now: DateTime<Utc>) -> Option<u32> {
        if self.on_free_trial != Some(true) {
            return None;
        }
        self.free_trial_ends_on
            .map(|ends| crate::entitlement::days_left(ends, now))
    }
}

impl GithubClient {
    /// Where to send the user to authorize the app.
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        let base = format!("{}/login/oauth/authorize", self.web);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .finish();
        format!("{base}?{query}")
    }

    /// Exchanges an OAuth `code` for the user's token. A 200 reply with an
    /// `error` field is a failure ([`GithubError::OauthExchange`]).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<UserToken, GithubError> {
        const ENDPOINT: &str = "POST /login/oauth/access_token";
        // No Debug: the token must not end up in a log line by accident.
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            error_description: Option<String>,
        }
        let res = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web))
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .map_err(|e| transport(ENDPOINT, e))?;
        let res = check(ENDPOINT, res)?;
        let reply: Reply = read_json(ENDPOINT, res).await?;
        if let Some(error) = reply.error {
            return Err(GithubError::OauthExchange {
                code: OauthErrorCode::parse(&error),
                description: reply.error_description,
            });
        }
        match reply.access_token {
            Some(token) if !token.is_empty() => Ok(UserToken::new(token)),
            _ => Err(GithubError::Decode {
                endpoint: ENDPOINT,
                message: "neither `access_token` nor `error` in the reply".into(),
            }),
        }
    }

    /// `GET /user`: who the token belongs to.
    pub async fn user(&self, token: &UserToken) -> Result<User, GithubError> {
        const ENDPOINT: &str = "GET /user";
        let res = self
            .get(ENDPOINT, &format!("{}/user", self.api), &Auth::User(token))
            .await?;
        read_json(ENDPOINT, check(ENDPOINT, res)?).await
    }

    /// `GET /user/marketplace_purchases`, every page.
    pub async fn user_marketplace_purchases(
        &self,
        token: &UserToken,
    ) -> Result<Vec<UserMarketplacePurchase>, GithubError> {
        let url = format!(
            "{}/user/marketplace_purchases?per_page={PER_PAGE}",
            self.api
        );
        self.get_all("GET /user/marketplace_purchases", url, &Auth::User(token))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PriceModel;
    use chrono::TimeZone;

    #[test]
    fn purchases_parse_tolerantly() {
        let json = r#"{"billing_cycle":null,"next_billing_date":null,"unit_count":null,
            "on_free_trial":true,"free_trial_ends_on":"2017-11-11T00:00:00+00:00","updated_at":"nonsense",
            "account":{"login":"u","id":3,"type":"User","url":"x","email":null,"organization_billing_email":null,"extra":1},
            "plan":{"id":9,"name":"Pro","price_model":"per-unit","bullets":[null,"a"],"unit_name":null}}"#;
        let p: UserMarketplacePurchase = serde_json::from_str(json).unwrap();
        assert_eq!(p.plan.price_model(), Some(PriceModel::PerUnit));
        assert_eq!(p.updated_at, None);
        assert_eq!(p.account.account_kind(), Some(AccountKind::User));
        let now = Utc.with_ymd_and_hms(2017, 11, 2, 1, 12, 12).unwrap();
        assert_eq!(p.trial_days_left(now), Some(9));
        assert_eq!(
            p.trial_days_left(Utc.with_ymd_and_hms(2018, 1, 1, 0, 0, 0).unwrap()),
            Some(0)
        );
    }

    /// The client used to read the account type only as spelled `User` /
    /// `Organization`, while the webhook took any casing; both now share
    /// [`account_kind`].
    #[test]
    fn the_account_type_is_read_in_any_casing_as_in_webhooks() {
        for (raw, want) in [
            ("Organization", AccountKind::Organization),
            ("organization", AccountKind::Organization),
            ("USER", AccountKind::User),
            ("user", AccountKind::User),
        ] {
            let account: MarketplaceAccount = serde_json::from_value(serde_json::json!({
                "id": 1, "login": "acme", "type": raw
            }))
            .unwrap();
            assert_eq!(account.account_kind(), Some(want), "{raw}");
        }
    }

    #[test]
    fn unknown_oauth_error_codes_are_kept_to_safe_characters() {
        assert_eq!(
            OauthErrorCode::parse("bad_verification_code"),
            OauthErrorCode::BadVerificationCode
        );
        assert_eq!(
            OauthErrorCode::parse("application_suspended"),
            OauthErrorCode::Other("application_suspended".into())
        );
        let err = GithubError::OauthExchange {
            code: OauthErrorCode::parse("x\n<script>alert(1)</script>"),
            description: None,
        }
        .to_string();
        assert_eq!(
            err,
            "GitHub refused the OAuth code exchange: xscriptalert1script"
        );
        assert_eq!(safe_code(&"a".repeat(100)).len(), 64);
    }
}
