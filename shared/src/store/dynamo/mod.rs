//! The production [`Store`]: one DynamoDB table, on-demand capacity.
//!
//! The table is shaped for the two hot paths — one `Query` per entitlement
//! check ([`Subscriptions::customer_subscriptions`]) and one
//! `TransactWriteItems` per marketplace event ([`Commits::commit`]) — and
//! nothing else needs a scan.
//!
//! # Table layout
//!
//! Keys are strings: `PK` (hash), `SK` (range). One overloaded, sparse global
//! secondary index `GSI1` on `GSI1PK`/`GSI1SK`, projection `ALL`. TTL is on
//! `expires_at`.
//!
//! | item | `PK` | `SK` | other attributes |
//! |---|---|---|---|
//! | subscription state | `SUB#<mkt>#<id>` | `STATE` | `doc` (S, the [`Subscription`] as JSON, seat count left out), `version` (N), `GSI1PK`=`CUST#<mkt>#<customer id>`, `GSI1SK`=`SUB#<mkt>#<id>`, `seats_used` (N, the number of seat items), `seat_limit` (N, the unit count of `doc`; absent when the plan has none) |
//! | event log entry | `SUB#<mkt>#<id>` | `EVT#<recorded_at>#<event id>` | `doc` (S, the [`LogEntry`] as JSON) |
//! | seat holder | `SUB#<mkt>#<id>` | `SEAT#<user>` | `user` |
//! | delivery (dedupe) | `DELIVERY#<mkt>#<id>` | `DELIVERY` | `status` (`pending`/`done`), `kind`, `body_sha256`, `body` (B, only while pending), `received_at`, `expires_at`, `expires_at_ns`; while pending also `GSI1PK`=`PENDING#<mkt>`, `GSI1SK`=`<received_at>#<id>` |
//! | single-use token | `TOKEN#<kind>#<id>` | `TOKEN` | `payload`, `expires_at`, `expires_at_ns` |
//! | app user → customer link | `USER#<app user>` | `CUST#<mkt>#<id>` | `marketplace`, `customer_id`, `linked_at`, `expires_at`, `expires_at_ns` |
//! | capped group's count | `GROUP#<mkt>#<product>#<group>` | `COUNT` | `members` (N) |
//! | group member | `GROUP#<mkt>#<product>#<group>` | `MEMBER#<member>` | `member`, `subscription`, `since` |
//! | notification outbox entry | `OUTBOX` | `<message id>` | `doc` (S, the `OutboxEntry` as JSON), `version` (N), `due_at_ns` (N) |
//! | notification dead letter | `NOTIFY_DEAD` | `<message id>#<endpoint>` | `doc` (S, the `DeadLetter` as JSON), `dead_at_ns` (N) |
//!
//! - `<mkt>` is `github`/`gcp`/`q2`; ids come last in a key, so a `#` inside
//!   an id cannot make two keys collide (token kinds must not contain `#`).
//! - Times inside keys (`<recorded_at>`, `<received_at>`) are RFC 3339 UTC
//!   with nanoseconds (`2025-01-31T12:00:00.000000000Z`): fixed width, so the
//!   string order of the sort key is the time order. It is the format the
//!   embedded store writes too, and both refuse times outside 1677-2262 (the
//!   range of `expires_at_ns`).
//! - `expires_at` is epoch seconds (rounded up) because that is what TTL
//!   reads. Neither DynamoDB nor moto deletes expired items promptly, so every
//!   read and condition compares `expires_at_ns` (exact epoch nanoseconds)
//!   with "now" instead of trusting TTL.
//! - `GSI1` serves two queries: `CUST#…` partitions list a customer's
//!   subscriptions, `PENDING#<mkt>` partitions list deliveries still to be
//!   replayed. It is sparse for deliveries: [`Commits::commit`] removes
//!   `GSI1PK`/`GSI1SK` (and the body) when it marks a delivery done, in the
//!   same transaction as the state write.
//!
//! # Commits
//!
//! [`Commits::commit`] is one `TransactWriteItems`, actions in this order:
//! 0. the state item: an `Update` that `SET`s `doc`, `version`, the `GSI1`
//!    keys and `seat_limit` (or `REMOVE`s it), and creates `seats_used` at 0
//!    if it is missing (`if_not_exists`) — an `Update` of named attributes,
//!    not a `Put`, so the seat counter survives every commit — or a
//!    `ConditionCheck` for a log-only commit; either way conditional on
//!    `version = :expected` (`attribute_not_exists(PK)` for version 0);
//! 1. a `Put` of the log item;
//! 2. an `Update` of the delivery item to `done`, conditional on it being
//!    absent, `pending` or expired ("now" = the log entry's `recorded_at`).
//!    It keeps the `kind`, `body_sha256` and `received_at` of a record that
//!    is there, even an expired one (`if_not_exists`), and otherwise sets
//!    them to empty, empty and "now".
//!
//! 3. for a commit that applies a change, a `Put` of its notification
//!    outbox entry (`PK=OUTBOX`, `SK=<message id>`; `store::OutboxEntry`),
//!    whose insert the table's stream carries to the sender.
//!
//! `TransactionCanceledException` reasons are read by position: a failed
//! condition at 2 is [`StoreError::Duplicate`], at 0 [`StoreError::Conflict`];
//! throttling is [`StoreError::Transient`] and a `TransactionConflict` (another
//! transaction on the same item) is reported as a conflict, to be retried.
//!
//! # Seats
//!
//! [`SeatClaims`](crate::store::SeatClaims): one item per holder in the
//! subscription's partition (`SEAT#<user>`) and a counter, `seats_used`, on
//! the state item. The state item therefore stays a few hundred bytes
//! whatever the number of holders (3,000 holders of 200-byte ids would be
//! 600 KB, past DynamoDB's 400 KB item limit, if it listed them), and a
//! commit — a cancellation, a plan change — never grows with them.
//!
//! - **Claim** (`claim_seat`): a `TransactGetItems` of the state item
//!   (`seats_used`, `seat_limit`) and the user's seat item answers "already
//!   held" and "full" without writing anything. Otherwise one
//!   `TransactWriteItems`: a `Put` of the seat item (condition: absent) and
//!   an `ADD seats_used 1` on the state item, conditional on the limit *on
//!   that item as it is then* — `seats_used < seat_limit` (no `seat_limit`:
//!   no limit) for the purchased unit count, `seats_used < :cap` for a
//!   tier's fixed number. `seat_limit` is written by every commit in the
//!   same update as the state, so a downgrade committed a moment before is
//!   the limit the very next claim meets — never the eventually consistent
//!   copy the caller read from `GSI1`. A failed condition (the same user,
//!   or the count or limit moved in between) reads again; a
//!   `TransactionConflict` (another claim or a commit on the state item at
//!   that moment) backs off and retries. Either both items change or
//!   neither, so `seats_used` is the number of seat items and no number of
//!   concurrent claims passes the limit. Calls: 1 for "already held" or
//!   "full", 2 for a granted seat (plus a read and a write per retry).
//!   `used` in a granted claim is the count it read plus its own seat.
//! - **Release** (`release_seat`): one `TransactWriteItems`: a `Delete` of
//!   the seat item (condition: present; otherwise "held none", `false`) and
//!   `ADD seats_used -1` (condition: the state exists and counts at least 1,
//!   or the two are out of step and an operator must look).
//! - **Who** (`holds_seat`): one strongly consistent `GetItem` of the seat
//!   item. `seat_holders`: one strongly consistent `Query` of the
//!   partition's `SEAT#` items, a page per MB.
//! - **Commits vs. claims**: a commit only `SET`s named attributes and
//!   creates `seats_used` with `if_not_exists`, so it never resets the
//!   count, whatever the state it read counted. Both write the state item,
//!   so one racing the other gets a `TransactionConflict` and retries
//!   (the commit as a version conflict, the claim after a backoff).
//! - **A limit below the count** (a downgrade under the holders): holders
//!   keep their seats — the rules never drop holders, they report
//!   `SeatsOverLimit` — and every new claim is refused until enough leave.
//! - Seat items carry no `GSI1` keys: the entitlement check's one `Query`
//!   of a customer's subscriptions reads state items only, and with them
//!   the count. Whether a given user holds a seat costs one more `GetItem`,
//!   made only when it changes the answer (a full seat-counted tier; see
//!   `functions::entitlement_check`).
//!
//! # Capped groups
//!
//! [`Enrollments`](crate::store::Enrollments): a group keeps a count item
//! and one item per member in one partition. Enrolling is one
//! `TransactWriteItems` of a `Put` of the member item (conditional on it
//! being absent) and an `ADD members 1` on the count (conditional on
//! `members < :cap`); leaving is a conditional `Delete` and `ADD members -1`.
//! Either both happen or neither, so the count is the number of member
//! items and no number of concurrent enrollments passes the cap. A
//! `TransactionConflict` (another enrollment on the same count at that
//! moment) is retried.
//!
//! # Creating the table
//!
//! [`create_table`] creates exactly this (tests, local tooling). Terraform
//! must declare the same: `billing_mode = "PAY_PER_REQUEST"`, `hash_key =
//! "PK"`, `range_key = "SK"`, attributes `PK`, `SK`, `GSI1PK`, `GSI1SK` of type
//! `S`, a `global_secondary_index` named `GSI1` (`GSI1PK`/`GSI1SK`,
//! `projection_type = "ALL"`) and `ttl { attribute_name = "expires_at",
//! enabled = true }`.

