//! The production [`Store`]: one DynamoDB table, on-demand capacity.
//!
//! The table is shaped for the two hot paths — one `Query` per entitlement
//! check ([`Store::customer_subscriptions`]) and one `TransactWriteItems` per
//! marketplace event ([`Store::commit`]) — and nothing else needs a scan.
//!
//! # Table layout
//!
//! Keys are strings: `PK` (hash), `SK` (range). One overloaded, sparse global
//! secondary index `GSI1` on `GSI1PK`/`GSI1SK`, projection `ALL`. TTL is on
//! `expires_at`.
//!
//! | item | `PK` | `SK` | other attributes |
//! |---|---|---|---|
//! | subscription state | `SUB#<mkt>#<id>` | `STATE` | `doc` (S, the [`Subscription`] as JSON, seat holders left out), `version` (N), `GSI1PK`=`CUST#<mkt>#<customer id>`, `GSI1SK`=`SUB#<mkt>#<id>`, `seat_holders` (SS, absent when empty) |
//! | event log entry | `SUB#<mkt>#<id>` | `EVT#<recorded_at>#<event id>` | `doc` (S, the [`LogEntry`] as JSON) |
//! | delivery (dedupe) | `DELIVERY#<mkt>#<id>` | `DELIVERY` | `status` (`pending`/`done`), `kind`, `body_sha256`, `body` (B, only while pending), `received_at`, `expires_at`, `expires_at_ns`; while pending also `GSI1PK`=`PENDING#<mkt>`, `GSI1SK`=`<received_at>#<id>` |
//! | single-use token | `TOKEN#<kind>#<id>` | `TOKEN` | `payload`, `expires_at`, `expires_at_ns` |
//! | app user → customer link | `USER#<app user>` | `CUST#<mkt>#<id>` | `marketplace`, `customer_id` |
//!
//! - `<mkt>` is `github`/`gcp`/`q2`; ids come last in a key, so a `#` inside
//!   an id cannot make two keys collide (token kinds must not contain `#`).
//! - Times inside keys (`<recorded_at>`, `<received_at>`) are RFC 3339 UTC
//!   with nanoseconds (`2025-01-31T12:00:00.000000000Z`): fixed width, so the
//!   string order of the sort key is the time order.
//! - `expires_at` is epoch seconds (rounded up) because that is what TTL
//!   reads. Neither DynamoDB nor moto deletes expired items promptly, so every
//!   read and condition compares `expires_at_ns` (exact epoch nanoseconds)
//!   with "now" instead of trusting TTL.
//! - `GSI1` serves two queries: `CUST#…` partitions list a customer's
//!   subscriptions, `PENDING#<mkt>` partitions list deliveries still to be
//!   replayed. It is sparse for deliveries: [`Store::commit`] removes
//!   `GSI1PK`/`GSI1SK` (and the body) when it marks a delivery done, in the
//!   same transaction as the state write.
//!
//! # Commits
//!
//! [`Store::commit`] is one `TransactWriteItems`, actions in this order:
//! 0. the state item: an `Update` that `SET`s `doc`, `version` and the
//!    `GSI1` keys (an `Update`, not a `Put`, so `seat_holders` survives), or a
//!    `ConditionCheck` for a log-only commit; either way conditional on
//!    `version = :expected` (`attribute_not_exists(PK)` for version 0);
//! 1. a `Put` of the log item;
//! 2. an `Update` of the delivery item to `done`, conditional on it being
//!    absent, `pending` or expired ("now" = the log entry's `recorded_at`).
//!
//! `TransactionCanceledException` reasons are read by position: a failed
//! condition at 2 is [`StoreError::Duplicate`], at 0 [`StoreError::Conflict`];
//! throttling is [`StoreError::Transient`] and a `TransactionConflict` (another
//! transaction on the same item) is reported as a conflict, to be retried.
//!
//! # Seat holders
//!
//! Holders live in the state item as a string set, so an entitlement check
//! reads state and seats in one request and a claim is one conditional
//! `UpdateItem` (`ADD` + `size(...) < :limit`) — no transaction, no counter to
//! keep in step. Commits never touch the set (they `SET` named attributes, not
//! the whole item), so claims and commits don't conflict. The price: the item
//! is bounded by DynamoDB's 400 KB item limit, i.e. a few thousand holders of
//! typical id length per subscription, and every read of the state carries
//! the whole set.
//!
//! # Creating the table
//!
//! [`create_table`] creates exactly this (tests, local tooling). Terraform
//! must declare the same: `billing_mode = "PAY_PER_REQUEST"`, `hash_key =
//! "PK"`, `range_key = "SK"`, attributes `PK`, `SK`, `GSI1PK`, `GSI1SK` of type
//! `S`, a `global_secondary_index` named `GSI1` (`GSI1PK`/`GSI1SK`,
//! `projection_type = "ALL"`) and `ttl { attribute_name = "expires_at",
//! enabled = true }`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, CancellationReason, ConditionCheck,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    Commit, Commits, Deliveries, Delivery, DeliveryStatus, Recorded, SeatClaim, SeatClaims,
    StoreError, Subscriptions, Token, Tokens, UserLinks,
};
use crate::model::{AppUser, CustomerKey, LogEntry, Marketplace, Subscription, SubscriptionKey};

