//! Lambda events that are not HTTP requests: the EventBridge schedule that
//! runs reconciliation in purchase-webhook, and what wakes its
//! notification sender: the table's DynamoDB stream (a change was
//! committed) and a short timer rule for retries that came due.
//!
//! A function's Lambda receives two kinds of event: function-URL requests
//! (payload format 2.0, always with a `requestContext`) and, for a function
//! with a schedule, EventBridge's `Scheduled Event`. [`handle`] tells them
//! apart and hands each to its handler. The scheduled event is read as
//! "run the scheduled task" and nothing more: none of its fields (time,
//! resources, detail) is used, so a hand-written event — which only a
//! principal allowed to invoke the function directly could send; function
//! URL callers reach it only as HTTP requests — cannot steer the run.
//! Anything else is refused with an error, never guessed at.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde::Deserialize;
use serde_json::Value;

use crate::web::{Function, Request, serve};

/// What a scheduled run returns (the invocation's result; EventBridge
/// discards it, an operator invoking by hand sees it).
pub type ScheduledResult = Result<Value, ScheduleError>;

/// Why a scheduled run failed. Returned as the invocation's error, so it
/// counts in the function's `Errors` metric (and its alarm).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("this function runs nothing on a schedule")]
    NoSchedule,
    #[error("this function sends no notifications")]
    NoOutbox,
    #[error("{0}")]
    Failed(String),
    #[error("neither a function URL request nor an EventBridge scheduled event; refused")]
    UnknownEvent,
    #[error("cannot answer the function URL request: {0}")]
    Response(#[from] serde_json::Error),
}

/// What kind of event Lambda delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A function URL request (it carries a `requestContext`).
    Http,
    /// EventBridge's `Scheduled Event` (`source` `aws.events`).
    Scheduled,
    /// "Drain the notification outbox": a batch of DynamoDB stream records
    /// (`Records[].eventSource` `aws:dynamodb`: new outbox items), or the
    /// retry timer's constant input `{"tollgate": "drain-notifications"}`.
    Outbox,
    Unknown,
}

/// Only the fields that tell the kinds apart; the rest is never read.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "requestContext", default)]
    request_context: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    source: Option<String>,
    #[serde(rename = "detail-type", default)]
    detail_type: Option<String>,
    #[serde(rename = "Records", default)]
    records: Option<Vec<RecordProbe>>,
    #[serde(default)]
    tollgate: Option<String>,
}

#[derive(Deserialize)]
struct RecordProbe {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
}

/// Classifies a Lambda event. A function URL request is recognized first:
/// whatever its body says, an HTTP caller's event is HTTP.
pub fn kind_of(event: &Value) -> EventKind {
    let Ok(probe) = Probe::deserialize(event) else {
        return EventKind::Unknown;
    };
    if probe.request_context.is_some() {
        return EventKind::Http;
    }
    if probe.source.as_deref() == Some("aws.events")
        && probe.detail_type.as_deref() == Some("Scheduled Event")
    {
        return EventKind::Scheduled;
    }
    if let Some(records) = &probe.records
        && !records.is_empty()
        && records
            .iter()
            .all(|r| r.event_source.as_deref() == Some("aws:dynamodb"))
    {
        return EventKind::Outbox;
    }
    if probe.tollgate.as_deref() == Some("drain-notifications") {
        return EventKind::Outbox;
    }
    EventKind::Unknown
}

/// A function that may also run something on a schedule.
#[async_trait::async_trait]
pub trait Scheduled: Function {
    /// Runs the scheduled task, bounded by `deadline` (the invocation's).
    async fn on_schedule(&self, deadline: Option<SystemTime>) -> ScheduledResult {
        let _ = deadline;
        Err(ScheduleError::NoSchedule)
    }

    /// Drains the notification outbox, bounded by `deadline`. The event is
    /// not read: a stream batch only says "something was committed", and
    /// what to send is read from the table itself. An error fails the batch
    /// (Lambda retries it, then hands it to the failure destination); the
    /// table still holds the work either way.
    async fn on_outbox(&self, deadline: Option<SystemTime>) -> ScheduledResult {
        let _ = deadline;
        Err(ScheduleError::NoOutbox)
    }
}

