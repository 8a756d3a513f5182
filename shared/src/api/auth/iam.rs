//! IAM callers: which request contexts are trusted as having passed the
//! function URL's `AWS_IAM` auth, and the optional allow-list that maps
//! principals to scopes.
//!
//! **What is trusted.** Lambda puts the SigV4-verified caller in
//! `requestContext.authorizer.iam` of a function-URL event. But an event is
//! only JSON: anyone allowed to call `lambda:Invoke` on the function
//! directly can hand it an event with any context. Nothing inside an event
//! proves where it came from, so the defence is IAM itself — the function
//! URL's `AWS_IAM` auth, and `lambda:InvokeFunction` granted to callers
//! only with `lambda:InvokedViaFunctionUrl` (Terraform's
//! `invoked_via_function_url`; README "Deploy"). The code adds what it can
//! check: in `aws_iam` mode an event must have the function-URL shape
//! ([`check_function_url_shape`]) and a consistent IAM caller, or it is
//! refused as `untrusted_event`; in `api_key` mode (a URL with auth `NONE`,
//! which never carries an IAM caller) an event naming one is refused the
//! same way. That stops a hand-written or test event from passing by
//! accident; it does not stop a principal who may invoke the function
//! directly and copies a real event's shape.
//!
//! **The allow-list** (`TOLLGATE_IAM_PRINCIPALS`, a JSON object): keys are
//! 12-digit account ids or IAM ARNs, values the scopes, e.g.
//! `{"111122223333": "check", "arn:aws:iam::111122223333:role/billing": "check,seats"}`.
//! A role ARN also matches the sessions of that role
//! (`arn:aws:sts::<account>:assumed-role/<role name>/<session>`; the role's
//! path is not part of a session ARN, role names are unique per account).
//! The most specific entry wins: an ARN entry over its account's entry.
//! Unlisted callers are 403 `principal_not_allowed`. Unset, every IAM
//! caller has every scope (what the resource policy lets through).

use std::collections::BTreeMap;

use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;

use super::Scopes;
use crate::web::Request;

/// The environment variable holding the allow-list.
pub const PRINCIPALS_ENV: &str = "TOLLGATE_IAM_PRINCIPALS";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamConfigError {
    #[error(
        "{PRINCIPALS_ENV}: expected a JSON object of principal -> scopes, e.g. {{\"111122223333\": \"check\"}} ({0})"
    )]
    NotAnObject(String),
    #[error(
        "{PRINCIPALS_ENV}: `{0}` is neither a 12-digit account id nor an IAM ARN (arn:<partition>:iam::<account>:role/<name>, ...)"
    )]
    InvalidPrincipal(String),
    #[error("{PRINCIPALS_ENV}: `{principal}`: {source}")]
    InvalidScopes {
        principal: String,
        #[source]
        source: super::ApiKeyError,
    },
}

/// One allow-list key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Account(String),
    /// Matches this exact ARN.
    Arn(String),
    /// An IAM role: its ARN, and the sessions of the role.
    Role {
        arn: String,
        partition: String,
        account: String,
        name: String,
    },
}

/// The parts of an ARN this module compares.
#[derive(Debug, PartialEq, Eq)]
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parse_arn(text: &str) -> Option<Arn<'_>> {
    let mut parts = text.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(_region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let ok = !partition.is_empty() && is_account(account) && !resource.is_empty();
    ok.then_some(Arn {
        partition,
        service,
        account,
        resource,
    })
}

fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

impl Pattern {
    fn parse(key: &str) -> Option<Self> {
        if is_account(key) {
            return Some(Self::Account(key.to_owned()));
        }
        let arn = parse_arn(key)?;
        if !matches!(arn.service, "iam" | "sts") {
            return None;
        }
        if arn.service == "iam"
            && let Some(path_and_name) = arn.resource.strip_prefix("role/")
        {
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            if name.is_empty() {
                return None;
            }
            return Some(Self::Role {
                arn: key.to_owned(),
                partition: arn.partition.to_owned(),
                account: arn.account.to_owned(),
                name: name.to_owned(),
            });
        }
        Some(Self::Arn(key.to_owned()))
    }

    /// How specific a match is (higher wins), or `None` for no match.
    fn matches(&self, caller_arn: Option<&str>, caller_account: Option<&str>) -> Option<u8> {
        match self {
            Self::Account(account) => (caller_account == Some(account.as_str())).then_some(1),
            Self::Arn(arn) => (caller_arn == Some(arn.as_str())).then_some(2),
            Self::Role {
                arn,
                partition,
                account,
                name,
            } => {
                let caller = caller_arn?;
                if caller == arn {
                    return Some(2);
                }
                let c = parse_arn(caller)?;
                let session_of = c
                    .resource
                    .strip_prefix("assumed-role/")
                    .and_then(|rest| rest.split_once('/'))
                    .map(|(role, _session)| role);
                (c.service == "sts"
                    && c.partition == partition
                    && c.account == account
                    && session_of == Some(name.as_str()))
                .then_some(2)
            }
        }
    }
}

/// Principals allowed through IAM mode, each with its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPrincipals {
    entries: Vec<(Pattern, Scopes)>,
}