type Item = HashMap<String, Av>;

const PK: &str = "PK";
const SK: &str = "SK";
const GSI1: &str = "GSI1";
const GSI1PK: &str = "GSI1PK";
const GSI1SK: &str = "GSI1SK";
const STATE_SK: &str = "STATE";
const DELIVERY_SK: &str = "DELIVERY";
const TOKEN_SK: &str = "TOKEN";

const DOC: &str = "doc";
const VERSION: &str = "version";
const HOLDERS: &str = "seat_holders";
const STATUS: &str = "status";
const KIND: &str = "kind";
const BODY_SHA256: &str = "body_sha256";
const BODY: &str = "body";
const RECEIVED_AT: &str = "received_at";
const EXPIRES_AT: &str = "expires_at";
const EXPIRES_AT_NS: &str = "expires_at_ns";
const PAYLOAD: &str = "payload";
const MARKETPLACE: &str = "marketplace";
const CUSTOMER_ID: &str = "customer_id";

/// Positions of the actions in a commit transaction; cancellation reasons
/// come back in the same order.
const TX_STATE: usize = 0;
const TX_DELIVERY: usize = 2;

/// Error codes that mean "try again later", whichever operation returns them.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// DynamoDB-backed [`Store`]. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table` with the SDK's default configuration chain
    /// (environment, profile, Lambda role). `AWS_ENDPOINT_URL_DYNAMODB`
    /// (or `AWS_ENDPOINT_URL`) points it at a local server.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Creates the table described in the module documentation and enables TTL
/// on `expires_at`; waits until it is active. Fails if it already exists.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let what = format!("create table {table}");
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| build_error(&what, e))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| build_error(&what, e))
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash)?)
        .key_schema(key(GSI1SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| build_error(&what, e))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr(PK)?)
        .attribute_definitions(string_attr(SK)?)
        .attribute_definitions(string_attr(GSI1PK)?)
        .attribute_definitions(string_attr(GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await
        .map_err(|e| sdk_error(&what, e))?;

    let active = created
        .table_description
        .and_then(|d| d.table_status)
        .is_some_and(|s| s == TableStatus::Active);
    if !active {
        use aws_sdk_dynamodb::client::Waiters;
        client
            .wait_until_table_exists()
            .table_name(table)
            .wait(Duration::from_secs(300))
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "{what}: table did not become active: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
    }

    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(|e| build_error(&what, e))?,
        )
        .send()
        .await
        .map_err(|e| sdk_error(&what, e))?;
    Ok(())
}

// ---------------------------------------------------------------- keys

fn sub_pk(key: &SubscriptionKey) -> String {
    format!("SUB#{}#{}", key.marketplace, key.id)
}

fn cust_pk(key: &CustomerKey) -> String {
    format!("CUST#{}#{}", key.marketplace, key.id)
}

fn log_sk(entry: &LogEntry) -> String {
    format!("EVT#{}#{}", fixed_time(entry.recorded_at), entry.event_id)
}

fn delivery_pk(marketplace: Marketplace, id: &str) -> String {
    format!("DELIVERY#{marketplace}#{id}")
}

fn pending_pk(marketplace: Marketplace) -> String {
    format!("PENDING#{marketplace}")
}

fn pending_sk(received_at: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", fixed_time(received_at))
}

fn token_pk(kind: &str, id: &str) -> Result<String, StoreError> {
    if kind.contains('#') {
        return Err(StoreError::Backend(format!(
            "token kind `{kind}` must not contain `#`"
        )));
    }
    Ok(format!("TOKEN#{kind}#{id}"))
}

