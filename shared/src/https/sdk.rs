//! The AWS SDK's requests sent through `reqwest` on the shared TLS
//! configuration, so the SDK needs no HTTP client (and trust store) of its
//! own.
//!
//! The SDK keeps doing everything above the wire: signing, retries and
//! their classification, the attempt and operation timeouts. This layer
//! maps one request to one exchange and says which failures were timeouts
//! or I/O, so the SDK's retry policy sees what its own client would report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;

use super::TlsError;

/// Largest SDK response read into memory. DynamoDB pages stop at 1 MB of
/// items; the rest is headroom for attribute names and JSON escaping.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

type Timeouts = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] for the AWS SDK on the process's one `reqwest` stack.
/// One connector (and connection pool) per distinct pair of connect/read
/// timeouts the SDK asks for — in practice one.
#[derive(Debug, Clone, Default)]
pub struct SdkHttpClient {
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

impl SdkHttpClient {
    pub fn new() -> Self {
        Self::default()
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // A poisoned lock only means another thread panicked while inserting;
        // the map is still a valid cache.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(key)))
            .clone()
    }
}

/// One `reqwest` client, or why it could not be built (reported on every
/// call rather than panicking inside the SDK's plumbing).
#[derive(Debug)]
struct Connector {
    client: Result<reqwest::Client, Arc<String>>,
}

impl Connector {
    fn new((connect, read): Timeouts) -> Self {
        let build = || -> Result<reqwest::Client, String> {
            let mut builder = super::client_builder()
                .map_err(|e: TlsError| e.to_string())?
                // The SDK signs the exact request; nothing may rewrite it.
                .redirect(reqwest::redirect::Policy::none());
            if let Some(connect) = connect {
                builder = builder.connect_timeout(connect);
            }
            if let Some(read) = read {
                builder = builder.read_timeout(read);
            }
            builder.build().map_err(|e| e.to_string())
        };
        Self {
            client: build().map_err(Arc::new),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("HTTP client for the AWS SDK could not be built: {0}")]
    Client(Arc<String>),
    #[error("streaming request bodies are not supported")]
    StreamingBody,
    #[error("request could not be sent: {0}")]
    Request(String),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("response status {0} is not an HTTP status")]
    Status(u16),
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client =
                client.map_err(|e| ConnectorError::other(ExchangeError::Client(e).into(), None))?;
            exchange(&client, request).await
        })
    }
}

async fn exchange(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let user = |e: ExchangeError| ConnectorError::other(e.into(), Some(ErrorKind::ClientError));
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| user(ExchangeError::Request(e.to_string())))?;
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| user(ExchangeError::StreamingBody))?
        .to_vec();
    let mut outgoing = client.request(method, request.uri()).body(body);
    for (name, value) in request.headers().iter() {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = crate::outbound::read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            crate::outbound::ReadError::TooLarge { .. } => user(ExchangeError::TooLarge),
            crate::outbound::ReadError::Transport(e) => transport_error(e),
        })?;
    let status = StatusCode::try_from(status).map_err(|_| user(ExchangeError::Status(status)))?;
    let mut reply = HttpResponse::new(status, SdkBody::from(bytes));
    for (name, value) in &headers {
        // Headers that are not visible ASCII are dropped: DynamoDB sends none,
        // and the SDK reads only its own.
        if let Ok(value) = value.to_str() {
            reply
                .headers_mut()
                .append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(reply)
}

/// Tells the SDK's retry policy what kind of failure this was: timeouts
/// and connection failures are retried as transient, like the SDK's own
/// client reports them.
fn transport_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
    }
}
