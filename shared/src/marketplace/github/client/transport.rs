//! Sending a request and reading the reply: authentication, transport
//! errors, rate limits, `Link` pagination and decoding.

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::super::app_jwt::AppJwtSigner;
use super::super::webhook::{describe_json_error, parse_time};
use super::{GithubClient, GithubError, UserToken};
use crate::outbound::{ReadError, read_capped};

/// GitHub's largest page.
pub(super) const PER_PAGE: &str = "100";
/// Replies larger than this are refused, the read stopped at the cap.
const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;
/// Wait suggested when GitHub rate-limits without saying until when: "wait
/// for at least one minute before retrying"
/// (<https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>).
const DEFAULT_RATE_LIMIT_WAIT: chrono::Duration = chrono::Duration::seconds(60);

/// How a request authenticates.
pub(super) enum Auth<'a> {
    User(&'a UserToken),
    App(&'a AppJwtSigner),
}

impl GithubClient {
    pub(super) async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
        auth: &Auth<'_>,
    ) -> Result<reqwest::Response, GithubError> {
        let req = self.http.get(url);
        // `bearer_auth` marks the header sensitive.
        let req = match auth {
            Auth::User(token) => req.bearer_auth(token.expose()),
            Auth::App(signer) => req.bearer_auth(signer.sign()?.expose()),
        };
        req.send().await.map_err(|e| transport(endpoint, e))
    }

    /// Follows `Link: rel="next"` from `url`, at most `max_pages` pages, and
    /// only on the API's own origin (the token goes with every page).
    pub(super) async fn get_all<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        mut url: String,
        auth: &Auth<'_>,
    ) -> Result<Vec<T>, GithubError> {
        let mut items = Vec::new();
        for _ in 0..self.max_pages {
            let page = self.get_page(endpoint, &url, auth).await?;
            items.extend(page.items);
            let Some(next) = page.next else {
                return Ok(items);
            };
            url = next;
        }
        Err(GithubError::TooManyPages {
            endpoint,
            max: self.max_pages,
        })
    }

    /// One page at `url` and the `rel="next"` URL, refused when that points
    /// off the API's own origin (the token would go with it).
    pub(super) async fn get_page<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &str,
        auth: &Auth<'_>,
    ) -> Result<Page<T>, GithubError> {
        let res = check(endpoint, self.get(endpoint, url, auth).await?)?;
        let next = res
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let items: Vec<T> = read_json(endpoint, res).await?;
        if let Some(next) = &next {
            let same_origin = url::Url::parse(next)
                .map(|u| u.origin() == self.api_origin)
                .unwrap_or(false);
            if !same_origin {
                return Err(GithubError::ForeignLink { endpoint });
            }
        }
        Ok(Page { items, next })
    }
}

/// One page of a paginated listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The next page's URL (GitHub's `Link: rel="next"`); `None` on the last.
    pub next: Option<String>,
}

pub(super) fn transport(endpoint: &'static str, e: reqwest::Error) -> GithubError {
    if e.is_timeout() {
        return GithubError::Timeout { endpoint };
    }
    // `without_url`: URLs carry no secrets here, but keep messages short.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    GithubError::Unreachable { endpoint, message }
}

/// Maps non-2xx replies to errors: rate limits first, then 401, then the rest.
pub(super) fn check(
    endpoint: &'static str,
    res: reqwest::Response,
) -> Result<reqwest::Response, GithubError> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    if let Some(reset_at) = rate_limit_reset(status.as_u16(), res.headers(), Utc::now()) {
        return Err(GithubError::RateLimited { endpoint, reset_at });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(GithubError::Unauthorized { endpoint });
    }
    Err(GithubError::Status {
        endpoint,
        status: status.as_u16(),
    })
}

/// When a 403/429 is a rate limit, the time to come back: the primary
/// limit's `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else
/// `retry-after` (secondary limits), else a minute for a bare 429.
pub fn rate_limit_reset(
    status: u16,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if status != 403 && status != 429 {
        return None;
    }
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if num("x-ratelimit-remaining") == Some(0) {
        let reset = num("x-ratelimit-reset").and_then(|s| DateTime::from_timestamp(s, 0));
        return Some(reset.unwrap_or(now + DEFAULT_RATE_LIMIT_WAIT));
    }
    if let Some(secs) = num(header::RETRY_AFTER.as_str()) {
        return Some(now + chrono::Duration::seconds(secs.clamp(0, 86_400)));
    }
    (status == 429).then_some(now + DEFAULT_RATE_LIMIT_WAIT)
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    // `<url>; rel="next", <url>; rel="last"`: a link's parameters run to
    // the next `<`.
    let mut rest = header;
    while let Some((_, opened)) = rest.split_once('<') {
        let (target, after) = opened.split_once('>')?;
        let params = after.split('<').next().unwrap_or_default();
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = after;
    }
    None
}

pub(super) async fn read_json<T: DeserializeOwned>(
    endpoint: &'static str,
    res: reqwest::Response,
) -> Result<T, GithubError> {
    let bytes = read_capped(res, MAX_REPLY_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { cap } => GithubError::TooLarge { endpoint, cap },
            ReadError::Transport(e) => transport(endpoint, e),
        })?;
    decode(endpoint, &bytes)
}