fn user_pk(user: &AppUser) -> String {
    format!("USER#{}", user.0)
}

/// RFC 3339 UTC with nanoseconds: fixed width, so string order = time order.
fn fixed_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// TTL value: epoch seconds, rounded up so TTL never removes a live item.
fn ttl_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// Exact expiry for conditions and reads: epoch nanoseconds.
fn epoch_ns(t: DateTime<Utc>, what: &str) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        StoreError::Backend(format!("{what}: time {t} is outside the storable range"))
    })
}

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

// ---------------------------------------------------------------- errors

fn build_error(what: &str, e: BuildError) -> StoreError {
    StoreError::Backend(format!("{what}: invalid request: {e}"))
}

/// Classifies an SDK error that no caller-specific match claimed.
fn sdk_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error()
                || se
                    .err()
                    .code()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    if transient {
        StoreError::Transient(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Maps the cancellation reasons of a commit transaction (indexed like its
/// actions) to the store's error. A done delivery wins over a version
/// conflict: retrying a delivery that is already processed is pointless.
///
/// `TransactionConflict` means another transaction was writing one of the
/// same items at that moment (concurrent deliveries for one subscription);
/// the version just read is likely stale, so it is reported as
/// [`StoreError::Conflict`] and the caller re-reads and retries.
fn cancelled_commit(subject: &str, reasons: &[CancellationReason]) -> StoreError {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    let codes: Vec<&str> = (0..reasons.len()).map(code).collect();
    if code(TX_DELIVERY) == "ConditionalCheckFailed" {
        return StoreError::Duplicate(format!("delivery already processed ({subject})"));
    }
    if code(TX_STATE) == "ConditionalCheckFailed" {
        return StoreError::Conflict(subject.to_owned());
    }
    if codes.contains(&"TransactionConflict") {
        return StoreError::Conflict(subject.to_owned());
    }
    let transient = codes.iter().any(|c| {
        matches!(
            *c,
            "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    });
    let message = format!("commit {subject} cancelled: {codes:?}");
    if transient {
        StoreError::Transient(message)
    } else {
        StoreError::Backend(message)
    }
}

// ---------------------------------------------------------------- attributes

fn attr_s<'a>(item: &'a Item, name: &str, what: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(Av::S(v)) => Ok(v),
        Some(_) => Err(StoreError::Backend(format!(
            "{what}: attribute `{name}` is not a string"
        ))),
        None => Err(StoreError::Backend(format!(
            "{what}: attribute `{name}` is missing"
        ))),
    }
}

fn attr_n<T: std::str::FromStr>(item: &Item, name: &str, what: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(Av::N(v)) => v.parse().map_err(|_| {
            StoreError::Backend(format!("{what}: attribute `{name}` = {v} is out of range"))
        }),
        Some(_) => Err(StoreError::Backend(format!(
            "{what}: attribute `{name}` is not a number"
        ))),
        None => Err(StoreError::Backend(format!(
            "{what}: attribute `{name}` is missing"
        ))),
    }
}

fn attr_time(item: &Item, name: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    let v = attr_s(item, name, what)?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("{what}: attribute `{name}` = {v}: {e}")))
}

fn attr_expiry(item: &Item, what: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(DateTime::from_timestamp_nanos(attr_n(
        item,
        EXPIRES_AT_NS,
        what,
    )?))
}

fn holders(item: &Item, what: &str) -> Result<BTreeSet<String>, StoreError> {
    match item.get(HOLDERS) {
        None => Ok(BTreeSet::new()),
        Some(Av::Ss(v)) => Ok(v.iter().cloned().collect()),
        Some(_) => Err(StoreError::Backend(format!(
            "{what}: attribute `{HOLDERS}` is not a string set"
        ))),
    }
}

fn used(item: &Item, what: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(holders(item, what)?.len()).unwrap_or(u32::MAX))
}

