//! `tollgate dev` (what `make dev` runs) starts all four functions on the
//! embedded store and each answers on its printed URL.

mod common;

use common::Tollgate;

#[test]
fn dev_server_serves_every_function() {
    let dev = Tollgate::dev(&[]);
    // The banner prints one line per function, then the `Health:` line.
    let mut urls = Vec::new();
    for line in &dev.printed {
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            if line.contains("Health") {
                break;
            }
            urls.push((
                line.split_whitespace().next().unwrap().to_owned(),
                url.to_owned(),
            ));
        }
    }
    let names: Vec<_> = urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "purchase-webhook",
            "pubsub-push",
            "oauth-callback",
            "entitlement-check"
        ]
    );
    for (name, url) in &urls {
        let body = http_get(&format!("{url}healthz"));
        assert!(body.contains(r#""status":"ok""#), "{name}: {body}");
        assert!(
            body.contains(name.as_str()),
            "{name} answered as itself: {body}"
        );
    }
    assert!(
        dev.dir.path().join("dev.db").exists(),
        "the embedded store was opened"
    );
}

/// A minimal HTTP/1.1 GET over a TCP socket, so the test needs no client crate.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
