//! A DynamoDB endpoint that accepts connections and never answers: what a
//! hung store looks like to the SDK. Tests use it to prove every call is
//! bounded by the store's own timeouts.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tokio::net::TcpListener;
use tollgate::store::dynamo::DynamoStore;

/// Listens on 127.0.0.1 and holds every connection, silent, until the task
/// is dropped. Returns the endpoint URL and the task.
pub async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .expect("a bound listener has an address")
    );
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// A DynamoDB store on `url`, with the timeouts the functions use.
pub fn store_on(url: &str) -> DynamoStore {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(tollgate::https::SdkHttpClient::new())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(url)
        .timeout_config(DynamoStore::timeouts())
        .build();
    DynamoStore::new(Client::from_conf(conf), "tollgate")
}