fn json<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(attr_s(item, DOC, what)?)
        .map_err(|e| StoreError::Backend(format!("{what}: attribute `{DOC}` is garbled: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("{what}: cannot serialize: {e}")))
}

/// A state item back to a [`Subscription`]: the `version` and
/// `seat_holders` attributes are authoritative over the JSON document.
fn subscription_from_item(item: &Item) -> Result<Subscription, StoreError> {
    let what = item
        .get(PK)
        .and_then(|v| v.as_s().ok())
        .map_or_else(|| "subscription item".to_owned(), |pk| format!("item {pk}"));
    let mut sub: Subscription = json(item, &what)?;
    sub.version = attr_n(item, VERSION, &what)?;
    sub.seats.holders = holders(item, &what)?;
    Ok(sub)
}

fn delivery_from_item(
    marketplace: Marketplace,
    id: &str,
    item: &Item,
) -> Result<Delivery, StoreError> {
    let what = format!("item {}", delivery_pk(marketplace, id));
    let status = match attr_s(item, STATUS, &what)? {
        "pending" => DeliveryStatus::Pending,
        "done" => DeliveryStatus::Done,
        other => {
            return Err(StoreError::Backend(format!(
                "{what}: unknown status `{other}`"
            )));
        }
    };
    let body = match item.get(BODY) {
        None => None,
        Some(Av::B(b)) => Some(b.as_ref().to_vec()),
        Some(_) => {
            return Err(StoreError::Backend(format!(
                "{what}: attribute `{BODY}` is not binary"
            )));
        }
    };
    Ok(Delivery {
        marketplace,
        id: id.to_owned(),
        kind: attr_s(item, KIND, &what)?.to_owned(),
        status,
        body_sha256: attr_s(item, BODY_SHA256, &what)?.to_owned(),
        body,
        received_at: attr_time(item, RECEIVED_AT, &what)?,
        expires_at: attr_expiry(item, &what)?,
    })
}

/// Why a claim was not granted, from the state item as it was.
fn seat_verdict(
    key: &SubscriptionKey,
    user: &str,
    old: Option<&Item>,
    what: &str,
) -> Result<SeatClaim, StoreError> {
    let Some(old) = old else {
        return Err(StoreError::NotFound(key.to_string()));
    };
    let held = holders(old, what)?;
    let used = u32::try_from(held.len()).unwrap_or(u32::MAX);
    Ok(if held.contains(user) {
        SeatClaim::AlreadyHeld { used }
    } else {
        SeatClaim::LimitReached { used }
    })
}

fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Done => "done",
    }
}

fn recorded_from_item(item: &Item, what: &str) -> Result<Recorded, StoreError> {
    match attr_s(item, STATUS, what)? {
        "pending" => Ok(Recorded::Pending),
        "done" => Ok(Recorded::Done),
        other => Err(StoreError::Backend(format!(
            "{what}: unknown status `{other}`"
        ))),
    }
}

// ---------------------------------------------------------------- store

