//! Workload Identity Federation from AWS: no Google key anywhere, the
//! Lambda's own AWS role is the credential.
//!
//! The flow (<https://google.aip.dev/auth/4117>, "AWS" credential source;
//! <https://cloud.google.com/iam/docs/workload-identity-federation-with-other-clouds>):
//!
//! 1. **Subject token.** An AWS STS `GetCallerIdentity` request
//!    (`POST https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`,
//!    empty body) is SigV4-signed with the Lambda's credentials, with the
//!    extra signed header `x-goog-cloud-target-resource: <audience>`, and
//!    not sent: `{"url", "method", "headers": [{"key", "value"}], "body"}`
//!    as JSON, percent-encoded, is the subject token. Google's STS sends
//!    it to AWS to learn which role signed it.
//! 2. **Token exchange** (RFC 8693) at Google's STS (`token_url`, by
//!    default `https://sts.googleapis.com/v1/token`): a federated access
//!    token for the workload identity pool.
//! 3. **Impersonation**: `POST <service_account_impersonation_url>`
//!    (IAM Credentials `generateAccessToken`) with the federated token as
//!    bearer and `{"scope": [...], "lifetime": "3600s"}` →
//!    `{"accessToken", "expireTime"}`: the linked service account's token,
//!    which is what the Procurement API accepts. Without an impersonation
//!    URL the federated token is used as is.
//!
//! The configuration is the JSON Google's console or `gcloud iam
//! workload-identity-pools create-cred-config --aws` produces
//! (`"type": "external_account"`). Lambda has no instance metadata service;
//! its runtime puts the role's credentials in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and the region in
//! `AWS_REGION` (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>),
//! which are read through an [`EnvLookup`] at every refresh. The metadata
//! URLs of the configuration (`region_url`, `url`,
//! `imdsv2_session_token_url`) are therefore not used.
//!
//! Signing is `aws-sigv4`'s, the signer the AWS SDK in these binaries
//! already links.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::service_account::TokenReply;
use super::{
    AccessToken, CredentialsError, EnvLookup, FetchToken, SCOPE, decode, describe_json_error,
    endpoint_url, exchange, http_client,
};
use crate::secret::Secret;

