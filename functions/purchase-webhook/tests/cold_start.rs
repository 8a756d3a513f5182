//! A configuration mistake stops the function at cold start, before it asks
//! the Lambda Runtime API for work, naming the file and the key at fault.

use std::process::Command;

#[test]
fn a_config_error_stops_the_cold_start_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        "[products.ci.tiers.team]\n[products.ci.plans.github]\n\"1002\" = \"tean\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_purchase-webhook"))
        .env("TOLLGATE_CONFIG", &config)
        .env("TOLLGATE_STORE", "dynamodb:unused")
        .env(
            "TOLLGATE_SECRETS",
            format!("file:{}/none.json", dir.path().display()),
        )
        // Points nowhere: reaching the runtime loop would hang or fail differently.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "cold start must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cold start failed"), "{stderr}");
    assert!(
        stderr.contains(&config.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("products.ci.plans.github.1002"),
        "names the key: {stderr}"
    );
}

#[test]
fn a_missing_config_file_stops_the_cold_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_purchase-webhook"))
        .env("TOLLGATE_CONFIG", &missing)
        .env("TOLLGATE_STORE", "dynamodb:unused")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}