impl DynamoStore {
    fn key(&self, pk: String, sk: &str) -> Item {
        HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let what = format!("get {pk}");
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(&what, e))?;
        Ok(out.item)
    }

    /// Runs a query to the end, following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        what: &str,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(what, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The state action of a commit: an `Update` (so `seat_holders`
    /// survives) or, for a log-only commit, a `ConditionCheck`; both
    /// conditional on the version read.
    fn state_action(
        &self,
        commit: &Commit,
        subject: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let key = self.key(sub_pk(&commit.subscription), STATE_SK);
        let (condition, expected) = if commit.expected_version == 0 {
            ("attribute_not_exists(PK)", None)
        } else {
            ("version = :expected", Some(n(commit.expected_version)))
        };
        let Some(state) = &commit.state else {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression(condition)
                .set_expression_attribute_values(
                    expected.map(|v| HashMap::from([(":expected".to_owned(), v)])),
                )
                .build()
                .map_err(|e| build_error(subject, e))?;
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        };

        let version = commit.expected_version + 1;
        let mut doc = state.clone();
        doc.seats.holders.clear();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(
                "SET doc = :doc, version = :version, GSI1PK = :gsi1pk, GSI1SK = :gsi1sk",
            )
            .condition_expression(condition)
            .expression_attribute_values(":doc", s(to_json(&doc, subject)?))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":gsi1pk", s(cust_pk(&state.customer.key)))
            .expression_attribute_values(":gsi1sk", s(sub_pk(&commit.subscription)));
        if let Some(v) = expected {
            update = update.expression_attribute_values(":expected", v);
        }
        let update = update.build().map_err(|e| build_error(subject, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl Subscriptions for DynamoStore {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        self.get_item(sub_pk(key), STATE_SK)
            .await?
            .map(|item| subscription_from_item(&item))
            .transpose()
    }

    /// One strongly consistent query of the subscription's partition; the
    /// sort key orders entries by `recorded_at`.
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        let pk = sub_pk(key);
        let what = format!("log of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :evt)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":evt", s("EVT#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(|item| json(item, &what))
            .collect()
    }

    /// One query of `GSI1`. Global secondary indexes are **eventually
    /// consistent** (typically well under a second behind): a purchase
    /// committed a moment ago may not be visible to an entitlement check
    /// yet. That is the accepted price of answering checks with one read.
    async fn customer_subscriptions(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        let what = format!("subscriptions of {}", cust_pk(customer));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :sub)")
            .expression_attribute_values(":pk", s(cust_pk(customer)))
            .expression_attribute_values(":sub", s("SUB#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(subscription_from_item)
            .collect()
    }
}

#[async_trait]
impl Commits for DynamoStore {
    /// One `TransactWriteItems`: state update (or version check), log entry
    /// put and delivery mark, in that order. "Now" for the delivery's expiry
    /// is the log entry's `recorded_at`.
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let subject = sub_pk(&commit.subscription);
        if commit.log.subscription != commit.subscription {
            return Err(StoreError::Backend(format!(
                "commit {subject}: log entry belongs to {}",
                commit.log.subscription
            )));
        }
        if let Some(state) = &commit.state
            && (state.key != commit.subscription || state.version != commit.expected_version + 1)
        {
            return Err(StoreError::Backend(format!(
                "commit {subject}: next state is {} version {}, expected version {}",
                state.key,
                state.version,
                commit.expected_version + 1
            )));
        }
        let mut actions = vec![self.state_action(commit, &subject)?];

        let log = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&subject))
            .item(SK, s(log_sk(&commit.log)))
            .item(DOC, s(to_json(&commit.log, &subject)?))
            .build()
            .map_err(|e| build_error(&subject, e))?;
        actions.push(TransactWriteItem::builder().put(log).build());

        if let Some(mark) = &commit.delivery {
            let now = commit.log.recorded_at;
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(
                    self.key(delivery_pk(mark.marketplace, &mark.id), DELIVERY_SK),
                ))
                .update_expression(
                    "SET #status = :done, expires_at = :ttl, expires_at_ns = :exp, \
                     received_at = if_not_exists(received_at, :now), \
                     kind = if_not_exists(kind, :none), \
                     body_sha256 = if_not_exists(body_sha256, :none) \
                     REMOVE body, GSI1PK, GSI1SK",
                )
                .condition_expression(
                    "attribute_not_exists(PK) OR #status = :pending OR expires_at_ns <= :now_ns",
                )
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_values(":done", s("done"))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":ttl", n(ttl_seconds(mark.expires_at)))
                .expression_attribute_values(":exp", n(epoch_ns(mark.expires_at, &subject)?))
                .expression_attribute_values(":now", s(fixed_time(now)))
                .expression_attribute_values(":now_ns", n(epoch_ns(now, &subject)?))
                .expression_attribute_values(":none", s(""))
                .build()
                .map_err(|e| build_error(&subject, e))?;
            actions.push(TransactWriteItem::builder().update(update).build());
        }

        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(tce) => {
                    Err(cancelled_commit(&subject, tce.cancellation_reasons()))
                }
                _ => Err(sdk_error(
                    &format!("commit {subject}"),
                    SdkError::ServiceError(se),
                )),
            },
            Err(e) => Err(sdk_error(&format!("commit {subject}"), e)),
        }
    }
}

