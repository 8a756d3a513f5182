//! `tollgate api-key new` prints a key once and a secrets entry that
//! entitlement-check accepts for exactly that key and those scopes.

use std::process::Command;

use tollgate::api::auth::{ApiKeyEntry, Authenticator, Principal, Scope};
use tollgate::web::Body;

fn tollgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn request_with(key: &str) -> tollgate::web::Request {
    http::Request::builder()
        .uri("/v1/check")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::Empty)
        .unwrap()
}

/// `auth.authenticate` for `key`, now.
fn authenticate(
    auth: &Authenticator,
    key: &str,
) -> Result<tollgate::api::auth::Caller, tollgate::api::auth::AuthError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(auth.authenticate(&request_with(key), chrono::Utc::now()))
}

#[test]
fn api_key_new_prints_a_key_and_the_hashed_entry_that_accepts_it() {
    let (ok, stdout, stderr) = tollgate(&["api-key", "new", "billing-app", "--scopes", "check"]);
    assert!(ok, "{stderr}");
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("tgk_"))
        .expect("the key is printed");
    let entry_line = stdout
        .lines()
        .find(|l| l.contains("\"api_key.billing-app\""))
        .expect("the secrets entry is printed");
    let value = entry_line.rsplit('"').nth(1).unwrap();
    assert!(
        value.starts_with("sha256:") && value.ends_with(":check"),
        "{value}"
    );
    assert!(!value.contains(&key[4..]), "only the hash is in the entry");

    let auth = Authenticator::new(
        vec![ApiKeyEntry::parse("billing-app", value).unwrap()],
        false,
    );
    let caller = authenticate(&auth, key).unwrap();
    assert_eq!(
        caller.principal,
        Principal::ApiKey {
            name: "billing-app".into()
        }
    );
    assert!(caller.require(Scope::Check).is_ok());
    assert!(
        caller.require(Scope::Seats).is_err(),
        "only the scopes asked for"
    );
}

#[test]
fn api_key_new_json_output_and_bad_input() {
    let (ok, stdout, stderr) =
        tollgate(&["api-key", "new", "ci", "--scopes", "check,seats", "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["secret_name"], "api_key.ci");
    let entry = ApiKeyEntry::parse("ci", v["secret_value"].as_str().unwrap()).unwrap();
    let auth = Authenticator::new(vec![entry], false);
    let caller = authenticate(&auth, v["key"].as_str().unwrap()).unwrap();
    assert!(caller.require(Scope::Seats).is_ok());
    assert_eq!(v["expires_at"], serde_json::Value::Null);

    // With an expiry: in the JSON and the entry, honoured by the check.
    let (ok, stdout, stderr) =
        tollgate(&["api-key", "new", "temp", "--expires-in", "1d", "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expires_at = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let entry = ApiKeyEntry::parse("temp", v["secret_value"].as_str().unwrap()).unwrap();
    assert_eq!(entry.expires_at, Some(expires_at));
    let auth = Authenticator::new(vec![entry], false);
    let key = v["key"].as_str().unwrap();
    let at = |t| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(auth.authenticate(&request_with(key), t))
    };
    assert!(at(expires_at - chrono::Duration::seconds(1)).is_ok());
    let refused = tollgate::web::ApiError::from(at(expires_at).unwrap_err());
    assert_eq!(
        (refused.status.as_u16(), refused.code),
        (401, "expired_api_key")
    );

    let (ok, _, stderr) = tollgate(&["api-key", "new", "ci", "--scopes", "admin"]);
    assert!(!ok && stderr.contains("admin"), "{stderr}");
    let (ok, _, stderr) = tollgate(&["api-key", "new", "bad name"]);
    assert!(!ok && stderr.contains("bad name"), "{stderr}");
    let (ok, _, stderr) = tollgate(&["api-key"]);
    assert!(
        !ok && stderr.contains("Usage: tollgate api-key"),
        "{stderr}"
    );
}
