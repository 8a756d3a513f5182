//! The checked-in OpenAPI document (`openapi/entitlement-check.json`) and
//! the real handler agree: every served route is documented and every
//! documented route is served; every documented response status of every
//! route is produced by a real request, and each reply validates (JSON
//! Schema 2020-12, formats checked, undocumented fields refused) against the
//! schema documented for its status.

#[path = "entitlement_check_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::{Tollgate, ask, ask_with, request};
use tollgate::api::OPENAPI_JSON;
use tollgate::api::routes::ROUTES;
use tollgate::entitlement::Reason;
use tollgate::model::{AppUser, CustomerKey, EventKind, Marketplace};
use tollgate::store::UserLink;
use tollgate::web::{MAX_BODY_BYTES, Request};

fn doc() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("the OpenAPI document is JSON")
}

/// `(METHOD, path template)` of every documented operation.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// Resolves a local `#/a/b` reference.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Objects with documented properties may not carry undocumented ones: the
/// test holds the handler to exactly what the document says. (An `if`
/// only tests a condition on some properties; it is left as written.)
fn strict(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.iter_mut()
                .filter(|(k, _)| k.as_str() != "if")
                .for_each(|(_, v)| strict(v));
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn every_ref(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|x| every_ref(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| every_ref(x, out)),
        _ => {}
    }
}

/// Validates a reply body against the schema documented for `(op, status)`.
struct Contract {
    doc: Value,
    components: Value,
}

impl Contract {
    fn new() -> Self {
        let doc = doc();
        let mut components = doc["components"].clone();
        strict(&mut components);
        Self { doc, components }
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        &self.doc["paths"][template][method.to_lowercase()]
    }