#[async_trait]
impl Deliveries for DynamoStore {
    /// A conditional `PutItem`; "now" is the delivery's `received_at`. An
    /// expired record is overwritten as new.
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let pk = delivery_pk(delivery.marketplace, &delivery.id);
        let what = format!("record {pk}");
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(DELIVERY_SK))
            .item(STATUS, s(status_name(delivery.status)))
            .item(KIND, s(&delivery.kind))
            .item(BODY_SHA256, s(&delivery.body_sha256))
            .item(RECEIVED_AT, s(fixed_time(delivery.received_at)))
            .item(EXPIRES_AT, n(ttl_seconds(delivery.expires_at)))
            .item(EXPIRES_AT_NS, n(epoch_ns(delivery.expires_at, &what)?))
            .condition_expression("attribute_not_exists(PK) OR expires_at_ns <= :now")
            .expression_attribute_values(":now", n(epoch_ns(delivery.received_at, &what)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(body) = &delivery.body {
            put = put.item(BODY, Av::B(Blob::new(body.clone())));
        }
        if delivery.status == DeliveryStatus::Pending {
            put = put
                .item(GSI1PK, s(pending_pk(delivery.marketplace)))
                .item(GSI1SK, s(pending_sk(delivery.received_at, &delivery.id)));
        }
        match put.send().await {
            Ok(_) => Ok(Recorded::New),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => recorded_from_item(old, &what),
                    // A server that doesn't return the old item: read it.
                    None => match self.get_item(pk, DELIVERY_SK).await? {
                        Some(old) => recorded_from_item(&old, &what),
                        None => Err(StoreError::Transient(format!(
                            "{what}: condition failed but the record is gone"
                        ))),
                    },
                },
                _ => Err(sdk_error(&what, SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let Some(item) = self
            .get_item(delivery_pk(marketplace, id), DELIVERY_SK)
            .await?
        else {
            return Ok(None);
        };
        let delivery = delivery_from_item(marketplace, id, &item)?;
        Ok((delivery.expires_at > now).then_some(delivery))
    }

    /// One query of the `PENDING#<mkt>` partition of `GSI1` (eventually
    /// consistent: a delivery recorded a moment ago may be missing, which
    /// replay tolerates).
    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let what = format!("pending deliveries of {marketplace}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", s(pending_pk(marketplace)));
        let prefix = format!("DELIVERY#{marketplace}#");
        let mut out = Vec::new();
        for item in self.query_all(&what, query).await? {
            let pk = attr_s(&item, PK, &what)?;
            let id = pk.strip_prefix(&prefix).ok_or_else(|| {
                StoreError::Backend(format!("{what}: unexpected item {pk} in the index"))
            })?;
            let delivery = delivery_from_item(marketplace, id, &item)?;
            if delivery.status == DeliveryStatus::Pending && delivery.expires_at > now {
                out.push(delivery);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SeatClaims for DynamoStore {
    /// One conditional `UpdateItem` adding `user` to `seat_holders`.
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: u32,
    ) -> Result<SeatClaim, StoreError> {
        let pk = sub_pk(key);
        let what = format!("claim seat on {pk}");
        // No seats at all: nothing to write, only the verdict to read.
        if limit == 0 {
            let old = self.get_item(pk.clone(), STATE_SK).await?;
            return seat_verdict(key, user, old.as_ref(), &what);
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.clone(), STATE_SK)))
            .update_expression("ADD seat_holders :users")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(seat_holders) OR \
                 (NOT contains(seat_holders, :user) AND size(seat_holders) < :limit))",
            )
            .expression_attribute_values(":users", Av::Ss(vec![user.to_owned()]))
            .expression_attribute_values(":user", s(user))
            .expression_attribute_values(":limit", n(limit))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match res {
            Ok(out) => {
                let new = out.attributes.unwrap_or_default();
                return Ok(SeatClaim::Granted {
                    used: used(&new, &what)?,
                });
            }
            Err(SdkError::ServiceError(se)) => match se.err() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => Some(old.clone()),
                    None => self.get_item(pk.clone(), STATE_SK).await?,
                },
                _ => return Err(sdk_error(&what, SdkError::ServiceError(se))),
            },
            Err(e) => return Err(sdk_error(&what, e)),
        };
        seat_verdict(key, user, old.as_ref(), &what)
    }

    /// One conditional `UpdateItem` removing `user` from `seat_holders`.
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        let pk = sub_pk(key);
        let what = format!("release seat on {pk}");
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, STATE_SK)))
            .update_expression("DELETE seat_holders :users")
            .condition_expression("contains(seat_holders, :user)")
            .expression_attribute_values(":users", Av::Ss(vec![user.to_owned()]))
            .expression_attribute_values(":user", s(user))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }
}

