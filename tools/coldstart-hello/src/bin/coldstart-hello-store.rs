//! A second reference for `make bench` (README "Budgets, measured"): the
//! bare hello-world of `coldstart-hello`, plus the one thing every Tollgate
//! function must do before its first poll, opening the DynamoDB store
//! (`DynamoStore::from_env`: the AWS SDK client over Tollgate's HTTP
//! client). Its ratio to the bare hello is the part of each function's cold
//! start that the SDK costs by itself.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use tollgate::store::dynamo::DynamoStore;

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("hello")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store = DynamoStore::from_env("coldstart").await;
    std::hint::black_box(&store);
    run(service_fn(hello)).await
}