    fn validate(&self, method: &str, template: &str, status: u16, body: &Value) {
        let op = self.operation(method, template);
        let documented = op["responses"].get(status.to_string()).unwrap_or_else(|| {
            panic!("{method} {template} answered {status}, which is not documented: {body}")
        });
        let response = resolve(&self.doc, documented);
        if status == 204 {
            // No content: nothing documented, nothing sent.
            assert!(
                response.get("content").is_none(),
                "{method} {template} 204 documents a body"
            );
            assert_eq!(body, &Value::Null, "{method} {template} 204 sent a body");
            return;
        }
        let mut schema = response["content"]["application/json"]["schema"].clone();
        assert!(
            !schema.is_null(),
            "{method} {template} {status}: no JSON schema"
        );
        strict(&mut schema);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.components,
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| {
                panic!("{method} {template} {status}: schema does not compile: {e}")
            });
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status} does not match the document:\n{}\n{body:#}",
            errors.join("\n")
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_every_reference_resolving() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    every_ref(&doc, &mut refs);
    assert!(refs.len() > 20);
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // Every schema compiles on its own.
    let c = Contract::new();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let root =
            json!({"components": c.components, "$ref": format!("#/components/schemas/{name}")});
        jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_reason_is_documented_with_a_description_and_nothing_else_is() {
    let doc = doc();
    let documented: BTreeMap<String, String> = doc["components"]["schemas"]["Reason"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["const"].as_str().unwrap().to_owned(),
                v["description"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let reasons: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(documented.keys().cloned().collect::<BTreeSet<_>>(), reasons);
    for (reason, description) in &documented {
        assert!(
            description.len() > 20,
            "`{reason}` needs a real description"
        );
    }
}

#[test]
fn every_route_served_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(served, documented_operations(&doc()));
}

/// Path template with `{marketplace}` and ids filled in.
fn fill(template: &str, marketplace: &str, id: &str) -> String {
    template
        .replace("{app_user}", "github:7")
        .replace("{marketplace}", marketplace)
        .replace("{customer_id}", id)
        .replace("{subscription_id}", id)
}

fn with_content_type(mut req: Request, ct: &'static str) -> Request {
    req.headers_mut()
        .insert("content-type", ct.parse().unwrap());
    req
}

#[tokio::test]
async fn every_documented_response_of_every_route_is_real_and_matches_its_schema() {
    let contract = Contract::new();
    let tg = Tollgate::sqlite();
    // A 2-seat team plan for account 1 (one seat is taken below), a trial
    // with a pending downgrade for account 2, a cancelled plan for 3.
    tg.purchase("1", "acme-ci", "1002", Some(2)).await;
    let trial_end = support::t0() + chrono::Duration::days(5);
    tg.event(
        "2",
        "acme-ci",
        support::purchased("1002", Some(3), Some(trial_end), None),
    )
    .await;
    tg.event(
        "2",
        "acme-ci",
        EventKind::ChangePending {
            plan: tollgate::model::Plan::new("1001"),
            seats: None,
            effective_at: trial_end,
        },
    )
    .await;
    tg.purchase("3", "acme-ci", "1002", Some(2)).await;
    tg.event(
        "3",
        "acme-ci",
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    )
    .await;

    let all = tg.keys.all.clone();
    let checker = tg.keys.check_only.clone();
    let seater = tg.keys.seats_only.clone();
    let seat = |id: &str, user: &str| json!({"marketplace": "github", "subscription_id": id, "user": user});

    // (operation, request)
    let mut cases: Vec<((&str, &str), Request)> = Vec::new();
    let post = |path: &str, key: &str, body: Value| {
        request("POST", path, Some(key), Some(body.to_string()))
    };
    let get = |path: &str, key: &str| request("GET", path, Some(key), None);

    // 200s, with variety in nulls and nesting.
    cases.push((("GET", "/healthz"), request("GET", "/healthz", None, None)));
    cases.push((
        ("GET", "/v1/openapi.json"),
        request("GET", "/v1/openapi.json", None, None),
    ));
    for body in [
        ask_with(
            "1",
            "acme-ci",
            json!({"feature": "private-repos", "user": "u1", "claim_seat": true}),
        ),
        ask("2", "acme-ci"),
        ask("3", "acme-ci"),
        ask("404", "acme-ci"),
        json!({"app_user": "nobody", "product": "acme-ci"}),
    ] {
        cases.push((
            ("POST", "/v1/check"),
            post("/v1/check", &checker_or_all(&body, &all, &checker), body),
        ));
    }
    // Signed tokens: an allowing answer (token and expiry), a denial (nulls),
    // and the keys that verify them.
    for body in [
        ask_with("1", "acme-ci", json!({"feature": "private-repos"})),
        ask("2", "acme-ci"),
        ask("3", "acme-ci"),
        json!({"app_user": "nobody", "product": "acme-ci"}),
    ] {
        cases.push((("POST", "/v1/token"), post("/v1/token", &checker, body)));
    }
    cases.push((
        ("GET", "/.well-known/jwks.json"),
        request("GET", "/.well-known/jwks.json", None, None),
    ));
    for id in ["1", "2", "3", "404"] {
        cases.push((
            ("GET", "/v1/customers/{marketplace}/{customer_id}"),
            get(&format!("/v1/customers/github/{id}"), &checker),
        ));
    }
    // 404: an empty id is no route at all.
    cases.push((
        ("GET", "/v1/customers/{marketplace}/{customer_id}"),
        get("/v1/customers/github/", &checker),
    ));
    cases.push((
        ("POST", "/v1/seats/claim"),
        post("/v1/seats/claim", &seater, seat("1", "u2")),
    ));
    cases.push((
        ("POST", "/v1/seats/claim"),
        post("/v1/seats/claim", &seater, seat("1", "u2")),
    ));
    cases.push((
        ("GET", "/v1/seats/{marketplace}/{subscription_id}"),
        get("/v1/seats/github/1", &seater),
    ));
    // 409: both seats are held now; and a cancelled subscription.
    cases.push((
        ("POST", "/v1/seats/claim"),
        post("/v1/seats/claim", &seater, seat("1", "u3")),
    ));
    cases.push((
        ("POST", "/v1/seats/claim"),
        post("/v1/seats/claim", &seater, seat("3", "u3")),
    ));
    cases.push((
        ("POST", "/v1/seats/release"),
        post("/v1/seats/release", &seater, seat("1", "u2")),
    ));
    // 404: no such subscription.
    cases.push((
        ("POST", "/v1/seats/claim"),
        post("/v1/seats/claim", &seater, seat("nope", "u1")),
    ));
    cases.push((
        ("GET", "/v1/seats/{marketplace}/{subscription_id}"),
        get("/v1/seats/github/nope", &seater),
    ));
    // A link removed (204), then no longer there (404).
    tg.store
        .link_user(
            &AppUser("github:7".into()),
            &UserLink::new(
                CustomerKey::new(Marketplace::Github, "1"),
                support::t0(),
                chrono::Duration::days(30),
            ),
        )
        .await
        .unwrap();
    let link = "/v1/links/github:7/github/1";
    for _ in 0..2 {
        cases.push((
            ("DELETE", "/v1/links/{app_user}/{marketplace}/{customer_id}"),
            request("DELETE", link, Some(&seater), None),
        ));
    }

    // Errors every authenticated route can produce: 400, 401, 403, 405, and
    // for bodies 413 and 415.
    for spec in ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/v1/") && r.path != "/v1/openapi.json")
    {
        let op = (spec.method, spec.path);
        let path = fill(spec.path, "github", "1");
        let wrong_scope =
            if spec.path.starts_with("/v1/seats") || spec.path.starts_with("/v1/links") {
                &checker
            } else {
                &seater
            };
        let other_method = if spec.method == "GET" { "PUT" } else { "GET" };
        cases.push((
            op,
            request(
                spec.method,
                &path,
                None,
                (spec.method == "POST").then(|| "{}".to_owned()),
            ),
        ));
        cases.push((op, request(spec.method, &path, Some("tgk_wrong"), None)));
        cases.push((
            op,
            request(
                spec.method,
                &path,
                Some(wrong_scope),
                (spec.method == "POST").then(|| ask("1", "acme-ci").to_string()),
            ),
        ));
        cases.push((op, request(other_method, &path, Some(&all), None)));
        if spec.method == "POST" {
            cases.push((op, request("POST", &path, Some(&all), Some("{".to_owned()))));
            cases.push((
                op,
                request("POST", &path, Some(&all), Some("{}".to_owned())),
            ));
            let huge = format!("[\"{}\"]", "x".repeat(MAX_BODY_BYTES));
            cases.push((op, request("POST", &path, Some(&all), Some(huge))));
            cases.push((
                op,
                with_content_type(
                    request("POST", &path, Some(&all), Some("{}".to_owned())),
                    "text/plain",
                ),
            ));
        } else {
            cases.push((
                op,
                request(spec.method, &fill(spec.path, "aws", "1"), Some(&all), None),
            ));
        }
    }

    let mut exercised: BTreeSet<(String, String, u16)> = BTreeSet::new();
    let mut signed_claims = Vec::new();
    for ((method, template), req) in cases {
        let reply = tg.send(req).await;
        contract.validate(method, template, reply.status, &reply.body);
        if let Some(token) = reply.body.get("token").and_then(Value::as_str) {
            signed_claims.push(token_claims(token));
        }
        exercised.insert((method.to_owned(), template.to_owned(), reply.status));
    }

    // The payload of every token signed above is the documented
    // `EntitlementTokenClaims`, exactly.
    assert!(!signed_claims.is_empty(), "no /v1/token case allowed");
    let claims_schema = validator(
        &contract,
        &json!({"$ref": "#/components/schemas/EntitlementTokenClaims"}),
    );
    for claims in &signed_claims {
        let errors: Vec<String> = claims_schema
            .iter_errors(claims)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}\n{claims:#}", errors.join("\n"));
    }

    // Every documented status was produced, except 503 (the store failing).
    let doc = doc();
    for (method, template) in documented_operations(&doc) {
        let op = &doc["paths"][&template][method.to_lowercase()];
        for status in op["responses"].as_object().unwrap().keys() {
            let status: u16 = status.parse().unwrap();
            if status == 503 {
                continue;
            }
            assert!(
                exercised.contains(&(method.clone(), template.clone(), status)),
                "{method} {template} {status} is documented but no test request produced it"
            );
        }
    }
}

/// The claims of a JWT, read without verifying (the token tests verify).
fn token_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A check that claims a seat needs both scopes.
fn checker_or_all(body: &Value, all: &str, checker: &str) -> String {
    if body.get("claim_seat").is_some() {
        all
    } else {
        checker
    }
    .to_owned()
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_file() {
    let tg = Tollgate::sqlite();
    let reply = tg.get("/v1/openapi.json", None).await;
    let on_disk: Value =
        serde_json::from_str(include_str!("../../openapi/entitlement-check.json")).unwrap();
    assert_eq!(reply.body, on_disk);
}

// ------------------------------------------- request constraints agree --

/// What the document says a request value may be, as a validator over the
/// value alone (`schema` with the document's components).
fn validator(contract: &Contract, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": contract.components,
        "allOf": [schema],
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// Ids and names the server must refuse or accept, around every edge of
/// `tollgate::api::wire::valid_id`: empty, length, each end of both control
/// ranges, characters that look odd but are not control characters.
fn probes() -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = vec![
        ("a".into(), "one character"),
        (String::new(), "empty"),
        ("x".repeat(512), "512 ASCII bytes"),
        ("x".repeat(513), "513 ASCII bytes"),
        ("é".repeat(256), "256 two-byte characters: 512 bytes"),
        ("é".repeat(257), "257 two-byte characters: 514 bytes"),
        ("€".repeat(170), "170 three-byte characters: 510 bytes"),
        ("a b:c/d%e.f".into(), "spaces and punctuation"),
        ("..".into(), "dot-dot"),
        (
            "\u{a0}\u{ad}\u{2028}\u{feff}\u{1f600}".into(),
            "format and space characters",
        ),
    ];
    for c in [
        '\u{0}', '\t', '\n', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
    ] {
        v.push((format!("a{c}b"), "a control character"));
    }
    v
}

/// Percent-encodes every byte but the unreserved ones, for a path segment.
fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The one place the document and the server may differ on purpose: the
/// server counts UTF-8 bytes (at most 512), JSON Schema's `maxLength`
/// counts characters, so a value of at most 512 characters but more than
/// 512 bytes is schema-valid and refused — and the document says so.
fn only_over_512_bytes(value: &str, schema_ok: bool, server_ok: bool, what: &str) {
    if schema_ok == server_ok {
        return;
    }
    assert!(
        schema_ok && value.len() > 512,
        "{what}: the document says {} but the server {}",
        if schema_ok { "valid" } else { "invalid" },
        if server_ok {
            "accepts it"
        } else {
            "refuses it"
        }
    );
}

#[tokio::test]
async fn the_documents_request_constraints_are_the_servers() {
    let contract = Contract::new();
    let doc = doc();
    let tg = Tollgate::sqlite();
    let key = tg.keys.all.clone();

    // Every string a request carries states the server's rule for ids and
    // names, and says that the limit is in bytes.
    let rule = |schema: &Value, what: &str| {
        assert_eq!(schema["type"], "string", "{what}");
        assert_eq!(schema["minLength"], 1, "{what}");
        assert_eq!(
            schema["maxLength"],
            tollgate::api::wire::MAX_ID_BYTES,
            "{what}"
        );
        assert_eq!(
            schema["pattern"], "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
            "{what}"
        );
    };
    let schemas = &doc["components"]["schemas"];
    for request in ["CheckRequest", "SeatRequest"] {
        for (name, prop) in schemas[request]["properties"].as_object().unwrap() {
            if prop["type"] == "string" {
                rule(prop, &format!("{request}.{name}"));
            }
        }
        let text = schemas[request]["description"].as_str().unwrap();
        assert!(text.contains("512 bytes of UTF-8"), "{request}: {text}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["schema"].get("$ref").is_none() {
                    rule(&p["schema"], &format!("{path} {}", p["name"]));
                    let text = p["description"].as_str().unwrap();
                    assert!(text.contains("512 bytes of UTF-8"), "{path}: {text}");
                }
            }
        }
    }

    // Then the behaviour: each probe in each field of each request body,
    // judged by the document and by the handler.
    let check = validator(
        &contract,
        &json!({"$ref": "#/components/schemas/CheckRequest"}),
    );
    let seat = validator(
        &contract,
        &json!({"$ref": "#/components/schemas/SeatRequest"}),
    );
    let bodies: [(&str, &jsonschema::Validator, Value, &str); 7] = [
        ("/v1/check", &check, ask("1", "acme-ci"), "customer_id"),
        ("/v1/check", &check, ask("1", "acme-ci"), "product"),
        ("/v1/check", &check, ask("1", "acme-ci"), "feature"),
        ("/v1/check", &check, ask("1", "acme-ci"), "user"),
        (
            "/v1/check",
            &check,
            json!({"app_user": "u", "product": "acme-ci"}),
            "app_user",
        ),
        (
            "/v1/seats/release",
            &seat,
            json!({"marketplace": "github", "subscription_id": "1", "user": "u"}),
            "subscription_id",
        ),
        (
            "/v1/seats/release",
            &seat,
            json!({"marketplace": "github", "subscription_id": "1", "user": "u"}),
            "user",
        ),
    ];
    let mut refused = 0;
    for (path, schema, base, field) in &bodies {
        for (value, what) in probes().into_iter().chain([("null".to_owned(), "null")]) {
            let mut body = base.clone();
            body[*field] = if what == "null" {
                Value::Null
            } else {
                Value::String(value.clone())
            };
            let schema_ok = schema.is_valid(&body);
            let reply = tg.post(path, Some(&key), &body).await;
            assert!(
                [200, 400].contains(&reply.status),
                "{path} {field} {what}: {}",
                reply.body
            );
            let server_ok = reply.status == 200;
            refused += usize::from(!server_ok);
            only_over_512_bytes(
                &value,
                schema_ok,
                server_ok,
                &format!("{path} {field}: {what}"),
            );
        }
    }
    // `claim_seat` needs a `user`: in the document (`if`/`then`) as in the handler.
    for (extra, ok) in [
        (json!({"claim_seat": true}), false),
        (json!({"claim_seat": false}), true),
        (json!({"claim_seat": true, "user": "u"}), true),
    ] {
        let body = support::ask_with("1", "acme-ci", extra.clone());
        assert_eq!(check.is_valid(&body), ok, "{extra}");
        let status = tg.post("/v1/check", Some(&key), &body).await.status;
        assert_eq!(status == 200, ok, "{extra}: {status}");
    }

    // Path parameters, percent-encoded as a client sends them.
    let param = validator(
        &contract,
        &doc["paths"]["/v1/customers/{marketplace}/{customer_id}"]["get"]["parameters"][1]["schema"],
    );
    for (value, what) in probes() {
        let schema_ok = param.is_valid(&Value::String(value.clone()));
        let reply = tg
            .get(
                &format!("/v1/customers/github/{}", segment(&value)),
                Some(&key),
            )
            .await;
        // An empty segment is no route at all (404).
        assert!(
            [200, 400, 404].contains(&reply.status),
            "{what}: {}",
            reply.body
        );
        let server_ok = reply.status == 200;
        only_over_512_bytes(
            &value,
            schema_ok,
            server_ok,
            &format!("customer_id: {what}"),
        );
    }
    assert!(refused > 50, "the probes reach the refusals ({refused})");
}
