//! A context reference for `make bench` (README "Budgets, measured"):
//! `coldstart-hello-current-thread` (the bare hello on the functions'
//! current-thread runtime) plus the one thing every Tollgate function must
//! do before its first poll, opening the DynamoDB store
//! (`DynamoStore::from_env`: the AWS SDK client over Tollgate's HTTP
//! client). Its ratio to that hello is the part of each function's cold
//! start that the SDK costs by itself.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use tollgate::store::dynamo::DynamoStore;

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("hello")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let store = DynamoStore::from_env("coldstart").await;
    std::hint::black_box(&store);
    run(service_fn(hello)).await
}