//!
//! # Code layout
//!
//! This module holds the store, its table and the calls every role makes
//! (`GetItem`, a paginated `Query`, error classification); `keys` builds the
//! keys above, `items` reads items back, and each role trait has its own
//! file. What both backends encode alike (times, status names, documents,
//! commit checks, error wording) lives in the store's shared codec.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use self::keys::{EXPIRES_AT, GSI1, GSI1PK, GSI1SK, Item, PK, SK, s};
use super::StoreError;
#[cfg(doc)]
use super::{Commits, Store, Subscriptions};
#[cfg(doc)]
use crate::model::{LogEntry, Subscription};

mod commits;
mod counted;
mod deliveries;
mod enrollments;
mod inventory;
mod items;
mod keys;
mod links;
mod outbox;
mod seats;
mod subscriptions;
mod tokens;

/// The SDK's full configuration chain (environment, profiles, SSO, the
/// instance role), for the CLI on an operator's machine.
#[cfg(feature = "credential-chain")]
async fn sdk_config() -> aws_sdk_dynamodb::config::Builder {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::https::SdkHttpClient::new())
        .load()
        .await;
    aws_sdk_dynamodb::config::Builder::from(&shared)
}

/// What Lambda puts in a function's environment: the region and the
/// execution role's credentials. Read directly rather than through
/// `aws-config`'s provider chain, which the functions do not need and which
/// costs binary size and cold-start time (README "Budgets, measured").
/// Without credentials the client is still built; its calls then fail as
/// the store being unavailable (503), and the error names the cause.
#[cfg(not(feature = "credential-chain"))]
async fn sdk_config() -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(crate::https::SdkHttpClient::new());
    if let Some(region) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
        builder = builder.region(Region::new(region));
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        builder = builder.credentials_provider(Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        ));
    }
    if let Some(url) = env("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| env("AWS_ENDPOINT_URL")) {
        builder = builder.endpoint_url(url);
    }
    builder
}

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
    /// A store on `table`, configured from the environment.
    /// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`) points it at a
    /// local server.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let conf = sdk_config().await.timeout_config(Self::timeouts()).build();
        Self::new(Client::from_conf(conf), table)
    }

    /// Bounds on every DynamoDB call, so a store that hangs costs a caller
    /// a few seconds and a 503, never the function's whole timeout: 1 s to
    /// connect, 1 s per attempt, 3 s per operation across the SDK's
    /// retries. The functions' own bounds (2 s to record a delivery, 5 s to
    /// process it) sit on top; the hot-path check answers well inside them.
    pub fn timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
        aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .operation_attempt_timeout(std::time::Duration::from_secs(1))
            .operation_timeout(std::time::Duration::from_secs(3))
            .build()
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

    /// The primary key of an item.
    fn key(&self, pk: String, sk: &str) -> Item {
        HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
    }

    /// A strongly consistent `GetItem`.
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
        query: QueryFluentBuilder,
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