/// Deserializes a reply. The error names the position (and a missing
/// field), never a value: serde_json's own message would quote it.
pub(super) fn decode<T: DeserializeOwned>(
    endpoint: &'static str,
    bytes: &[u8],
) -> Result<T, GithubError> {
    serde_json::from_slice(bytes).map_err(|e| GithubError::Decode {
        endpoint,
        message: describe_json_error(&e),
    })
}

/// A timestamp field read with [`parse_time`]; anything unreadable reads as
/// absent rather than failing the whole reply.
pub(super) fn lenient_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| parse_time(&s)))
}

#[cfg(test)]
mod tests {
    use super::super::{AccountPurchase, UserMarketplacePurchase};
    use super::*;
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_link_follows_githubs_link_header() {
        let h = r#"<https://api.github.com/user/marketplace_purchases?per_page=1&page=1>; rel="prev", <https://api.github.com/user/marketplace_purchases?per_page=1&page=3>; rel="next", <https://api.github.com/user/marketplace_purchases?per_page=1&page=5>; rel="last", <https://api.github.com/user/marketplace_purchases?per_page=1&page=1>; rel="first""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/user/marketplace_purchases?per_page=1&page=3")
        );
        let last_page = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(
            next_link("<https://a/b?c=1,2>; rel=next").as_deref(),
            Some("https://a/b?c=1,2")
        );
    }

    #[test]
    fn rate_limits_are_read_from_githubs_headers() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from(now.timestamp() + 120),
        );
        assert_eq!(
            rate_limit_reset(403, &h, now),
            Some(now + chrono::Duration::seconds(120))
        );
        assert_eq!(rate_limit_reset(200, &h, now), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(
            rate_limit_reset(429, &h, now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(
            rate_limit_reset(429, &HeaderMap::new(), now),
            Some(now + DEFAULT_RATE_LIMIT_WAIT)
        );
        // A plain 403 (no permission) is not a rate limit.
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
        assert_eq!(rate_limit_reset(403, &h, now), None);
    }

    #[test]
    fn decode_errors_name_the_spot_never_the_value() {
        const ENDPOINT: &str = "GET /user/marketplace_purchases";
        let cases: [(&str, &str); 4] = [
            // A token-like string where a number belongs.
            (
                r#"[{"account":{"id":"gho_leaked_token","login":"u","type":"User"},"plan":{"id":1,"name":"P"}}]"#,
                "invalid type: string, expected u64 at line 1 column 36",
            ),
            // A number out of range for the field.
            (
                r#"[{"account":{"id":-4242424242,"login":"u","type":"User"},"plan":{"id":1,"name":"P"}}]"#,
                "invalid value: integer, expected u64 at line 1 column 29",
            ),
            // A required field absent: named, it is ours.
            (
                r#"[{"account":{"id":3,"type":"User"},"plan":{"id":1,"name":"P"}}]"#,
                "`login` is missing at line 1 column 34",
            ),
            // Not JSON at all.
            (
                "<html>gho_leaked_token</html>",
                "invalid JSON (expected value) at line 1 column 1",
            ),
        ];
        for (body, want) in cases {
            let err = decode::<Vec<UserMarketplacePurchase>>(ENDPOINT, body.as_bytes())
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("unexpected reply from GitHub to {ENDPOINT}: {want}")
            );
            assert!(
                !err.contains("gho_leaked_token") && !err.contains("4242424242"),
                "{err}"
            );
        }
        let err = decode::<AccountPurchase>(
            "GET /marketplace_listing/accounts/{account_id}",
            br#"{"id":1,"login":"x","type":"Organization","marketplace_purchase":{"unit_count":"billing@acme.test"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("billing@acme.test"), "{err}");
        assert!(
            err.ends_with("invalid type: string, expected u64 at line 1 column 98"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_endless_reply_stops_at_the_cap() {
        use crate::outbound::testing::{Body, IN_FLIGHT, serve};
        let server = serve(Body::Endless { chunk: 64 * 1024 }, 1).await;
        let client = GithubClient::with_urls(&server.base, &server.base).unwrap();
        // Upper bound only: the read ends as soon as the cap is passed.
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            client.user(&UserToken::new("gho_x")),
        )
        .await
        .expect("the read must stop at the cap")
        .unwrap_err();
        assert!(
            matches!(
                err,
                GithubError::TooLarge {
                    cap: MAX_REPLY_BYTES,
                    ..
                }
            ),
            "{err:?}"
        );
        let written = server.finish().await;
        assert!(written < MAX_REPLY_BYTES as u64 + IN_FLIGHT, "{written}");
    }

    #[tokio::test]
    async fn a_reply_declaring_a_huge_length_is_not_read() {
        use crate::outbound::testing::{Body, serve};
        let server = serve(
            Body::Declared {
                declared: 1 << 40,
                sent: 1024 * 1024,
            },
            1,
        )
        .await;
        let client = GithubClient::with_urls(&server.base, &server.base).unwrap();
        let err = client.user(&UserToken::new("gho_x")).await.unwrap_err();
        assert!(matches!(err, GithubError::TooLarge { .. }), "{err:?}");
    }
}