impl IamPrincipals {
    /// Parses the JSON object of [`PRINCIPALS_ENV`]. `{}` is a valid list
    /// that lets nobody through.
    pub fn parse(json: &str) -> Result<Self, IamConfigError> {
        let map: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
            IamConfigError::NotAnObject(format!("line {} column {}", e.line(), e.column()))
        })?;
        let mut entries = Vec::with_capacity(map.len());
        for (key, scopes) in map {
            let key = key.trim();
            let pattern = Pattern::parse(key)
                .ok_or_else(|| IamConfigError::InvalidPrincipal(key.to_owned()))?;
            let scopes =
                Scopes::parse(&scopes).map_err(|source| IamConfigError::InvalidScopes {
                    principal: key.to_owned(),
                    source,
                })?;
            entries.push((pattern, scopes));
        }
        Ok(Self { entries })
    }

    /// The scopes of the most specific entry naming the caller.
    pub fn scopes_for(
        &self,
        caller_arn: Option<&str>,
        caller_account: Option<&str>,
    ) -> Option<Scopes> {
        self.entries
            .iter()
            .filter_map(|(p, scopes)| {
                p.matches(caller_arn, caller_account)
                    .map(|rank| (rank, *scopes))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, scopes)| scopes)
    }
}

/// The function-URL request context and its IAM caller, when the event
/// carries one.
pub(super) fn iam_context(
    req: &Request,
) -> Option<(
    &ApiGatewayV2httpRequestContext,
    &ApiGatewayRequestAuthorizerIamDescription,
)> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let iam = ctx.authorizer.as_ref()?.iam.as_ref()?;
            Some((ctx, iam))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The caller's account: from its ARN (what AWS verified), else the
/// context's `accountId`.
pub(super) fn caller_account(iam: &ApiGatewayRequestAuthorizerIamDescription) -> Option<&str> {
    iam.user_arn
        .as_deref()
        .and_then(parse_arn)
        .map(|a| a.account)
        .or(iam.account_id.as_deref())
}

/// What a function-URL event with `AWS_IAM` auth always has, checked so
/// that an event written by hand (a console test event, an API Gateway
/// sample) is not taken for one: the host `<url id>.lambda-url.<region>.on.aws`
/// with `apiId` = the URL id (and, when known, this function's region), and
/// an IAM caller whose ARN parses and agrees with its `accountId`.
pub(super) fn check_function_url_shape(
    ctx: &ApiGatewayV2httpRequestContext,
    iam: &ApiGatewayRequestAuthorizerIamDescription,
    region: Option<&str>,
) -> Result<(), &'static str> {
    let api_id = ctx
        .apiid
        .as_deref()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or("the event has no function URL id (requestContext.apiId)")?;
    let host_region = ctx
        .domain_name
        .as_deref()
        .and_then(|d| d.strip_prefix(api_id))
        .and_then(|d| d.strip_prefix(".lambda-url."))
        .and_then(|d| d.strip_suffix(".on.aws"))
        .filter(|r| !r.is_empty() && !r.contains('.'))
        .ok_or("requestContext.domainName is not this event's function URL host (<url id>.lambda-url.<region>.on.aws)")?;
    if region.is_some_and(|r| r != host_region) {
        return Err("the event's function URL is in another region than this function");
    }
    let arn = iam
        .user_arn
        .as_deref()
        .and_then(parse_arn)
        .ok_or("the IAM caller has no valid ARN (requestContext.authorizer.iam.userArn)")?;
    if iam.account_id.as_deref() != Some(arn.account) {
        return Err("the IAM caller's accountId and ARN disagree");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::Scope;

    #[test]
    fn roles_match_their_sessions_accounts_their_principals_and_arns_win() {
        let list = IamPrincipals::parse(
            r#"{
                "111122223333": "check",
                "arn:aws:iam::111122223333:role/team/billing": "check,seats",
                "arn:aws:iam::444455556666:user/ops": "seats"
            }"#,
        )
        .unwrap();
        let session = "arn:aws:sts::111122223333:assumed-role/billing/i-0abc";
        assert_eq!(
            list.scopes_for(Some(session), Some("111122223333")),
            Some(Scopes::ALL)
        );
        let other_role = "arn:aws:sts::111122223333:assumed-role/reporting/x";
        let account_only = list
            .scopes_for(Some(other_role), Some("111122223333"))
            .unwrap();
        assert!(account_only.contains(Scope::Check) && !account_only.contains(Scope::Seats));
        // Same role name in another account, or another partition: no.
        for caller in [
            "arn:aws:sts::999999999999:assumed-role/billing/x",
            "arn:aws-cn:sts::111122223333:assumed-role/billing/x",
        ] {
            let account = parse_arn(caller).map(|a| a.account);
            assert_eq!(
                list.scopes_for(Some(caller), account)
                    .map(|s| s.contains(Scope::Seats)),
                if account == Some("111122223333") {
                    Some(false)
                } else {
                    None
                },
                "{caller}"
            );
        }
        let user = "arn:aws:iam::444455556666:user/ops";
        assert!(
            list.scopes_for(Some(user), Some("444455556666"))
                .unwrap()
                .contains(Scope::Seats)
        );
        assert_eq!(
            list.scopes_for(
                Some("arn:aws:iam::444455556666:user/opsx"),
                Some("444455556666")
            ),
            None
        );
        assert_eq!(list.scopes_for(None, None), None);
    }

    #[test]
    fn bad_allow_lists_are_refused_with_the_variable_and_the_key() {
        for (bad, needle) in [
            ("[1]", "JSON object"),
            (r#"{"1234": "check"}"#, "`1234`"),
            (r#"{"arn:aws:s3:::bucket": "check"}"#, "arn:aws:s3"),
            (r#"{"arn:aws:iam::111122223333:role/": "check"}"#, "role/"),
            (r#"{"111122223333": "admin"}"#, "admin"),
        ] {
            let err = IamPrincipals::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(PRINCIPALS_ENV) && err.contains(needle),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            IamPrincipals::parse("{}")
                .unwrap()
                .scopes_for(Some("x"), Some("111122223333")),
            None
        );
    }
}
