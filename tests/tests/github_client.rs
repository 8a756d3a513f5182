//! `GithubClient` against the local GitHub stand-ins over real HTTP: the
//! app-JWT listing calls reconciliation uses, typed errors, rate limits and
//! bounded, same-origin pagination.

use chrono::{DateTime, Duration, Utc};
use tollgate::marketplace::github::app_jwt::AppJwtSigner;
use tollgate::marketplace::github::client::{GithubClient, GithubError, OauthErrorCode, UserToken};
use tollgate::model::{AccountKind, PriceModel};
use tollgate::setup::Secret;
use tollgate_sim::github::{
    GithubSim, Org, PendingChange, Plan, PriceModel as SimPriceModel, Purchase, RateLimit, Running,
    User,
};

/// Plans 10 (per-unit `Team`) and 11 (flat `Pro`); orgs 100..=104 on Team
/// with 1..=5 seats, org 100 with a pending move to Pro; user 1 in every org.
async fn sim() -> (GithubSim, Running) {
    let sim = GithubSim::generate().unwrap();
    sim.add_plan(Plan::new(10, 1, "Team", SimPriceModel::PerUnit));
    sim.add_plan(Plan::new(11, 2, "Pro", SimPriceModel::FlatRate));
    sim.add_user(User::new(1, "mona"));
    for (i, org) in (100..=104).enumerate() {
        sim.add_org(Org::new(org, format!("org{org}")).with_member(1));
        let mut p = Purchase::new(org, 10).with_units(i as u64 + 1);
        if org == 100 {
            p = p.with_pending_change(PendingChange {
                id: 7,
                plan_id: 11,
                unit_count: None,
                effective_date: Utc::now() + Duration::days(3),
            });
        }
        sim.add_purchase(p);
    }
    let run = sim.start().await.unwrap();
    (sim, run)
}

fn signer(sim: &GithubSim) -> AppJwtSigner {
    let app = sim.app();
    AppJwtSigner::new(app.app_id.to_string(), &Secret::new(app.private_key_pem())).unwrap()
}