/// Serves one Lambda event: HTTP through [`serve`], exactly as
/// `lambda_http::run` would, a scheduled event through
/// [`Scheduled::on_schedule`].
pub async fn handle<F: Scheduled + 'static>(
    f: Arc<F>,
    event: LambdaEvent<Value>,
) -> ScheduledResult {
    let LambdaEvent { payload, context } = event;
    match kind_of(&payload) {
        EventKind::Http => http(f, payload, context).await,
        EventKind::Scheduled => {
            tracing::info!(request_id = %context.request_id, "scheduled run");
            f.on_schedule(deadline(&context)).await
        }
        EventKind::Outbox => {
            tracing::info!(request_id = %context.request_id, "notification drain");
            f.on_outbox(deadline(&context)).await
        }
        EventKind::Unknown => {
            // The payload is not logged: it is not ours to trust or keep.
            tracing::error!(request_id = %context.request_id, "unrecognized Lambda event refused");
            Err(ScheduleError::UnknownEvent)
        }
    }
}

/// A function URL event, through `lambda_http`'s own adapter (request and
/// response conversion, Lambda context on the request), so HTTP behaves as
/// under `lambda_http::run`.
async fn http<F: Function + 'static>(
    f: Arc<F>,
    payload: Value,
    context: Context,
) -> ScheduledResult {
    let request: LambdaRequest =
        serde_json::from_value(payload).map_err(|_| ScheduleError::UnknownEvent)?;
    let service = lambda_http::service_fn(move |req: Request| {
        let f = Arc::clone(&f);
        async move { Ok::<_, Infallible>(serve(&*f, req).await) }
    });
    let mut adapter = lambda_http::Adapter::from(service);
    let response = match adapter.call(LambdaEvent::new(request, context)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    Ok(serde_json::to_value(response)?)
}

/// The invocation's deadline, if Lambda gave one.
fn deadline(context: &Context) -> Option<SystemTime> {
    (context.deadline > 0).then(|| UNIX_EPOCH + Duration::from_millis(context.deadline))
}

/// Serves `f` on the Lambda runtime: function URL requests and, when it
/// has one, its schedule.
pub async fn run_lambda<F: Scheduled + 'static>(f: F) -> Result<(), lambda_http::Error> {
    let f = Arc::new(f);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event: LambdaEvent<Value>| {
        let f = Arc::clone(&f);
        async move {
            handle(f, event)
                .await
                .map_err(|e| lambda_http::Error::from(e.to_string()))
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_told_apart_by_shape_and_an_http_body_never_passes_for_a_schedule() {
        let scheduled = json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-03-01T06:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-reconcile"],
            "detail": {}
        });
        assert_eq!(kind_of(&scheduled), EventKind::Scheduled);
        let url = json!({
            "version": "2.0", "rawPath": "/github", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {"http": {"method": "POST", "path": "/github"}},
            "body": scheduled.to_string(),
            "source": "aws.events", "detail-type": "Scheduled Event"
        });
        assert_eq!(kind_of(&url), EventKind::Http);
        let stream = json!({"Records": [{
            "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"PK": {"S": "OUTBOX"}, "SK": {"S": "msg_1"}}}
        }]});
        assert_eq!(kind_of(&stream), EventKind::Outbox);
        let timer = json!({"tollgate": "drain-notifications"});
        assert_eq!(kind_of(&timer), EventKind::Outbox);
        for other in [
            json!({"Records": []}),
            json!({"Records": [{"eventSource": "aws:sqs"}]}),
            json!({"tollgate": "reconcile"}),
            json!({"source": "aws.s3", "detail-type": "Scheduled Event"}),
            json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
            json!([1, 2]),
            json!("reconcile"),
        ] {
            assert_eq!(kind_of(&other), EventKind::Unknown, "{other}");
        }
    }
}
