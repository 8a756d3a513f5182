//! Serves one of the functions over real HTTP on 127.0.0.1 (a free port),
//! for tests whose peer is a real client: the Google stand-in pushing
//! Pub/Sub messages, a browser-like form post.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use tokio::net::TcpListener;
use tollgate::web::{Body, Function, MAX_BODY_BYTES, serve};

/// A function served until the returned guard is dropped.
pub struct Served {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds a free port and serves `function` on it. The listener is bound
/// before this returns, so a request sent right after cannot be refused.
pub async fn serve_function(function: impl Function + 'static) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let shared: Arc<dyn Function> = Arc::new(function);
    let router = axum::Router::new().fallback(forward).with_state(shared);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { addr, task }
}

async fn forward(State(function): State<Arc<dyn Function>>, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES + 1).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let (parts, body) = serve(&*function, http::Request::from_parts(parts, body))
        .await
        .into_parts();
    let bytes = match body {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}
