//! The client side of the stand-ins' `/_sim` control routes, shared by the
//! GitHub, Google and Q2 stand-ins' `Remote`s (what `tollgate fire` and
//! `tollgate demo` call): one request, its JSON answer, and the two ways it
//! can fail.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a call to a stand-in's control routes failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach the {stand_in} stand-in at {url}: {message}")]
    Unreachable {
        stand_in: &'static str,
        url: String,
        message: String,
    },
    /// The stand-in refused (`status` 404, 409 or 400), or its answer could
    /// not be read.
    #[error("the {stand_in} stand-in answered {status}: {message}")]
    Refused {
        stand_in: &'static str,
        status: u16,
        message: String,
    },
}

/// A running stand-in's `/_sim` routes, by its base URL.
#[derive(Debug, Clone)]
pub struct ControlClient {
    stand_in: &'static str,
    base_url: String,
    http: reqwest::Client,
}

impl ControlClient {
    /// `stand_in` names it in errors ("GitHub", "Google", "Q2").
    pub fn new(stand_in: &'static str, base_url: impl Into<String>) -> Self {
        Self {
            stand_in,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `method` on `/_sim{path}` with an optional JSON body: the status and
    /// the JSON answer, whatever the status.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(u16, Value), RemoteError> {
        let url = format!("{}/_sim{path}", self.base_url);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| RemoteError::Unreachable {
            stand_in: self.stand_in,
            url: url.clone(),
            message: e.to_string(),
        };
        let res = request.send().await.map_err(unreachable)?;
        let status = res.status().as_u16();
        let value: Value = res.json().await.map_err(unreachable)?;
        Ok((status, value))
    }

    /// [`send`](Self::send), with any status of 300 or more as
    /// [`RemoteError::Refused`] (the stand-in's `error` as the message).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Value, RemoteError> {
        match self.send(method, path, body).await? {
            (status, value) if status >= 300 => Err(self.refused(status, &value)),
            (_, value) => Ok(value),
        }
    }

    /// The stand-in's refusal, `status` and its `error` message.
    pub fn refused(&self, status: u16, value: &Value) -> RemoteError {
        RemoteError::Refused {
            stand_in: self.stand_in,
            status,
            message: value["error"].as_str().unwrap_or("").to_owned(),
        }
    }

    /// An answer read as `T`; one that does not fit is a refusal.
    pub fn read<T: DeserializeOwned>(&self, value: Value) -> Result<T, RemoteError> {
        serde_json::from_value(value).map_err(|e| RemoteError::Refused {
            stand_in: self.stand_in,
            status: 200,
            message: format!("unreadable answer: {e}"),
        })
    }
}

/// For a call without a body.
pub const NO_BODY: Option<&()> = None;

/// A stand-in's reply is kept up to this many bytes.
const REPLY_BYTES: usize = 4096;

/// What came of a signed event a stand-in POSTed to Tollgate.
#[derive(Debug, Default)]
pub(crate) struct Posted {
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Its reply (the start of it).
    pub reply: String,
    /// Why there is no answer.
    pub error: Option<String>,
}

/// POSTs `body` with `headers` to `url` as a marketplace does: no redirects
/// followed, `timeout` for the whole exchange; failures are reported, not
/// raised, since the stand-in tells what the marketplace would have seen.
pub(crate) async fn post_signed<N: AsRef<str>>(
    url: &str,
    headers: Vec<(N, String)>,
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> Posted {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return Posted {
                error: Some(e.to_string()),
                ..Posted::default()
            };
        }
    };
    let mut req = client.post(url).body(body);
    for (name, value) in headers {
        req = req.header(name.as_ref(), value);
    }
    let mut posted = Posted::default();
    match req.send().await {
        Ok(res) => {
            posted.status = Some(res.status().as_u16());
            match res.bytes().await {
                Ok(b) => {
                    let cut = b.get(..b.len().min(REPLY_BYTES)).unwrap_or_default();
                    posted.reply = String::from_utf8_lossy(cut).into_owned();
                }
                Err(e) => posted.error = Some(format!("reading the reply: {e}")),
            }
        }
        Err(e) => posted.error = Some(e.to_string()),
    }
    posted
}