#[async_trait]
impl Tokens for DynamoStore {
    /// A conditional `PutItem`. The trait gives no "now" here, so a live
    /// token is judged against the wall clock.
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        let pk = token_pk(&token.kind, &token.id)?;
        let what = format!("put {pk}");
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(TOKEN_SK))
            .item(PAYLOAD, s(&token.payload))
            .item(EXPIRES_AT, n(ttl_seconds(token.expires_at)))
            .item(EXPIRES_AT_NS, n(epoch_ns(token.expires_at, &what)?))
            .condition_expression("attribute_not_exists(PK) OR expires_at_ns <= :now")
            .expression_attribute_values(":now", n(epoch_ns(now, &what)?))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(StoreError::Duplicate(format!(
                    "token {}/{}",
                    token.kind, token.id
                )))
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    /// A conditional `DeleteItem` returning the old item: of two concurrent
    /// takes, exactly one gets the payload.
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let pk = token_pk(kind, id)?;
        let what = format!("take {pk}");
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, TOKEN_SK)))
            .condition_expression("expires_at_ns > :now")
            .expression_attribute_values(":now", n(epoch_ns(now, &what)?))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let old = out.attributes.ok_or_else(|| {
                    StoreError::Backend(format!("{what}: deleted, but no old item returned"))
                })?;
                Ok(Some(attr_s(&old, PAYLOAD, &what)?.to_owned()))
            }
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    DeleteItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }
}

#[async_trait]
impl UserLinks for DynamoStore {
    async fn link_user(&self, user: &AppUser, customer: &CustomerKey) -> Result<(), StoreError> {
        let pk = user_pk(user);
        let what = format!("link {pk}");
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(cust_pk(customer)))
            .item(MARKETPLACE, s(customer.marketplace.as_str()))
            .item(CUSTOMER_ID, s(&customer.id))
            .send()
            .await
            .map_err(|e| sdk_error(&what, e))?;
        Ok(())
    }

    async fn linked_customers(&self, user: &AppUser) -> Result<Vec<CustomerKey>, StoreError> {
        let pk = user_pk(user);
        let what = format!("links of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :cust)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":cust", s("CUST#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(|item| {
                let mkt = attr_s(item, MARKETPLACE, &what)?;
                let marketplace = mkt
                    .parse()
                    .map_err(|e| StoreError::Backend(format!("{what}: {e}")))?;
                Ok(CustomerKey::new(
                    marketplace,
                    attr_s(item, CUSTOMER_ID, &what)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn failed_version_condition_is_a_conflict() {
        let reasons = [
            reason("ConditionalCheckFailed"),
            reason("None"),
            reason("None"),
        ];
        assert!(matches!(
            cancelled_commit("SUB#q2#1", &reasons),
            StoreError::Conflict(_)
        ));
    }

    #[test]
    fn failed_delivery_condition_is_a_duplicate_even_with_a_conflict() {
        let reasons = [
            reason("ConditionalCheckFailed"),
            reason("None"),
            reason("ConditionalCheckFailed"),
        ];
        assert!(matches!(
            cancelled_commit("SUB#q2#1", &reasons),
            StoreError::Duplicate(_)
        ));
    }

    #[test]
    fn concurrent_transaction_on_the_same_item_is_retried_as_a_conflict() {
        let reasons = [
            reason("TransactionConflict"),
            reason("None"),
            reason("None"),
        ];
        assert!(matches!(
            cancelled_commit("SUB#q2#1", &reasons),
            StoreError::Conflict(_)
        ));
    }

    #[test]
    fn throttled_transaction_is_transient_and_validation_is_not() {
        let throttled = [reason("None"), reason("ThrottlingError")];
        assert!(matches!(
            cancelled_commit("s", &throttled),
            StoreError::Transient(_)
        ));
        let invalid = [reason("ValidationError"), reason("None")];
        assert!(matches!(
            cancelled_commit("s", &invalid),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn key_times_sort_as_strings() {
        let early = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let late = DateTime::from_timestamp(1_700_000_000, 400_000_000).unwrap();
        assert_eq!(fixed_time(early).len(), fixed_time(late).len());
        assert!(fixed_time(early) < fixed_time(late));
        assert_eq!(fixed_time(early), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn ttl_rounds_up_so_live_items_are_never_deleted_early() {
        let t = DateTime::from_timestamp(100, 1).unwrap();
        assert_eq!(ttl_seconds(t), 101);
        assert_eq!(ttl_seconds(DateTime::from_timestamp(100, 0).unwrap()), 100);
    }

    #[test]
    fn garbled_state_item_names_its_key() {
        let item = HashMap::from([
            (PK.to_owned(), s("SUB#q2#7")),
            (DOC.to_owned(), s("{not json")),
            (VERSION.to_owned(), n(1)),
        ]);
        let err = subscription_from_item(&item).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("SUB#q2#7")),
            "{err}"
        );
    }
}