/// A user token, obtained through the stand-in's OAuth flow and the client.
async fn token(sim: &GithubSim, client: &GithubClient) -> UserToken {
    let app = sim.app();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = browser
        .get(client.authorize_url(&app.client_id, "https://t.example/cb", "s"))
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    client
        .exchange_code(
            &app.client_id,
            &Secret::new(app.client_secret.clone()),
            &code,
            "https://t.example/cb",
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn listing_calls_authenticate_as_the_app_and_read_githubs_shapes() {
    let (sim, run) = sim().await;
    let client = GithubClient::with_urls(&run.web_url, &run.api_url).unwrap();
    let app = signer(&sim);

    let account = client
        .listing_account(&app, 100)
        .await
        .unwrap()
        .expect("purchased");
    assert_eq!((account.id, account.login.as_str()), (100, "org100"));
    assert_eq!(account.account_kind(), Some(AccountKind::Organization));
    let plan = account.marketplace_purchase.plan.as_ref().unwrap();
    assert_eq!(
        (plan.id, plan.price_model()),
        (10, Some(PriceModel::PerUnit))
    );
    assert_eq!(account.marketplace_purchase.unit_count, Some(1));
    let pending = account.marketplace_pending_change.as_ref().unwrap();
    assert_eq!(pending.plan.as_ref().map(|p| p.id), Some(11));
    assert!(pending.effective_date.is_some());

    assert_eq!(
        client.listing_account(&app, 999).await.unwrap(),
        None,
        "404: not purchased"
    );

    let plans = client.listing_plans(&app).await.unwrap();
    assert_eq!(plans.iter().map(|p| p.id).collect::<Vec<_>>(), vec![10, 11]);

    sim.set_max_per_page(2);
    let accounts = client.plan_accounts(&app, 10).await.unwrap();
    assert_eq!(
        accounts.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![100, 101, 102, 103, 104]
    );
    assert_eq!(accounts[4].marketplace_purchase.unit_count, Some(5));
    let pages = sim
        .seen()
        .iter()
        .filter(|s| s.path == "/marketplace_listing/plans/10/accounts")
        .count();
    assert_eq!(pages, 3, "five accounts at two a page");
    assert!(
        sim.seen()
            .iter()
            .filter(|s| s.path.starts_with("/marketplace_listing"))
            .all(|s| s.auth == tollgate_sim::github::AuthKind::Jwt),
        "every listing call carries the app JWT"
    );

    // The same calls with a JWT signed by another key are refused, typed.
    let stranger = signer(&GithubSim::generate().unwrap());
    assert!(matches!(
        client.listing_account(&stranger, 100).await,
        Err(GithubError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn user_calls_and_the_code_exchange_report_typed_errors() {
    let (sim, run) = sim().await;
    let client = GithubClient::with_urls(&run.web_url, &run.api_url).unwrap();
    let token = token(&sim, &client).await;
    assert_eq!(client.user(&token).await.unwrap().login, "mona");
    assert_eq!(
        client
            .user_marketplace_purchases(&token)
            .await
            .unwrap()
            .len(),
        5
    );

    assert!(matches!(
        client.user(&UserToken::new("gho_forged")).await,
        Err(GithubError::Unauthorized { .. })
    ));
    let app = sim.app();
    let wrong_secret = client
        .exchange_code(
            &app.client_id,
            &Secret::new("nope"),
            "abc",
            "https://t.example/cb",
        )
        .await
        .unwrap_err();
    assert!(matches!(
        wrong_secret,
        GithubError::OauthExchange {
            code: OauthErrorCode::IncorrectClientCredentials,
            ..
        }
    ));
    let bad_code = client
        .exchange_code(
            &app.client_id,
            &Secret::new(app.client_secret.clone()),
            "abc",
            "https://t.example/cb",
        )
        .await
        .unwrap_err();
    assert!(matches!(
        bad_code,
        GithubError::OauthExchange {
            code: OauthErrorCode::BadVerificationCode,
            ..
        }
    ));
    assert!(!format!("{bad_code} {bad_code:?}").contains(&app.client_secret));
}

#[tokio::test]
async fn rate_limits_become_a_typed_error_with_the_reset_time_and_no_retry() {
    let (sim, run) = sim().await;
    let client = GithubClient::with_urls(&run.web_url, &run.api_url).unwrap();
    let app = signer(&sim);
    let reset = DateTime::from_timestamp(Utc::now().timestamp() + 600, 0).unwrap();
    sim.rate_limit_next(1, RateLimit::Primary { reset_at: reset });
    let before = sim.seen().len();
    match client.listing_plans(&app).await {
        Err(GithubError::RateLimited { reset_at, .. }) => assert_eq!(reset_at, reset),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(sim.seen().len(), before + 1, "one request, no hammering");

    sim.rate_limit_next(
        1,
        RateLimit::Secondary {
            retry_after_secs: 90,
        },
    );
    let asked = Utc::now();
    match client.listing_account(&app, 100).await {
        Err(e @ GithubError::RateLimited { reset_at, .. }) => {
            assert!(e.is_transient());
            let wait = reset_at - asked;
            assert!(
                wait >= Duration::seconds(89) && wait <= Duration::seconds(95),
                "{wait}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(
        client.listing_plans(&app).await.is_ok(),
        "answers again afterwards"
    );
}

#[tokio::test]
async fn pagination_is_bounded_and_stays_on_the_api_host() {
    let (sim, run) = sim().await;
    sim.set_max_per_page(1);
    let app = signer(&sim);
    let capped = GithubClient::with_urls(&run.web_url, &run.api_url)
        .unwrap()
        .with_max_pages(3);
    assert!(matches!(
        capped.plan_accounts(&app, 10).await,
        Err(GithubError::TooManyPages { max: 3, .. })
    ));

    // Reach the stand-in as `localhost`: its `Link` URLs say 127.0.0.1, another
    // origin, so the client refuses to send the JWT there.
    let via_localhost = run.api_url.replace("127.0.0.1", "localhost");
    let client = GithubClient::with_urls(&run.web_url, &via_localhost).unwrap();
    let before = sim.seen().len();
    assert!(matches!(
        client.plan_accounts(&app, 10).await,
        Err(GithubError::ForeignLink { .. })
    ));
    assert_eq!(
        sim.seen().len(),
        before + 1,
        "the foreign link was not followed"
    );
}

#[tokio::test]
async fn an_unreachable_github_fails_fast_and_typed() {
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let client = GithubClient::with_urls(&base, &base).unwrap();
    let started = std::time::Instant::now();
    let err = client.user(&UserToken::new("gho_x")).await.unwrap_err();
    assert!(matches!(err, GithubError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A one-route HTTP server answering every request with `200` and `body`
/// (a GitHub that replies something the endpoint does not document).
fn replying(body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    base
}

#[tokio::test]
async fn a_reply_that_does_not_decode_is_reported_by_position_never_by_value() {
    let cases = [
        // A token-like string where GitHub documents a number.
        (
            r#"{"id":"gho_leaked_value","login":"mona"}"#,
            "line 1 column",
        ),
        // A required field missing: named, never its neighbours' values.
        (
            r#"{"id":1,"name":"gho_leaked_value"}"#,
            "`login` is missing",
        ),
        // Not JSON at all.
        ("<html>gho_leaked_value</html>", "invalid JSON"),
    ];
    for (body, want) in cases {
        let base = replying(body);
        let client = GithubClient::with_urls(&base, &base).unwrap();
        let err = client.user(&UserToken::new("gho_x")).await.unwrap_err();
        assert!(matches!(err, GithubError::Decode { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(want), "{message}");
        assert!(
            !format!("{message} {err:?}").contains("gho_leaked_value"),
            "{message}"
        );
    }
}