/// Google's STS token endpoint.
pub const STS_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
/// The subject token type of an AWS-signed `GetCallerIdentity` request.
pub const SUBJECT_TOKEN_TYPE_AWS: &str = "urn:ietf:params:aws:token-type:aws4_request";
/// Used when the configuration has no `regional_cred_verification_url`.
const DEFAULT_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const TARGET_RESOURCE_HEADER: &str = "x-goog-cloud-target-resource";
const STS_ENDPOINT: &str = "Google STS token exchange";
const IMPERSONATION_ENDPOINT: &str = "IAM Credentials generateAccessToken";
/// Impersonated token lifetime unless the configuration says otherwise.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// An AWS-sourced `external_account` credential configuration. Holds no
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccountConfig {
    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`
    pub audience: String,
    /// Google's STS endpoint.
    pub token_url: String,
    /// IAM Credentials `...serviceAccounts/EMAIL:generateAccessToken`;
    /// `None`: use the federated token directly.
    pub service_account_impersonation_url: Option<String>,
    /// Lifetime asked of the impersonated token.
    pub token_lifetime: Duration,
    /// The `GetCallerIdentity` URL, with `{region}` for the region.
    pub regional_cred_verification_url: String,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "type")]
    kind: String,
    audience: String,
    subject_token_type: String,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    service_account_impersonation: Option<ImpersonationOptions>,
    credential_source: CredentialSource,
}

#[derive(Deserialize)]
struct ImpersonationOptions {
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct CredentialSource {
    environment_id: Option<String>,
    regional_cred_verification_url: Option<String>,
}

impl ExternalAccountConfig {
    /// Parses and checks the configuration JSON read from `source_name` (a
    /// secret or variable name, used in errors).
    pub fn from_json(source_name: &'static str, json: &str) -> Result<Self, CredentialsError> {
        let invalid = |message: String| CredentialsError::InvalidConfig {
            source_name,
            message,
        };
        let file: ConfigFile =
            serde_json::from_str(json).map_err(|e| invalid(describe_json_error(&e)))?;
        if file.kind != "external_account" {
            return Err(invalid("`type` is not `external_account`".into()));
        }
        if file.subject_token_type != SUBJECT_TOKEN_TYPE_AWS {
            return Err(invalid(format!(
                "`subject_token_type` is not `{SUBJECT_TOKEN_TYPE_AWS}` (only AWS-sourced \
                 credentials are supported)"
            )));
        }
        // "aws1" is the only version defined (AIP-4117).
        match file.credential_source.environment_id.as_deref() {
            None | Some("aws1") => {}
            Some(_) => {
                return Err(invalid(
                    "`credential_source.environment_id` is not `aws1`".into(),
                ));
            }
        }
        if file.audience.trim().is_empty() {
            return Err(invalid("`audience` is empty".into()));
        }
        let token_url = file
            .token_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| STS_TOKEN_URL.to_owned());
        endpoint_url(&token_url, "`token_url`")?;
        let impersonation = file
            .service_account_impersonation_url
            .filter(|u| !u.trim().is_empty());
        if let Some(u) = &impersonation {
            endpoint_url(u, "`service_account_impersonation_url`")?;
        }
        let verification = file
            .credential_source
            .regional_cred_verification_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_VERIFICATION_URL.to_owned());
        endpoint_url(
            &verification.replace("{region}", "us-east-1"),
            "`credential_source.regional_cred_verification_url`",
        )?;
        // IAM Credentials accepts 600 s to 43200 s.
        let lifetime = file
            .service_account_impersonation
            .and_then(|o| o.token_lifetime_seconds)
            .map(|s| Duration::from_secs(s.clamp(600, 43_200)))
            .unwrap_or(DEFAULT_LIFETIME);
        Ok(Self {
            audience: file.audience.trim().to_owned(),
            token_url: token_url.trim().to_owned(),
            service_account_impersonation_url: impersonation.map(|u| u.trim().to_owned()),
            token_lifetime: lifetime,
            regional_cred_verification_url: verification.trim().to_owned(),
        })
    }
}

/// The Lambda role's credentials, from the environment.
pub(super) struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    region: String,
}

impl AwsCredentials {
    pub(super) fn from_env(env: &EnvLookup) -> Result<Self, CredentialsError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or(CredentialsError::AwsEnvironment("AWS_REGION"))?;
        // The region becomes part of a host name and of the signature scope.
        let plain = region.len() <= 32
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !plain {
            return Err(CredentialsError::AwsEnvironment(
                "AWS_REGION (to a region name such as us-east-1)",
            ));
        }
        Ok(Self {
            access_key_id: get("AWS_ACCESS_KEY_ID")
                .ok_or(CredentialsError::AwsEnvironment("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: Secret::new(
                get("AWS_SECRET_ACCESS_KEY")
                    .ok_or(CredentialsError::AwsEnvironment("AWS_SECRET_ACCESS_KEY"))?,
            ),
            session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            region,
        })
    }
}

/// One header of the serialized request.
#[derive(Serialize)]
struct TokenHeader<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct SignedRequest<'a> {
    url: &'a str,
    method: &'a str,
    headers: Vec<TokenHeader<'a>>,
    body: &'a str,
}

/// The subject token: a SigV4-signed, unsent `GetCallerIdentity` request
/// for `audience`, signed at `now` with the credentials `env` holds
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
/// `AWS_SESSION_TOKEN`, `AWS_REGION` or `AWS_DEFAULT_REGION`).
///
/// It proves the role's identity to anyone for a few minutes, so it is a
/// [`Secret`].
pub fn subject_token(
    config: &ExternalAccountConfig,
    env: &EnvLookup,
    now: DateTime<Utc>,
) -> Result<Secret, CredentialsError> {
    let creds = AwsCredentials::from_env(env)?;
    let what = "`credential_source.regional_cred_verification_url`";
    let url = endpoint_url(
        &config
            .regional_cred_verification_url
            .replace("{region}", &creds.region),
        what,
    )?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(CredentialsError::Url(what)),
    };
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "lambda-environment",
    )
    .into();
    let signing = "AWS GetCallerIdentity request";
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&creds.region)
        .name("sts")
        .time(SystemTime::from(now))
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| CredentialsError::Signing(signing))?
        .into();
    let unsigned = [
        ("host", host.as_str()),
        (TARGET_RESOURCE_HEADER, config.audience.as_str()),
    ];
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        unsigned.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|_| CredentialsError::Signing(signing))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|_| CredentialsError::Signing(signing))?
        .into_parts();
    let mut headers: Vec<TokenHeader<'_>> = unsigned
        .iter()
        .map(|(key, value)| TokenHeader { key, value })
        .collect();
    for (key, value) in instructions.headers() {
        // Google's client libraries spell this one capitalized.
        let key = if key.eq_ignore_ascii_case("authorization") {
            "Authorization"
        } else {
            key
        };
        headers.push(TokenHeader { key, value });
    }
    let json = serde_json::to_string(&SignedRequest {
        url: url.as_str(),
        method: "POST",
        headers,
        body: "",
    })
    .map_err(|_| CredentialsError::Signing(signing))?;
    Ok(Secret::new(percent_encode(&json)))
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a
/// space is `%20`, never `+`, so any URL decoder reads it back the same).
fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3 / 2);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fetches tokens by Workload Identity Federation from AWS.
#[derive(Clone)]
pub struct AwsWorkloadIdentity {
    config: ExternalAccountConfig,
    env: EnvLookup,
    http: reqwest::Client,
}

impl fmt::Debug for AwsWorkloadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsWorkloadIdentity")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AwsWorkloadIdentity {
    /// `env` is read at every refresh (Lambda's credentials; tests pass
    /// their own lookup).
    pub fn new(config: ExternalAccountConfig, env: EnvLookup) -> Result<Self, CredentialsError> {
        Ok(Self {
            config,
            env,
            http: http_client()?,
        })
    }

    pub fn config(&self) -> &ExternalAccountConfig {
        &self.config
    }
}

/// IAM Credentials' `generateAccessToken` reply.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedToken {
    access_token: String,
    expire_time: String,
}

#[async_trait]
impl FetchToken for AwsWorkloadIdentity {
    async fn fetch(&self, now: DateTime<Utc>) -> Result<AccessToken, CredentialsError> {
        let subject = subject_token(&self.config, &self.env, now)?;
        let req = self.http.post(&self.config.token_url).form(&[
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("audience", self.config.audience.as_str()),
            ("scope", SCOPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token_type", SUBJECT_TOKEN_TYPE_AWS),
            ("subject_token", subject.expose()),
        ]);
        let body = exchange(STS_ENDPOINT, req, &[subject.expose()]).await?;
        let federated = decode::<TokenReply>(STS_ENDPOINT, &body)?.into_token(STS_ENDPOINT, now)?;
        let Some(url) = &self.config.service_account_impersonation_url else {
            return Ok(federated);
        };
        let req = self
            .http
            .post(url)
            .bearer_auth(federated.expose())
            .json(&serde_json::json!({
                "scope": [SCOPE],
                "lifetime": format!("{}s", self.config.token_lifetime.as_secs()),
            }));
        let body = exchange(IMPERSONATION_ENDPOINT, req, &[federated.expose()]).await?;
        let generated = decode::<GeneratedToken>(IMPERSONATION_ENDPOINT, &body)?;
        let bad = |message: &str| CredentialsError::Decode {
            endpoint: IMPERSONATION_ENDPOINT,
            message: message.to_owned(),
        };
        let expires_at = DateTime::parse_from_rfc3339(&generated.expire_time)
            .map_err(|_| bad("`expireTime` is not an RFC 3339 time"))?
            .with_timezone(&Utc);
        if generated.access_token.is_empty() {
            return Err(bad("`accessToken` is empty"));
        }
        if expires_at <= now {
            return Err(bad("`expireTime` is not in the future"));
        }
        Ok(AccessToken::new(generated.access_token, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const CONFIG: &str = r#"{
      "type": "external_account",
      "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/aws",
      "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
      "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
      "token_url": "https://sts.googleapis.com/v1/token",
      "credential_source": {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
      }
    }"#;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> EnvLookup {
        Arc::new(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn googles_generated_configuration_is_read() {
        let c = ExternalAccountConfig::from_json("cfg", CONFIG).unwrap();
        assert_eq!(c.token_url, STS_TOKEN_URL);
        assert_eq!(c.token_lifetime, Duration::from_secs(3600));
        assert!(c.audience.starts_with("//iam.googleapis.com/"));
        assert!(c.service_account_impersonation_url.is_some());
    }

    #[test]
    fn other_credential_sources_are_refused_by_name() {
        let file = CONFIG.replace(
            SUBJECT_TOKEN_TYPE_AWS,
            "urn:ietf:params:oauth:token-type:jwt",
        );
        let err = ExternalAccountConfig::from_json("cfg", &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only AWS-sourced"), "{err}");
        let err = ExternalAccountConfig::from_json("cfg", "{\"type\":")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`cfg`") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_aws_credentials_name_the_variable() {
        let c = ExternalAccountConfig::from_json("cfg", CONFIG).unwrap();
        let err = subject_token(&c, &env(&[("AWS_REGION", "eu-west-1")]), Utc::now())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("set AWS_ACCESS_KEY_ID"), "{err}");
        let err = subject_token(&c, &env(&[]), Utc::now())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("set AWS_REGION"), "{err}");
        let odd = env(&[
            ("AWS_REGION", "evil.example/"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        assert!(subject_token(&c, &odd, Utc::now()).is_err());
    }

    #[test]
    fn the_subject_token_is_a_signed_get_caller_identity_request() {
        let c = ExternalAccountConfig::from_json("cfg", CONFIG).unwrap();
        let e = env(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "session-token-value"),
        ]);
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let token = subject_token(&c, &e, now).unwrap();
        assert!(!format!("{token:?}").contains("AKIDEXAMPLE"));
        let raw = token.expose();
        assert!(!raw.contains(' ') && !raw.contains('+'), "{raw}");
        let json: String = url::form_urlencoded::parse(format!("t={raw}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["url"],
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
        );
        assert_eq!(v["method"], "POST");
        assert_eq!(v["body"], "");
        let header = |k: &str| {
            v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["key"].as_str().unwrap().eq_ignore_ascii_case(k))
                .map(|h| h["value"].as_str().unwrap().to_owned())
        };
        assert_eq!(header("host").unwrap(), "sts.us-east-1.amazonaws.com");
        assert_eq!(header("x-amz-date").unwrap(), "20260301T120000Z");
        assert_eq!(
            header("x-amz-security-token").unwrap(),
            "session-token-value"
        );
        assert_eq!(header(TARGET_RESOURCE_HEADER).unwrap(), c.audience);
        let auth = header("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260301/us-east-1/sts/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, \
                 Signature="
            ),
            "{auth}"
        );
    }
}
